"""Streaming training data from session files, in bounded memory.

Nothing is loaded whole. At start the dataset keeps, per included frame, only where its
compressed bytes sit in its file (from HDF5's chunk index; a session stores one frame per
gzip chunk) and its 5 labels: about 40 bytes a frame. Each batch then reads just its frames:
threads ``pread`` the chunks and inflate them (ISA-L or zlib), both of which release the GIL, so
decoding runs on all cores alongside TensorFlow. Batches are shuffled across files and frames.

Per batch, in TensorFlow: resize to the model's 66x200, then (training only, optional)
augmentation: horizontal mirror with the steering sign flipped, and brightness/contrast jitter.

    train_paths, val_paths = split_by_session(find_sessions(["data/"]), val_sessions=1)
    train = SessionDataset(train_paths, batch_size=50, augment=True, seed=0)
    for images, actions in train.batches(epoch=0):   # tf.data: (B, 66, 200, 3) 0..255, (B, 5)
        ...

Frames in a session's excluded ranges are never read (``Session.included_indices()``). Session
files hold one seat each (the recorder and the importers crop), so no seat crop is needed here;
frames of any stored size are resized.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

try:  # ISA-L inflates gzip about twice as fast as zlib; the same format, so zlib is the fallback
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import error as _InflateError
except ImportError:  # pragma: no cover - isal is a dependency, but a frame still decodes without it
    from zlib import decompress as _inflate
    from zlib import error as _InflateError

from kartstudio.errors import KartStudioError, SessionFileError
from kartstudio.images import resize
from kartstudio.model import INPUT_SIZE, resize_images, tf
from kartstudio.session import Session, find_sessions, open_session

TURN_THRESHOLD = 0.25  # |x| at or above this counts as a turning frame for oversampling
BRIGHTNESS = 25.0  # brightness jitter: +-25 of 255
CONTRAST = 0.2  # contrast jitter: x(1 +- 0.2) around each image's mean
_MAX_OPEN_FILES = 64  # file descriptors kept open at once (reopened on demand)


@dataclass
class _File:
    """One session file and how to read its frames."""

    path: Path
    shape: tuple[int, int, int]
    fast: bool  # frames are one plain gzip chunk each, readable with pread + zlib


class _Index:
    """Every frame the dataset may serve: which file, which frame, where its bytes are, its label."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.files: list[_File] = []
        file_ids, frame_ids, offsets, sizes, raw, actions = [], [], [], [], [], []
        for path in paths:
            with open_session(path) as s:
                keep = s.included_indices()
                if len(keep) == 0:
                    continue
                fast, where = _chunk_locations(s)
                if fast:
                    ok = where[keep, 0] >= 0  # a frame whose chunk was never written is skipped
                    keep = keep[ok]
                    offsets.append(where[keep, 0])
                    sizes.append(where[keep, 1])
                    raw.append(where[keep, 2].astype(bool))
                else:
                    offsets.append(np.full(len(keep), -1, np.int64))
                    sizes.append(np.zeros(len(keep), np.int64))
                    raw.append(np.zeros(len(keep), bool))
                labels = np.asarray(s.actions[: len(s)], np.float32)[keep]
                if not np.all(np.isfinite(labels)):
                    raise SessionFileError(f"{path} is damaged: some labels are not numbers")
                file_ids.append(np.full(len(keep), len(self.files), np.int32))
                frame_ids.append(keep.astype(np.int32))
                actions.append(labels)
                self.files.append(_File(Path(path), s.frame_shape, fast))
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        self.file_ids = cat(file_ids, np.int32)
        self.frame_ids = cat(frame_ids, np.int32)
        self.offsets = cat(offsets, np.int64)
        self.sizes = cat(sizes, np.int32)
        self.raw = cat(raw, bool)
        self.actions = np.concatenate(actions) if actions else np.zeros((0, 5), np.float32)

    def __len__(self) -> int:
        return len(self.frame_ids)


def _chunk_locations(s: Session) -> tuple[bool, np.ndarray | None]:
    """(fast, rows of (byte offset, size, stored raw) per frame) from HDF5's chunk index.

    The fast path needs what SessionWriter writes: one frame per chunk, gzip as the only filter.
    Anything else (a file written by another tool) is read through h5py instead.
    """
    if s.codec != "lossless":  # jpeg frames decode through Session.frame
        return False, None
    ds = s.frames
    n = len(s)
    plain = ds.chunks == (1, *ds.shape[1:]) and ds.compression in ("gzip", None)
    if not plain or ds.shuffle or ds.fletcher32 or ds.scaleoffset is not None or not hasattr(ds.id, "chunk_iter"):
        return False, None
    where = np.full((n, 3), -1, np.int64)
    gzip = ds.compression == "gzip"

    def visit(info) -> None:
        i = info.chunk_offset[0]
        if i < n:
            # filter_mask bit 0 set: HDF5 skipped gzip for this chunk and stored it raw
            where[i] = (info.byte_offset, info.size, (not gzip) or (info.filter_mask & 1))

    ds.id.chunk_iter(visit)
    return True, where


class _Reader:
    """Reads frames by index position from several threads at once.

    Each thread keeps its own small set of open files (at most _MAX_OPEN_FILES), so no thread
    ever closes a descriptor another thread is reading from.
    """

    def __init__(self, index: _Index) -> None:
        self.index = index
        self._local = threading.local()
        self._caches: list[OrderedDict[int, int]] = []
        self._lock = threading.Lock()

    def _fd(self, file_id: int) -> int:
        fds = getattr(self._local, "fds", None)
        if fds is None:
            fds = self._local.fds = OrderedDict()
            with self._lock:
                self._caches.append(fds)
        fd = fds.get(file_id)
        if fd is not None:
            fds.move_to_end(file_id)
            return fd
        path = self.index.files[file_id].path
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise SessionFileError(f"cannot read {path}: {exc.strerror}") from None
        fds[file_id] = fd
        while len(fds) > _MAX_OPEN_FILES:
            os.close(fds.popitem(last=False)[1])
        return fd

    def read(self, positions: np.ndarray) -> list[np.ndarray]:
        ix = self.index
        frames: list[np.ndarray | None] = [None] * len(positions)
        slow: dict[int, list[int]] = {}
        for k, p in enumerate(positions):
            f = ix.files[ix.file_ids[p]]
            if not f.fast:
                slow.setdefault(int(ix.file_ids[p]), []).append(k)
                continue
            data = os.pread(self._fd(int(ix.file_ids[p])), int(ix.sizes[p]), int(ix.offsets[p]))
            if not ix.raw[p]:
                try:
                    data = _inflate(data)
                except _InflateError:
                    raise SessionFileError(f"{f.path} is damaged: frame {ix.frame_ids[p]} does not decompress") from None
            frames[k] = np.frombuffer(data, np.uint8).reshape(f.shape)
        for file_id, ks in slow.items():  # the h5py path, for files SessionWriter did not write
            with open_session(ix.files[file_id].path) as s:
                for k in ks:
                    frames[k] = s.frame(int(ix.frame_ids[positions[k]]))
        return frames  # type: ignore[return-value]

    def close(self) -> None:
        """Close every file; call when no read is running (SessionDataset.close does)."""
        with self._lock:
            for fds in self._caches:
                for fd in fds.values():
                    os.close(fd)
                fds.clear()


def split_by_session(paths: Sequence[str | os.PathLike], val_sessions: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold out `val_sessions` whole session files for validation (chosen with `seed`).

    Whole sessions, not random frames: neighbouring frames are nearly identical, so a random
    frame split would measure memory, not driving.
    """
    paths = [Path(p) for p in paths]
    if val_sessions <= 0:
        return paths, []
    if val_sessions >= len(paths):
        raise KartStudioError(
            f"--val-sessions {val_sessions} leaves nothing to train on: there are {len(paths)} session files"
        )
    chosen = set(np.random.default_rng(seed).choice(len(paths), size=val_sessions, replace=False).tolist())
    return [p for i, p in enumerate(paths) if i not in chosen], [p for i, p in enumerate(paths) if i in chosen]


class _BatchSource:
    """What both datasets share: epoch order, augmentation draws and the tf.data wrapper."""

    size: tuple[int, int] = INPUT_SIZE
    batch_size: int
    augment: bool
    shuffle: bool
    seed: int
    turn_oversample: float
    actions: np.ndarray  # (N, 5) labels of every frame served

    def __len__(self) -> int:
        """Samples per epoch (after oversampling)."""
        return len(self.epoch_order(0))

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self) // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Positions served in `epoch`: turning frames repeated `turn_oversample` times, shuffled."""
        rng = np.random.default_rng([self.seed, epoch])
        order = np.arange(len(self.actions))
        if self.turn_oversample > 1.0:
            turning = np.flatnonzero(np.abs(self.actions[:, 0]) >= TURN_THRESHOLD)
            whole, frac = divmod(self.turn_oversample - 1.0, 1.0)
            extra = [np.repeat(turning, int(whole))]
            if frac > 0 and len(turning):
                extra.append(rng.choice(turning, size=int(round(frac * len(turning))), replace=False))
            order = np.concatenate([order, *extra])
        if self.shuffle:
            rng.shuffle(order)
        return order

    def _frames(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _numpy_batches(self, epoch: int) -> Iterator[tuple]:
        order = self.epoch_order(epoch)
        rng = np.random.default_rng([self.seed, epoch, 1])
        for start in range(0, len(order), self.batch_size):
            # sorted within the batch: reads go file by file, front to back (a batch's gradient
            # does not depend on the order of its samples)
            pos = np.sort(order[start : start + self.batch_size])
            n = len(pos)
            if self.augment:
                flip = rng.random(n) < 0.5
                gain = rng.uniform(1 - CONTRAST, 1 + CONTRAST, n).astype(np.float32)
                shift = rng.uniform(-BRIGHTNESS, BRIGHTNESS, n).astype(np.float32)
            else:
                flip, gain, shift = np.zeros(n, bool), np.ones(n, np.float32), np.zeros(n, np.float32)
            yield self._frames(pos), self.actions[pos], flip, gain, shift

    def batches(self, epoch: int = 0) -> "tf.data.Dataset":
        """One epoch as a tf.data.Dataset of (images (B, 66, 200, 3) float32 0..255, actions (B, 5)).

        Reading runs ahead of training by two batches (prefetch); the order depends only on
        (seed, epoch), so a resumed run sees the same batches.
        """
        spec = (
            tf.TensorSpec((None, None, None, 3), tf.uint8),
            tf.TensorSpec((None, 5), tf.float32),
            tf.TensorSpec((None,), tf.bool),
            tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        )
        ds = tf.data.Dataset.from_generator(lambda: self._numpy_batches(epoch), output_signature=spec)
        return ds.map(self._prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

    def _prepare(self, frames, actions, flip, gain, shift):
        images = resize_images(frames, self.size)
        if self.augment:
            images = tf.where(flip[:, None, None, None], images[:, :, ::-1, :], images)
            steer_sign = tf.where(flip, -1.0, 1.0)[:, None]
            actions = tf.concat([actions[:, :1] * steer_sign, actions[:, 1:]], axis=1)
            mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
            images = (images - mean) * gain[:, None, None, None] + mean + shift[:, None, None, None]
            images = tf.clip_by_value(images, 0.0, 255.0)
        return images, actions

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SessionDataset(_BatchSource):
    """Frames and labels streamed from session files (or folders of them).

    batch_size: frames per batch. augment: mirror + brightness/contrast jitter (training only).
    shuffle: shuffle across files and frames each epoch. turn_oversample: how many times each
    turning frame (|x| >= 0.25) is served per epoch (1.0 = no oversampling; 2.5 = 2 or 3 times).
    Raises SessionFileError naming a corrupt file, KartStudioError when there are no frames.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 50,
        augment: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        turn_oversample: float = 1.0,
        size: tuple[int, int] = INPUT_SIZE,
        threads: int | None = None,
    ) -> None:
        self.paths = find_sessions(paths)
        if not self.paths:
            raise KartStudioError(f"no session files in {', '.join(map(str, paths)) or 'the data given'}")
        if batch_size < 1:
            raise KartStudioError(f"batch size must be at least 1, got {batch_size}")
        self.index = _Index(self.paths)
        if len(self.index) == 0:
            raise KartStudioError(f"no frames to train on in {len(self.paths)} session file(s) (all empty or excluded)")
        self.actions = self.index.actions
        self.batch_size, self.augment, self.shuffle, self.seed = batch_size, augment, shuffle, seed
        self.turn_oversample = max(1.0, float(turn_oversample))
        self.size = tuple(size)
        self._reader = _Reader(self.index)
        self._threads = threads or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="kartstudio-read")

    @property
    def frames(self) -> int:
        """Distinct frames served (included frames of all files)."""
        return len(self.index)

    def _frames(self, positions: np.ndarray) -> np.ndarray:
        parts = np.array_split(positions, min(self._threads, len(positions)))
        frames = [f for chunk in self._pool.map(self._reader.read, parts) for f in chunk]
        if len({f.shape for f in frames}) > 1:  # sessions of different storage sizes in one batch
            frames = [resize(f, self.size) for f in frames]
        return np.stack(frames)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._reader.close()


class ArrayDataset(_BatchSource):
    """The same batches from in-memory arrays (TensorKart's X.npy way; the benchmark's baseline).

    images: (N, H, W, 3) uint8, actions: (N, 5) float32. Everything sits in RAM.
    """

    def __init__(
        self,
        images: np.ndarray,
        actions: np.ndarray,
        batch_size: int = 50,
        augment: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        turn_oversample: float = 1.0,
        size: tuple[int, int] = INPUT_SIZE,
    ) -> None:
        if len(images) != len(actions) or len(images) == 0:
            raise KartStudioError(f"need as many images as labels (and some): {len(images)} images, {len(actions)} labels")
        self.images = images
        self.actions = np.asarray(actions, np.float32)
        self.batch_size, self.augment, self.shuffle, self.seed = batch_size, augment, shuffle, seed
        self.turn_oversample = max(1.0, float(turn_oversample))
        self.size = tuple(size)

    @property
    def frames(self) -> int:
        return len(self.images)

    def _frames(self, positions: np.ndarray) -> np.ndarray:
        return self.images[positions]


__all__ = ["ArrayDataset", "SessionDataset", "split_by_session", "TURN_THRESHOLD"]
