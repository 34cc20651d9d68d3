"""The recording shows the game, never another window: on a real X server with a window manager
(Xvfb + openbox), a real window titled like the app's is laid over the real emulator (our plugin,
the project's test ROM). The emulator is raised over it; while it is covered, moved or half off
the screen no frame is labelled; a second emulator is pinned beside the first, not on it."""

import os
import shutil
import subprocess
import time

import pytest

from kartstudio.emulator import testrom
from kartstudio.emulator.window import move_window
from test_emulator_plugin import pytestmark, start_backend  # noqa: F401 - same skips
from emulator_support import testrom_path  # noqa: F401 - fixture

pytestmark = [*pytestmark, pytest.mark.skipif(shutil.which("openbox") is None,
                                              reason="openbox is not installed (apt-get install openbox)")]


@pytest.fixture(scope="module")
def desktop():
    """A private X server with openbox managing its windows, and an X connection for the test's own window."""
    from Xlib import display as xdisplay

    from kartstudio.emulator.xvfb import VirtualDisplay

    with VirtualDisplay() as xvfb:
        wm = subprocess.Popen(["openbox"], env=dict(os.environ, DISPLAY=xvfb.display),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # openbox takes the screen before windows are mapped
        x = xdisplay.Display(xvfb.display)
        try:
            yield xvfb.display, x
        finally:
            x.close()
            wm.terminate()
            wm.wait(5)


def app_window(x, title="KartStudio"):
    """A plain white window like the app's main window (1280x860 is too big for a 1280x1024 screen
    with a title bar; this still covers the emulator's whole place at the top left)."""
    screen = x.screen()
    window = screen.root.create_window(0, 0, 900, 700, 0, screen.root_depth, background_pixel=screen.white_pixel)
    window.set_wm_name(title)
    window.map()
    x.sync()
    time.sleep(0.3)
    return window


def frames_for(backend, seconds):
    """(frames taken, frames that show the test ROM's picture, reasons given for frames not taken)."""
    taken, game, reasons = 0, 0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = backend.next_frame(timeout=0.2)
        if frame is None:
            reasons.append(backend.capture_problem)
            continue
        taken += 1
        game += testrom.looks_like_test_screen(frame.image)
    return taken, game, reasons


def test_the_emulator_is_kept_over_the_app_and_a_covered_window_gives_no_frames(testrom_path, desktop):
    from Xlib import X

    display, x = desktop
    app = app_window(x)  # the app is there first, at the emulator's place
    backend = start_backend(testrom_path, display, macro=False)
    try:
        # raised over the app at start: every frame is the game's picture
        time.sleep(1.0)  # the test ROM draws its first picture
        taken, game, _ = frames_for(backend, 1.0)
        assert taken > 10 and game == taken

        # the app comes to the front (a click on it): no frame is taken while it covers the emulator
        backend.keep_on_top = False
        app.configure(stack_mode=X.Above)
        x.sync()
        assert backend.next_frame(timeout=0.3) is None
        problem = backend.capture_problem
        assert problem.kind == "covered" and "'KartStudio'" in problem.message

        # kept on top: the emulator is raised again and the frames are the game's once more
        backend.keep_on_top = True
        taken, game, _ = frames_for(backend, 2.0)
        assert taken > 10 and game == taken
        assert backend.capture_problem is None
    finally:
        backend.stop()
        app.destroy()
        x.sync()


def test_a_window_dragged_partly_off_the_screen_waits_for_the_re_pin(testrom_path, desktop):
    display, _ = desktop
    backend = start_backend(testrom_path, display, macro=False)
    try:
        time.sleep(1.0)
        pinned = backend.pinner.geometry
        backend.pinner.stop()  # hold the re-pin back, to see the frames wait
        move_window(backend.pinner.window, 1000, 900, display)
        time.sleep(0.2)
        assert backend.next_frame(timeout=0.3) is None  # no error: the game goes on
        assert backend.capture_problem.kind == "off-screen"
        backend.pinner.start()  # the pinner puts it back
        taken, game, _ = frames_for(backend, 2.0)
        assert backend.pinner.geometry == pinned
        assert taken > 10 and game == taken
    finally:
        backend.stop()


@pytest.mark.xfail(strict=False, reason="known, not yet understood: after tests/test_doctor.py has run in the same "
                   "pytest process the second emulator is pinned on the first (both at 1,20); alone and after every "
                   "other emulator module it passes (see the issue 13 note)")
def test_a_second_emulator_is_pinned_beside_the_first_not_on_it(testrom_path, desktop):
    display, _ = desktop
    first = start_backend(testrom_path, display, macro=False)
    second = None
    try:
        second = start_backend(testrom_path, display, macro=False)
        a, b = first.pinner.geometry, second.pinner.geometry
        assert a.x + a.width <= b.x or b.y >= a.y + a.height  # beside or below, never overlapping
        time.sleep(1.0)
        for backend in (first, second):
            # both capture their own game: six frames, however slowly a loaded machine gives them
            taken, game = 0, 0
            deadline = time.monotonic() + 10.0
            while taken < 6 and time.monotonic() < deadline:
                frame = backend.next_frame(timeout=0.2)
                if frame is not None:
                    taken += 1
                    game += testrom.looks_like_test_screen(frame.image)
            assert taken == 6 and game == taken, backend.capture_problem
    finally:
        if second is not None:
            second.stop()
        first.stop()
