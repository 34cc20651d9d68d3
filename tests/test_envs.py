"""The Gymnasium environments: spaces like gym-mupen64plus's, and the test-ROM env on the real emulator."""

import gymnasium
import numpy as np
import pytest

import kartstudio.envs  # noqa: F401 - registers the environments
from kartstudio.controller import ControllerState
from kartstudio.emulator import testrom
from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM
from kartstudio.emulator.macro import load_mk64_vs_macro
from kartstudio.envs import ACTION_SPACE, OBSERVATION_SPACE, action_to_state
from kartstudio.errors import KartStudioError
from emulator_support import needs_emulator, xdisplay  # noqa: F401 - fixtures


def test_registered_ids():
    assert "KartStudio/MarioKart64-v0" in gymnasium.registry
    assert "KartStudio/TestROM-v0" in gymnasium.registry


def test_spaces_match_gym_mupen64plus_mario_kart():
    assert OBSERVATION_SPACE.shape == (480, 640, 3) and OBSERVATION_SPACE.dtype == np.uint8
    assert ACTION_SPACE.contains(np.array([-80, 80, 1, 0, 1]))
    assert not ACTION_SPACE.contains(np.array([81, 0, 0, 0, 0]))
    assert not ACTION_SPACE.contains(np.array([0, 0, 2, 0, 0]))
    low = ACTION_SPACE.start
    high = ACTION_SPACE.start + ACTION_SPACE.nvec - 1
    assert low.tolist() == [-80, -80, 0, 0, 0] and high.tolist() == [80, 80, 1, 1, 1]
    assert action_to_state([40, -10, 1, 0, 1]) == ControllerState(x=40, y=-10, a=True, r=True)


def test_mario_kart_env_needs_the_rom(monkeypatch, tmp_path):
    monkeypatch.delenv("KARTSTUDIO_ROM", raising=False)
    with pytest.raises(KartStudioError, match="no Mario Kart 64 ROM"):
        gymnasium.make("KartStudio/MarioKart64-v0")
    with pytest.raises(KartStudioError, match="does not exist"):
        gymnasium.make("KartStudio/MarioKart64-v0", rom=str(tmp_path / "mk64.z64"))


@pytest.mark.emulator
@needs_emulator
def test_test_rom_env_steps_through_the_real_emulator(xdisplay):
    env = gymnasium.make("KartStudio/TestROM-v0", display=xdisplay, render_mode="rgb_array")
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (480, 640, 3) and obs.dtype == np.uint8
        assert testrom.looks_like_test_screen(obs)
        env.action_space.seed(0)
        frames = [info["frame"]]
        for _ in range(12):
            action = env.action_space.sample()
            obs, reward, terminated, truncated, info = env.step(action)
            # The ROM read the action and painted it: seat 1 shows it, seat 2 stayed neutral.
            shown = testrom.decode_screen(obs)
            assert shown[1] == action_to_state(action) and shown[2].is_neutral
            assert reward == 1.0 and info["read"] == action_to_state(action)
            assert not terminated and not truncated
            frames.append(info["frame"])
        assert frames == list(range(frames[0], frames[0] + 13))  # one step, one poll
        assert np.array_equal(env.render(), obs)
        with pytest.raises(KartStudioError, match="outside"):
            env.step([100, 0, 0, 0, 0])
        obs, info = env.reset()  # a fresh boot
        assert testrom.decode_screen(obs)[1].is_neutral
    finally:
        env.close()


@pytest.mark.emulator
@needs_emulator
def test_mario_kart_env_runs_its_boot_macro_then_hands_over(xdisplay, tmp_path):
    """The MarioKart64 env on a stand-in ROM (our test ROM carrying Mario Kart 64's game code):
    reset plays the VS boot macro poll by poll, then every step is one poll of the agent's action."""
    rom = testrom.build_test_rom(tmp_path, game_code="NKTE")
    env = gymnasium.make("KartStudio/MarioKart64-v0", rom=str(rom), display=xdisplay, video=VIDEO_FOR_TEST_ROM,
                         speed_limit=False)
    try:
        obs, info = env.reset()
        first = info["frame"]
        assert first == load_mk64_vs_macro().length + 1  # the macro's polls, then the first observation
        for i in range(5):
            action = [10 * i, -10 * i, 1, 0, i % 2]
            obs, reward, terminated, truncated, info = env.step(action)
            assert reward == -1.0 and not terminated
            assert info["frame"] == first + i + 1
            assert testrom.decode_screen(obs)[1] == action_to_state(action) == info["read"]
    finally:
        env.close()


@pytest.mark.emulator
@needs_emulator
def test_a_1_player_mario_kart_env_plays_the_time_trial_macro_and_feeds_a_model_its_own_view(xdisplay, tmp_path):
    """players=1: reset plays the time-trial macro (a 1-player game: one controller, one kart on the
    whole screen), and view_for feeds a whole-screen model the whole screen; a 2-player env refuses it."""
    from kartstudio.drivers import load_pilot
    from kartstudio.emulator.macro import load_mk64_tt_macro
    from kartstudio.images import resize
    from kartstudio.model import build_model, save_model, set_input_spec

    model = build_model("kartstudio")
    set_input_spec(model, "whole", None)
    whole = load_pilot(save_model(model, tmp_path / "whole.keras"))
    rom = testrom.build_test_rom(tmp_path, game_code="NKTE")
    two = gymnasium.make("KartStudio/MarioKart64-v0", rom=str(rom), display=xdisplay, video=VIDEO_FOR_TEST_ROM)
    with pytest.raises(KartStudioError, match="trained on the whole screen; race it in 1-player mode"):
        two.unwrapped.view_for(whole, np.zeros((480, 640, 3), np.uint8))  # refused before anything runs
    env = gymnasium.make("KartStudio/MarioKart64-v0", rom=str(rom), display=xdisplay, video=VIDEO_FOR_TEST_ROM,
                         speed_limit=False, players=1)
    try:
        obs, info = env.reset()
        assert info["frame"] == load_mk64_tt_macro().length + 1  # the time trial's polls, then the agent's
        assert env.unwrapped.backend.seats == (1,)
        obs, reward, terminated, truncated, info = env.step([30, 0, 1, 0, 0])
        assert testrom.decode_screen(obs)[1] == ControllerState(x=30, a=True) == info["read"]
        assert np.array_equal(env.unwrapped.view_for(whole, obs), resize(obs, (240, 320)))
    finally:
        env.close()
    with pytest.raises(KartStudioError, match="seat 2 is not a seat of a 1-player game"):
        gymnasium.make("KartStudio/MarioKart64-v0", rom=str(rom), players=1, seat=2)
