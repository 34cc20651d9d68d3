"""Seat drivers that are not pads: the practice track's expert and the trained AI (pilot)."""

from __future__ import annotations

import threading

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.game import Frame


class ExpertDriver:
    """The practice track's scripted expert driving a seat (for demos and quick recordings)."""

    name = "Expert driver"

    def __init__(self, module, game) -> None:
        self.module = module
        self.game = game
        self._experts: dict[int, object] = {}

    @staticmethod
    def supported(module) -> bool:
        return False  # wired once kartstudio.practice.expert lands

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        return NEUTRAL


class PilotDriver:
    """The trained model driving a seat: one inference per frame on that seat's half.

    Keeps the latest outputs and conv activations for the versus tab to show (read under a lock).
    """

    name = "AI"

    def __init__(self, pilot, layout) -> None:
        self.pilot = pilot
        self.layout = layout
        self._lock = threading.Lock()
        self.outputs: tuple[float, ...] | None = None
        self.activations: dict[str, object] = {}
        self.last_state: ControllerState = NEUTRAL
        self.steps = 0

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        if frame is None:
            return NEUTRAL
        return NEUTRAL

    def snapshot(self):
        with self._lock:
            return self.outputs, dict(self.activations), self.last_state, self.steps
