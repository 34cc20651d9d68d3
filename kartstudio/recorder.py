"""The two-seat recorder: frames + pad samples in, one session file per seat out.

The game loop calls ``on_frame`` for every frame it shows; that call only labels the frame and
queues it, so it never stalls the game or the UI. One writer thread crops each seat's half,
resizes it to the storage size and appends it to that seat's file, flushing at least once a
second so a crash loses at most the last second. A full queue drops the frame and counts it.

Labels are frame-exact: a frame's label aggregates every pad sample taken since the previous
frame (largest stick deflection, any button pressed in any sample), so a one-poll tap is never
lost. When the backend knows exactly what the game read (the emulator plugin reports it), that
wins over the pad samples.
"""

from __future__ import annotations

import os
import queue
import resource
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from kartstudio.controller import NEUTRAL, ControllerState, aggregate
from kartstudio.errors import RecordingError
from kartstudio.game import Frame, SeatLayout
from kartstudio.images import resize
from kartstudio.pads.base import PadSample, PadSource
from kartstudio.session import SessionMeta, SessionWriter, new_session_path

FLUSH_INTERVAL = 0.5  # seconds; the issue asks for at least once a second
# Stop a seat cleanly while this much room is left: HDF5 cannot close a file properly once a
# write has failed, so we never let the disk (or the file size limit) fill up under it.
DISK_RESERVE = 32 * 1024 * 1024


@dataclass
class SeatCounters:
    captured: int = 0  # frames the game showed while this seat was recording
    written: int = 0  # frames appended to the file
    dropped: int = 0  # frames lost because the writer fell behind (queue full)
    paused: int = 0  # frames skipped while the seat's pad was unplugged


@dataclass
class SeatRecording:
    """One seat's part of a session: where it goes and how it is doing."""

    seat: int
    meta: SessionMeta
    pad: PadSource | None
    path: Path | None = None
    writer: SessionWriter | None = None
    counters: SeatCounters = field(default_factory=SeatCounters)
    active: bool = False
    error: str | None = None
    last_state: ControllerState = NEUTRAL
    pending: list[PadSample] = field(default_factory=list)  # samples newer than the last frame

    @property
    def paused(self) -> bool:
        return self.active and self.pad is not None and not self.pad.connected


class Recorder:
    """Records the seats of one game into `folder`, one session file per seat.

    seats: seat -> (SessionMeta for that seat's file, the seat's PadSource or None). The meta's
    seat, capture_region and storage_size are filled in here.
    """

    def __init__(
        self,
        folder: str | Path,
        seats: dict[int, tuple[SessionMeta, PadSource | None]],
        layout: SeatLayout | None = None,
        queue_size: int = 90,
        on_error: Callable[[int, str], None] | None = None,
        disk_reserve: int = DISK_RESERVE,
    ) -> None:
        self.folder = Path(folder)
        self.disk_reserve = disk_reserve
        self.layout = layout or SeatLayout.split_screen()
        self.on_error = on_error
        self.seats: dict[int, SeatRecording] = {}
        for seat, (meta, pad) in seats.items():
            self.seats[seat] = SeatRecording(seat, self._seat_meta(seat, meta), pad)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        # _lock: the seats' active flags and labelling, so seats started or stopped in one call
        # start or stop on the same frame. _control: the writer thread's start and end.
        self._lock = threading.Lock()
        self._control = threading.Lock()
        self._thread: threading.Thread | None = None

    def arm(self, seat: int, meta: SessionMeta, pad: PadSource | None) -> None:
        """Set (or add) what `seat` records next: its file's meta and its pad. Not while it records."""
        with self._lock:
            rec = self.seats.get(seat)
            if rec is not None and (rec.active or rec.writer is not None):
                raise RecordingError(f"seat {seat} is still recording; stop it before changing what it records")
            self.seats[seat] = SeatRecording(seat, self._seat_meta(seat, meta), pad)

    def _seat_meta(self, seat: int, meta: SessionMeta) -> SessionMeta:
        """meta with the seat and its capture region. In a 1-player game (one seat on the whole
        screen) a seat-layout meta becomes a whole-screen session stored at twice a seat's height,
        so the whole screen is never squeezed into a seat's shape nor mistaken for a seat."""
        if seat not in self.layout.regions:
            raise RecordingError(f"seat {seat} is not in this {self.layout.players}-player game; record seat 1, "
                                 "or start the game with 2 players")
        meta = replace(meta, seat=seat, capture_region=tuple(self.layout.regions[seat]))
        if self.layout.players == 1 and meta.layout != "whole":
            h, w = meta.storage_size
            meta = replace(meta, layout="whole", storage_size=(2 * h, w))
        return meta

    # -- control ---------------------------------------------------------------------------------
    def start(self, seats: Iterable[int] | None = None, paths: dict[int, Path] | None = None) -> dict[int, Path]:
        """Open a new file for each of `seats` (default: all) and start recording them, all from
        the same frame. All or nothing: if one file cannot be opened, none starts (and the files
        this call opened are removed).

        paths: explicit file names per seat (the GUI lets the user edit them); they must not exist
        or be empty files the caller claimed.
        """
        chosen = [s for s in (list(seats) if seats is not None else list(self.seats)) if not self.seats[s].active]
        opened: dict[int, tuple[Path, SessionWriter]] = {}
        try:
            for seat in chosen:
                rec = self.seats[seat]
                if paths and seat in paths:
                    path = Path(paths[seat])
                    path.parent.mkdir(parents=True, exist_ok=True)
                else:
                    path = new_session_path(self.folder, rec.meta.track, seat)
                    opened[seat] = (path, None)  # ours: removed if this start fails
                opened[seat] = (path, SessionWriter(path, rec.meta))
        except BaseException:
            for path, writer in opened.values():  # a file the caller named and we could not open stays
                if writer is not None:
                    writer.close()
                path.unlink(missing_ok=True)
            raise
        with self._lock:  # the game loop labels frames under this lock: every seat starts on one frame
            for seat, (path, writer) in opened.items():
                rec = self.seats[seat]
                rec.path, rec.writer = path, writer
                rec.counters = SeatCounters()
                rec.error = None
                rec.pending = []
                rec.last_state = NEUTRAL
                if rec.pad is not None:
                    rec.pad.drain()  # samples from before the start belong to no frame of this session
                rec.active = True
        with self._control:
            self._ensure_writer()
        return {seat: path for seat, (path, _) in opened.items()}

    def stop(self, seats: Iterable[int] | None = None) -> dict[int, Path]:
        """Stop recording `seats` (default: all), all after the same frame: everything queued
        for them is written and their files closed. Other seats keep recording meanwhile."""
        chosen = list(seats) if seats is not None else list(self.seats)
        with self._lock:
            for seat in chosen:
                self.seats[seat].active = False
        closed = None
        with self._control:
            if self._thread is not None and self._thread.is_alive():
                # wait for this close only: the queue may never empty while another seat records
                closed = threading.Event()
                self._queue.put(("close", chosen, closed))
            else:  # stopped before (or never started): nothing is queued, close here
                for seat in chosen:
                    self._close(seat)
        if closed is not None:
            closed.wait()
        with self._control:
            if not self.recording:
                self._stop_writer()
        return {s: self.seats[s].path for s in chosen if self.seats[s].path is not None}

    @property
    def recording(self) -> bool:
        return any(r.active for r in list(self.seats.values()))

    def counters(self) -> dict[int, SeatCounters]:
        return {seat: replace(rec.counters) for seat, rec in list(self.seats.items())}

    # -- the game loop's side --------------------------------------------------------------------
    def on_frame(self, frame: Frame) -> None:
        """Label `frame` for each recording seat and queue it for writing. Never blocks."""
        items = []
        with self._lock:
            for seat, rec in self.seats.items():
                if not rec.active:
                    continue
                samples = self._samples_until(rec, frame.timestamp)
                exact = frame.inputs.get(seat) if frame.inputs else None
                label = exact if exact is not None else aggregate((s.state for s in samples), rec.last_state)
                if samples:  # with no new sample the pad still reads as its last sample, not as the aggregate
                    rec.last_state = samples[-1].state
                rec.counters.captured += 1
                if rec.paused:
                    rec.counters.paused += 1
                    continue
                items.append((seat, label, samples))
            if not items:
                return
            try:  # still under the lock: a seat stopped from now on has this frame queued before its close
                self._queue.put_nowait(("frame", frame, items))
            except queue.Full:
                for seat, _, _ in items:
                    self.seats[seat].counters.dropped += 1

    def _samples_until(self, rec: SeatRecording, t: float) -> list[PadSample]:
        """The seat's pad samples taken up to time t; later ones wait for the next frame."""
        if rec.pad is not None:
            rec.pending.extend(rec.pad.drain())
        now = [s for s in rec.pending if s.timestamp <= t]
        rec.pending = [s for s in rec.pending if s.timestamp > t]
        return now

    def run(self, frames: Iterable[Frame], seconds: float | None = None) -> None:
        """Record every frame of `frames` (for the CLI and benchmarks), then stop."""
        if not self.recording:
            self.start()
        end = None if seconds is None else time.monotonic() + seconds
        try:
            for frame in frames:
                self.on_frame(frame)
                if end is not None and time.monotonic() >= end:
                    break
                if not self.recording:
                    break
        finally:
            self.stop()

    # -- the writer thread -----------------------------------------------------------------------
    def _ensure_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._write_loop, name="kartstudio-recorder", daemon=True)
            self._thread.start()

    def _stop_writer(self) -> None:
        if self._thread is not None:
            self._queue.put(("quit", None))
            self._thread.join()
            self._thread = None

    def _write_loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                kind, *payload = self._queue.get(timeout=FLUSH_INTERVAL)
            except queue.Empty:
                kind, payload = "idle", []
            try:
                if kind == "frame":
                    frame, items = payload
                    for seat, label, samples in items:
                        self._write(seat, frame, label, samples)
                elif kind == "close":
                    chosen, closed = payload
                    try:
                        for seat in chosen:
                            self._close(seat)
                    finally:
                        closed.set()
                elif kind == "quit":
                    return
                if time.monotonic() - last_flush >= FLUSH_INTERVAL:
                    for rec in list(self.seats.values()):
                        if rec.writer is not None:
                            self._guarded(rec, rec.writer.flush)
                    last_flush = time.monotonic()
            finally:
                if kind != "idle":
                    self._queue.task_done()

    def _write(self, seat: int, frame: Frame, label: ControllerState, samples: list[PadSample]) -> None:
        rec = self.seats[seat]
        if rec.writer is None:
            return  # this seat stopped after an error; its frames are not lost silently: see rec.error
        room = _room_left(rec.path)
        if room < self.disk_reserve:
            self._stop_seat(rec, _describe_full_disk(rec.path, room))
            return
        image = resize(self.layout.crop(frame.image, seat), rec.meta.storage_size)

        def append() -> None:
            rec.writer.append(image, label, frame.timestamp, frame.number)
            rec.writer.append_pad_samples(samples)

        if self._guarded(rec, append):
            rec.counters.written += 1

    def _close(self, seat: int) -> None:
        rec = self.seats[seat]
        if rec.writer is not None and not self._finish(rec):
            self._report(rec, "the disk filled up while saving (free some space or choose another data folder)", saved=False)

    def _finish(self, rec: SeatRecording) -> bool:
        """Close the seat's file; False if its last data could not be saved (the disk filled up)."""
        writer, rec.writer = rec.writer, None
        if writer is None:
            return True
        # Another program may have filled the disk since the last check: only a file whose
        # pending data reached the disk is closed normally (HDF5 crashes closing one that failed).
        try:
            writer.flush()
        except (OSError, RuntimeError):
            _close_off_disk(writer)
            return False
        writer.close()
        return True

    def _guarded(self, rec: SeatRecording, action: Callable[[], None]) -> bool:
        """Run a write; on a disk error stop that seat with a clear message, keeping the file."""
        try:
            action()
            return True
        except (OSError, RuntimeError) as exc:
            # This is the last line of defence: the disk reserve check normally stops us first.
            writer, rec.writer = rec.writer, None
            _close_off_disk(writer)
            self._stop_seat(rec, _describe_write_error(exc), saved=False)
            return False

    def _stop_seat(self, rec: SeatRecording, reason: str, saved: bool = True) -> None:
        """Stop one seat for `reason`; saved: whether everything written so far reached the disk."""
        rec.active = False
        saved = self._finish(rec) and saved
        self._report(rec, reason, saved)

    def _report(self, rec: SeatRecording, reason: str, saved: bool) -> None:
        kept = (f"The {rec.counters.written} frames recorded are kept and readable." if saved else
                f"The frames saved before it (up to {rec.counters.written}) are kept and readable.")
        message = rec.error = f"recording stopped for {rec.path}: {reason}. {kept}"
        if self.on_error is not None:
            self.on_error(rec.seat, message)

    def raise_errors(self) -> None:
        """Raise RecordingError if any seat had to stop (for the CLI and benchmarks)."""
        errors = [rec.error for rec in self.seats.values() if rec.error]
        if errors:
            raise RecordingError("; ".join(errors))


def _room_left(path: Path) -> int:
    """Bytes this file can still grow by: free disk space, and the process's file size limit."""
    stat = os.statvfs(path.parent)
    room = stat.f_bavail * stat.f_frsize
    limit_left = _size_limit_left(path)
    return room if limit_left is None else min(room, limit_left)


def _close_off_disk(writer: SessionWriter | None) -> None:
    """Close a session file whose last write failed without HDF5 touching the disk again.

    HDF5 crashes (SIGSEGV) when it closes, or at exit garbage-collects, a file whose writes
    failed, because it retries them. Pointing the file's descriptor at /dev/null first lets those
    retries succeed harmlessly: the file on disk keeps what its last good flush wrote, which
    readers open as a session "not closed cleanly".
    """
    if writer is None:
        return
    try:
        fd = writer._file.id.get_vfd_handle()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
    except Exception:  # noqa: BLE001 - the file is already closed, or not a plain file
        return
    writer.close()


def _size_limit_left(path: Path) -> int | None:
    """Bytes the process's file size limit (ulimit -f) still allows this file, or None if unlimited."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    return limit - path.stat().st_size


def _describe_full_disk(path: Path | None, room: int) -> str:
    if path is not None and path.exists() and _size_limit_left(path) == room:
        return f"the file size limit (ulimit -f) is reached (only {room // 1024} KiB left for it); raise the limit"
    return f"the disk is full (only {room // 1024} KiB left for it); free some space or choose another data folder"


def _describe_write_error(exc: Exception) -> str:
    text = str(exc)
    lowered = text.lower()
    if "file too large" in lowered or "errno = 27" in lowered or getattr(exc, "errno", None) == 27:
        reason = "the file size limit (ulimit -f) was reached; raise the limit"
    elif "no space" in lowered or "errno = 28" in lowered or getattr(exc, "errno", None) == 28:
        reason = "the disk is full; free some space or choose another data folder"
    elif "permission" in lowered or "errno = 13" in lowered:
        reason = "permission denied; choose a data folder you can write to"
    else:
        reason = f"write failed ({text.splitlines()[0] if text else type(exc).__name__})"
    return reason
