"""Gymnasium environments over the real emulator, with gym-mupen64plus's Mario Kart action space.

Importing this package registers:
- ``KartStudio/MarioKart64-v0``: Mario Kart 64 (your ROM: ``rom=`` or $KARTSTUDIO_ROM), booted to a
  2-player VS race by the menu macro; the agent drives seat 1. ``players=1``: a 1-player time trial
  (an unverified macro), one kart on the whole screen.
- ``KartStudio/TestROM-v0``: KartStudio's own homebrew test ROM (built on the fly), which shows on
  screen what it read from the controller: for tests and for checking a set-up without the game.
- ``KartStudio/Raceway-v0``: KartStudio Raceway, our own kart game (built on the fly): a 2-player race
  on ``track=`` (0-999, ``laps=``); the agent drives seat 1, rewarded for progress (state channel).
  ``players=1``: its 1-player race, one kart on the whole screen.

A trained model's input: ``env.unwrapped.view_for(pilot, observation)`` (its seat's half, or the whole
screen of a 1-player game; a whole-screen model in a 2-player env is refused).

    import gymnasium, kartstudio.envs
    env = gymnasium.make("KartStudio/TestROM-v0")
"""

import gymnasium

from kartstudio.envs.mario_kart import (ACTION_SPACE, OBSERVATION_SPACE, MarioKart64Env, RacewayEnv, TestRomEnv,
                                       action_to_state)

ENV_IDS = {
    "KartStudio/MarioKart64-v0": ("kartstudio.envs.mario_kart:MarioKart64Env", None),
    "KartStudio/TestROM-v0": ("kartstudio.envs.mario_kart:TestRomEnv", 1000),
    "KartStudio/Raceway-v0": ("kartstudio.envs.mario_kart:RacewayEnv", 60 * 90 * 9),  # the race's own time limit
}

for _id, (_entry, _max_steps) in ENV_IDS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry, max_episode_steps=_max_steps)

__all__ = ["ACTION_SPACE", "OBSERVATION_SPACE", "MarioKart64Env", "RacewayEnv", "TestRomEnv", "action_to_state", "ENV_IDS"]
