"""What a session file says about itself: SessionMeta (the root group's HDF5 attributes), and the
checks every attribute the app reads passes on open (type, shape, range), so a damaged or hand-made
file is refused with one line naming the field."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import numpy as np

from kartstudio import __version__
from kartstudio.errors import SessionFileError
from kartstudio.session.codecs import CODECS, DEFAULT_JPEG_QUALITY

FORMAT_NAME = "kartstudio-session"
FORMAT_VERSION = 2  # v2: the `codec`, `jpeg_quality` and `layout` attributes
DEFAULT_STORAGE_SIZE = (120, 320)  # (height, width): one seat's half screen at N64 native resolution
KINDS = ("play", "correction")
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
# damaged or hand-made file is refused with one line naming the field, never a crash later
# (the attributes here, the datasets in reader.py).

MAX_TEXT_ATTRIBUTE = 64 * 1024  # characters; real ones are a few dozen (extra: a few hundred)


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
