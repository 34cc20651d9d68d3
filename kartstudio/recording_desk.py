"""The app's recording: one Recorder for both seats of the running game (the Record tab shows it).

Seats armed together start on the same frame and, stopped together, end on the same frame; a
seat can also start or stop alone while the other records. Each seat's file is named here (the
automatic name, or the one a person typed, never an existing file), and each seat's trouble
stays its own: a full disk stops that seat with one message, the other keeps recording.

Qt-free. Stopping drains the writer's queue, so it runs on a helper thread; the GUI calls
poll(seat) from its timer to learn when a seat's file is finished and what went wrong.

    desk = RecordingDesk()
    started, refused = desk.start(loop, folder, {1: SeatPlan(meta1, pad1), 2: SeatPlan(meta2, pad2, "mine")})
    ...; desk.stop(); ...; update = desk.poll(1)  # update.finished: path and frames once written
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from kartstudio.errors import KartStudioError
from kartstudio.pads.base import PadSource
from kartstudio.recorder import DISK_RESERVE, Recorder, SeatCounters
from kartstudio.session import SessionMeta, claim_session_path, named_session_path, new_session_path


@dataclass
class SeatPlan:
    """What one armed seat records: its file's meta (track, codec, ...), its pad (None: what the
    loop applies, e.g. the AI), and the file name a person typed (None: the automatic name)."""

    meta: SessionMeta
    pad: PadSource | None
    name: str | None = None


@dataclass
class Finished:
    path: Path
    frames: int  # frames written to the file
    error: str = ""  # why the seat stopped early, if it did


@dataclass
class SeatUpdate:
    error: str = ""  # a seat stopped by trouble (disk full...): the one message to show, once
    finished: Finished | None = None  # the seat's file is written and closed


class RecordingDesk:
    """The seats of one running game, recorded through one Recorder (created with the first
    seat that starts, attached to the game loop, released when the last seat's file is done)."""

    def __init__(self, disk_reserve: int = DISK_RESERVE) -> None:
        self.disk_reserve = disk_reserve  # see Recorder
        self.recorder: Recorder | None = None
        self.paths: dict[int, Path] = {}  # seat -> its file, while recording or finishing
        self._loop = None
        self._stopping: dict[int, threading.Thread] = {}
        self._errors: dict[int, str] = {}  # written by the recorder's writer thread
        self._lock = threading.Lock()

    # -- state ----------------------------------------------------------------------------------
    def recording(self, seat: int | None = None) -> bool:
        """Whether `seat` (default: any seat) records (a seat being finished no longer does)."""
        seats = [seat] if seat is not None else list(self.paths)
        return any(s in self.paths and s not in self._stopping for s in seats)

    def busy(self, seat: int | None = None) -> bool:
        """Whether `seat` (default: any seat) is being finished (its queue written, its file closed)."""
        seats = [seat] if seat is not None else list(self._stopping)
        return any(s in self._stopping for s in seats)

    def counters(self, seat: int) -> SeatCounters | None:
        if self.recorder is None or seat not in self.paths:
            return None
        return self.recorder.counters().get(seat)

    def pad(self, seat: int) -> PadSource | None:
        if self.recorder is None or seat not in self.paths:
            return None
        return self.recorder.seats[seat].pad

    # -- control --------------------------------------------------------------------------------
    def start(self, loop, folder: str | Path, plans: dict[int, SeatPlan]) -> tuple[dict[int, Path], dict[int, str]]:
        """Start the planned seats together, on one frame of `loop`'s game. A seat that cannot
        start (its file name is taken, its pad records the other seat...) is refused with one
        line and the others start without it. Returns (started: seat -> file, refused: seat -> why)."""
        if self.recorder is not None and loop is not self._loop:
            raise KartStudioError("a recording of another game is still being finished; wait for it, then record")
        refused: dict[int, str] = {}
        claimed: dict[int, Path] = {}
        for seat in sorted(plans):
            try:
                claimed[seat] = self._claim(seat, folder, plans[seat], plans, claimed)
            except KartStudioError as exc:
                refused[seat] = str(exc)
        if not claimed:
            return {}, refused
        if self.recorder is None:
            self.recorder = Recorder(folder, {}, layout=loop.backend.layout, on_error=self._on_error,
                                     disk_reserve=self.disk_reserve)
            self._loop = loop
            loop.add_consumer(self.recorder)
        for seat in claimed:
            self.recorder.arm(seat, plans[seat].meta, plans[seat].pad)
        try:
            started = self.recorder.start(list(claimed), paths=claimed)
        except (KartStudioError, OSError) as exc:
            for seat, path in claimed.items():
                _unlink_if_empty(path)
                refused[seat] = str(exc)
            self._release_if_idle()
            return {}, refused
        with self._lock:
            for seat in started:
                self._errors.pop(seat, None)
        self.paths.update(started)
        return started, refused

    def _claim(self, seat: int, folder, plan: SeatPlan, plans: dict[int, SeatPlan], claimed: dict[int, Path]) -> Path:
        """The seat's new file, created empty and ours; refusals are one line."""
        if self.recording(seat) or self.busy(seat):
            raise KartStudioError(f"seat {seat} is already recording; stop it first")
        if plan.pad is not None:
            others = {s: self.pad(s) for s in self.paths if s != seat}
            others.update({s: plans[s].pad for s in claimed})
            for other, pad in others.items():
                if pad is plan.pad:
                    raise KartStudioError(f"Seat {other} is already recording {plan.pad.name}; one pad cannot record "
                                          f"both seats. Choose another pad for seat {seat}.")
        if not plan.name:
            return new_session_path(folder, plan.meta.track, seat)
        wanted = named_session_path(folder, plan.name).resolve()
        for other, path in {**self.paths, **claimed}.items():
            if other != seat and path.resolve() == wanted:
                raise KartStudioError(f"seat {seat}'s file {wanted.name} is seat {other}'s file too; "
                                      "give each seat its own name")
        return claim_session_path(folder, plan.name)

    def stop(self, seats: list[int] | None = None, wait: bool = False) -> None:
        """Stop `seats` (default: every recording seat) after the same frame. Their queues are
        written and files closed on a helper thread; poll() reports each when it is done."""
        chosen = [s for s in (seats if seats is not None else list(self.paths)) if self.recording(s)]
        if chosen:
            thread = threading.Thread(target=self.recorder.stop, args=(chosen,), daemon=True,
                                      name="kartstudio-stop-seat" + "+".join(map(str, chosen)))
            for seat in chosen:
                self._stopping[seat] = thread
            thread.start()
        if wait:
            self.wait()

    def wait(self) -> None:
        """Until every seat being stopped has its file finished (poll() then reports them)."""
        for thread in set(self._stopping.values()):
            thread.join()

    def poll(self, seat: int) -> SeatUpdate:
        """What happened to `seat` since the last poll: an error (the seat is then stopped), and
        its finished file once written. Call from one thread (the GUI's timer)."""
        update = SeatUpdate()
        with self._lock:
            update.error = self._errors.pop(seat, "")
        if update.error and self.recording(seat):
            self.stop([seat])
        thread = self._stopping.get(seat)
        if thread is not None and not thread.is_alive():
            path = self.paths.pop(seat)
            del self._stopping[seat]
            rec = self.recorder.seats[seat]
            update.finished = Finished(path, rec.counters.written, rec.error or "")
            self._release_if_idle()
        return update

    def _release_if_idle(self) -> None:
        if self.recorder is not None and not self.paths:
            self._loop.remove_consumer(self.recorder)
            self.recorder = self._loop = None

    def _on_error(self, seat: int, message: str) -> None:
        with self._lock:  # the writer thread: only stored; poll() hands it on
            self._errors[seat] = message


def _unlink_if_empty(path: Path) -> None:
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass
