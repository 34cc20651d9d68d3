"""The emulator as a Gymnasium environment, stepped in lock-step: one step = one input poll.

Action space as gym-mupen64plus's Mario Kart env: [x, y, A, B, RB] with x, y in -80..80 and the
buttons 0/1 (a MultiDiscrete starting at -80, -80, 0, 0, 0). Observations: the full 640x480 RGB
screen: the 2-player split screen (seat 1 on top), or with players=1 a 1-player game, one kart on
the whole screen (Mario Kart 64: a time trial; KartStudio Raceway: its 1-player race).

A trained model is fed its own view of an observation with env.view_for(pilot, observation): its
seat's half, or the whole screen in a 1-player game; a whole-screen model in a 2-player env is
refused in one line (kartstudio.drivers.check_view), as in the Versus tab and eval.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.emulator.launcher import HOMEBREW_VIDEO, MK64_VIDEO, VIDEO_FOR_TEST_ROM
from kartstudio.errors import KartStudioError
from kartstudio.game import SCREEN_HEIGHT, SCREEN_WIDTH, SeatLayout

ACTION_SPACE = spaces.MultiDiscrete(np.array([161, 161, 2, 2, 2]), start=np.array([-80, -80, 0, 0, 0]))
OBSERVATION_SPACE = spaces.Box(0, 255, (SCREEN_HEIGHT, SCREEN_WIDTH, 3), dtype=np.uint8)


def action_to_state(action) -> ControllerState:
    """[x, y, A, B, RB] to a controller state (RB is the N64's R trigger, as in TensorKart)."""
    x, y, a, b, rb = (int(v) for v in np.asarray(action).reshape(-1)[:5])
    return ControllerState(x=x, y=y, a=bool(a), b=bool(b), r=bool(rb))


class _EmulatorEnv(gym.Env):
    """Shared machinery: an EmulatorBackend in lock-step on a display (a private Xvfb if none)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    video: str = ""

    def __init__(self, rom: str | Path, seat: int = 1, render_mode: str | None = None,
                 display: str | None = None, headless: bool | None = None, step_timeout: float = 5.0,
                 speed_limit: bool = True, video: str | None = None, players: int = 2) -> None:
        """display: X display (default $DISPLAY; none: a private Xvfb). speed_limit=False runs the
        emulator as fast as it can (each step still waits for exactly one input poll). video: another
        mupen64plus video plugin than the game's default. players: 2 (the split screen) or 1 (one
        kart, seat 1, on the whole screen)."""
        if render_mode not in (None, "rgb_array"):
            raise KartStudioError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        if players not in (1, 2):
            raise KartStudioError(f"players must be 1 or 2, not {players}")
        if seat not in (1, 2) or seat > players:
            raise KartStudioError(f"seat {seat} is not a seat of a {players}-player game")
        self.players = players
        self.layout = SeatLayout.whole_screen() if players == 1 else SeatLayout.split_screen()
        self.action_space = ACTION_SPACE
        self.observation_space = OBSERVATION_SPACE
        self.render_mode = render_mode
        self.rom = Path(rom)
        self.seat = seat
        self.step_timeout = step_timeout
        self.speed_limit = speed_limit
        if video is not None:
            self.video = video
        # No display given and none around (a server, CI): run the emulator on a private Xvfb.
        self._want_xvfb = headless if headless is not None else not (display or os.environ.get("DISPLAY"))
        self.display = display
        self._xvfb = None
        self.backend = None
        self._observation = np.zeros(OBSERVATION_SPACE.shape, np.uint8)

    # -- hooks for the games -----------------------------------------------------------
    def _after_boot(self) -> None:
        """Bring the game to where the agent takes over (menu macro)."""

    def _reward(self, frame, state: ControllerState) -> float:
        return 0.0

    def _terminated(self, frame) -> bool:
        return False

    # -- gymnasium -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        from kartstudio.emulator.backend import EmulatorBackend

        if self.backend is not None:  # a fresh boot per episode: the only reset the console UI offers
            self.backend.stop()
            self.backend = None
        if self._want_xvfb and self._xvfb is None:
            from kartstudio.emulator.xvfb import VirtualDisplay

            self._xvfb = VirtualDisplay()
            self.display = self._xvfb.start()
        self.backend = EmulatorBackend(self.rom, video=self.video, display=self.display, lockstep=True,
                                       step_timeout=self.step_timeout, macro=False,
                                       speed_limit=self.speed_limit, seats=tuple(range(1, self.players + 1)))
        self.backend.layout = self.layout
        self.backend.start()
        self._after_boot()
        frame = self._advance(NEUTRAL)
        return self._observation, self._info(frame)

    def step(self, action):
        if self.backend is None:
            raise KartStudioError("call reset() before step()")
        if not self.action_space.contains(np.asarray(action, dtype=np.int64)):
            raise KartStudioError(f"action {list(np.asarray(action))} is outside [x -80..80, y -80..80, A, B, RB 0/1]")
        state = action_to_state(action)
        frame = self._advance(state)
        if frame is None:  # the emulator stopped (window closed)
            return self._observation, 0.0, True, False, {"exit_reason": self.backend.exit_reason}
        return self._observation, float(self._reward(frame, state)), bool(self._terminated(frame)), False, self._info(frame)

    def _advance(self, state: ControllerState):
        for seat in self.backend.seats:
            self.backend.set_controller(seat, state if seat == self.seat else NEUTRAL)
        frame = self.backend.next_frame()
        if frame is not None:
            self._observation = frame.image
        return frame

    def _info(self, frame) -> dict:
        if frame is None:
            return {}
        read = (frame.inputs or {}).get(self.seat)
        return {"frame": frame.number, "read": read}

    def view_for(self, pilot, observation: np.ndarray) -> np.ndarray:
        """What a trained model (a kartstudio.pilot.Pilot) is fed from an observation: the view it
        was trained on, for the agent's seat. KartStudioError for a whole-screen model in a
        2-player env: make the env with players=1."""
        from kartstudio.drivers import check_view

        check_view(pilot, self.layout)
        return pilot.view(np.asarray(observation), self.seat, self.layout)

    def render(self):
        if self.render_mode == "rgb_array":
            return self._observation.copy()
        return None

    def close(self) -> None:
        if self.backend is not None:
            self.backend.stop()
            self.backend = None
        if self._xvfb is not None:
            self._xvfb.stop()
            self._xvfb = None


class MarioKart64Env(_EmulatorEnv):
    """Mario Kart 64 through the real emulator; the agent drives `seat` in a 2-player VS race, or
    with players=1 a 1-player time trial on Luigi Raceway (gym-mupen64plus's menu timings, in
    kartstudio/resources/mk64_tt_macro.json: not yet checked against the game, see its `about`).

    Reward: -1 per step (gym-mupen64plus's time cost). Episode end: the four corner pixels black for
    more than 30 steps (gym-mupen64plus's end-of-race test). Its lap and checkpoint rewards read
    HUD pixels of the 1-player screen; they are not carried over because their split-screen
    positions cannot be checked here without the game.
    """

    video = MK64_VIDEO

    STEP_REWARD = -1.0
    END_CORNERS = ((19, 19), (620, 19), (19, 460), (620, 460))  # (x, y)
    END_THRESHOLD = 30

    def __init__(self, rom: str | Path | None = None, macro: str | Path | None = None, **kwargs) -> None:
        from kartstudio.emulator.rom import require_mario_kart_64

        rom = rom or os.environ.get("KARTSTUDIO_ROM")
        if not rom:
            raise KartStudioError("no Mario Kart 64 ROM: pass rom=PATH or set KARTSTUDIO_ROM")
        require_mario_kart_64(rom)
        super().__init__(rom, **kwargs)
        self.macro_path = macro
        self._black_steps = 0

    def _after_boot(self) -> None:
        from kartstudio.emulator.macro import load_mk64_macro

        self._black_steps = 0
        self.backend.play_macro(load_mk64_macro(self.players, self.macro_path))

    def _reward(self, frame, state) -> float:
        return self.STEP_REWARD

    def _terminated(self, frame) -> bool:
        black = all(int(frame.image[y, x].sum()) == 0 for x, y in self.END_CORNERS)
        self._black_steps = self._black_steps + 1 if black else 0
        return self._black_steps > self.END_THRESHOLD


class TestRomEnv(_EmulatorEnv):
    """KartStudio's homebrew test ROM, which paints the controller it read on the screen.

    Reward: 1 when the picture shows exactly the action's controller state for the agent's seat
    (the input went through plugin, game and screen intact), else 0. Never terminates by itself.
    """

    __test__ = False  # not a pytest test class
    video = VIDEO_FOR_TEST_ROM

    def __init__(self, rom: str | Path | None = None, **kwargs) -> None:
        from kartstudio.emulator.testrom import build_test_rom

        super().__init__(rom or build_test_rom(), **kwargs)

    def _reward(self, frame, state) -> float:
        from kartstudio.emulator.testrom import decode_screen

        return 1.0 if decode_screen(frame.image)[self.seat] == state else 0.0


class RacewayEnv(_EmulatorEnv):
    """KartStudio Raceway (our own N64 kart game, built from source): the agent drives `seat` in a
    2-player race on `track`; the other seat stays on the grid. players=1: the game's 1-player race,
    one kart on the whole screen.

    Observation: the full screen, as for Mario Kart 64 (the game's state is never in it). Reward:
    REWARD_PER_LAP x the laps driven this step, read from the game's state channel (backwards is
    negative), so a whole race is worth REWARD_PER_LAP x laps. Episode end: the seat finished.
    The countdown is stepped through in reset(), so the first step already drives. info["race"]:
    the seat's RacewayState (progress, lap, lateral, speed, ...), for logging, not for the policy.
    """

    video = HOMEBREW_VIDEO
    REWARD_PER_LAP = 100.0

    def __init__(self, rom: str | Path | None = None, track: int = 0, laps: int = 1, **kwargs) -> None:
        from kartstudio.emulator import raceway
        from kartstudio.emulator.rom import RomError, check_rom

        if not 0 <= int(track) <= 999 or not 1 <= int(laps) <= 9:
            raise KartStudioError(f"track must be 0-999 and laps 1-9 (got track {track}, laps {laps})")
        rom = rom or raceway.rom_path()
        info = check_rom(rom)
        if not info.is_raceway:
            raise RomError(f"{Path(rom).name} is not KartStudio Raceway ({info.describe()}); leave rom out to build it")
        super().__init__(rom, **kwargs)
        self.track, self.laps = int(track), int(laps)
        self._progress = 0.0
        self._state = None

    def _after_boot(self) -> None:
        from kartstudio.emulator import raceway

        self.backend.play_macro(raceway.menu_macro(self.track, self.players, self.laps))
        for seat in self.backend.seats:
            self.backend.set_controller(seat, NEUTRAL)
        for _ in range(raceway.COUNTDOWN_FRAMES):  # the karts cannot move before GO
            frame = self.backend.next_frame()
            if frame is None or (frame.game_state is not None and frame.game_state.phase == "race"):
                break
        self._progress, self._state = 0.0, None

    def _seat_state(self, frame):
        state = frame.game_state if frame is not None else None
        if state is not None and len(state.seats) >= self.seat:
            self._state = state.seat(self.seat)
        return self._state

    def _reward(self, frame, state) -> float:
        seat = self._seat_state(frame)
        if seat is None:
            return 0.0
        progress = min(float(self.laps), seat.progress)
        gained, self._progress = progress - self._progress, progress
        return self.REWARD_PER_LAP * gained

    def _terminated(self, frame) -> bool:
        seat = self._seat_state(frame)
        return bool(seat is not None and seat.finished)

    def _info(self, frame) -> dict:
        info = super()._info(frame)
        seat = self._seat_state(frame)
        if seat is not None:
            info["race"] = seat
        return info
