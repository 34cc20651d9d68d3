"""Errors meant for the user: one clear line that names the thing and what to do."""


class KartStudioError(Exception):
    """A problem the user can fix. The CLI prints it as one line and exits with status 2."""


class SessionFileError(KartStudioError):
    """A file that is not a readable KartStudio session (missing, corrupt, truncated, wrong format)."""


class RecordingError(KartStudioError):
    """A recording that had to stop (disk full, permission denied, ...). What was written stays readable."""


def describe_error(exc: BaseException) -> str:
    """One line for the user: our own errors as they are, anything else with its type and place."""
    import traceback

    if isinstance(exc, KartStudioError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"
