"""A single-player race (issue 21): "Watch the AI drive" on the practice track's 1-player game (one
car on the whole screen) with a person's override held on a button and recorded as a correction
session, and the one rule for which view a model is fed (the Versus tab, eval, the env)."""

import time

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.drivers import PilotDriver, TakeoverDriver, players_for, view_note, view_problem  # noqa: E402
from kartstudio.errors import KartStudioError  # noqa: E402
from kartstudio.game import SeatLayout  # noqa: E402
from kartstudio.images import resize  # noqa: E402
from kartstudio.pads.base import PadSource  # noqa: E402
from kartstudio.play import GameLoop, play  # noqa: E402
from kartstudio.practice.backend import PracticeBackend  # noqa: E402
from kartstudio.session import SessionMeta, open_session  # noqa: E402
from kartstudio.versus import AI_SEAT, HOLD_BUTTON, Versus  # noqa: E402

GAS = ControllerState(a=True)  # what the test models always do: straight ahead, full gas


class HeldPad(PadSource):
    """A person's pad as the loop reads it (its latest state), set by the test."""

    def __init__(self, name: str = "person") -> None:
        super().__init__()
        self.name, self.guid = name, f"test:{name}"


def _wait(condition, seconds=60.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not condition():
        time.sleep(0.01)
    assert condition()


def _gas_model(path, layout: str):
    """The default network told to drive straight on full gas whatever it sees (zero weights into
    its outputs, biases that press A), recorded as trained on `layout`."""
    from kartstudio.model import build_model, save_model, set_input_spec

    model = build_model("kartstudio")
    set_input_spec(model, layout, None)
    stick, buttons = model.get_layer("stick"), model.get_layer("buttons")
    stick.set_weights([np.zeros_like(w) for w in stick.get_weights()])
    kernel, _ = buttons.get_weights()
    buttons.set_weights([np.zeros_like(kernel), np.array([8.0, -8.0, -8.0], np.float32)])
    return save_model(model, path)


@pytest.fixture(scope="module")
def pilots(tmp_path_factory):
    from kartstudio.drivers import load_pilot

    folder = tmp_path_factory.mktemp("models")
    return {layout: load_pilot(_gas_model(folder / f"{layout}.keras", layout)) for layout in ("whole", "seat")}


def test_the_practice_track_has_a_1_player_game_one_car_on_the_whole_screen():
    with PracticeBackend(seed=7, players=1, realtime=False) as game:
        assert game.seats == (1,) and game.layout == SeatLayout.whole_screen() and game.layout.players == 1
        from kartstudio.practice.expert import ExpertDriver

        play(game, {1: ExpertDriver()}, max_frames=100)
        screen, view = game.screen(), game.seat_view(1)
        assert view.shape == (240, 320, 3) and screen.shape == (480, 640, 3)
        assert np.array_equal(screen, view.repeat(2, axis=0).repeat(2, axis=1))  # the whole screen is the car's view
        road = (np.abs(screen.astype(int) - 107).max(axis=-1) < 12).mean(axis=1)  # CarRacing's grey road
        assert road[:240].max() > 0.03 and road[240:].max() > 0.03  # the road runs through both halves
        assert game.tiles(1)[0] > 20
    with pytest.raises(KartStudioError, match="1 or 2 players"):
        PracticeBackend(players=3)


def test_which_view_a_model_is_fed(pilots):
    whole, seat = pilots["whole"], pilots["seat"]
    split, one = SeatLayout.split_screen(), SeatLayout.whole_screen()
    problem = view_problem(whole, split)
    assert "trained on the whole screen; race it in 1-player mode" in problem and "\n" not in problem
    assert view_problem(whole, one) == view_problem(seat, split) == view_problem(seat, one) == ""
    assert view_note(seat, one) and not view_note(whole, one) and not view_note(seat, split)
    assert players_for(whole) == 1 and players_for(seat) == 2 and players_for(seat, 1) == 1
    with pytest.raises(KartStudioError, match="race it in 1-player mode"):
        players_for(whole, 2)
    screen = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert np.array_equal(whole.view(screen, 1, one), resize(screen, (240, 320)))  # the whole screen, as recorded
    with PracticeBackend(seed=3, realtime=False) as game:  # a 2-player game: the driver refuses too
        with pytest.raises(KartStudioError, match="whole screen"):
            PilotDriver(whole).act(game, 1, None)
        loop = GameLoop(game)
        with pytest.raises(KartStudioError, match="1-player mode"):
            Versus(loop, whole, None, ".", lambda pad: SessionMeta())


def test_eval_scores_a_whole_screen_model_in_the_1_player_game(pilots):
    from kartstudio.practice.evaluate import evaluate_model

    report = evaluate_model(pilots["whole"], episodes=1, seed_start=7)
    assert report.extra["players"] == 1 and report.episodes[0].tiles_visited > 10
    assert evaluate_model(pilots["seat"], episodes=1, seed_start=7).extra["players"] == 2  # as before
    with pytest.raises(KartStudioError, match="race it in 1-player mode"):
        evaluate_model(pilots["whole"], episodes=1, players=2)


def test_watch_the_ai_drive_with_a_held_override_recorded_as_a_correction(pilots, tmp_path):
    person = HeldPad()
    game = PracticeBackend(seed=7, players=1, realtime=False)
    loop = GameLoop(game)
    loop.start()
    _wait(lambda: loop.status.running)
    solo = Versus(loop, pilots["whole"], None, tmp_path,
                  lambda pad: SessionMeta(kind="correction", pad_name=pad.name), track="seed-7")
    assert solo.players == 1 and solo.human_pad is None and not solo.note
    try:
        solo.start()
        assert solo.hold_wants(person) is None  # nothing held: the AI drives
        _wait(lambda: solo.pilot_driver.steps > 40)
        assert loop.status.applied[AI_SEAT] == GAS and game.tiles(1)[0] > 5  # the AI drives: the car gets on
        # the person holds L: the car is theirs; L itself is theirs to KartStudio, not a move in the race
        person.push(ControllerState(x=-45, b=True, **{HOLD_BUTTON: True}))
        assert solo.hold_wants(person) is True
        path = solo.take_over(person, hold=True)
        assert isinstance(loop.drivers[AI_SEAT], TakeoverDriver) and 2 not in loop.drivers
        seen = solo.pilot_driver.steps
        _wait(lambda: solo.pilot_driver.steps > seen + 15)  # the AI keeps watching
        assert loop.status.applied[AI_SEAT] == ControllerState(x=-45, b=True)
        assert solo.hold_wants(person) is None  # still held
        person.push(ControllerState(x=-45, b=True))  # let go of L (the rest still pressed)
        assert solo.hold_wants(person) is False
        solo.hand_back(wait=True)
        assert isinstance(loop.drivers[AI_SEAT], PilotDriver)
        seen = solo.pilot_driver.steps
        _wait(lambda: solo.pilot_driver.steps > seen + 5)
        assert loop.status.applied[AI_SEAT] == GAS  # the AI drives again
        assert solo.hold_wants(person) is None
        # a takeover from the tab's button is not ended by the button being up
        solo.take_over(person)
        assert solo.hold_wants(person) is None and solo.taken_over
        solo.hand_back(wait=True)
    finally:
        solo.stop()
        loop.stop()
    assert loop.wait(10) and not loop.status.error, loop.status.error
    assert solo.saved[0][0] == path and solo.saved[0][1] > 5 and not solo.error
    with open_session(path) as s:
        assert s.meta.kind == "correction" and s.meta.seat == AI_SEAT and s.meta.layout == "whole"
        assert tuple(s.meta.storage_size) == (240, 320) and s.frame(0).shape == (240, 320, 3)
        assert len(s) == solo.saved[0][1]
        assert all(s.state(i) == ControllerState(x=-45, b=True) for i in range(len(s)))  # only the person's input
