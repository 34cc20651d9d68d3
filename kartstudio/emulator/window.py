"""Find the emulator's X11 window by its process id, pin it to (0,0) of the primary monitor, keep it there.

Uses the xdotool program (Debian package xdotool) instead of an X library binding: a few calls
a second are all this needs. TensorKart's recorder captured the fixed region (0,0, 640x480), so the
window is put there; the capture still follows the window's real geometry, whatever a window
manager does to it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

from kartstudio.errors import KartStudioError


@dataclass(frozen=True)
class Geometry:
    """A window's client area on the root window (screen pixels)."""

    x: int
    y: int
    width: int
    height: int

    def as_region(self) -> dict[str, int]:
        return {"left": self.x, "top": self.y, "width": self.width, "height": self.height}


def _xdotool() -> str:
    path = shutil.which("xdotool")
    if path is None:
        raise KartStudioError("xdotool not found: install it (sudo apt-get install xdotool)")
    return path


def _run(args: list[str], display: str | None, timeout: float = 5.0) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if display:
        env["DISPLAY"] = display
    return subprocess.run([_xdotool(), *args], capture_output=True, text=True, env=env, timeout=timeout)


def find_window(pid: int, display: str | None = None, timeout: float = 20.0, alive=None) -> int:
    """The visible X11 window of process `pid` (by _NET_WM_PID), waiting up to `timeout` seconds.

    alive: optional callable; when it returns False the wait stops early (the process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        run = _run(["search", "--onlyvisible", "--pid", str(pid)], display)
        ids = [int(line) for line in run.stdout.split() if line.strip().isdigit()]
        if ids:
            return ids[-1]
        if alive is not None and not alive():
            raise KartStudioError(f"the emulator (pid {pid}) exited before opening its window")
        if time.monotonic() > deadline:
            raise KartStudioError(
                f"no window of the emulator (pid {pid}) appeared on display {display or os.environ.get('DISPLAY')} "
                f"within {timeout:.0f} s; check that the X display works (run `xdpyinfo`)"
            )
        time.sleep(0.1)


def window_geometry(window: int, display: str | None = None) -> Geometry:
    """Where the window's client area really is now, in root-window pixels.

    Asked with xwininfo (x11-utils): xdotool's getwindowgeometry counts a reparenting window
    manager's decorations twice (checked here under openbox), xwininfo's absolute corner is right.
    """
    xwininfo = shutil.which("xwininfo")
    if xwininfo is None:
        raise KartStudioError("xwininfo not found: install it (sudo apt-get install x11-utils)")
    env = dict(os.environ, **({"DISPLAY": display} if display else {}))
    run = subprocess.run([xwininfo, "-id", str(window)], capture_output=True, text=True, env=env, timeout=5)
    values = dict(re.findall(r"^\s*(Absolute upper-left X|Absolute upper-left Y|Width|Height):\s+(-?\d+)", run.stdout, re.M))
    try:
        return Geometry(int(values["Absolute upper-left X"]), int(values["Absolute upper-left Y"]),
                        int(values["Width"]), int(values["Height"]))
    except KeyError:
        raise KartStudioError(f"the emulator window {window} is gone ({run.stderr.strip() or 'no geometry'})") from None


def move_window(window: int, x: int, y: int, display: str | None = None) -> None:
    _run(["windowmove", str(window), str(x), str(y)], display)


def primary_monitor_origin(display: str | None = None) -> tuple[int, int]:
    """Top-left corner of the primary monitor (xrandr where available; the screen's (0,0) otherwise)."""
    xrandr = shutil.which("xrandr")
    if xrandr:
        env = dict(os.environ, **({"DISPLAY": display} if display else {}))
        try:
            out = subprocess.run([xrandr, "--query"], capture_output=True, text=True, env=env, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        match = re.search(r" connected primary \d+x\d+\+(\d+)\+(\d+)", out)
        if match:
            return int(match.group(1)), int(match.group(2))
    return 0, 0


class WindowPinner:
    """Keeps a window at a target position: moves it there, then checks a few times a second
    and moves it back whenever something (the user, a window manager) has moved it.

    `geometry` is the window's real client geometry as last seen, for the capture to follow.
    Under a window manager the client area may sit a title bar below the target; that position
    is accepted as "pinned" and only a change from it triggers a re-pin.
    """

    def __init__(self, window: int, display: str | None = None, target: tuple[int, int] | None = None,
                 interval: float = 0.25) -> None:
        self.window = window
        self.display = display
        self.target = target if target is not None else primary_monitor_origin(display)
        self.interval = interval
        self.repins = 0  # moves after the first one
        self._pinned: Geometry | None = None
        self._geometry: Geometry | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    @property
    def geometry(self) -> Geometry:
        with self._lock:
            if self._geometry is None:
                self._geometry = window_geometry(self.window, self.display)
            return self._geometry

    def pin(self, settle: float = 2.0) -> Geometry:
        """Move the window to the target and wait until it is there, or until it has moved and then
        stayed put (a window manager may keep it a title bar lower), at most `settle` seconds."""
        before = window_geometry(self.window, self.display)
        move_window(self.window, *self.target, self.display)
        deadline = time.monotonic() + settle
        previous = None
        while True:
            geometry = window_geometry(self.window, self.display)
            at_target = (geometry.x, geometry.y) == self.target
            moved_and_still = geometry != before and geometry == previous
            if at_target or moved_and_still or time.monotonic() > deadline:
                break
            previous = geometry
            time.sleep(0.05)
        with self._lock:
            self._pinned = self._geometry = geometry
        return geometry

    def check(self) -> Geometry:
        """One watch step: re-pin if the window has moved from its pinned place."""
        geometry = window_geometry(self.window, self.display)
        with self._lock:
            self._geometry = geometry
            pinned = self._pinned
        if pinned is None or (geometry.x, geometry.y) != (pinned.x, pinned.y):
            self.repins += pinned is not None
            geometry = self.pin()
        return geometry

    def start(self) -> "WindowPinner":
        self.pin()
        self._thread = threading.Thread(target=self._watch, name="kartstudio-window-pinner", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except (KartStudioError, subprocess.TimeoutExpired, OSError) as exc:
                self.error = str(exc)  # the window is gone: the launcher reports why
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
