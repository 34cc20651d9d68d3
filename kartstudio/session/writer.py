"""Writing a session: SessionWriter appends one seat's frames, labels and pad samples."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from kartstudio.controller import STATE_COLUMNS, ControllerState
from kartstudio.errors import SessionFileError
from kartstudio.session.codecs import _COMPRESSION, CODECS, encode_frame
from kartstudio.session.meta import SessionMeta

LABEL_CHUNK_ROWS = 256  # rows per chunk of the per-frame labels (actions, states, timestamps, frame_numbers)


def _in_place() -> h5py.h5p.PropDCID:
    """Creation properties of a dataset whose chunks are allocated as soon as rows are added to them
    and keep their place in the file (no filter: a chunk's size never changes)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    return dcpl


class SessionWriter:
    """Appends frames, labels and pad samples to one seat's session file.

    Not thread-safe: one thread (the recorder's writer thread) owns it. OSError from HDF5 (disk
    full, permission) propagates; the caller stops and calls close(), which keeps what was flushed.
    """

    def __init__(self, path: str | os.PathLike, meta: SessionMeta, overwrite_empty: bool = True) -> None:
        self.path = Path(path)
        self.meta = meta
        if self.path.exists() and self.path.stat().st_size > 0:
            raise SessionFileError(f"{self.path} already exists; KartStudio never overwrites a session")
        try:
            # The path is either new or the empty file new_session_path reserved for us.
            self._file = h5py.File(self.path, "w" if overwrite_empty and self.path.exists() else "x")
        except OSError as exc:
            raise SessionFileError(f"cannot create session file {self.path}: {exc}") from None
        if meta.codec not in CODECS:
            raise SessionFileError(f"unknown frame codec {meta.codec!r}: choose one of {', '.join(CODECS)}")
        h, w = meta.storage_size
        f = self._file
        f.attrs.update(meta.to_attrs())
        if meta.codec == "jpeg":
            # one JPEG file's bytes per frame: plain h5py plus any JPEG decoder reads them
            self.frames = f.create_dataset(
                "frames", (0,), maxshape=(None,), chunks=(64,), dtype=h5py.vlen_dtype(np.uint8), dcpl=_in_place()
            )
        else:
            self.frames = f.create_dataset(
                "frames", (0, h, w, 3), maxshape=(None, h, w, 3), chunks=(1, h, w, 3), dtype="u1", **_COMPRESSION
            )
        self.frames.attrs["codec"] = meta.codec
        # The labels are stored uncompressed (68 bytes a frame, ~0.2% of a lossless frame), each chunk
        # allocated when its first row is added and rewritten in place from then on: it lies in the
        # file before the frames it labels, so a file cut anywhere keeps the labels of every frame
        # whose pixels it keeps (compressed chunks move to the end of the file on every save).
        rows = LABEL_CHUNK_ROWS
        self.actions = f.create_dataset("actions", (0, 5), maxshape=(None, 5), chunks=(rows, 5), dtype="f4",
                                        dcpl=_in_place())
        ncol = len(STATE_COLUMNS)
        self.states = f.create_dataset("states", (0, ncol), maxshape=(None, ncol), chunks=(rows, ncol), dtype="i2",
                                       dcpl=_in_place())
        self.states.attrs["columns"] = json.dumps(STATE_COLUMNS)
        self.timestamps = f.create_dataset("timestamps", (0,), maxshape=(None,), chunks=(rows,), dtype="f8",
                                           dcpl=_in_place())
        self.frame_numbers = f.create_dataset("frame_numbers", (0,), maxshape=(None,), chunks=(rows,), dtype="i8",
                                              dcpl=_in_place())
        pads = f.create_group("pad_samples")
        self.pad_timestamps = pads.create_dataset("timestamps", (0,), maxshape=(None,), chunks=(4096,), **_COMPRESSION, dtype="f8")
        self.pad_states = pads.create_dataset(
            "states", (0, ncol), maxshape=(None, ncol), chunks=(4096, ncol), dtype="i2", **_COMPRESSION
        )
        self.pad_states.attrs["columns"] = json.dumps(STATE_COLUMNS)
        f.create_dataset("excluded", (0, 2), maxshape=(None, 2), chunks=(256, 2), dtype="i8")
        # monotonic -> wall clock, so readers can turn timestamps into dates
        f.attrs["clock_offset"] = time.time() - time.monotonic()
        f.attrs["complete"] = False
        self._n = 0
        self._closed = False
        f.flush()

    def __len__(self) -> int:
        return self._n

    def append(
        self, frame: np.ndarray, state: ControllerState, timestamp: float, frame_number: int, action=None
    ) -> None:
        """One frame and its label. `action`: the exact (x, y, a, b, rb) to store (an import keeps
        its source's values); by default the state's own TensorKart tuple."""
        h, w = self.meta.storage_size
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({h}, {w}, 3) uint8, got {frame.shape} {frame.dtype}")
        if self.meta.codec == "jpeg":
            self.append_encoded(encode_frame(frame, "jpeg", self.meta.jpeg_quality), state, timestamp, frame_number, action)
            return
        # Through HDF5's own gzip filter and chunk cache, not ISA-L and a direct chunk write (3x faster
        # to compress): a direct write that fails on a full disk left HDF5 in a state it crashed on
        # when the file was closed (tests/test_hostile.py, a save cut short); a cached chunk fails at
        # the flush, which the recorder survives.
        i = self._grow()
        self.frames[i] = frame
        self._label(i, state, timestamp, frame_number, action)

    def append_encoded(
        self, data: bytes, state: ControllerState, timestamp: float, frame_number: int, action=None
    ) -> None:
        """A frame already encoded by encode_frame with this session's codec (importers encode
        on worker threads); written as it is."""
        i = self._grow()
        if self.meta.codec == "jpeg":
            self.frames[i] = np.frombuffer(data, np.uint8)
        else:
            self.frames.id.write_direct_chunk((i, 0, 0, 0), data)
        self._label(i, state, timestamp, frame_number, action)

    def _grow(self) -> int:
        i = self._n
        for ds in (self.frames, self.actions, self.states, self.timestamps, self.frame_numbers):
            ds.resize(i + 1, axis=0)
        return i

    def _label(self, i: int, state: ControllerState, timestamp: float, frame_number: int, action) -> None:
        self.actions[i] = state.to_tensorkart() if action is None else np.asarray(action, np.float32)
        self.states[i] = state.to_row()
        self.timestamps[i] = timestamp
        self.frame_numbers[i] = frame_number
        self._n = i + 1

    def append_pad_samples(self, samples: Sequence) -> None:
        """Raw pad samples (PadSample: timestamp, state) at the pad's polling rate."""
        if not samples:
            return
        m = self.pad_timestamps.shape[0]
        k = len(samples)
        self.pad_timestamps.resize(m + k, axis=0)
        self.pad_states.resize(m + k, axis=0)
        self.pad_timestamps[m:] = [s.timestamp for s in samples]
        self.pad_states[m:] = np.stack([s.state.to_row() for s in samples])

    def update_meta(self, clock_offset: float | None = None, **fields) -> None:
        """Change meta fields after frames were written (an import knows its frame rate and its skipped
        rows only at the end); the attributes are rewritten at once. clock_offset: Unix time minus the
        timestamps' clock (an import timed by its files' times sets the real one)."""
        for name, value in fields.items():
            if not hasattr(self.meta, name):
                raise AttributeError(f"SessionMeta has no field {name!r}")
            setattr(self.meta, name, value)
        self._file.attrs.update(self.meta.to_attrs())
        if clock_offset is not None:
            self._file.attrs["clock_offset"] = float(clock_offset)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Finish the file. After a write error, keeps whatever the last flush made durable."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.attrs["complete"] = True
            self._file.attrs["frame_count"] = self._n
            self._file.close()
        except Exception:
            # The disk may be full: the last flushed state is still a valid file.
            try:
                self._file.close()
            except Exception:
                pass

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
