"""Where KartStudio keeps its settings and its data, per the platform's conventions.

Linux follows XDG (~/.config/kartstudio, ~/.local/share/kartstudio), macOS
~/Library/Application Support/KartStudio, Windows %APPDATA%/KartStudio. KARTSTUDIO_CONFIG_DIR
and KARTSTUDIO_DATA_DIR override both (tests, portable installs).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from kartstudio.errors import KartStudioError

APP_NAME = "kartstudio"


def user_path(text: str | os.PathLike, what: str = "the path", error: type[KartStudioError] = KartStudioError) -> Path:
    """A path a person gave, ``~`` and ``~user`` expanded; `error` (one line naming `what`) when the
    home folder it names cannot be found (``~nosuchuser/x``), where Path.expanduser raises RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        head = str(text).split("/", 1)[0].split(os.sep, 1)[0]
        raise error(f"{what} {str(text)[:200]!r} starts with {head[:60]!r}, but no home folder of that name is known; "
                    "write the folder out in full") from None


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class NotRegularFileError(KartStudioError):
    """A path that is a FIFO, device, socket or folder where a file was expected."""


def _refuse(path, mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise NotRegularFileError(f"{what} {path} is {kind}, not a regular file; choose the file itself")


def open_regular(path: str | os.PathLike, what: str = "the file", mode: str = "rb"):
    """Open a file for reading only if it is a regular file: a FIFO, device or socket is refused in
    one line (NotRegularFileError) instead of blocking forever. Other OSErrors (missing, no
    permission) pass through for the caller to word."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO opens without a writer
    try:
        _refuse(path, os.fstat(fd).st_mode, what)
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        raise


def require_regular(path: str | os.PathLike, what: str = "the file") -> None:
    """Refuse (NotRegularFileError) a path that exists but is not a regular file, before a library
    that takes a file name (numpy, Pillow, h5py) opens it and blocks on a FIFO. Missing: passes."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the caller's own open says so
    _refuse(path, mode, what)


def _platform_base(kind: str) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming") / "KartStudio"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "KartStudio"
    if kind == "config":
        return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / APP_NAME
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / APP_NAME


def config_dir() -> Path:
    """The folder holding settings.json (not created here)."""
    override = os.environ.get("KARTSTUDIO_CONFIG_DIR")
    return user_path(override, "KARTSTUDIO_CONFIG_DIR") if override else _platform_base("config")


def data_dir() -> Path:
    """The default folder for sessions and models (the user can choose another in the settings)."""
    override = os.environ.get("KARTSTUDIO_DATA_DIR")
    if override:
        return user_path(override, "KARTSTUDIO_DATA_DIR")
    base = _platform_base("data")
    return base / "data" if sys.platform in ("win32", "darwin") else base


def write_json(path: str | os.PathLike, data, indent: int = 2) -> Path:
    """Write `data` as JSON atomically: a crash or a full disk mid-write leaves the old file, never
    half a file. Raises OSError (callers say which file and what to do)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # own name: two writers never share it
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=indent) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def checkpoint_dir(model: str | os.PathLike) -> Path:
    """Where a training run keeps its checkpoints and state.json, by default: next to its model."""
    return Path(model).with_suffix(".checkpoints")


def run_finished(model: str | os.PathLike) -> bool | None:
    """Whether the training run that wrote `model` went to its end (False: cancelled or stopped by a
    fault), from its checkpoint folder's state.json; None when that is not known (an imported model,
    a run of an older KartStudio, a folder moved away). Read without TensorFlow: the app asks."""
    import json

    state = checkpoint_dir(model) / "state.json"
    try:
        value = json.loads(state.read_text()).get("finished") if state.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None
