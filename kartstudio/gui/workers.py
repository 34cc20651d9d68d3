"""Background workers the window drives: the game loop and long tasks (training, imports).

Both are plain threads that never touch Qt: the window polls them with a QTimer (about 30 Hz)
and shows what they report. So a slow frame, a TensorFlow step or a disk write never blocks
the event loop, and the UI repaints at its own pace however fast the game runs.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.game import Frame, GameBackend
from kartstudio.pads.base import PadSource


# -- who drives a seat ----------------------------------------------------------------------------
class Driver(Protocol):
    name: str

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        """The controller state for `seat` from now on, having seen `frame` (None before the first)."""


class PadDriver:
    """A human (or scripted) pad: its latest state. Scripted pads are asked for a sample each frame."""

    def __init__(self, pad) -> None:
        self.pad = pad
        self.name = getattr(pad, "name", "pad")

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        sample = getattr(self.pad, "sample", None)
        if callable(sample):
            return sample()
        return self.pad.last


class NeutralDriver:
    name = "nobody"

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        return NEUTRAL


class _AppliedPad(PadSource):
    def __init__(self, seat: int) -> None:
        super().__init__()
        self.name = f"seat {seat} driver"
        self.guid = f"applied:{seat}"


# -- the game loop ---------------------------------------------------------------------------------
@dataclass
class LoopStatus:
    running: bool = False
    starting: bool = False
    frames: int = 0
    fps: float = 0.0
    error: str = ""
    note: str = ""  # the outcome of the last call_soon task, for the window to show
    applied: dict[int, ControllerState] = field(default_factory=dict)  # what each seat's driver set last


class GameLoop:
    """Runs a GameBackend on its own thread: frames in, consumers fed, each seat driven.

    consumers: objects with on_frame(frame) (the Recorder, which only queues); they run on the
    loop thread, so they must be quick. Drivers and consumers may be changed while it runs.
    """

    def __init__(self, backend: GameBackend, on_frame_hooks: list[Callable[[Frame], None]] | None = None) -> None:
        self.backend = backend
        self.drivers: dict[int, Driver] = {}
        self._consumers: list[Any] = []
        self._hooks = list(on_frame_hooks or [])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._tasks: queue.Queue = queue.Queue()
        self.status = LoopStatus()
        # What the loop set for each seat, as pad samples: the labels for seats no human pad drives.
        self._applied_pads: dict[int, PadSource] = {}

    # -- control (UI thread) ---------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self.status = LoopStatus(starting=True)
        self._thread = threading.Thread(target=self._run, name="kartstudio-game", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end; the backend is stopped on the loop thread (see wait())."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def set_driver(self, seat: int, driver: Driver | None) -> None:
        with self._lock:
            if driver is None:
                self.drivers.pop(seat, None)
            else:
                self.drivers[seat] = driver

    def add_consumer(self, consumer) -> None:
        with self._lock:
            if consumer not in self._consumers:
                self._consumers.append(consumer)

    def remove_consumer(self, consumer) -> None:
        with self._lock:
            if consumer in self._consumers:
                self._consumers.remove(consumer)

    def call_soon(self, fn: Callable[[GameBackend], str], label: str = "task") -> None:
        """Run fn(backend) on the loop thread between two frames (e.g. a menu macro); its returned
        text, or its error, lands in status.note."""
        self._tasks.put((fn, label))

    def _run_tasks(self) -> None:
        while True:
            try:
                fn, label = self._tasks.get_nowait()
            except queue.Empty:
                return
            try:
                self.status.note = str(fn(self.backend) or f"{label}: done")
            except Exception as exc:  # noqa: BLE001 - shown in the window
                from kartstudio.gui.common_errors import describe_error

                self.status.note = f"{label} failed: {describe_error(exc)}"

    def latest(self) -> Frame | None:
        return self._latest

    def applied_pad(self, seat: int) -> PadSource:
        """A pad source carrying every state the loop hands the game for `seat` (AI, expert, ...)."""
        with self._lock:
            if seat not in self._applied_pads:
                pad = _AppliedPad(seat)
                self._applied_pads[seat] = pad
            return self._applied_pads[seat]

    # -- the loop (its own thread) ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.backend.start()
        except BaseException as exc:  # shown in the window; the loop simply does not run
            from kartstudio.gui.common_errors import describe_error

            self.status.error = describe_error(exc)
            self.status.starting = False
            return
        self.status.starting = False
        self.status.running = True
        times: list[float] = []
        frame: Frame | None = None
        try:
            self._drive(frame)
            while not self._stop.is_set():
                self._run_tasks()
                frame = self.backend.next_frame(timeout=0.5)
                if frame is None:
                    if not getattr(self.backend, "running", True):
                        break  # the game ended
                    continue
                with self._lock:
                    consumers = list(self._consumers)
                for consumer in consumers:
                    consumer.on_frame(frame)
                for hook in self._hooks:
                    hook(frame)
                self._latest = frame
                self._drive(frame)
                times.append(frame.timestamp)
                if len(times) > 60:
                    del times[0]
                self.status.frames += 1
                if len(times) > 1 and times[-1] > times[0]:
                    self.status.fps = (len(times) - 1) / (times[-1] - times[0])
        except BaseException as exc:
            from kartstudio.gui.common_errors import describe_error

            self.status.error = describe_error(exc)
        finally:
            self.status.running = False
            try:
                self.backend.stop()
            except Exception as exc:  # noqa: BLE001 - reported, the window stays up
                self.status.error = self.status.error or f"stopping the game failed: {exc}"

    def _drive(self, frame: Frame | None) -> None:
        with self._lock:
            drivers = dict(self.drivers)
        for seat in self.backend.seats:
            driver = drivers.get(seat)
            state = driver.state(frame, seat) if driver is not None else NEUTRAL
            self.backend.set_controller(seat, state)
            self.status.applied[seat] = state
            pad = self._applied_pads.get(seat)
            if pad is not None:
                pad.push(state)


# -- long tasks --------------------------------------------------------------------------------------
class Cancelled(Exception):
    """Raised inside a task's progress callback once the user pressed Cancel."""


class BackgroundTask:
    """Runs fn(report, cancelled) on a thread. report(kind, payload) queues an event for the UI.

    The UI calls poll() from a timer and gets ("progress", ...), ..., then ("done", result) or
    ("error", message) or ("cancelled", None).
    """

    def __init__(self, fn: Callable[[Callable[[str, Any], None], threading.Event], Any], name: str = "task") -> None:
        self._fn = fn
        self.events: queue.Queue = queue.Queue()
        self.cancel_event = threading.Event()
        self.finished = False
        self.started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"kartstudio-{name}", daemon=True)

    def start(self) -> "BackgroundTask":
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def report(self, kind: str, payload: Any = None) -> None:
        self.events.put((kind, payload))

    def poll(self, limit: int = 1000) -> list[tuple[str, Any]]:
        out = []
        while len(out) < limit:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                break
        return out

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._fn(self.report, self.cancel_event)
        except Cancelled:
            self.events.put(("cancelled", None))
        except BaseException as exc:
            from kartstudio.gui.common_errors import describe_error

            self.events.put(("error", describe_error(exc)))
        else:
            self.events.put(("cancelled", None) if self.cancel_event.is_set() else ("done", result))
        finally:
            self.finished = True
