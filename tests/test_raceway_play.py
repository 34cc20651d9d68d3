"""KartStudio Raceway as a game of KartStudio's engine, in the real mupen64plus under Xvfb with our
input plugin: the backend starts it with its state channel and matches the game's state to each
frame, the expert records both seats at once through the window capture and the Recorder (every
label what the game read), the expert finishes a race, and a small model trained on the
demonstrations drives in the emulator (slow)."""

import os

import numpy as np
import pytest

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.emulator import raceway
from kartstudio.emulator.launcher import VIDEO_FOR_GAME, video_for
from kartstudio.emulator.rom import require_game_rom
from kartstudio.session import open_session
from test_raceway import needs_compiler, needs_emulator_game
from emulator_support import xdisplay  # noqa: F401 - fixture

SHORT_TRACK = 78  # a short lap (about 18 s) with a hairpin as sharp as the game makes them


@needs_compiler
def test_rom_check_accepts_raceway_by_its_header():
    info = require_game_rom(raceway.rom_path())
    assert info.is_raceway and not info.is_mario_kart_64 and info.game == "raceway"
    assert "KartStudio Raceway" in info.describe()
    assert VIDEO_FOR_GAME["raceway"] == video_for("raceway") == "mupen64plus-video-glide64mk2"
    assert raceway.rom_path() == raceway.rom_path()  # built once, then found


@pytest.fixture(scope="module")
def game(xdisplay):
    from kartstudio.raceway.game import raceway_backend

    assert "KARTSTUDIO_STATE_CHANNEL" not in os.environ  # the backend passes it to the emulator alone
    backend = raceway_backend(SHORT_TRACK, laps=1, display=xdisplay, lockstep=True)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


@needs_emulator_game
def test_the_boot_macro_reaches_a_2p_race_on_the_track_and_frames_carry_its_state(game):
    frame = game.next_frame()
    state = frame.game_state
    assert state is not None and state.frame == frame.number  # matched by the frame counter
    assert (state.phase, state.players, state.track, state.laps) == ("countdown", 2, SHORT_TRACK, 1)
    assert game.track == str(SHORT_TRACK)  # what the app's sessions record as the track
    game.set_controller(1, ControllerState(a=True, x=8))
    game.set_controller(2, NEUTRAL)
    for _ in range(raceway.COUNTDOWN_FRAMES + 30):
        frame = game.next_frame()
        assert frame.game_state.frame == frame.number
    state = frame.game_state
    assert state.phase == "race" and state.seat(1).speed > 5 and state.seat(2).speed == 0
    # the state's controller bytes are what the plugin says the game read for this frame
    assert state.seat(1).controller == frame.inputs[1] == ControllerState(a=True, x=8)
    assert state.seat(2).controller == frame.inputs[2] == NEUTRAL


@needs_emulator_game
def test_the_expert_finishes_a_one_lap_race(game):
    from kartstudio.raceway.expert import RacewayExpertDriver
    from kartstudio.raceway.evaluate import run_race

    # the fixture's race is under way with seat 1 ahead; both seats' experts take over from here
    results = run_race(SHORT_TRACK, {1: RacewayExpertDriver(), 2: RacewayExpertDriver()}, laps=1, game=game)
    for r in results:
        assert r.finished and r.progress == 1.0, r
        assert r.off_road_s < 1.0 and 10 < r.race_time_s < 40
        assert r.score > 800


@pytest.fixture(scope="module")
def recorded(xdisplay, tmp_path_factory):
    from kartstudio.raceway.demos import record_race

    folder = tmp_path_factory.mktemp("raceway-demos")
    seen, readers = [], []

    def hook(frame, backend):
        seen.append((frame.number, dict(frame.inputs)))
        readers[:] = [backend.state_reader]

    result = record_race(folder, 101, display=xdisplay, seconds=10.0, on_frame=hook)
    return result, seen, readers[0]


@needs_emulator_game
def test_ten_seconds_of_both_seats_recorded_by_the_expert_labels_what_the_game_read(recorded):
    result, seen, reader = recorded
    assert len(result.paths) == 2 and result.seat_frames[1] == result.seat_frames[2] == len(seen) > 100
    states = {s.frame: s for s in reader.recent}
    checked = 0
    for number, inputs in seen:
        state = states.get(number)
        if state is None:
            continue  # the last frame's report may still have been on its way
        for seat in (1, 2):
            assert inputs[seat] == state.seat(seat).controller, (number, seat)
        checked += 1
    assert checked >= len(seen) - 2
    numbers = [n for n, _ in seen]
    assert len(set(numbers)) == len(numbers)  # one recorded frame per game frame, never twice
    with open_session(result.paths[0]) as s1, open_session(result.paths[1]) as s2:
        assert (s1.meta.game, s1.meta.track, s1.meta.layout, s1.meta.seat, s2.meta.seat) == ("raceway", "101", "seat", 1, 2)
        assert s1.meta.capture_region == (0, 0, 640, 240) and s2.meta.capture_region == (0, 240, 640, 240)
        assert len(s1) == len(s2) == len(seen)
        a1, a2 = s1.actions[:], s2.actions[:]
        # gas pressed (the expert lifts at its speed limit: 0.48-0.8 of frames, as far as the race got) and steering
        assert a1[:, 2].mean() > 0.25 and np.abs(a1[:, 0]).max() > 0.05
        for i, (number, inputs) in enumerate(seen):  # the files hold exactly what the game read
            assert bool(a1[i, 2]) == inputs[1].a and bool(a2[i, 2]) == inputs[2].a
        top, bottom = s1.frames[len(s1) // 2].astype(int), s2.frames[len(s2) // 2].astype(int)
    assert np.abs(top - bottom).mean() > 2, "the two seats' frames are the same picture"
    for view in (top, bottom):
        grey = (np.abs(view[..., 0] - view[..., 2]) < 14) & (view[..., 0] > 80) & (view[..., 0] < 125)
        green = (view[..., 1] > view[..., 0] + 40) & (view[..., 1] > view[..., 2] + 40)
        assert grey.mean() > 0.05 and green.mean() > 0.05, "no road and grass in a seat's frame"


@pytest.mark.slow
@needs_emulator_game
def test_a_small_model_trained_on_demonstrations_drives_in_the_emulator(xdisplay, tmp_path):
    from kartstudio.raceway.demos import record_demonstrations
    from kartstudio.raceway.evaluate import evaluate_model
    from kartstudio.training.budget import train_with_budget
    from kartstudio.training.config import TrainConfig
    from kartstudio.training.recipe import recipe

    demos = record_demonstrations(tmp_path / "demos", minutes=2, display=xdisplay)  # two races' worth
    assert demos.frames >= 2 * 60 * 60
    model = tmp_path / "raceway.keras"
    train_with_budget(demos.paths, model, TrainConfig.from_recipe(recipe("default"), 0, tensorboard=False), 180)
    report = evaluate_model(model, tracks=1, track_start=SHORT_TRACK, display=xdisplay)
    (race,) = report.races
    assert race.progress > 0.3, race  # it drives on along the road, not just off the grid


@needs_emulator_game
def test_the_gymnasium_env_runs_raceway_rewarded_by_progress(xdisplay, tmp_path):
    import gymnasium

    import kartstudio.envs  # noqa: F401 - registers the environments
    from kartstudio.emulator.testrom import build_test_rom
    from kartstudio.errors import KartStudioError

    with pytest.raises(KartStudioError, match="not KartStudio Raceway"):
        gymnasium.make("KartStudio/Raceway-v0", rom=str(build_test_rom(tmp_path / "test.z64")))
    env = gymnasium.make("KartStudio/Raceway-v0", track=SHORT_TRACK, display=xdisplay, speed_limit=False)
    try:
        obs, info = env.reset()
        assert obs.shape == (480, 640, 3) and info["race"].speed == 0 and info["race"].race_frames <= 2
        rewards = [env.step(np.array([0, 0, 1, 0, 0]))[1] for _ in range(90)]  # full gas, straight on
        assert sum(rewards) > 0.5 and min(rewards) >= 0  # a start straight: progress every step
        *_, terminated, truncated, info = env.step(np.array([0, 0, 0, 0, 0]))
        assert not terminated and info["race"].speed > 10 and info["read"] == NEUTRAL
        assert sum(rewards) == pytest.approx(100 * info["race"].progress, abs=1.0)
    finally:
        env.close()


def test_the_menu_macro_file_is_mario_kart_64s_format(tmp_path):
    from kartstudio.emulator.macro import Macro
    from kartstudio.raceway.game import write_menu_macro

    path = write_menu_macro(tmp_path / "raceway-427.json", 427, laps=2)
    assert Macro.load(path).steps == raceway.menu_macro(427, laps=2).steps


def _seat(**kw):
    base = dict(seat=1, lap=0, lap_fraction=0.1, lateral=-0.3, heading_error=0.0, speed=56.0, off_road=False,
                finished=False, leading=False, airborne=False, drifting=False, race_frames=600, curve_ahead=0, buttons=0)
    return raceway.RacewayState(**{**base, **kw})


def test_the_expert_brakes_for_a_hairpin_it_was_told_about_and_steers_to_its_lane():
    from kartstudio.raceway.expert import RacewayExpert

    expert = RacewayExpert(seat=1)
    first = expert.act(_seat(curve_ahead=0, speed=50.0))  # on a straight in its lane: full gas
    assert first.a and not first.b and first.x == 0
    pads = [expert.act(_seat(curve_ahead=127)) for _ in range(20)]  # a hairpin 3000 units ahead
    assert pads[-1].b and not pads[-1].a  # too fast to slow down for it in time: brakes now
    # right of its lane (seat 1 keeps left of the centre line): steers left
    assert RacewayExpert(seat=1).act(_seat(lateral=0.3)).x < 0 < RacewayExpert(seat=2).act(_seat(seat=2, lateral=-0.3)).x
    assert RacewayExpert(seat=1).act(_seat(finished=True)) == NEUTRAL


@needs_emulator_game
def test_a_whole_screen_model_drives_raceway_1_player_race(xdisplay, tmp_path):
    """Issue 21: the 1-player race through its menu macro (one kart on the whole screen), a
    whole-screen model driving it a few seconds as eval runs it; the 2-player race refuses it."""
    from kartstudio.drivers import PilotDriver, load_pilot
    from kartstudio.errors import KartStudioError
    from kartstudio.game import SeatLayout
    from kartstudio.raceway.evaluate import evaluate_model, run_race
    from test_solo import _gas_model

    pilot = load_pilot(_gas_model(tmp_path / "whole.keras", "whole"))
    seen = []
    results = run_race(SHORT_TRACK, {1: PilotDriver(pilot)}, laps=1, display=xdisplay, limit_s=4, players=1,
                       on_frame=lambda frame, labels: seen.append((frame.game_state, labels.get(1))) and None)
    states = [s for s, _ in seen if s is not None]
    assert states and all(s.players == 1 for s in states)  # the game's own 1-player race
    assert [r.seat for r in results] == [1] and results[0].progress > 0.02  # the AI drove it forward
    assert any(label is not None and label.a for _, label in seen)
    with pytest.raises(KartStudioError, match="race it in 1-player mode"):
        evaluate_model(pilot, tracks=1, players=2)
    from kartstudio.raceway.game import raceway_backend

    assert raceway_backend(SHORT_TRACK, players=1).layout == SeatLayout.whole_screen()


@needs_emulator_game
def test_dagger_corrections_are_the_models_own_race_frames_with_the_demonstrators_labels(xdisplay, tmp_path):
    from kartstudio.drivers import load_pilot
    from kartstudio.model import build_model, save_model
    from kartstudio.raceway.dagger import RacewayDaggerConfig, record_corrections
    from kartstudio.raceway.expert import RacewayExpertDriver

    model = save_model(build_model("kartstudio"), tmp_path / "fresh.keras")  # untrained: it drives anyhow
    labels = []

    class Labeller(RacewayExpertDriver):
        def act(self, game, seat, frame):
            label = super().act(game, seat, frame)
            if frame is not None and frame.game_state is not None and frame.game_state.phase == "race":
                labels.append(label)
            return label

    config = RacewayDaggerConfig(tracks=1, race_limit_s=3.0)
    paths, frames = record_corrections(load_pilot(model), tmp_path / "corrections", [SHORT_TRACK], Labeller, config,
                                       xdisplay, "fresh.keras")
    (path,) = paths
    with open_session(path) as s:
        assert (s.meta.kind, s.meta.game, s.meta.track, s.meta.seat) == ("correction", "raceway", str(SHORT_TRACK), 1)
        assert len(s) == frames and 2.5 * 60 <= frames <= 3 * 60 + 1
        actions = s.actions[:]
    # every recorded label is the demonstrator's decision for that frame (it drives off the grid on
    # full gas), whatever the untrained model did with the kart
    recorded = [ControllerState(x=round(a[0] * 80), a=bool(a[2]), b=bool(a[3])) for a in actions]
    assert recorded == [ControllerState(x=l.x, a=l.a, b=l.b) for l in labels[:frames]]
    assert actions[:, 2].mean() > 0.9
