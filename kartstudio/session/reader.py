"""Reading a session: Session (open_session) checks everything it will read on open (h5guard first:
nothing in the file may lead outside it), recovers the frames of a file its recorder never closed or
that was cut short, and decodes frames whatever the codec; set_excluded trims in place."""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from kartstudio.controller import STATE_COLUMNS, ControllerState
from kartstudio.errors import SessionFileError
from kartstudio.formatting import MAX_DURATION_S
from kartstudio.h5guard import check_heaps_near_start, check_self_contained, heap_collection_ok
from kartstudio.session.codecs import decode_jpeg, inflate_frame
from kartstudio.session.meta import (FORMAT_NAME, FORMAT_VERSION, SessionMeta, _attr_flag, _attr_number,
                                     _attr_text, _shown)

# -- checking the datasets ---------------------------------------------------------------------
# Every dataset the app reads is checked for type, shape and size on open (the attributes are
# checked by SessionMeta.from_attrs), so a damaged or hand-made file is refused in one line.

MAX_ROWS = 50_000_000  # frames (~19 days at 30 fps) or pad samples: more is a damaged file


def _dataset(group, name: str, ndim: int, kinds: str, required: bool = True) -> "h5py.Dataset | None":
    """Dataset `name` of `group` if it has `ndim` dimensions of numbers whose dtype kind is in
    `kinds`; None if it is absent and optional; SessionFileError otherwise."""
    try:
        obj = group.get(name)
    except Exception:  # noqa: BLE001 - a broken link or a damaged object header
        raise SessionFileError(f"{name} cannot be read") from None
    if obj is None:
        if required:
            raise SessionFileError(f"missing {name}")
        return None
    if not isinstance(obj, h5py.Dataset):
        raise SessionFileError(f"{name} is a {type(obj).__name__.lower()}, not a dataset")
    if obj.ndim != ndim or obj.dtype.kind not in kinds:
        raise SessionFileError(f"{name} is {obj.shape} {obj.dtype}; expected {ndim}-dimensional numbers")
    _check_plausible_size(obj, name)
    return obj


def _check_plausible_size(ds: "h5py.Dataset", name: str) -> None:
    """Refuse a dataset claiming far more rows than the file holds data for (a sparse or
    hand-edited file): deflate packs at most ~1032:1, so the bytes stored bound the rows."""
    rows = ds.shape[0] if ds.shape else 1
    if rows > MAX_ROWS:
        raise SessionFileError(f"{name} claims {rows} rows (at most {MAX_ROWS})")
    row_bytes = int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize
    try:
        stored = ds.id.get_storage_size()
    except Exception:  # noqa: BLE001 - part of its chunk index is unreadable (past the end of a cut file)
        try:
            stored = ds.file.id.get_filesize()  # then the file's size bounds what it can hold
        except Exception:  # noqa: BLE001
            stored = 0
    # slack: a recorder killed between flushes may leave its last rows' chunks unwritten
    if rows * row_bytes > 1100 * stored + 64 * max(row_bytes, 4096):
        raise SessionFileError(f"{name} claims {rows} rows but the file holds data for far fewer")


FRAME_ROWS = ("actions", "states", "timestamps", "frame_numbers")  # one row per frame besides frames


class _CutShortFile(io.RawIOBase):
    """A session file read through h5py's file-object driver, as long as its HDF5 header says
    (the end-of-file address in the superblock); the missing bytes read as zeros."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._size = os.fstat(self._f.fileno()).st_size
        self._end = max(self._size, _claimed_size(self._f.read(96)))
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        self._f.seek(self._pos)
        got = self._f.readinto(view) or 0
        view[got:] = bytes(len(view) - got)
        self._pos += len(view)
        return len(view)

    def close(self) -> None:
        self._f.close()
        super().close()


def _claimed_size(head: bytes) -> int:
    """The end-of-file address in an HDF5 superblock at offset 0 (versions 0-3), or 0."""
    if len(head) < 16 or head[:8] != b"\x89HDF\r\n\x1a\n":
        return 0
    version = head[8]
    if version in (0, 1):
        width, at = head[13], 24 + (4 if version == 1 else 0)
    else:
        width, at = head[9], 12
    at += 2 * width  # past the base address and the free-space (or extension) address
    if width not in (2, 4, 8) or len(head) < at + width:
        return 0
    return int.from_bytes(head[at:at + width], "little")


def _rows_in_file(ds: h5py.Dataset, n: int, size: int) -> int:
    """How many of the first n rows of `ds` (a prefix) have every chunk they lie in stored inside
    the first `size` bytes. Every chunk is looked at, not only the last ones: a closed file's label
    chunks can lie anywhere (at its end for files written before early allocation), so a file cut
    anywhere keeps exactly the rows whose bytes are still in it."""
    if n == 0 or ds.chunks is None:
        return n  # the writer chunks every per-frame dataset; a contiguous one was checked on open
    rows = ds.chunks[0]
    chunks = -(-n // rows)
    inside = np.zeros(chunks, dtype=bool)

    def visit(info) -> None:
        k = info.chunk_offset[0] // rows
        if k < chunks and info.byte_offset is not None and info.byte_offset + info.size <= size:
            inside[k] = True

    try:
        ds.id.chunk_iter(visit)  # one pass over the chunk index
    except Exception:  # noqa: BLE001 - an index node past the cut, or an HDF5 without chunk_iter
        inside[:] = False
        for k in range(chunks):  # chunk by chunk, up to the first one that cannot be found
            try:
                info = ds.id.get_chunk_info_by_coord((k * rows,) + (0,) * (ds.ndim - 1))
            except Exception:  # noqa: BLE001
                break
            if info.byte_offset is None or info.byte_offset + info.size > size:
                break
            inside[k] = True
    missing = np.flatnonzero(~inside)  # a chunk never written or past the end: its rows read as zeros
    return n if not missing.size else min(n, int(missing[0]) * rows)


def _whole_jpeg(frames: h5py.Dataset, i: int) -> bool:
    try:
        data = frames[i]
    except Exception:  # noqa: BLE001 - its bytes lie past the end of a cut-short file
        return False
    return len(data) > 4 and bytes(data[:2]) == b"\xff\xd8" and bytes(data[-2:]) == b"\xff\xd9"


def _jpeg_in_file(frames: h5py.Dataset, i: int, raw, size: int) -> bool:
    """Whether JPEG frame i's descriptor and the global heap collection holding its bytes lie inside
    the first `size` bytes of the file (`raw`: the real file). Checked before HDF5 reads the frame:
    a collection past the end reads as zeros, on which HDF5 loops forever."""
    rows = frames.chunks[0] if frames.chunks else 0
    if not rows or frames.compression is not None:
        return False
    try:
        info = frames.id.get_chunk_info_by_coord(((i // rows) * rows,))
        if info.byte_offset is None or info.byte_offset + info.size > size:
            return False
        raw.seek(info.byte_offset + (i % rows) * 16)  # sequence length (4), collection address (8), index (4)
        descriptor = raw.read(16)
        length, address = int.from_bytes(descriptor[:4], "little"), int.from_bytes(descriptor[4:12], "little")
        if len(descriptor) < 16 or length == 0 or address + 16 > size:
            return False
        return heap_collection_ok(raw, address, size)  # walked as HDF5 walks it: no endless loop
    except Exception:  # noqa: BLE001 - its index lies past the end
        return False


def _readable_size(raw) -> int:
    """Bytes HDF5 may read of the open file `raw`: its size, or less when its header claims less
    (HDF5 reads nothing past the end its header states)."""
    size = os.fstat(raw.fileno()).st_size
    raw.seek(0)
    claimed = _claimed_size(raw.read(96))
    return min(size, claimed) if claimed else size


def _whole_jpegs(frames: h5py.Dataset, n: int, path: Path) -> int:
    """How many of the first n JPEG frames of a cut-short file are whole. Their bytes are written in
    order, so the whole ones are a prefix: found by bisection, then checked frame by frame back
    from there (a few frames, in case the order was not quite kept)."""
    with open(path, "rb") as raw:
        size = _readable_size(raw)

        def whole(i: int) -> bool:
            return _jpeg_in_file(frames, i, raw, size) and _whole_jpeg(frames, i)

        low, high = 0, n  # the answer lies in [low, high]
        while low < high:
            mid = (low + high + 1) // 2
            if whole(mid - 1):
                low = mid
            else:
                high = mid - 1
        while low > 0 and not all(whole(i) for i in range(max(0, low - 8), low)):
            low -= 1
    return low


OPEN_TRIES = 3  # a session that fails to open while its file is changing is tried this many times


def _file_stamp(path: Path) -> tuple:
    """What changes when another program writes the file (size, times, inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _raw_failure(message: str, raw: bool = True) -> SessionFileError:
    """A SessionFileError for a failure HDF5 raised itself (not a check of ours): such a failure may
    come from another program writing the file at that moment, so the open is tried again."""
    exc = SessionFileError(message)
    exc.raw = raw  # type: ignore[attr-defined]
    return exc


REQUIRED = ("frames", "actions", "timestamps", "frame_numbers")


class Session:
    """A session file opened for reading. Datasets are h5py datasets: read lazily, slice as needed."""

    def __init__(self, path: str | os.PathLike, mode: str = "r") -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SessionFileError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise SessionFileError(f"{self.path} is a folder, not a session file")
        if not self.path.is_file():  # a FIFO or a device would block or never end
            raise SessionFileError(f"{self.path} is not a regular file, so not a session file")
        # Another program may be changing the file as it is opened (trimming it: set_excluded writes in
        # place, and a reader takes no lock), so that HDF5 reads half-written metadata ("addr overflow").
        # Such a failure is tried again after a moment; if the file keeps changing, the line says so.
        for attempt in range(OPEN_TRIES):
            before = _file_stamp(self.path)
            try:
                self._open_and_check(mode)
                if self._raw is None or attempt + 1 == OPEN_TRIES or _file_stamp(self.path) == before:
                    return
                self.close()  # read as cut short while it changed: a save in progress, look again
                time.sleep(0.05 * (attempt + 1))
            except SessionFileError as exc:
                changed = _file_stamp(self.path) != before
                if attempt + 1 < OPEN_TRIES and (changed or getattr(exc, "raw", False)):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if changed:
                    raise SessionFileError(f"{self.path} is being changed by another program; try again") from None
                raise

    def _open_and_check(self, mode: str) -> None:
        self._raw: _CutShortFile | None = None  # set when the file is shorter than HDF5's header says
        self._lost: str | None = None  # why a cut-short file's later frames are not recovered
        try:
            self._file = self._open_file(mode)
        except SessionFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - OSError mostly; HDF5 raises others on odd files
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "truncated file" in text and mode == "r":
                self._file = self._open_cut_short()
            elif "truncated file" in text:
                raise SessionFileError(f"{self.path} was cut short by a failed save: its frames can be read "
                                       "but not changed") from None
            else:
                reason = "truncated or corrupt" if "signature" in text or "truncated" in text else _shown(text)
                raise _raw_failure(f"{self.path} is not a readable KartStudio session ({reason})",
                                   raw="signature" not in text) from None
        try:
            self._check()
            # read once, with the checks: a snapshot as the file was opened, never re-read later from
            # metadata that another program's trim (set_excluded writes in place) may have moved
            self._excluded = self._read_excluded()
        except SessionFileError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - damage the checks above did not foresee
            self.close()
            raise _raw_failure(f"{self.path} is damaged ({type(exc).__name__}: {_shown(str(exc))}); "
                               "re-record or delete it") from None

    def _open_file(self, mode: str) -> h5py.File:
        if mode != "r":
            # judged read-only first: a file pointing outside itself is refused before HDF5 writes a byte
            with h5py.File(self.path, "r") as probe:
                check_self_contained(probe, str(self.path), SessionFileError)
            return h5py.File(self.path, mode)
        # A reader takes no HDF5 file lock: a session being recorded by another program (its writer
        # holds the lock) still opens, up to its last flush, as a killed recorder's file does.
        try:
            return h5py.File(self.path, "r", locking=False)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is the case below
            if "locking flag values don't match" not in str(exc):
                raise
        # The file is already open in this process (our own recorder, or plain h5py) with the default
        # locking, and HDF5 shares one open file per process only if the flags agree: use theirs.
        return h5py.File(self.path, "r")

    def _open_cut_short(self) -> h5py.File:
        """A save that failed (disk full) after HDF5 wrote its header but not the data after it
        leaves a file shorter than the header claims, and HDF5 refuses it whole. Read it through
        a file object that reads zeros past the end, so HDF5 sees the size it expects;
        _flushed_rows then keeps only the frames whose bytes are really in the file."""
        try:
            self._raw = _CutShortFile(self.path)
            return h5py.File(self._raw, "r")
        except Exception as exc:  # noqa: BLE001 - the header itself is damaged
            if self._raw is not None:
                self._raw.close()
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SessionFileError(f"{self.path} is not a readable KartStudio session (truncated or corrupt: "
                                   f"{_shown(text)})") from None

    @property
    def cut_short(self) -> bool:
        """True when the file is shorter than HDF5's header says (a failed save, a copy that stopped):
        read-only then, holding the frames recovered from it (len(self))."""
        return self._raw is not None

    @property
    def frames_claimed(self) -> int:
        """The frames the file's header says it holds; more than len(self) when some were not saved."""
        return self._claimed

    @property
    def cut_short_note(self) -> str | None:
        """One line naming the truncation of a cut-short file and what was recovered; None otherwise."""
        if self._raw is None:
            return None
        n, claimed = self._n, self._claimed
        what = f"all {n} frames recovered" if n >= claimed else f"{n} of {claimed} frames recovered"
        why = f" ({self._lost})" if n < claimed and self._lost else ""
        fix = "; restore it from a copy to get the rest back" if n < claimed else ""
        return f"{self.path} was cut short (the file ends before its HDF5 header says): {what}{why}{fix}"

    def _check(self) -> None:
        f = self._file
        # Before any attribute or dataset is read: nothing in the file may lead outside it, and no
        # block of its text attributes may send HDF5 into an endless loop.
        check_self_contained(f, str(self.path), SessionFileError)
        with open(self.path, "rb") as raw:
            check_heaps_near_start(raw, _readable_size(raw), str(self.path), SessionFileError)
        try:
            fmt = _attr_text(f.attrs, "format", "")
        except SessionFileError:
            fmt = ""
        if fmt != FORMAT_NAME:
            raise SessionFileError(f"{self.path} is an HDF5 file but not a KartStudio session (no format attribute)")
        try:
            version = int(_attr_number(f.attrs, "format_version", 0, low=0, high=2**31, whole=True))
        except SessionFileError as exc:
            raise SessionFileError(f"{self.path} is damaged: {exc}; re-record or delete it") from None
        if version > FORMAT_VERSION:
            raise SessionFileError(
                f"{self.path} uses session format v{version}; this KartStudio reads up to v{FORMAT_VERSION}: update it"
            )
        try:
            self.meta = SessionMeta.from_attrs(f.attrs)
            _attr_flag(f.attrs, "complete")
            self._n = self._claimed = self._check_datasets()
            if not self.complete or self._raw is not None:  # a cut-short file may have lost any row
                self._n = self._flushed_rows(self._n)
        except SessionFileError as exc:
            raise SessionFileError(f"{self.path} is damaged: {exc}; re-record or delete it") from None

    def _check_datasets(self) -> int:
        """Shapes and dtypes of every dataset the app reads; returns the number of frames."""
        f = self._file
        h, w = self.meta.storage_size
        if self.meta.codec == "jpeg":
            frames = _dataset(f, "frames", 1, "O")
            if h5py.check_vlen_dtype(frames.dtype) != np.uint8:
                raise SessionFileError(f"frames are {frames.shape} {frames.dtype}; expected (N,) JPEG bytes (codec jpeg)")
        else:
            frames = _dataset(f, "frames", 4, "u")
            if frames.shape[1:] != (h, w, 3) or frames.dtype != np.uint8:
                raise SessionFileError(f"frames are {frames.shape} {frames.dtype}; expected (N, {h}, {w}, 3) uint8 RGB")
        n = frames.shape[0]
        columns = {"actions": 5, "states": len(STATE_COLUMNS)}
        for name, ndim, kinds, required in (
            ("actions", 2, "fiu", True),
            ("timestamps", 1, "fiu", True),
            ("frame_numbers", 1, "iu", True),
            ("states", 2, "iu", False),
        ):
            ds = _dataset(f, name, ndim, kinds, required)
            if ds is None:
                continue
            if ds.shape[0] < n:
                raise SessionFileError(f"{name} is shorter than frames ({ds.shape[0]} rows, {n} frames)")
            if name in columns and ds.shape[1] != columns[name]:
                raise SessionFileError(f"{name} has {ds.shape[1]} columns; expected {columns[name]}")
        excluded = _dataset(f, "excluded", 2, "iuf", required=False)
        if excluded is not None:
            if excluded.shape[1] != 2 or excluded.shape[0] > 1_000_000:
                raise SessionFileError(f"excluded is {excluded.shape}; expected (K, 2) frame ranges")
            if excluded.dtype.kind == "f" and not np.all(np.isfinite(excluded[:])):
                raise SessionFileError("excluded holds frame ranges that are not numbers")
        if "pad_samples" in f:
            pads = f.get("pad_samples")
            if not isinstance(pads, h5py.Group):
                raise SessionFileError("pad_samples is not a group")
            stamps = _dataset(pads, "timestamps", 1, "fiu")
            states = _dataset(pads, "states", 2, "iu")
            if states.shape != (stamps.shape[0], len(STATE_COLUMNS)):
                raise SessionFileError(
                    f"pad_samples/states is {states.shape}; expected ({stamps.shape[0]}, {len(STATE_COLUMNS)})"
                )
        return n

    def _flushed_rows(self, n: int) -> int:
        """Frames of a file its recorder never closed, or of a cut-short one, that really reached the disk.

        When another program fills the disk during a save, HDF5 may have written the new row
        count but not all the rows; a file cut short (a failed save, a copy that stopped) lacks
        whatever lay past its end. Keep the frames whose labels and pixels are all stored inside the
        file (the rest read back as zeros) and whose timestamps run forward; self._lost says why
        the others were not kept."""
        size = self.path.stat().st_size
        claimed = n
        if self._raw is not None:  # a cut-short file: every label's bytes must be in it too
            kept = {name: _rows_in_file(self._file[name], n, size) for name in FRAME_ROWS if name in self._file}
            n = min(n, *kept.values())
            if n < claimed:
                short = [name for name, rows in kept.items() if rows == n]
                self._lost = (f"the labels ({', '.join(short)}) of frame {n + 1} on lie past its end, "
                              "where HDF5 cannot find them")
        tail = max(0, n - 2 * 4096)  # a save touches at most the last timestamp chunk or two
        t = np.asarray(self._file["timestamps"][tail:n], dtype=np.float64)
        bad = ~np.isfinite(t)
        # strictly forward: rows allocated but never written read as zeros (the labels are allocated
        # early), and a frame's stamp is always later than the one before
        bad[1:] |= t[1:] <= t[:-1]
        if tail > 0 and len(t):
            bad[0] |= not t[0] > self._file["timestamps"][tail - 1]
        elif len(t) and t[0] == 0 and (len(t) == 1 or bad[1]):
            bad[0] = True  # a first row never written
        if bad.any():
            n = tail + int(np.argmax(bad))
            self._lost = self._lost or f"frame {n + 1} on were never saved (their timestamps are not in order)"
        frames = self._file["frames"]
        before = n
        if self.meta.codec == "jpeg":
            # a frame whose bytes were never saved, or lie past the end, reads as zeros or fails
            n = _whole_jpegs(frames, n, self.path)
        else:
            n = _rows_in_file(frames, n, size)  # one frame per chunk: each frame's pixels are in the file
        if n < before:
            self._lost = f"the pixels of frame {n + 1} on lie past its end"
            if self.meta.codec != "jpeg":
                try:
                    frames.id.get_chunk_info_by_coord((n, 0, 0, 0))
                except Exception:  # noqa: BLE001 - the index node that points to them is past the end
                    self._lost = (f"HDF5's index of the pixels of frame {n + 1} on lies past its end, "
                                  "so it cannot find them")
        return n

    def __len__(self) -> int:
        return self._n

    @property
    def frames(self) -> h5py.Dataset:
        """The stored frames: (N, H, W, 3) pixels (lossless) or (N,) JPEG bytes (jpeg); see frame()."""
        return self._file["frames"]

    @property
    def codec(self) -> str:
        return self.meta.codec

    @property
    def layout(self) -> str:
        return self.meta.layout

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        h, w = self.meta.storage_size
        return (h, w, 3)

    def frame(self, i: int) -> np.ndarray:
        """Frame i decoded: (H, W, 3) uint8 RGB, whatever the codec. A frame that cannot be read or
        decoded (a damaged chunk, bytes past the end) raises SessionFileError naming file and frame."""
        i = int(i)
        if not -self._n <= i < self._n:
            raise IndexError(f"frame {i} of a session of {self._n} frames")
        i %= self._n
        try:
            if self.meta.codec == "jpeg":
                self._check_jpeg_heap(i)
            data = self._lossless_chunk(i) if self.meta.codec != "jpeg" else None
            if data is None:
                data = self.frames[i]
        except ValueError as exc:
            raise SessionFileError(f"{self.path} is damaged: frame {i} {exc}; re-record the session or exclude "
                                   "that frame") from None
        except Exception as exc:  # noqa: BLE001 - OSError from the gzip filter, a bad heap, ...
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SessionFileError(f"{self.path} is damaged: frame {i} cannot be read ({_shown(text)}); "
                                   "re-record the session or exclude that frame") from None
        if self.meta.codec != "jpeg":
            return data
        try:
            return decode_jpeg(data, self.frame_shape)
        except ValueError as exc:
            raise SessionFileError(f"{self.path} is damaged: frame {i} is {exc}") from None

    def _check_jpeg_heap(self, i: int) -> None:
        """JPEG frame i's bytes are read by HDF5 from a global heap collection, which HDF5 parses
        whole and may loop on forever when damaged: walk it first (h5guard.heap_collection_ok)."""
        with open(self.path, "rb") as raw:
            if not _jpeg_in_file(self.frames, i, raw, _readable_size(raw)):
                raise ValueError("has its JPEG bytes in a damaged block of the file")

    def _lossless_chunk(self, i: int) -> np.ndarray | None:
        """Frame i inflated by us from its one-frame gzip chunk (what every KartStudio writer makes),
        at most one frame's bytes: HDF5's own gzip filter inflates a zip bomb whole before it sees
        the size is wrong. None: another layout, read through h5py."""
        ds = self.frames
        if ds.chunks != (1, *self.frame_shape) or ds.compression not in ("gzip", None) or ds.shuffle \
                or ds.fletcher32 or ds.scaleoffset is not None:
            return None
        try:
            mask, data = ds.id.read_direct_chunk((i, 0, 0, 0))
        except Exception:  # noqa: BLE001 - a chunk never written reads as zeros through h5py
            return None
        raw = ds.compression is None or bool(mask & 1)  # bit 0: HDF5 skipped gzip for this chunk
        return inflate_frame(data, self.frame_shape, raw)

    @property
    def actions(self) -> h5py.Dataset:
        return self._file["actions"]

    @property
    def states(self) -> h5py.Dataset:
        return self._file["states"]

    @property
    def timestamps(self) -> h5py.Dataset:
        return self._file["timestamps"]

    @property
    def frame_numbers(self) -> h5py.Dataset:
        return self._file["frame_numbers"]

    @property
    def pad_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps, states) of every raw pad sample."""
        g = self._file.get("pad_samples")
        if g is None:
            return np.zeros(0), np.zeros((0, len(STATE_COLUMNS)), np.int16)
        return g["timestamps"][:], g["states"][:]

    @property
    def complete(self) -> bool:
        """False when the recorder never closed the file (killed, crashed, disk full)."""
        return bool(self._file.attrs.get("complete", False))

    def _read_excluded(self) -> list[tuple[int, int]]:
        if "excluded" not in self._file:
            return []
        return [(int(a), int(b)) for a, b in self._file["excluded"][:]]

    @property
    def excluded(self) -> list[tuple[int, int]]:
        """The excluded (trimmed) frame ranges [start, stop), as they were when the file was opened."""
        return list(self._excluded)

    def included_indices(self) -> np.ndarray:
        """Frame indices not inside an excluded range, in order."""
        keep = np.ones(self._n, dtype=bool)
        for start, stop in self.excluded:
            keep[max(0, start) : max(0, min(stop, self._n))] = False
        return np.flatnonzero(keep)

    def state(self, i: int) -> ControllerState:
        return ControllerState.from_row(self.states[i])

    @property
    def duration(self) -> float | None:
        """Seconds from the first frame to the last; None (unknown) when the timestamps do not give
        a plausible one (NaN, infinite, backward, or longer than any recording: a damaged file)."""
        if self._n < 2:
            return 0.0
        try:
            t = self.timestamps
            # each end as a Python float first: int64/uint64 stamps at the extremes would overflow
            # or wrap if subtracted as integers
            d = float(t[self._n - 1]) - float(t[0])
        except Exception:  # noqa: BLE001 - a stamp that cannot be read: the duration is unknown
            return None
        return d if math.isfinite(d) and 0 <= d <= MAX_DURATION_S else None

    @property
    def fps(self) -> float | None:
        """Achieved frame rate (frames over recorded time), None when the duration is unknown;
        the nominal rate is meta.fps."""
        d = self.duration
        if d is None:
            return None
        return (self._n - 1) / d if d > 0 else 0.0

    @property
    def bytes_on_disk(self) -> int:
        return self.path.stat().st_size

    def info(self) -> dict:
        h, w = self.meta.storage_size
        n = self._n
        return {
            "path": str(self.path),
            "format_version": int(self._file.attrs.get("format_version", 0)),
            "seat": self.meta.seat,
            "game": self.meta.game,
            "track": self.meta.track,
            "kind": self.meta.kind,
            "frames": n,
            "excluded_frames": int(n - len(self.included_indices())),
            "duration_s": None if self.duration is None else round(self.duration, 3),  # None: unknown
            "fps": None if self.fps is None else round(self.fps, 2),
            "storage_size": [h, w],
            "layout": self.meta.layout,
            "capture_region": list(self.meta.capture_region),
            "codec": self.meta.codec,
            "bytes_on_disk": self.bytes_on_disk,
            "bytes_per_frame": round(self.bytes_on_disk / n, 1) if n else None,
            "complete": self.complete,
            "created": self.meta.created,
            # a file shorter than its header says: the frames recovered from it, of those it claims
            "cut_short": self.cut_short,
            "frames_recovered": n,
            "frames_claimed": self._claimed,
            "cut_short_note": self.cut_short_note,
        }

    def close(self) -> None:
        self._file.close()
        if self._raw is not None:
            self._raw.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_session(path: str | os.PathLike) -> Session:
    """Open a session for reading; raises SessionFileError with a clear message if it is not one."""
    return Session(path)


def set_excluded(path: str | os.PathLike, ranges: Iterable[tuple[int, int]]) -> None:
    """Replace the excluded (trimmed) frame ranges [start, stop) of a session."""
    rows = sorted((int(a), int(b)) for a, b in ranges if int(b) > int(a))
    with Session(path, mode="r+") as s:
        ds = s._file["excluded"] if "excluded" in s._file else None
        if ds is None:
            ds = s._file.create_dataset("excluded", (0, 2), maxshape=(None, 2), chunks=(256, 2), dtype="i8")
        ds.resize(len(rows), axis=0)
        if rows:
            ds[:] = np.asarray(rows, dtype=np.int64)


GAP_FACTOR = 1.5  # a step in frame numbers over 1.5x the session's usual step is a gap (frames not recorded)


def frame_gaps(numbers) -> np.ndarray:
    """True for each frame that follows a gap: its frame number is more than GAP_FACTOR times the
    session's usual step (the median of its forward steps) past the previous frame's, or behind it
    (numbering restarts: another recording). Rows removed from a TensorKart CSV, a cut between two
    recordings, frames a recorder did not keep. Training never stacks frame history across a gap."""
    numbers = np.asarray(numbers, dtype=np.int64)
    gaps = np.zeros(len(numbers), dtype=bool)
    if len(numbers) < 2:
        return gaps
    steps = np.diff(numbers)
    forward = steps[steps > 0]
    usual = float(np.median(forward)) if len(forward) else 1.0
    gaps[1:] = (steps > GAP_FACTOR * usual) | (steps < 0)
    return gaps
