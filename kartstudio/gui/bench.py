"""`kartstudio bench gui`: how long the window's event loop stalls while it records and trains.

A 5 ms QTimer ticks in the UI thread; a stall is how late each tick fires beyond its interval.
The window is the real MainWindow (offscreen when there is no display); recording is the Record
tab's own 'Record session' on the practice track (both seats driven, both files written);
training is the Training tab's own worker on the sessions just recorded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from kartstudio.bench import machine
from kartstudio.gui.common import spin_events as _spin

TICK_MS = 5
TARGET_P99_MS = 50.0


class StallMeter:
    def __init__(self) -> None:
        from PyQt6 import QtCore

        self.timer = QtCore.QTimer()
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def start(self) -> None:
        self.gaps = []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        stalls = np.maximum(0.0, np.asarray(self.gaps) - TICK_MS / 1000) * 1000
        if not len(stalls):
            stalls = np.zeros(1)
        return {
            "ticks": len(self.gaps),
            "stall_p50_ms": round(float(np.percentile(stalls, 50)), 2),
            "stall_p99_ms": round(float(np.percentile(stalls, 99)), 2),
            "stall_max_ms": round(float(stalls.max()), 2),
        }

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now


def bench_gui(seconds: float = 10.0, binary: str | None = None, rom: str | None = None, video: str | None = None) -> dict:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="kartstudio-bench-gui-"))
    os.environ["KARTSTUDIO_CONFIG_DIR"] = str(home / "config")
    os.environ["KARTSTUDIO_DATA_DIR"] = str(home / "data")
    from kartstudio.gui.app import make_app
    from kartstudio.gui.main_window import MainWindow
    from kartstudio.settings import Settings

    settings = Settings()
    if rom:
        settings.game_source, settings.rom_path = "mk64", str(rom)
        if video:
            settings.video_plugin = video
    app = make_app()
    window = MainWindow(settings)
    window.show()
    meter = StallMeter()
    phases: dict[str, dict] = {}
    try:
        _spin(app, 0.5)
        meter.start()
        _spin(app, min(3.0, seconds))
        phases["idle"] = {**meter.stop(), "detail": "window open, nothing running"}
        phases["recording"] = _bench_recording(app, window, meter, seconds)
        phases["training"] = _bench_training(app, window, meter, seconds)
    finally:
        window.close()
        app.processEvents()
        shutil.rmtree(home, ignore_errors=True)
    result = {"target_p99_ms": TARGET_P99_MS, "tick_ms": TICK_MS, "phases": phases, "machine": machine()}
    if binary:
        result["binary"] = check_binary(binary)
    return result


def _bench_recording(app, window, meter, seconds: float) -> dict:
    tab = window.record_tab
    window.tabs.setCurrentWidget(tab)
    if not window.start_game():
        return {"skipped": window.notice.text() or "the game did not start"}
    if not _spin(app, 120, lambda: window.game.loop is not None and window.game.loop.status.running):
        return {"skipped": f"the game did not start: {window.notice.text()}"}
    for panel in tab.panels.values():  # both seats driven without a human: the expert if present
        panel.choose_driver("expert") or panel.choose_driver("nobody")
    meter.start()
    tab.start_all()
    _spin(app, seconds)
    counters = {seat: p.recorder.counters()[seat] for seat, p in tab.panels.items() if p.recorder}
    tab.stop_all()
    _spin(app, 30, lambda: not any(p.busy or p.recording for p in tab.panels.values()))
    stats = meter.stop()
    fps = window.game.loop.status.fps if window.game.loop else 0.0
    window.stop_game()
    written = {seat: c.written for seat, c in counters.items()}
    dropped = {seat: c.dropped for seat, c in counters.items()}
    return {**stats, "written": written, "dropped": dropped,
            "detail": f"{window.game.source} game at {fps:.1f} fps, frames written per seat {written}, dropped {dropped}"}


def _bench_training(app, window, meter, seconds: float) -> dict:
    tab = window.training_tab
    window.tabs.setCurrentWidget(tab)
    if not tab.available:
        return {"skipped": tab.notice.text()}
    tab.refresh_sessions()
    tab.select_all_sessions()
    tab.epochs_box.setValue(1000)  # runs until cancelled
    meter.start()
    if not tab.start_training():
        meter.stop()
        return {"skipped": tab.notice.text()}
    _spin(app, seconds)
    batches = tab.batches_seen
    rate = tab.samples_per_s
    tab.cancel_training()
    _spin(app, 60, lambda: not tab.running)
    stats = meter.stop()
    return {**stats, "batches": batches, "samples_per_s": round(rate, 1),
            "detail": f"real TensorFlow training in the background worker, {batches} batches, {rate:.0f} samples/s"}


def check_binary(binary: str) -> dict:
    """Start a PyInstaller-built binary with --screenshot and check it renders the window."""
    out = Path(tempfile.mkdtemp(prefix="kartstudio-binary-")) / "shot.png"
    t0 = time.monotonic()
    try:
        run = subprocess.run([binary, "gui", "--screenshot", str(out)], capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen")))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "error": str(exc)}
    ok = run.returncode == 0 and out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
    return {"ok": ok, "start_to_screenshot_s": round(time.monotonic() - t0, 2), "returncode": run.returncode,
            "stderr_tail": run.stderr[-400:] if not ok else ""}
