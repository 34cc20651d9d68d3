"""GameBackend declares the optional capabilities with neutral defaults (issue 22 item 4), so the
play layer and the GUI call them on any backend instead of probing with getattr/hasattr."""

import pytest

from kartstudio.controller import NEUTRAL
from kartstudio.errors import KartStudioError
from kartstudio.game import GameBackend


class Bare(GameBackend):
    """The least a backend implements: nothing optional."""

    def start(self):
        pass

    def stop(self):
        pass

    def set_controller(self, seat, state):
        pass

    def next_frame(self, timeout=None):
        return None


def test_a_bare_backend_answers_every_optional_capability_neutrally():
    game = Bare()
    assert game.track is None and game.exit_reason is None and game.game_rate() is None
    assert game.first_picture() is None
    assert game.window_place() is None and game.window_frame() is None
    game.raise_window()  # nothing to raise, no error
    assert game.capture_problem is None and game.picture_problem is None
    assert not game.plays_menu_macros
    with pytest.raises(KartStudioError, match="no menus"):
        game.play_macro(object())


def test_a_pilot_without_a_first_picture_waits_neutral():
    from kartstudio.drivers import PilotDriver

    class Pilot:  # a stand-in never asked to drive: there is no picture to drive from
        def reset(self):
            pass

        def view(self, *a):
            raise AssertionError("no picture to view")

    driver = PilotDriver(Pilot())
    driver.steps = 1  # past the first step's check of the model's view (a real model's)
    assert driver.act(Bare(), 1, None) == NEUTRAL


def test_the_emulator_and_the_practice_track_declare_what_they_offer():
    from kartstudio.emulator.backend import EmulatorBackend
    from kartstudio.practice.backend import PracticeBackend

    assert EmulatorBackend.plays_menu_macros and not PracticeBackend.plays_menu_macros
    assert EmulatorBackend.window_place is not GameBackend.window_place
    assert PracticeBackend.first_picture is not GameBackend.first_picture
