"""Streaming training data from session files, in bounded memory.

Nothing is loaded whole. At start the dataset keeps, per included frame, only where its
compressed bytes sit in its file (from HDF5's chunk index; a session stores one frame per
gzip chunk) and its 5 labels: about 40 bytes a frame. Each batch then reads just its frames:
threads ``pread`` the chunks and inflate them (ISA-L or zlib), both of which release the GIL, so
decoding runs on all cores alongside TensorFlow. Batches are shuffled across files and frames.

Per batch, in TensorFlow: resize to the model's 66x200 and round to uint8 (the pixels an in-memory
66x200 uint8 array holds, TensorKart's X.npy), then (training only, optional) augmentation:
horizontal mirror with the steering sign flipped, and brightness/contrast jitter. Resized frames
are kept in RAM up to a budget (``cache_mb``, default CACHE_MB), so later epochs read those from
memory instead of inflating and resizing them again; frames past the budget stream every epoch.

    train_paths, val_paths = split_by_session(find_sessions(["data/"]), val_sessions=1)
    train = SessionDataset(train_paths, batch_size=50, augment=True, seed=0)
    for images, actions in train.batches(epoch=0):   # tf.data: (B, 66, 200, 3) 0..255, (B, 5)
        ...

Frames in a session's excluded ranges are never read (``Session.included_indices()``). Session
files hold one seat each (the recorder and the importers crop), so no seat crop is needed here;
frames of any stored size are resized.

Frame history (``history=N``, for a network that sees N frames at once): each sample is its frame
with the N-1 frames before it in the same session, stacked on the channel axis oldest first,
(66, 200, 3N), as the Pilot stacks them at play time. Only served frames serve as predecessors: at
a session's start, and after an excluded range or a frame missing from the file, the first frame of
the unbroken stretch is repeated, as the Pilot repeats a run's first frame. Frames are read and
cached one by one (a frame is read once per batch however many samples stack it), so the cache
holds as many frames as without history.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from kartstudio.errors import KartStudioError, SessionFileError
from kartstudio.images import resize
from kartstudio.model import INPUT_SIZE, MAX_HISTORY, resize_images, tf
from kartstudio.session import Session, find_sessions, frame_gaps, inflate_frame, open_session
from kartstudio.training.validation import Stretch, split_by_session

TURN_THRESHOLD = 0.25  # |x| at or above this counts as a turning frame for oversampling
BRIGHTNESS = 25.0  # brightness jitter: +-25 of 255
CONTRAST = 0.2  # contrast jitter: x(1 +- 0.2) around each image's mean
_MAX_OPEN_FILES = 64  # file descriptors kept open at once (reopened on demand)
CACHE_MB = 640.0  # RAM for resized frames (39.6 KB each at 66x200): about 16,000 frames, a 0.5 GB set of sessions


@dataclass
class _File:
    """One session file and how to read its frames."""

    path: Path
    shape: tuple[int, int, int]
    fast: bool  # frames are one plain gzip chunk each, readable with pread + zlib


class _Index:
    """Every frame the dataset may serve: which file, which frame, where its bytes are, its label."""

    def __init__(self, paths: Sequence[Path], reaction_s: float = 0.0, stretch: Stretch | None = None) -> None:
        self.files: list[_File] = []
        file_ids, frame_ids, offsets, sizes, raw, actions, starts = [], [], [], [], [], [], []
        for path in paths:
            with open_session(path) as s:
                keep = s.included_indices()
                label_stop = len(s)
                if stretch is not None:  # one side of the end-of-session validation split
                    keep, label_stop = stretch.select(keep, len(s))
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
                # A player presses what they saw reaction_s earlier: label each frame with the
                # pad reading that many frames later in the same session (the last one at the end).
                later = np.minimum(keep + round(reaction_s * s.meta.fps), label_stop - 1)
                labels = np.asarray(s.actions[: len(s)], np.float32)[later]
                check_labels(path, labels, keep)
                file_ids.append(np.full(len(keep), len(self.files), np.int32))
                frame_ids.append(keep.astype(np.int32))
                actions.append(labels)
                # a stretch of consecutive frames begins: after an excluded range, or after a gap in the
                # frame numbers (rows removed from a TensorKart CSV, a cut between recordings)
                gaps = frame_gaps(np.asarray(s.frame_numbers[: len(s)]))[keep]
                starts.append((np.diff(keep, prepend=-2) != 1) | gaps)
                self.files.append(_File(Path(path), s.frame_shape, fast))
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        self.file_ids = cat(file_ids, np.int32)
        self.frame_ids = cat(frame_ids, np.int32)
        self.offsets = cat(offsets, np.int64)
        self.sizes = cat(sizes, np.int32)
        self.raw = cat(raw, bool)
        self.actions = np.concatenate(actions) if actions else np.zeros((0, 5), np.float32)
        self.starts = cat(starts, bool)  # where an unbroken stretch of a session's frames begins

    def __len__(self) -> int:
        return len(self.frame_ids)


def history_positions(starts: np.ndarray, history: int) -> np.ndarray:
    """(N, history) positions of each frame and the ones before it, oldest first, never reaching
    back past the start of its stretch (`starts`: True where one begins): the first frame of a
    stretch stands in for the frames it lacks, as the Pilot repeats a run's first frame."""
    n = len(starts)
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))  # each position's stretch start
    lags = np.arange(history - 1, -1, -1)
    return np.maximum(np.arange(n)[:, None] - lags, first[:, None]).astype(np.int64)


def stack_history(frames: np.ndarray) -> np.ndarray:
    """(B, N, H, W, 3) frames, oldest first -> (B, H, W, 3N): Pilot's np.concatenate(axis=-1) order."""
    b, n, h, w, c = frames.shape
    return np.ascontiguousarray(frames.transpose(0, 2, 3, 1, 4)).reshape(b, h, w, n * c)




def check_history(history) -> int:
    """The frame history as an int; one clear line for anything else (bounded: a huge one only exhausts memory)."""
    if (isinstance(history, bool) or not isinstance(history, (int, float, np.integer, np.floating))
            or not np.isfinite(history) or int(history) != history or not 1 <= history <= MAX_HISTORY):
        raise KartStudioError(f"frame history (--history) must be a whole number of frames from 1 to {MAX_HISTORY}, "
                              f"got {history}")
    return int(history)


STICK_RANGE, BUTTON_RANGE = (-1.0, 1.0), (0.0, 1.0)  # what the networks' outputs (tanh, sigmoid) can reach
_SLACK = 1e-4  # float rounding of labels written by other tools


def check_labels(path, labels: np.ndarray, frames: np.ndarray | None = None) -> None:
    """Refuse labels a driving network cannot learn: not numbers, a stick outside -1..1, a button outside 0..1."""
    bad = ~np.isfinite(labels).all(axis=1)
    bad |= (np.abs(labels[:, :2]) > STICK_RANGE[1] + _SLACK).any(axis=1)
    bad |= ((labels[:, 2:] < BUTTON_RANGE[0] - _SLACK) | (labels[:, 2:] > BUTTON_RANGE[1] + _SLACK)).any(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        frame = int(frames[k]) if frames is not None else k
        values = ", ".join(f"{v:g}" for v in labels[k])
        raise SessionFileError(
            f"{path}: {int(bad.sum())} frame(s) have labels out of range (frame {frame}: {values}); the stick "
            "must be -1..1 and the buttons 0..1: exclude those frames or re-import the session"
        )


def session_frames(paths: Sequence[Path], stretch: Stretch | None = None) -> list[np.ndarray]:
    """The labels of every included frame (of one side of `stretch`), per session file (checked; about 20 bytes a frame).

    What a distributed run needs of all the sessions before each worker opens its own share:
    their sizes (to share them out evenly) and their labels (the loss's button weights).
    """
    out = []
    for path in paths:
        with open_session(path) as s:
            keep = s.included_indices()
            if stretch is not None:
                keep, _ = stretch.select(keep, len(s))
            labels = np.asarray(s.actions[: len(s)], np.float32)[keep] if len(keep) else np.zeros((0, 5), np.float32)
        check_labels(path, labels, keep)
        out.append(labels)
    return out


def share_sessions(paths: Sequence[Path], sizes: Sequence[int], workers: int) -> list[list[Path]]:
    """Split session files among `workers` so each gets about as many frames (largest first, to the
    least loaded); every worker computes the same split from the same list."""
    shares: list[list[Path]] = [[] for _ in range(workers)]
    load = [0] * workers
    for i in sorted(range(len(paths)), key=lambda i: (-sizes[i], str(paths[i]))):
        w = min(range(workers), key=lambda w: (load[w], w))
        shares[w].append(Path(paths[i]))
        load[w] += sizes[i]
    return shares


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


def _frame_pixels(data: bytes, raw: bool, f: _File, frame: int) -> np.ndarray:
    """One frame's chunk as pixels, never inflating more than a frame's bytes (see inflate_frame)."""
    try:
        return inflate_frame(data, f.shape, raw)
    except ValueError as exc:
        raise SessionFileError(f"{f.path} is damaged: frame {frame} {exc}: re-record or delete it") from None


class _Reader:
    """Reads frames by index position from several threads at once.

    Each thread keeps its own small set of open files (at most _MAX_OPEN_FILES), so no thread
    ever closes a descriptor another thread is reading from.
    """

    def __init__(self, index: _Index) -> None:
        self.index = index
        # Per OS thread, not threading.local: TensorFlow calls numpy_function from its own C++
        # threads, and Python drops a foreign thread's locals after every call, which leaked
        # every descriptor opened ("Too many open files" in the 2nd epoch on 43 sessions).
        self._caches: dict[int, OrderedDict[int, int]] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._reading = 0  # reads in progress; close() waits for them
        self._closed = False

    def _fd(self, file_id: int) -> int:
        thread = threading.get_ident()
        fds = self._caches.get(thread)
        if fds is None:
            with self._lock:
                fds = self._caches.setdefault(thread, OrderedDict())
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
        with self._lock:
            if self._closed:
                raise KartStudioError("the training data was closed")
            self._reading += 1
        try:
            return self._read(positions)
        finally:
            with self._lock:
                self._reading -= 1
                self._idle.notify_all()

    def _read(self, positions: np.ndarray) -> list[np.ndarray]:
        ix = self.index
        frames: list[np.ndarray | None] = [None] * len(positions)
        slow: dict[int, list[int]] = {}
        for k, p in enumerate(positions):
            f = ix.files[ix.file_ids[p]]
            if not f.fast:
                slow.setdefault(int(ix.file_ids[p]), []).append(k)
                continue
            data = os.pread(self._fd(int(ix.file_ids[p])), int(ix.sizes[p]), int(ix.offsets[p]))
            frames[k] = _frame_pixels(data, bool(ix.raw[p]), f, int(ix.frame_ids[p]))
        for file_id, ks in slow.items():  # the h5py path, for files SessionWriter did not write
            with open_session(ix.files[file_id].path) as s:
                for k in ks:
                    frames[k] = s.frame(int(ix.frame_ids[positions[k]]))
        return frames  # type: ignore[return-value]

    def close(self) -> None:
        """Close every file, once the reads in progress (a pipeline reading ahead) are done."""
        with self._lock:
            self._closed = True
            self._idle.wait_for(lambda: self._reading == 0, timeout=30)
            for fds in self._caches.values():
                for fd in fds.values():
                    os.close(fd)
                fds.clear()


class _FrameCache:
    """Frames already resized and rounded (uint8, the model's size), kept in RAM up to a budget.

    Filled as frames are first read and never evicted: epochs are shuffled uniformly, so any
    frames held save as much as any others, and evicting would only add copies. The array is
    allocated once but its pages are only touched as slots fill, so RAM grows with the frames
    held, up to the budget, and no further.
    """

    def __init__(self, frames: int, size: tuple[int, int], budget_mb: float) -> None:
        self.shape = (size[0], size[1], 3)
        self.capacity = min(frames, max(0, int(budget_mb * 2**20) // int(np.prod(self.shape))))
        self.slots = np.full(frames, -1, np.int32)  # slot of each position, -1: not held
        self.pixels: np.ndarray | None = None
        self.held = 0
        self._lock = threading.Lock()

    def hits(self, positions: np.ndarray) -> np.ndarray:
        return self.slots[positions] >= 0

    def merge(self, positions: np.ndarray, hit: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """The batch in `positions` order: held frames for `hit`, `fresh` (just resized) for the rest,
        which are kept while there is room. A held frame is never overwritten, so it is read unlocked."""
        out = np.empty((len(positions), *self.shape), np.uint8)
        out[~hit] = fresh
        if hit.any():
            if self.pixels is None:
                raise KartStudioError("the training data was closed")
            out[hit] = self.pixels[self.slots[positions[hit]]]
        if self.held < self.capacity and len(fresh):
            with self._lock:
                if self.pixels is None:
                    self.pixels = np.empty((self.capacity, *self.shape), np.uint8)
                for pos, image in zip(positions[~hit], fresh):
                    if self.held >= self.capacity:
                        break
                    if self.slots[pos] < 0:  # another batch in flight may have kept it already
                        self.pixels[self.held] = image
                        self.slots[pos] = self.held  # set last: a reader never sees a slot before its pixels
                        self.held += 1
        return out

    def clear(self) -> None:
        with self._lock:
            self.pixels, self.held, self.capacity = None, 0, 0
            self.slots[:] = -1


def to_pixels(images):
    """Resized float images (0..255) -> uint8, rounded: what an in-memory 66x200 uint8 array holds."""
    return tf.cast(tf.clip_by_value(images, 0.0, 255.0) + 0.5, tf.uint8)


def epoch_length(actions: np.ndarray, turn_oversample: float) -> int:
    """Samples served per epoch from frames with these labels (turning frames oversampled)."""
    if turn_oversample <= 1.0:
        return len(actions)
    turning = int(np.sum(np.abs(actions[:, 0]) >= TURN_THRESHOLD))
    whole, frac = divmod(turn_oversample - 1.0, 1.0)
    return len(actions) + int(whole) * turning + (int(round(frac * turning)) if frac > 0 and turning else 0)


class _BatchSource:
    """What both datasets share: epoch order, augmentation draws and the tf.data wrapper."""

    size: tuple[int, int] = INPUT_SIZE
    batch_size: int
    augment: bool
    shuffle: bool
    seed: int
    turn_oversample: float
    actions: np.ndarray  # (N, 5) labels of every frame served
    history: int = 1  # frames per sample, stacked on the channel axis (see the module docstring)

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

    def _plan(self, epoch: int, batches: int | None = None) -> Iterator[tuple]:
        """What each batch of `epoch` holds: (positions, flip, gain, shift). Cheap: no frame is read.

        batches: serve only this many (whole) batches; None: the whole epoch, the last batch partial.
        """
        order = self.epoch_order(epoch)
        rng = np.random.default_rng([self.seed, epoch, 1])
        count = self.steps_per_epoch if batches is None else batches
        for b in range(count):
            # sorted within the batch: reads go file by file, front to back (a batch's gradient
            # does not depend on the order of its samples)
            pos = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size]).astype(np.int64)
            n = len(pos)
            if self.augment:
                flip = rng.random(n) < 0.5
                gain = rng.uniform(1 - CONTRAST, 1 + CONTRAST, n).astype(np.float32)
                shift = rng.uniform(-BRIGHTNESS, BRIGHTNESS, n).astype(np.float32)
            else:
                flip, gain, shift = np.zeros(n, bool), np.ones(n, np.float32), np.zeros(n, np.float32)
            yield pos, flip, gain, shift

    def pipeline(self, first_epoch: int = 0, epochs: int | None = None, batches_per_epoch: int | None = None) -> "tf.data.Dataset":
        """Epochs `first_epoch`, the next, ... (forever when `epochs` is None) as ONE tf.data pipeline.

        A training run builds it once and iterates it across epochs, so an epoch has no start-up
        cost: while the last batches of one epoch train, the first of the next are already read.
        Batches are (images (B, 66, 200, 3 x history) float32 0..255, actions (B, 5)); the order depends
        only on (seed, epoch), so a resumed run sees the same batches. Reading and inflating run
        in `parallel_reads` tf.data threads (both release the GIL), resizing and augmenting in
        TensorFlow's threads, and one prepared batch waits ahead of the training step.
        """

        def plans():
            epoch = first_epoch
            while epochs is None or epoch < first_epoch + epochs:
                yield from self._plan(epoch, batches_per_epoch)
                epoch += 1

        spec = (
            tf.TensorSpec((None,), tf.int64),
            tf.TensorSpec((None,), tf.bool),
            tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        )
        ds = tf.data.Dataset.from_generator(plans, output_signature=spec)
        # one map, read then prepare, so a batch's raw frames are freed as soon as it is resized;
        # fixed buffers (not AUTOTUNE): memory stays flat whatever the data
        ds = ds.map(lambda *plan: self._prepare(*self._load(*plan)), num_parallel_calls=self.parallel_reads,
                    deterministic=True)
        return ds.prefetch(1)

    def batches(self, epoch: int = 0) -> "tf.data.Dataset":
        """One epoch (see pipeline): for a single pass, e.g. validation or calibration."""
        return self.pipeline(epoch, epochs=1)

    parallel_reads: int = 2

    failure: KartStudioError | None = None  # the first read error, for the one-line message

    def _read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._frames(positions), self.actions[positions]
        except KartStudioError as exc:  # TensorFlow wraps it in a long error of its own
            self.failure = self.failure or exc
            raise

    def raise_failure(self) -> None:
        """Raise the read error behind a TensorFlow error from this dataset's pipeline, if any."""
        if self.failure is not None:
            raise self.failure

    def _load(self, positions, flip, gain, shift):
        frames, actions = tf.numpy_function(self._read, [positions], (tf.uint8, tf.float32), stateful=False)
        frames.set_shape((None, None, None, 3 * self.history))
        actions.set_shape((None, 5))
        return frames, actions, flip, gain, shift

    def _prepare(self, frames, actions, flip, gain, shift):
        images = resize_images(frames, self.size)
        if self.augment:
            images = tf.where(flip[:, None, None, None], images[:, :, ::-1, :], images)
            steer_sign = tf.where(flip, -1.0, 1.0)[:, None]
            actions = tf.concat([actions[:, :1] * steer_sign, actions[:, 1:]], axis=1)
            if self.history == 1:
                mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
            else:  # each frame's own mean, as if it were alone; the same gain and shift for all of a sample's
                per_frame = tf.reshape(images, (-1, *self.size, self.history, 3))
                mean = tf.reduce_mean(per_frame, axis=[1, 2, 4], keepdims=True)  # (B, 1, 1, N, 1)
                mean = tf.reshape(tf.repeat(mean, 3, axis=4), (-1, 1, 1, 3 * self.history))
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
    cache_mb: RAM kept for resized frames (39.6 KB each at 66x200), read instead of the files
    from the second time a frame is served; 0: every epoch streams (see `cache`).
    history: frames per sample, the frame and those before it stacked oldest first (module docstring).
    stretch: serve one side of the end-of-session validation split only (kartstudio.training.validation).
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
        cache_mb: float = CACHE_MB,
        reaction_s: float = 0.0,
        history: int = 1,
        stretch: Stretch | None = None,
    ) -> None:
        self.history = check_history(history)
        self.paths = find_sessions(paths)
        if not self.paths:
            raise KartStudioError(f"no session files in {', '.join(map(str, paths)) or 'the data given'}")
        if batch_size < 1:
            raise KartStudioError(f"batch size must be at least 1, got {batch_size}")
        if not (np.isfinite(cache_mb) and cache_mb >= 0):
            raise KartStudioError(f"cache size must be 0 MiB or more, got {cache_mb}")
        if not (np.isfinite(reaction_s) and 0 <= reaction_s <= 2):
            raise KartStudioError(f"reaction time must be 0 to 2 seconds, got {reaction_s}")
        self.index = _Index(self.paths, reaction_s, stretch)
        if len(self.index) == 0:
            raise KartStudioError(f"no frames to train on in {len(self.paths)} session file(s) (all empty or excluded)")
        self.actions = self.index.actions
        self.batch_size, self.augment, self.shuffle, self.seed = batch_size, augment, shuffle, seed
        self.turn_oversample = max(1.0, float(turn_oversample))
        self.size = tuple(size)
        self._reader = _Reader(self.index)
        self._cache = _FrameCache(len(self.index), self.size, cache_mb)
        self.parallel_reads = threads or min(4, max(2, os.cpu_count() or 1))
        self.stacks = history_positions(self.index.starts, self.history) if self.history > 1 else None

    @property
    def frames(self) -> int:
        """Distinct frames served (included frames of all files)."""
        return len(self.index)

    @property
    def cache(self) -> dict:
        """How many resized frames RAM holds (`held`) of how many it can (`capacity`) and of all (`frames`)."""
        c = self._cache
        return {"held": c.held, "capacity": c.capacity, "frames": self.frames,
                "mb": round(c.held * int(np.prod(c.shape)) / 2**20, 1)}

    def _frames(self, positions: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.zeros((0, *self.size, 3), np.uint8)
        frames = self._reader.read(positions)
        if len({f.shape for f in frames}) > 1:  # sessions of different storage sizes in one batch
            frames = [resize(f, self.size) for f in frames]
        return np.stack(frames)

    def _read_misses(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(which positions RAM holds, the stored frames of the others, every label)."""
        hit = self._cache.hits(positions)
        frames, actions = self._read(positions[~hit])
        return hit, frames, self.actions[positions]

    def _read_history_misses(self, positions: np.ndarray):
        """_read_misses for stacked samples: every frame the batch's samples stack, each once, and
        where each sample finds its frames among them."""
        needed, where = np.unique(self.stacks[positions], return_inverse=True)
        hit, frames, _ = self._read_misses(needed)
        return needed, hit, frames, where.reshape(len(positions), self.history), self.actions[positions]

    def _load(self, positions, flip, gain, shift):
        if self.history > 1:
            return self._load_history(positions, flip, gain, shift)
        # read what RAM does not hold, resize it in TensorFlow (one op on the batch), then merge
        # with the held frames in batch order and keep the new ones while there is room
        hit, raw, actions = tf.numpy_function(self._read_misses, [positions], (tf.bool, tf.uint8, tf.float32),
                                              stateful=False)
        hit.set_shape((None,))
        raw.set_shape((None, None, None, 3))
        actions.set_shape((None, 5))
        fresh = to_pixels(resize_images(raw, self.size))
        frames = tf.numpy_function(self._cache.merge, [positions, hit, fresh], tf.uint8, stateful=False)
        frames.set_shape((None, *self.size, 3))
        return frames, actions, flip, gain, shift

    def _load_history(self, positions, flip, gain, shift):
        # as _load, on the distinct frames the batch stacks; then each sample's frames side by side
        needed, hit, raw, where, actions = tf.numpy_function(
            self._read_history_misses, [positions], (tf.int64, tf.bool, tf.uint8, tf.int64, tf.float32), stateful=False)
        raw.set_shape((None, None, None, 3))
        actions.set_shape((None, 5))
        fresh = to_pixels(resize_images(raw, self.size))
        frames = tf.numpy_function(self._cache.merge, [needed, hit, fresh], tf.uint8, stateful=False)
        # (B, N, H, W, 3) -> (B, H, W, 3N) in TensorFlow (8 ms a batch of 50 x 3 frames here, numpy 12 ms)
        stacked = tf.transpose(tf.gather(frames, where), [0, 2, 3, 1, 4])
        frames = tf.reshape(stacked, (-1, *self.size, 3 * self.history))
        return frames, actions, flip, gain, shift

    def close(self) -> None:
        self._reader.close()
        self._cache.clear()


class ArrayDataset(_BatchSource):
    """The same batches from in-memory arrays (TensorKart's X.npy way; the benchmark's baseline).

    images: (N, H, W, 3) uint8, actions: (N, 5) float32. Everything sits in RAM.
    history: frames per sample as in SessionDataset; sessions: how many frames of the arrays each
    session has, in order (default: all one session), so no sample stacks another session's frames.
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
        history: int = 1,
        sessions: Sequence[int] | None = None,
    ) -> None:
        if len(images) != len(actions) or len(images) == 0:
            raise KartStudioError(f"need as many images as labels (and some): {len(images)} images, {len(actions)} labels")
        self.history = check_history(history)
        lengths = [len(images)] if sessions is None else [int(n) for n in sessions]
        if sum(lengths) != len(images) or min(lengths, default=0) < 1:
            raise KartStudioError(f"session lengths {lengths} do not add up to the {len(images)} images")
        starts = np.zeros(len(images), bool)
        starts[np.cumsum([0, *lengths[:-1]])] = True
        self.stacks = history_positions(starts, self.history) if self.history > 1 else None
        self.images = images
        self.actions = np.asarray(actions, np.float32)
        self.batch_size, self.augment, self.shuffle, self.seed = batch_size, augment, shuffle, seed
        self.turn_oversample = max(1.0, float(turn_oversample))
        self.size = tuple(size)

    @property
    def frames(self) -> int:
        return len(self.images)

    def _frames(self, positions: np.ndarray) -> np.ndarray:
        if self.history > 1:
            return stack_history(self.images[self.stacks[positions]])
        return self.images[positions]


__all__ = ["ArrayDataset", "SessionDataset", "check_history", "check_labels", "epoch_length", "history_positions",
           "session_frames", "share_sessions", "split_by_session", "stack_history", "TURN_THRESHOLD"]
