"""Where KartStudio keeps its settings and its data, per the platform's conventions.

Linux follows XDG (~/.config/kartstudio, ~/.local/share/kartstudio), macOS
~/Library/Application Support/KartStudio, Windows %APPDATA%/KartStudio. KARTSTUDIO_CONFIG_DIR
and KARTSTUDIO_DATA_DIR override both (tests, portable installs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "kartstudio"


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
    return Path(override).expanduser() if override else _platform_base("config")


def data_dir() -> Path:
    """The default folder for sessions and models (the user can choose another in the settings)."""
    override = os.environ.get("KARTSTUDIO_DATA_DIR")
    if override:
        return Path(override).expanduser()
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
