"""Background work the window drives: long tasks (training, imports) on plain threads.

The game loop is the engine's (kartstudio.play.GameLoop). Both never touch Qt: the window polls
them with a QTimer (about 30 Hz) and shows what they report, so a slow frame, a TensorFlow step
or a disk write never blocks the event loop.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from kartstudio.errors import describe_error


# -- long tasks --------------------------------------------------------------------------------------
class Cancelled(Exception):
    """Raised inside a task's progress callback once the user pressed Cancel."""


class BackgroundTask:
    """Runs fn(report, cancelled) on a thread. report(kind, payload) queues an event for the UI.

    The UI calls poll() from a timer and gets ("progress", ...), ..., then ("done", result) or
    ("error", message) or ("cancelled", result or None).
    """

    def __init__(self, fn: Callable[[Callable[[str, Any], None], threading.Event], Any], name: str = "task") -> None:
        self._fn = fn
        self.events: queue.Queue = queue.Queue()
        self.cancel_event = threading.Event()
        self.finished = False
        self.started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"kartstudio-{name}", daemon=True)

    def start(self) -> "BackgroundTask":
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def report(self, kind: str, payload: Any = None) -> None:
        self.events.put((kind, payload))

    def poll(self, limit: int = 1000) -> list[tuple[str, Any]]:
        out = []
        while len(out) < limit:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                break
        return out

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._fn(self.report, self.cancel_event)
        except Cancelled:
            self.events.put(("cancelled", None))
        except BaseException as exc:
            self.events.put(("error", describe_error(exc)))
        else:
            # a cancelled task's result too: what it kept (e.g. the best model so far)
            self.events.put(("cancelled", result) if self.cancel_event.is_set() else ("done", result))
        finally:
            self.finished = True
