"""Where a second emulator window goes (window.free_place): pure geometry, so the screen here is a
stand-in object with the three answers free_place asks the X server for (the real X path is
tests/test_emulator_screen.py::test_a_second_emulator_is_pinned_beside_the_first_not_on_it)."""

import pytest

from kartstudio.emulator.window import Geometry, free_place
from kartstudio.errors import KartStudioError


class ScreenAnswers:  # stand-in for ScreenCheck: only what free_place asks
    def __init__(self, others, size, screen):
        self.others, self.size, self.screen = others, size, screen

    def other_emulators(self):
        return self.others

    def frame_size(self):
        return self.size

    def screen_size(self):
        return self.screen


def test_a_small_window_goes_beside_a_bigger_one():
    # A 320x240 benchmark window next to a 640x480 one: the old rule tried only spots one small
    # window apart, all of them on the big window, and refused.
    check = ScreenAnswers([Geometry(0, 0, 640, 480)], (320, 240), (1280, 1024))
    assert free_place(check, (0, 0)) == (640, 0)


def test_the_origin_when_free_and_a_refusal_when_nothing_fits():
    assert free_place(ScreenAnswers([], (640, 480), (1280, 1024)), (0, 0)) == (0, 0)
    full = ScreenAnswers([Geometry(0, 0, 640, 480), Geometry(640, 0, 640, 480), Geometry(0, 480, 1280, 544)],
                         (640, 480), (1280, 1024))
    with pytest.raises(KartStudioError, match="no free place"):
        free_place(full, (0, 0))
