"""The play loop: frames out of a GameBackend, each seat driven, frames handed on.

One order everywhere: every seat's driver is asked once before the first frame, then for each
frame: hand it on (recorders, previews), then ask every driver again, having seen it.

- play(): synchronous, on the caller's thread, as fast as the game steps (eval, demos, DAgger).
- GameLoop: the same loop on its own thread, drivers and consumers changed while it runs (the app).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.drivers import Driver
from kartstudio.errors import describe_error
from kartstudio.game import Frame, GameBackend
from kartstudio.pads.base import PadSource


def labelled(frame: Frame, labels: dict[int, ControllerState]) -> Frame:
    """The frame with `labels` as the states a recorder stores for it."""
    return replace(frame, inputs=dict(labels))


def drive(game: GameBackend, drivers: dict[int, Driver], frame: Frame | None) -> dict[int, ControllerState]:
    """Ask each seat's driver (seats without one get the neutral controller); returns what was set."""
    applied = {}
    for seat in game.seats:
        driver = drivers.get(seat)
        applied[seat] = driver.act(game, seat, frame) if driver is not None else NEUTRAL
        game.set_controller(seat, applied[seat])
    return applied


def play(
    game: GameBackend,
    drivers: dict[int, Driver],
    on_frame: Callable[[Frame, dict[int, ControllerState]], bool | None] | None = None,
    max_frames: int | None = None,
) -> int:
    """Run a started game until it ends, `max_frames` frames, or on_frame returns False.

    on_frame(frame, labels): called after the drivers have seen the frame; labels are each
    driver's `label` for it (its decision on seeing the frame). Returns the frames played.
    """
    drive(game, drivers, None)
    frames = 0
    while max_frames is None or frames < max_frames:
        frame = game.next_frame()
        if frame is None:
            break
        frames += 1
        drive(game, drivers, frame)
        if on_frame is not None:
            labels = {seat: d.label for seat, d in drivers.items()}
            if on_frame(frame, labels) is False:
                break
    return frames


class _AppliedPad(PadSource):
    """The states the loop hands the game for a seat, as pad samples (labels for seats no pad drives)."""

    def __init__(self, seat: int) -> None:
        super().__init__()
        self.name = f"seat {seat} driver"
        self.guid = f"applied:{seat}"


@dataclass
class LoopStatus:
    running: bool = False
    starting: bool = False
    frames: int = 0
    fps: float = 0.0  # frames handed on per second (the capture rate)
    polls_per_s: float | None = None  # the game's own input polls per second, where the backend counts them
    error: str = ""
    note: str = ""  # the outcome of the last call_soon task
    applied: dict[int, ControllerState] = field(default_factory=dict)  # what each seat's driver set last


class GameLoop:
    """play() on its own thread, for the app: frames in, consumers fed, each seat driven.

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
        self._applied_pads: dict[int, PadSource] = {}

    # -- control (any thread) ----------------------------------------------------------------------
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

    def switch(self, drivers: dict[int, Driver | None], add=None, remove=None) -> None:
        """Change seats' drivers and add / remove a consumer at once, so the loop never sees half
        of it: `remove` gets no frame after the new drivers have acted (each frame is handed on
        before the drivers see it). `add` may get one frame the old drivers produced."""
        with self._lock:
            for seat, driver in drivers.items():
                if driver is None:
                    self.drivers.pop(seat, None)
                else:
                    self.drivers[seat] = driver
            if remove is not None and remove in self._consumers:
                self._consumers.remove(remove)
            if add is not None and add not in self._consumers:
                self._consumers.append(add)

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

    def latest(self) -> Frame | None:
        return self._latest

    def applied_pad(self, seat: int) -> PadSource:
        """A pad source carrying every state the loop hands the game for `seat` (AI, expert, ...)."""
        with self._lock:
            if seat not in self._applied_pads:
                self._applied_pads[seat] = _AppliedPad(seat)
            return self._applied_pads[seat]

    # -- the loop (its own thread) -----------------------------------------------------------------
    def _run_tasks(self) -> None:
        while True:
            try:
                fn, label = self._tasks.get_nowait()
            except queue.Empty:
                return
            try:
                self.status.note = str(fn(self.backend) or f"{label}: done")
            except Exception as exc:  # noqa: BLE001 - shown in the window
                self.status.note = f"{label} failed: {describe_error(exc)}"

    def _run(self) -> None:
        try:
            self.backend.start()
        except BaseException as exc:  # shown in the window; the loop simply does not run
            self.status.error = describe_error(exc)
            self.status.starting = False
            return
        self.status.starting = False
        self.status.running = True
        times: list[float] = []
        try:
            self._drive(None)
            while not self._stop.is_set():
                self._run_tasks()
                frame = self.backend.next_frame(timeout=0.5)
                if frame is None:
                    if not self.backend.running:
                        why = self.backend.exit_reason
                        if why:
                            self.status.error = f"the game ended: {why}"
                        break
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
                del times[:-61]
                self.status.frames += 1
                if len(times) > 1 and times[-1] > times[0]:
                    self.status.fps = (len(times) - 1) / (times[-1] - times[0])
                self.status.polls_per_s = self.backend.game_rate()
        except BaseException as exc:
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
        applied = drive(self.backend, drivers, frame)
        self.status.applied.update(applied)
        for seat, state in applied.items():
            pad = self._applied_pads.get(seat)
            if pad is not None:
                pad.push(state)
