"""Session format v2: one HDF5 file per seat per recording session (see docs/session-format.md).

Plain h5py reads it. Frames are stored one per chunk with lossless gzip (the ``lossless`` codec,
the default) or as one JPEG per frame (the ``jpeg`` codec, about 3x smaller), so a reader
touching frame i decodes only frame i, and the dataset streams from disk for training.
``Session.frame(i)`` returns the decoded image for either codec. v1 files (lossless, no
``layout`` or ``codec`` attribute) are still read.

The writer uses HDF5's default (oldest) file format on purpose: it carries no "open for write"
flag, so a file whose recorder was killed still opens with plain ``h5py.File(path)`` and holds
every frame up to the last flush (the recorder flushes at least once a second).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from kartstudio import __version__
from kartstudio.controller import STATE_COLUMNS, ControllerState
from kartstudio.errors import SessionFileError
from kartstudio.formatting import MAX_DURATION_S
from kartstudio.h5guard import check_heaps_near_start, check_self_contained, heap_collection_ok

FORMAT_NAME = "kartstudio-session"
FORMAT_VERSION = 2  # v2: the `codec`, `jpeg_quality` and `layout` attributes
DEFAULT_STORAGE_SIZE = (120, 320)  # (height, width): one seat's half screen at N64 native resolution
SUFFIX = ".h5"
KINDS = ("play", "correction")
# gzip is the lossless filter every h5py has. Level 6 costs ~1.2 ms per 320x120 frame here and
# saves 5-10% over level 1; szip (also built in) does worse on interleaved RGB.
_COMPRESSION = {"compression": "gzip", "compression_opts": 6}
_GZIP_LEVEL = 6
CODECS = ("lossless", "jpeg")  # how frames are stored: gzip of the raw pixels, or one JPEG per frame
DEFAULT_JPEG_QUALITY = 90  # ~10.5 KB per 320x120 seat frame of real MK64 pictures, PSNR ~33 dB
# "seat": one seat's region of a split screen; "whole": the whole screen (TensorKart single player)
LAYOUTS = ("seat", "whole")


@dataclass
class SessionMeta:
    """What a session file says about itself (HDF5 attributes of the root group)."""

    seat: int = 1
    game: str = "mk64"  # "mk64" (Mario Kart 64 in mupen64plus), "practice" (CarRacing), "tensorkart"
    track: str = "unknown"
    character: str = ""
    pad_name: str = ""
    pad_guid: str = ""
    capture_region: tuple[int, int, int, int] = (0, 0, 640, 240)  # left, top, width, height on screen
    storage_size: tuple[int, int] = DEFAULT_STORAGE_SIZE  # (height, width) of stored frames
    kind: str = "play"  # "play", or "correction" (a human/expert taking over from the AI, for DAgger)
    source: str = "recorder"
    fps: float = 30.0  # nominal frame rate of the game
    app_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    extra: dict = field(default_factory=dict)  # anything else worth keeping (seed, model, ...)
    layout: str = "seat"  # "seat" or "whole": what part of the screen capture_region is (LAYOUTS)
    codec: str = "lossless"  # how frames are stored (CODECS)
    jpeg_quality: int = DEFAULT_JPEG_QUALITY  # used by the jpeg codec

    def to_attrs(self) -> dict:
        attrs = asdict(self)
        attrs["capture_region"] = np.asarray(self.capture_region, dtype=np.int32)
        attrs["storage_size"] = np.asarray(self.storage_size, dtype=np.int32)
        attrs["extra"] = json.dumps(self.extra)
        attrs["format"] = FORMAT_NAME
        attrs["format_version"] = FORMAT_VERSION
        return attrs

    @classmethod
    def from_attrs(cls, attrs) -> "SessionMeta":
        """The meta in a file's attributes. Raises SessionFileError naming the first attribute
        without a sane value (Session adds the file name); absent attributes take defaults."""
        return cls(
            seat=int(_attr_number(attrs, "seat", 1, low=1, high=4, whole=True)),
            game=_attr_text(attrs, "game"),
            track=_attr_text(attrs, "track"),
            character=_attr_text(attrs, "character"),
            pad_name=_attr_text(attrs, "pad_name"),
            pad_guid=_attr_text(attrs, "pad_guid"),
            capture_region=_attr_whole_numbers(attrs, "capture_region", (0, 0, 0, 0), low=-65536, high=65536),
            storage_size=_attr_whole_numbers(attrs, "storage_size", DEFAULT_STORAGE_SIZE, low=1, high=4096),
            kind=_attr_choice(attrs, "kind", KINDS, "play"),
            source=_attr_text(attrs, "source"),
            fps=_attr_number(attrs, "fps", 30.0, low=0.001, high=1000),
            app_version=_attr_text(attrs, "app_version"),
            created=_attr_text(attrs, "created"),
            extra=_attr_json_object(attrs, "extra"),
            # v1 files have no layout: recorder files are seats, v1 npy imports were whole screens
            layout=_attr_choice(attrs, "layout", LAYOUTS,
                                "whole" if _attr_text(attrs, "source") == "tensorkart-npy" else "seat"),
            codec=_attr_choice(attrs, "codec", CODECS, "lossless"),
            jpeg_quality=int(_attr_number(attrs, "jpeg_quality", DEFAULT_JPEG_QUALITY, low=1, high=100, whole=True)),
        )


# -- checking what a file says about itself -------------------------------------------------
# Every attribute and dataset the app reads is checked for type, shape and range on open, so a
# damaged or hand-made file is refused with one line naming the field, never a crash later.

MAX_TEXT_ATTRIBUTE = 64 * 1024  # characters; real ones are a few dozen (extra: a few hundred)
MAX_ROWS = 50_000_000  # frames (~19 days at 30 fps) or pad samples: more is a damaged file


def _shown(value) -> str:
    """A value as it goes into an error message: short, on one line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(name: str, why: str) -> SessionFileError:
    return SessionFileError(f"attribute {name!r} {why}")


def _attr(attrs, name: str, default):
    try:
        if name not in attrs:
            return default
        value = attrs[name]
    except Exception:  # noqa: BLE001 - h5py raises many kinds for types it cannot convert
        raise _bad(name, "cannot be read") from None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return value


def _attr_text(attrs, name: str, default: str = "") -> str:
    value = _attr(attrs, name, default)
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise _bad(name, "is not UTF-8 text") from None
    if not isinstance(value, str):
        raise _bad(name, f"is {_shown(value)}, not text")
    try:
        value.encode("utf-8")  # h5py hands non-UTF-8 bytes back as lone surrogates, which print() refuses
    except UnicodeEncodeError:
        raise _bad(name, "is not UTF-8 text") from None
    if len(value) > MAX_TEXT_ATTRIBUTE:
        raise _bad(name, f"is {len(value)} characters long (at most {MAX_TEXT_ATTRIBUTE})")
    return value


def _attr_choice(attrs, name: str, choices: Sequence[str], default: str) -> str:
    value = _attr_text(attrs, name, default)
    if value not in choices:
        raise _bad(name, f"is {_shown(value)}; expected one of {', '.join(choices)}")
    return value


def _attr_number(attrs, name: str, default: float, low: float, high: float, whole: bool = False) -> float:
    value = _attr(attrs, name, default)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _bad(name, f"is {_shown(value)}, not a number")
    number = float(value)
    if not (np.isfinite(number) and low <= number <= high and (number.is_integer() or not whole)):
        raise _bad(name, f"is {_shown(value)}; expected {'a whole number' if whole else 'a number'} from {low:g} to {high:g}")
    return number


def _attr_flag(attrs, name: str) -> bool:
    value = _attr(attrs, name, False)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return bool(_attr_number(attrs, name, 0, low=0, high=1, whole=True))


def _attr_whole_numbers(attrs, name: str, default: tuple, low: int, high: int) -> tuple:
    value = _attr(attrs, name, default)
    count = len(default)
    try:
        array = np.asarray(value) if not isinstance(value, (str, bytes)) else np.asarray([])
    except Exception:  # noqa: BLE001
        array = np.asarray([])
    if array.shape != (count,) or array.dtype.kind not in "iuf":
        raise _bad(name, f"is {_shown(value)}; expected {count} whole numbers")
    ok = np.all(np.isfinite(array)) and np.all(array == np.round(array)) and np.all((array >= low) & (array <= high))
    if not ok:
        raise _bad(name, f"is {_shown(value)}; expected {count} whole numbers from {low} to {high}")
    return tuple(int(v) for v in array)


def _attr_json_object(attrs, name: str) -> dict:
    text = _attr_text(attrs, name, "{}") or "{}"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise _bad(name, "is not valid JSON") from None
    if not isinstance(value, dict):
        raise _bad(name, f"is {_shown(value)}; expected a JSON object")
    return value


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


# -- names ------------------------------------------------------------------------------------


def _safe_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.strip())
    return cleaned.strip("-.") or "track"


def session_name(track: str, seat: int, when: float | None = None, n: int = 1) -> str:
    """The one naming rule for recordings: ``<YYYYmmdd-HHMMSS>-<track>-p<seat>[-n].h5`` (local
    time). The Record tab shows it before recording; new_session_path claims it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"{stamp}-{_safe_name(track)}-p{seat}" + (f"-{n}" if n > 1 else "") + SUFFIX


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionFileError(f"cannot create the folder {folder}: {exc.strerror or exc}; choose another") from None


def new_session_path(folder: str | os.PathLike, track: str, seat: int, when: float | None = None) -> Path:
    """Reserve a new file named by session_name in `folder`.

    The name is claimed with O_CREAT|O_EXCL, so two recorders (threads or processes) starting in
    the same second never get the same file; a taken name gets a ``-2``, ``-3``... suffix.
    The returned path exists (empty) and belongs to the caller.
    """
    folder = Path(folder)
    _make_folder(folder)
    when = time.time() if when is None else when  # every try names the same second
    for n in range(1, 10_000):
        path = folder / session_name(track, seat, when, n)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise SessionFileError(f"cannot create a session file in {folder}: {exc.strerror}") from None
        os.close(fd)
        return path
    raise SessionFileError(f"no free session file name for {session_name(track, seat, when)} in {folder}")


def named_session_path(folder: str | os.PathLike, name: str) -> Path:
    """Where a session file a person named goes (not claimed: see claim_session_path)."""
    name = name.strip()
    if not name:
        raise SessionFileError("the session file name is empty; type a name or clear it for the automatic one")
    from kartstudio.paths import user_path

    path = user_path(name if name.endswith(SUFFIX) else name + SUFFIX, "the session file name", SessionFileError)
    return path if path.is_absolute() else Path(folder) / path


def claim_session_path(folder: str | os.PathLike, name: str) -> Path:
    """Reserve the session file a person named: `name` relative to `folder` (or absolute), ``.h5``
    added if missing. Never an existing file: that is refused in one line, as is an uncreatable one."""
    path = named_session_path(folder, name)
    _make_folder(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise SessionFileError(f"{path} already exists; KartStudio never overwrites a recording: "
                               "choose another name") from None
    except OSError as exc:
        raise SessionFileError(f"cannot create {path}: {exc.strerror}; choose another name or folder") from None
    os.close(fd)
    return path


# -- frame codecs --------------------------------------------------------------------------------


def encode_frame(frame: np.ndarray, codec: str = "lossless", quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """One (H, W, 3) uint8 frame as stored in a session: a zlib stream of the raw pixels (what
    HDF5's gzip filter writes for a one-frame chunk) or a JPEG file. Releases the GIL while it
    compresses, so importers encode on several threads."""
    if codec == "lossless":
        # ISA-L's deflate at level 3 matches zlib's level 6 in size on game frames (within 1%) in
        # a tenth of the time (0.5 vs 5.7 ms for 320x240); any inflate reads it, HDF5's gzip too.
        from isal import isal_zlib

        return isal_zlib.compress(np.ascontiguousarray(frame).tobytes(), 3)
    if codec == "jpeg":
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame)).save(buffer, "JPEG", quality=int(quality))
        return buffer.getvalue()
    raise ValueError(f"unknown frame codec {codec!r}: choose one of {', '.join(CODECS)}")


def inflate_frame(data: bytes, shape: tuple[int, int, int], raw: bool = False) -> np.ndarray:
    """A lossless frame's stored bytes (a zlib stream, or raw) back to (H, W, 3) pixels. Inflates
    at most one frame's bytes (plus one, to see a longer stream), so a chunk of the wrong size or a
    zip bomb is a ValueError, never gigabytes of RAM."""
    size = int(np.prod(shape))
    if not raw:
        from isal.isal_zlib import decompressobj, error

        try:
            data = decompressobj().decompress(data, size + 1)
        except error:
            raise ValueError("does not decompress") from None
    if len(data) != size:
        got = f"more than {size}" if len(data) > size else str(len(data))
        raise ValueError(f"holds {got} bytes; a {shape[1]}x{shape[0]} frame is {size}")
    return np.frombuffer(data, np.uint8).reshape(shape)


def decode_jpeg(data: bytes | np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A stored JPEG frame back to (H, W, 3) uint8 RGB; ValueError if it is not one of that shape."""
    import io

    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow warns of > 89 megapixels: refused below by size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(bytes(data)))
        with opened as image:
            # the header's size first: a 12000x12000 picture is refused before it is decoded
            if image.size != (shape[1], shape[0]):
                raise _WrongSize(image.size)
            pixels = np.asarray(image.convert("RGB"))
    except _WrongSize as exc:
        width, height = exc.args[0]
        raise ValueError(f"a JPEG of {width}x{height}, expected {shape[1]}x{shape[0]}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises several kinds for damaged data
        raise ValueError(f"not a readable JPEG ({type(exc).__name__})") from None
    if pixels.shape != tuple(shape):
        raise ValueError(f"a JPEG of {pixels.shape[1]}x{pixels.shape[0]}, expected {shape[1]}x{shape[0]}")
    return pixels


class _WrongSize(Exception):
    """decode_jpeg's header check: the picture's (width, height) is not the session's."""


# -- writing -------------------------------------------------------------------------------------


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
        # Encoded here and written as the chunk it is: ISA-L's deflate takes a third of the time of
        # HDF5's own gzip filter (0.33 vs 0.97 ms a 320x120 frame), which the recorder pays twice a frame.
        quality = self.meta.jpeg_quality if self.meta.codec == "jpeg" else DEFAULT_JPEG_QUALITY
        self.append_encoded(encode_frame(frame, self.meta.codec, quality), state, timestamp, frame_number, action)

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


# -- reading -------------------------------------------------------------------------------------

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


def find_sessions(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Session files among `paths`: files as given, folders searched recursively for *.h5."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob(f"*{SUFFIX}") if q.is_file()))
        elif p.exists():
            found.append(p)
        else:
            raise SessionFileError(f"{p}: no such file or folder")
    return found
