"""Session file names: the one naming rule for recordings, claiming a name so that two recorders
never share a file, the file a person named, and finding the session files among paths."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable

from kartstudio.errors import SessionFileError

SUFFIX = ".h5"


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
