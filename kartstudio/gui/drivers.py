"""Seat drivers that are not pads: the practice track's expert and the trained AI (pilot)."""

from __future__ import annotations

import threading
import time

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.game import Frame


class ExpertDriver:
    """The practice track's scripted expert (kartstudio.practice.expert) driving a seat.

    It reads the track geometry of the running backend, so it runs on the game loop thread,
    between frames, like every driver.
    """

    name = "Expert driver"

    def __init__(self, module, game) -> None:
        self.module = module
        self.game = game
        self._experts: dict[int, object] = {}

    @staticmethod
    def supported(module) -> bool:
        return hasattr(module, "Expert")

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        backend = self.game.backend
        if backend is None or not hasattr(backend, "env"):
            return NEUTRAL  # the expert needs the practice track's geometry
        expert = self._experts.get(seat)
        if expert is None or expert.backend is not backend:
            expert = self._experts[seat] = self.module.Expert(backend, seat=seat)
        return expert.act()


def load_pilot(path):
    """Load and warm up a Pilot (TensorFlow's import and the first traced call take seconds: call
    this off the UI thread)."""
    from kartstudio.pilot import Pilot

    pilot = Pilot.load(path)
    pilot.warm_up()
    return pilot


class PilotDriver:
    """The trained model driving a seat: one inference per frame on that seat's half.

    The half is first shrunk to the storage size exactly as the recorder stores it, so the
    model sees what it was trained on. Keeps the latest outputs and conv activations for the
    versus tab (read under a lock from the UI thread).
    """

    name = "AI"

    def __init__(self, pilot, layout) -> None:
        self.pilot = pilot
        self.pilot.reset()
        self.layout = layout
        self._lock = threading.Lock()
        self.outputs: tuple[float, ...] | None = None
        self.activations: dict[str, object] = {}
        self.last_state: ControllerState = NEUTRAL
        self.steps = 0
        self.inference_ms = 0.0

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        if frame is None:
            return NEUTRAL
        image = self.pilot.view(frame.image, seat, self.layout)  # what the model file says it learnt on
        t0 = time.perf_counter()
        out = self.pilot.predict(image, activations=True)
        ms = (time.perf_counter() - t0) * 1000
        state = out.state
        with self._lock:
            self.outputs = tuple(float(v) for v in out.action)
            self.activations = out.activations
            self.last_state = state
            self.steps += 1
            self.inference_ms = 0.9 * self.inference_ms + 0.1 * ms if self.steps > 1 else ms
        return state

    def snapshot(self):
        """(outputs, activations, state, frames driven, smoothed inference ms)."""
        with self._lock:
            return self.outputs, dict(self.activations), self.last_state, self.steps, self.inference_ms


class TakeoverDriver:
    """A human has taken a seat from the AI: the pad drives, the AI keeps watching.

    The AI still runs on every frame, so its maps and would-be outputs stay live on screen
    while the human shows it what to do.
    """

    def __init__(self, pad, pilot_driver: PilotDriver) -> None:
        self.pad = pad
        self.pilot_driver = pilot_driver
        self.name = f"{getattr(pad, 'name', 'pad')} (takeover)"

    def state(self, frame: Frame | None, seat: int) -> ControllerState:
        self.pilot_driver.state(frame, seat)
        sample = getattr(self.pad, "sample", None)
        return sample() if callable(sample) else self.pad.last
