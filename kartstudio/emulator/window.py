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


def _intersects(a: Geometry, b: Geometry) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


@dataclass(frozen=True)
class CaptureProblem:
    """Why the window's picture cannot be captured now. kind: hidden, off-screen, moved or covered."""

    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


class ScreenCheck:
    """Is the emulator's picture really on the screen? Asked of the X server's stacking order.

    The capture reads the screen, not the window: whatever lies over the window's region (the
    app's own window, a dialog, another emulator) would be recorded. This answers, per frame,
    whether the window is mapped, wholly on the screen, where the capture expects it, and not
    overlapped by a window stacked above it; and it raises the window (without taking the focus).
    One X connection of its own (python-xlib), used under a lock: the game thread checks, the
    window's thread raises.
    """

    def __init__(self, window: int, display: str | None = None) -> None:
        from Xlib import display as xdisplay

        try:
            self._x = xdisplay.Display(display)
        except Exception as exc:  # Xlib raises its own DisplayError family
            raise KartStudioError(f"cannot open X display {display or os.environ.get('DISPLAY')}: {exc}") from None
        self._root = self._x.screen().root
        self._window = self._x.create_resource_object("window", window)
        self._lock = threading.Lock()
        self._known: tuple | None = None  # (expected place, problem) of the last full check
        self._known_at = 0.0
        self._watching_root = False
        self._watched: set[int] = set()  # windows whose changes the X server reports to us

    def close(self) -> None:
        with self._lock:
            try:
                self._x.close()
            except Exception:  # noqa: BLE001 - the display may be gone already
                pass

    def _call(self, fn):
        from Xlib import error

        with self._lock:
            try:
                return fn()
            except error.ConnectionClosedError as exc:
                raise KartStudioError(f"the X display closed ({exc})") from None
            except error.XError as exc:
                raise KartStudioError(f"the emulator window is gone ({type(exc).__name__})") from None

    # -- queries (under the lock) ------------------------------------------------------------------
    def _top_level(self, window=None):
        """The child of the root window holding `window`: a window manager's frame, or the window."""
        window = window or self._window
        while True:
            parent = window.query_tree().parent
            if parent is None or parent.id == self._root.id:
                return window
            window = parent

    def _geometry(self, window) -> Geometry:
        g = window.get_geometry()
        at = self._root.translate_coords(window, 0, 0)
        return Geometry(at.x, at.y, g.width, g.height)

    def _name(self, window, depth: int = 2) -> str:
        """A window's title, or its client's under a window manager's frame."""
        try:
            name = window.get_wm_name()
        except Exception:  # noqa: BLE001 - a title we cannot read is no reason to stop
            name = None
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if name:
            return repr(name)
        if depth:
            for child in window.query_tree().children:
                found = self._name(child, depth - 1)
                if not found.startswith("window 0x"):
                    return found
        return f"window {window.id:#x}"

    def _is_emulator(self, window, depth: int = 3) -> bool:
        # By class or by title (video plugins name the window "Mupen64Plus ..."), through the
        # window manager's frame and wrapper windows.
        try:
            cls = window.get_wm_class()
            name = window.get_wm_name()
        except Exception:  # noqa: BLE001
            cls, name = None, None
        if cls and any("mupen64plus" in c.lower() for c in cls):
            return True
        if isinstance(name, (str, bytes)) and "mupen64plus" in (name.decode("latin-1") if isinstance(name, bytes) else name).lower():
            return True
        try:
            children = window.query_tree().children
        except Exception:  # noqa: BLE001 - the window went away meanwhile
            return False
        return depth > 0 and any(self._is_emulator(c, depth - 1) for c in children)

    def _problem(self, expected: Geometry | None) -> CaptureProblem | None:
        from Xlib import X

        here = self._geometry(self._window)
        top = self._top_level()
        if top.get_attributes().map_state != X.IsViewable or self._window.get_attributes().map_state != X.IsViewable:
            return CaptureProblem("hidden", "the emulator window is minimised or hidden; waiting for it to be shown")
        screen = self._root.get_geometry()
        if here.x < 0 or here.y < 0 or here.x + here.width > screen.width or here.y + here.height > screen.height:
            return CaptureProblem("off-screen", f"the emulator window is partly off the screen (at {here.x},{here.y}); "
                                                "waiting for it to be put back")
        if expected is not None and (here.x, here.y, here.width, here.height) != (
                expected.x, expected.y, expected.width, expected.height):
            return CaptureProblem("moved", f"the emulator window moved to {here.x},{here.y}; waiting for it to be put back")
        children = self._root.query_tree().children  # bottom to top
        ids = [c.id for c in children]
        if top.id not in ids:
            return None
        for other in children[ids.index(top.id) + 1:]:
            attributes = other.get_attributes()
            if attributes.map_state != X.IsViewable or attributes.win_class == X.InputOnly:
                continue
            if _intersects(here, self._geometry(other)):
                return CaptureProblem("covered", f"the emulator window is covered by {self._name(other)}; "
                                                 "no frames are taken until the emulator is on top")
        return None

    # -- the checks -------------------------------------------------------------------------------
    def problem(self, expected: Geometry | None = None, sync: bool = True) -> CaptureProblem | None:
        """Why the window's picture cannot be captured now, or None when it can.

        expected: where the capture will read; a window elsewhere is "moved" (the pinner puts it back).
        The full answer takes about 14 X round trips (3 ms a frame under load, a third of a frame's time
        when recording at 120 frames/s), so it is kept and asked again only when the X server reports
        that a window was mapped, unmapped, moved, resized, restacked, reparented or destroyed, and at
        least every FULL_CHECK_S. sync=True makes one round trip first, so every change the server made
        before this moment has been reported (a check right after a grab must see what happened during
        it); sync=False reads what has arrived without waiting (a check before a grab, which the check
        after it covers).
        """
        return self._call(lambda: self._watched_problem(expected, sync))

    FULL_CHECK_S = 0.5  # a full check at least this often, should an X server leave a change unreported

    def _watched_problem(self, expected: Geometry | None, sync: bool) -> CaptureProblem | None:
        key = None if expected is None else (expected.x, expected.y, expected.width, expected.height)
        if sync:
            self._x.sync()
        changed = False
        while self._x.pending_events():
            self._x.next_event()
            changed = True
        now = time.monotonic()
        if changed or self._known is None or self._known[0] != key or now - self._known_at >= self.FULL_CHECK_S:
            self._watch()  # first, so a change during the check is reported to the next one
            self._known, self._known_at = (key, self._problem(expected)), now
        return self._known[1]

    def _watch(self) -> None:
        """Ask the X server to report changes of the screen's top-level windows and of the window's own
        chain of parents (a window manager's frame and wrappers, which may change when it reparents)."""
        from Xlib import X

        if not self._watching_root:
            self._root.change_attributes(event_mask=X.SubstructureNotifyMask | X.StructureNotifyMask)
            self._watching_root = True
        window = self._window
        while window is not None and window.id != self._root.id:
            if window.id not in self._watched:
                window.change_attributes(event_mask=X.StructureNotifyMask)
                self._watched.add(window.id)
            window = window.query_tree().parent

    def raise_window(self) -> None:
        """Put the emulator on top of the other windows, leaving the keyboard focus where it is."""
        from Xlib import X, protocol

        def restack():
            # Under a window manager, the EWMH request (source 2: a pager, so no focus-stealing rule
            # stops it); without one, the X server restacks directly.
            atom = self._x.intern_atom("_NET_RESTACK_WINDOW")
            event = protocol.event.ClientMessage(window=self._window, client_type=atom,
                                                 data=(32, [2, 0, X.Above, 0, 0]))
            self._root.send_event(event, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
            self._window.configure(stack_mode=X.Above)
            self._x.sync()

        self._call(restack)

    def other_emulators(self) -> list[Geometry]:
        """Where other mupen64plus windows on this screen are (their frames)."""
        from Xlib import X

        def find():
            mine = self._top_level().id
            found = []
            for child in self._root.query_tree().children:
                if child.id == mine or child.get_attributes().map_state != X.IsViewable:
                    continue
                if self._is_emulator(child):
                    found.append(self._geometry(child))
            return found

        return self._call(find)

    def frame_geometry(self) -> Geometry:
        """Where the window lies on the screen with its window manager's decorations: the space
        nothing else may cover (the app steps aside from it)."""
        return self._call(lambda: self._geometry(self._top_level()))

    def frame_size(self) -> tuple[int, int]:
        """The window's size on the screen with its window manager's decorations."""
        return self._call(lambda: (lambda g: (g.width, g.height))(self._geometry(self._top_level())))

    def screen_size(self) -> tuple[int, int]:
        return self._call(lambda: (lambda g: (g.width, g.height))(self._root.get_geometry()))


def free_place(check: ScreenCheck, origin: tuple[int, int]) -> tuple[int, int]:
    """Where to pin the window: `origin`, or the first place beside or below it that no other
    emulator window overlaps (two emulators on one spot would record each other's picture)."""
    others = check.other_emulators()
    width, height = check.frame_size()
    screen_w, screen_h = check.screen_size()
    x0, y0 = origin
    # Beside or below the others, whatever their size (a 320x240 window next to a 640x480 one):
    # along the top row first, then the rows below.
    xs = {x0} | {o.x + o.width for o in others}
    ys = {y0} | {o.y + o.height for o in others}
    spots = sorted(((x, y) for x in xs for y in ys if x >= x0 and y >= y0), key=lambda p: (p[1], p[0]))
    for x, y in spots:
        spot = Geometry(x, y, width, height)
        if x + width <= screen_w and y + height <= screen_h and not any(_intersects(spot, o) for o in others):
            return x, y
    raise KartStudioError(
        f"another emulator window already sits at {x0},{y0} and the screen has no free place for a second one; "
        "stop the other game first"
    )
