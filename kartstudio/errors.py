"""Errors meant for the user: one clear line that names the thing and what to do."""


class KartStudioError(Exception):
    """A problem the user can fix. The CLI prints it as one line and exits with status 2."""


class SessionFileError(KartStudioError):
    """A file that is not a readable KartStudio session (missing, corrupt, truncated, wrong format)."""


class RecordingError(KartStudioError):
    """A recording that had to stop (disk full, permission denied, ...). What was written stays readable."""
