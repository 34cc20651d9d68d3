"""describe_error without Qt, for worker threads and the training child process."""

from __future__ import annotations

import traceback

from kartstudio.errors import KartStudioError


def describe_error(exc: BaseException) -> str:
    """One line for the user: our own errors as they are, anything else with its type and place."""
    if isinstance(exc, KartStudioError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"
