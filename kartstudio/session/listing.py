"""The sessions of a folder, one row each: what the Datasets list (and the Training tab's choice of
sessions) shows."""

from __future__ import annotations

from pathlib import Path

from kartstudio.errors import KartStudioError, describe_error
from kartstudio.session.names import find_sessions
from kartstudio.session.reader import open_session


def session_rows(folder: Path) -> list[dict]:
    """info() of every session in `folder`; unreadable files are listed with their problem, so one
    damaged file never keeps the tab (or the app) from starting."""
    try:
        if not folder.is_dir():
            return []
        paths = find_sessions([folder])
    except (OSError, KartStudioError):
        return []
    rows = []
    for path in paths:
        try:
            if path.stat().st_size == 0:
                continue  # a name reserved by a recording that is just starting
            with open_session(path) as s:
                rows.append(s.info())
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a file, it is listed, not raised
            rows.append({"path": str(path), "problem": " ".join(describe_error(exc).split())})
    return rows
