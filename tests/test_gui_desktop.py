"""The window as a desktop app: signals end it cleanly, closing mid-work asks first."""

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("pytestqt")

from test_gui import window  # noqa: E402,F401 - fixture

CHILD = """
from kartstudio.gui import main_window
shown = main_window.MainWindow.show
def show(self):
    shown(self)
    self.game.pads()  # SDL's gamepad support is up, as with a pad plugged in
    print("ready", flush=True)
main_window.MainWindow.show = show
from kartstudio.gui.app import run
raise SystemExit(run())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_a_signal_closes_the_window_even_with_sdl_running(signum, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(0.3)
        child.send_signal(signum)
        assert child.wait(timeout=15) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_closing_while_recording_asks_first(window, qtbot, monkeypatch):
    from PyQt6 import QtWidgets

    from kartstudio.controller import ControllerState
    from kartstudio.pads.base import ScriptedPadSource

    asked = []
    answer = [QtWidgets.QMessageBox.StandardButton.No]
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or answer[0])
    window.show()
    window.close()
    assert not asked and not window.isVisible()  # nothing running: no question
    window.show()
    assert window.start_game(), window.notice.text()
    qtbot.waitUntil(lambda: window.game.loop is not None and window.game.loop.status.running, timeout=60_000)
    pad = ScriptedPadSource("pad", policy=lambda: ControllerState(a=True))
    window.game.add_pad(pad)
    window.record_tab.refresh_drivers()
    window.record_tab.panels[1].choose_driver("pad:script:pad")
    assert window.record_tab.panels[1].start()
    window.close()
    assert asked and "recording" in asked[0] and window.isVisible() and window.record_tab.recording
    answer[0] = QtWidgets.QMessageBox.StandardButton.Yes
    path = window.record_tab.panels[1].path
    window.close()
    assert not window.isVisible() and not window.record_tab.recording and path.stat().st_size > 0
