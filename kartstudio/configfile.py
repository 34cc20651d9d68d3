"""Reading the app's JSON config files (settings, pad mappings, pairing) so a bad one never stops it.

A file that cannot be read or holds values of the wrong type is set aside (renamed ``.bad``, so
the user's edits are not lost and the next start is clean), defaults are used, and one line
saying so waits in `take_problems()` for the window to show once.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

_problems: list[str] = []
_lock = threading.Lock()


class ConfigValueError(ValueError):
    """What is wrong with a config file's content, in words for the user."""


def read_json_config(path: str | os.PathLike, check: Callable[[Any], Any], what: str,
                     on_problem: Callable[[str], None] | None = None) -> Any | None:
    """check(content) of the JSON file at `path`; None if there is no file or it is bad (then set aside).

    check raises ConfigValueError (or ValueError/TypeError/KeyError) naming what is wrong.
    on_problem gets the one-line message (default: queued for take_problems()).
    """
    report = on_problem or add_problem
    path = Path(path)
    from kartstudio.paths import NotRegularFileError, open_regular

    try:
        with open_regular(path, what, "r") as f:  # a FIFO is refused, never waited on
            text = f.read()
    except FileNotFoundError:
        return None
    except NotRegularFileError as exc:
        report(_set_aside(path, what, str(exc).split(" is ", 1)[-1].split(";")[0]))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        report(_set_aside(path, what, getattr(exc, "strerror", None) or str(exc)))
        return None
    try:
        return check(json.loads(text))
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        why = str(exc) if isinstance(exc, ConfigValueError) else f"{type(exc).__name__}: {exc}"
        report(_set_aside(path, what, why))
        return None


def _set_aside(path: Path, what: str, why: str) -> str:
    bad = path.with_name(path.name + ".bad")
    try:
        os.replace(path, bad)
        where = f"it was moved to {bad.name}"
    except OSError:
        where = "it was left in place"
    why = " ".join(why.split())
    why = why if len(why) <= 160 else why[:157] + "..."
    return f"{what} {path} could not be read ({why}); {where} and defaults are used."


def add_problem(text: str) -> None:
    with _lock:
        if text not in _problems:
            _problems.append(text)


def take_problems() -> list[str]:
    """The config problems not shown yet (each is returned once)."""
    with _lock:
        taken = list(_problems)
        _problems.clear()
    return taken


# -- small checks shared by the config readers ------------------------------------------------


def need(condition: bool, why: str) -> None:
    if not condition:
        raise ConfigValueError(why)


def is_number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
