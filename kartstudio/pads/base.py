"""A pad source: timestamped controller states for one seat, sampled at the pad's polling rate."""

from __future__ import annotations

import abc
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from kartstudio.controller import NEUTRAL, ControllerState


@dataclass(frozen=True)
class PadSample:
    timestamp: float  # time.monotonic(), the clock frames use too
    state: ControllerState


class PadSource(abc.ABC):
    """Where one seat's controller states come from (a gamepad, the keyboard, a script, the AI).

    Producers call ``push``; the recorder calls ``drain`` once per frame and gets every sample
    since its previous call. The buffer is bounded so a source nobody drains cannot eat memory.
    """

    name: str = "pad"
    guid: str = ""

    def __init__(self, maxlen: int = 4096) -> None:
        self._samples: deque[PadSample] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.last: ControllerState = NEUTRAL
        self.connected: bool = True
        self.l_presses = 0  # L went down this many times, counted on every sample: no tap is too short

    def push(self, state: ControllerState, timestamp: float | None = None) -> None:
        sample = PadSample(time.monotonic() if timestamp is None else timestamp, state)
        with self._lock:
            self._samples.append(sample)
            if state.l and not self.last.l:
                self.l_presses += 1
            self.last = state

    def drain(self) -> list[PadSample]:
        with self._lock:
            samples = list(self._samples)
            self._samples.clear()
        return samples

    def close(self) -> None:
        """Stop producing samples (polling threads end here)."""


class ScriptedPadSource(PadSource):
    """States from a function of time or of the caller: the expert driver, tests, benchmarks."""

    def __init__(self, name: str = "script", policy: Callable[[], ControllerState] | None = None) -> None:
        super().__init__()
        self.name = name
        self.guid = f"script:{name}"
        self.policy = policy

    def sample(self) -> ControllerState:
        """Ask the policy for a state now and record it as a sample."""
        state = self.policy() if self.policy else NEUTRAL
        self.push(state)
        return state
