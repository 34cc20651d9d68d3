"""The app beside the pinned emulator on common screens: Xvfb at the screen's size, openbox, Qt on
that display (xcb), the real emulator with the test ROM. No control of the app may lie under the
emulator's window (kept on top, it would hide them), none off the screen, no tab page wider than
its room, and the emulator's frames keep flowing uncovered (recordings never show the app)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from emulator_support import needs_emulator, testrom_path  # noqa: E402,F401 - fixtures

CHILD = Path(__file__).with_name("layout_child.py")


def test_place_beside_prefers_the_side_then_below_and_says_when_nothing_fits():
    from PyQt6.QtCore import QRect, QSize

    from kartstudio.gui.main_window import GAP, place_beside

    emulator = QRect(0, 0, 642, 505)  # 640x480 under openbox's title bar
    most = QSize(1400, 4000)
    spot = place_beside(emulator, QRect(0, 0, 1366, 768), QSize(600, 500), most)
    assert spot == QRect(642 + GAP, 0, 1366 - 642 - GAP, 768)
    spot = place_beside(emulator, QRect(0, 0, 2560, 1440), QSize(600, 500), most)
    assert spot.left() == 642 + GAP and spot.width() == 1400 and spot.height() == 1440
    # A portrait screen: no room beside, the window goes below.
    spot = place_beside(emulator, QRect(0, 0, 800, 1280), QSize(600, 500), most)
    assert spot == QRect(0, 505 + GAP, 800, 1280 - 505 - GAP)
    assert place_beside(emulator, QRect(0, 0, 1024, 600), QSize(600, 500), most) is None


@pytest.mark.emulator
@needs_emulator
@pytest.mark.skipif(shutil.which("openbox") is None, reason="openbox is not installed (apt-get install openbox)")
@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080), (2560, 1440)])
def test_every_control_stays_beside_the_running_emulator(size, testrom_path, tmp_path):
    from kartstudio.emulator.xvfb import VirtualDisplay

    with VirtualDisplay(*size) as xvfb:
        env = dict(os.environ, DISPLAY=xvfb.display, QT_QPA_PLATFORM="xcb",
                   KARTSTUDIO_CONFIG_DIR=str(tmp_path / "config"), KARTSTUDIO_DATA_DIR=str(tmp_path / "data"))
        wm = subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)  # openbox manages the screen before the windows map
            run = subprocess.run([sys.executable, str(CHILD), str(testrom_path)], env=env, capture_output=True,
                                 text=True, timeout=240)
        finally:
            wm.terminate()
            wm.wait(5)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["screen"] == list(size)
    ex, ey, ew, eh = result["emulator"]
    assert (ex, ey) == (0, 0) and ew >= 640 and eh >= 480  # pinned at the top-left, decorations included
    ax, ay, aw, ah = result["app"]
    assert not result["overlap"], result
    assert ax >= ex + ew and ax + aw <= size[0] and ay + ah <= size[1], result  # beside it, on the screen
    assert result["controls_seen"] > 50  # the check looked at the tabs' controls, not an empty window
    assert result["under_emulator"] == [] and result["off_screen"] == [], result
    assert result["too_wide"] == [], result  # every page fits its width: no sideways scrolling
    assert result["capture_problem"] == "" and result["frames_flowing"] > 5, result
