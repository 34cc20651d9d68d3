"""describe_error for the GUI and the training child process (it lives in the engine: kartstudio.errors)."""

from kartstudio.errors import describe_error  # noqa: F401 - re-exported
