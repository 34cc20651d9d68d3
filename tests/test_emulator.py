"""The launcher, window pinning and capture with the real mupen64plus under Xvfb and our test ROM.

These start the emulator without our input plugin (`--input dummy`); tests/test_emulator_plugin.py
drives the same ROM through the plugin.
"""

import signal
import time

import numpy as np
import pytest

from kartstudio.emulator import testrom
from kartstudio.emulator.capture import WindowCapture
from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM, EmulatorProcess, LaunchOptions
from kartstudio.emulator.window import WindowPinner, find_window, move_window, window_geometry
from kartstudio.errors import KartStudioError
from emulator_support import needs_emulator, testrom_path, xdisplay  # noqa: F401 - fixtures

pytestmark = [pytest.mark.emulator, needs_emulator]


def launch(rom, display, **options) -> EmulatorProcess:
    # no video plugin named: the launcher picks the one that draws the ROM's game (glide64mk2 here)
    options.setdefault("input_plugin", "dummy")
    return EmulatorProcess(LaunchOptions(rom, display=display, **options)).start()


@pytest.fixture(scope="module")
def running(testrom_path, xdisplay):
    emulator = launch(testrom_path, xdisplay)
    window = find_window(emulator.pid, xdisplay, alive=lambda: emulator.running)
    pinner = WindowPinner(window, xdisplay, interval=0.1).start()
    yield emulator, window, pinner
    pinner.stop()
    emulator.stop()


def wait_for(predicate, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_window_is_pinned_top_left(running, xdisplay):
    emulator, window, pinner = running
    assert emulator.running
    geometry = window_geometry(window, xdisplay)  # asked from the X server, not the pinner's memory
    assert (geometry.x, geometry.y, geometry.width, geometry.height) == (0, 0, 640, 480)


def test_window_is_pinned_again_after_being_moved(running, xdisplay):
    emulator, window, pinner = running
    repins = pinner.repins
    move_window(window, 333, 222, xdisplay)
    assert wait_for(lambda: window_geometry(window, xdisplay).x == 333, timeout=1.0) or pinner.repins > repins
    assert wait_for(lambda: (window_geometry(window, xdisplay).x, window_geometry(window, xdisplay).y) == (0, 0))
    assert pinner.repins > repins


def test_capture_shows_the_running_rom(running, xdisplay):
    emulator, window, pinner = running
    assert emulator.video == VIDEO_FOR_TEST_ROM  # chosen from the ROM's header, not named by the caller
    capture = WindowCapture(lambda: pinner.geometry, xdisplay)
    assert wait_for(lambda: testrom.looks_like_test_screen(capture.grab()), timeout=10)
    image = capture.grab()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert image.std() > 10  # not blank
    # Frames advance: the ROM paints its frame counter, and it changes between captures.
    counters = set()
    for _ in range(20):
        counters.add(testrom.decode_frame_counter(capture.grab()))
        time.sleep(0.02)
    assert len(counters) >= 5
    capture.close()


def test_capture_follows_the_window_geometry(running, xdisplay):
    """Capturing the window where it really is: a region 10 px off shows a different picture."""
    emulator, window, pinner = running
    from kartstudio.emulator.window import Geometry

    capture = WindowCapture(lambda: pinner.geometry, xdisplay)
    shifted = WindowCapture(lambda: Geometry(0, 24, 640, 480), xdisplay)
    assert testrom.looks_like_test_screen(capture.grab())
    # The band boundaries move by 24 px: the mid-band samples land near the boundary rows.
    assert not np.array_equal(capture.grab()[:, :, 1] > 127, shifted.grab()[:, :, 1] > 127)


def test_stop_says_it_was_us(testrom_path, xdisplay):
    emulator = launch(testrom_path, xdisplay)
    time.sleep(0.3)
    assert emulator.exit_reason() is None
    emulator.stop()
    assert emulator.exit_reason() == "stopped by KartStudio"
    emulator.stop()  # twice is fine


def test_crash_is_reported_with_the_signal(testrom_path, xdisplay):
    emulator = launch(testrom_path, xdisplay)
    try:
        find_window(emulator.pid, xdisplay, alive=lambda: emulator.running)
        emulator.process.send_signal(signal.SIGSEGV)
        emulator.process.wait(5)
        reason = emulator.exit_reason()
        assert reason.startswith("mupen64plus crashed (SIGSEGV)")
        with pytest.raises(KartStudioError, match="crashed") as raised:
            emulator.check_alive()
    finally:
        emulator.stop()
    # the log named in the message outlives the emulator's private folder (removed on stop)
    log = emulator.log_path
    assert str(log) in str(raised.value) and log.is_file() and log.parent.name == "emulator-logs"
    assert emulator.workdir is None


def test_failure_exit_is_reported_with_the_emulators_error(tmp_path, xdisplay, testrom_path):
    # The core runs anything with a valid header, so make it fail another way: an RSP plugin that
    # does not exist. The UI logs why and exits non-zero; the reason quotes that line.
    emulator = launch(testrom_path, xdisplay, extra_args=["--rsp", "/nonexistent/rsp.so"])
    emulator.process.wait(10)
    reason = emulator.exit_reason()
    assert reason.startswith("mupen64plus failed with exit status")
    assert "RSP plugin not found" in reason
    emulator.stop()


def test_clear_errors_for_missing_pieces(tmp_path, testrom_path, xdisplay):
    with pytest.raises(KartStudioError, match="does not exist"):
        launch(tmp_path / "missing.z64", xdisplay)
    with pytest.raises(KartStudioError, match="make -C plugin"):
        launch(testrom_path, xdisplay, input_plugin=tmp_path / "nope.so")
    with pytest.raises(KartStudioError, match="video plugin mupen64plus-video-nope is not installed"):
        launch(testrom_path, xdisplay, video="mupen64plus-video-nope")


def test_missing_emulator_is_a_clear_error(monkeypatch):
    from kartstudio.emulator import launcher

    monkeypatch.setattr(launcher, "SEARCH_DIRS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(KartStudioError, match="mupen64plus not found"):
        launcher.find_emulator()


def test_no_display_is_a_clear_error(monkeypatch, testrom_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(KartStudioError, match="no X display"):
        EmulatorProcess(LaunchOptions(testrom_path, input_plugin="dummy")).start()


@pytest.mark.skipif(__import__("shutil").which("openbox") is None, reason="openbox is not installed (apt-get install openbox)")
def test_pinning_and_capture_under_a_window_manager(testrom_path):
    """On a desktop a window manager decorates and places the window: the frame goes to (0,0),
    the client area sits under the title bar, and the capture follows the client area."""
    import os
    import subprocess

    from kartstudio.emulator.xvfb import VirtualDisplay

    with VirtualDisplay() as xvfb:
        wm = subprocess.Popen(["openbox"], env=dict(os.environ, DISPLAY=xvfb.display),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        emulator = None
        pinner = None
        try:
            time.sleep(0.5)  # openbox takes the screen before the emulator maps its window
            emulator = launch(testrom_path, xvfb.display)
            window = find_window(emulator.pid, xvfb.display, alive=lambda: emulator.running)
            pinner = WindowPinner(window, xvfb.display, interval=0.1).start()
            # Under openbox's title bar, at the left edge (the frame is at 0,0).
            assert wait_for(lambda: 0 <= pinner.geometry.x < 20 and 0 < pinner.geometry.y < 60)
            pinned = window_geometry(window, xvfb.display)
            assert (pinned.width, pinned.height) == (640, 480) and pinned == pinner.geometry
            capture = WindowCapture(lambda: pinner.geometry, xvfb.display)
            assert wait_for(lambda: testrom.looks_like_test_screen(capture.grab()), timeout=10)
            repins = pinner.repins
            move_window(window, 300, 200, xvfb.display)
            assert wait_for(lambda: pinner.repins > repins and window_geometry(window, xvfb.display) == pinned)
            # The game redraws the moved window at its next frame.
            assert wait_for(lambda: testrom.looks_like_test_screen(capture.grab()), timeout=2)
        finally:
            if pinner is not None:
                pinner.stop()
            if emulator is not None:
                emulator.stop()
            wm.terminate()
            wm.wait(5)
