"""Fast per-frame inference: a trained model driving one seat.

``model.predict`` costs ~36 ms per frame here (it builds a data pipeline on every call), more
than a 30 fps frame allows. The Pilot instead runs the network through LiteRT (TensorFlow Lite
with XNNPACK; kartstudio.pilot_engine): the model's own preprocessing (the area resize to 66x200
and the scale) in numpy, then one invoke that returns the 5 outputs together with the activations
of conv layers 2 and 4. The network is compiled once per model file and cached next to it; the
.keras file stays the source of truth. Where LiteRT cannot run the model, the model traced into a
tf.function runs instead, and `pilot.engine` says which one runs.

    pilot = Pilot.load("driver.keras")
    state = pilot.act(seat_image)               # a ControllerState for the game
    out = pilot.predict(seat_image)             # PilotOutput: .action (5,), .activations
    out.activations["conv2"].shape              # (17, 50, 36) for the kartstudio network

Thread use: one Pilot may be called from any one thread at a time (the game loop's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from kartstudio.controller import STICK_MAX, ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.images import resize
from kartstudio.model import (
    ACTIVATION_LAYERS,
    button_thresholds,
    check_driving_model,
    input_spec,
    keras,
    load_model,
    paced_buttons,
)
from kartstudio.paths import require_regular
from kartstudio.pilot_engine import file_sha256, make_engine
from kartstudio.session import DEFAULT_STORAGE_SIZE

# Threads for the network, by default one. A second XNNPACK thread halves the latency only while
# the other core is free (issue 22: p50 0.55 vs 1.04 ms, machine idle); in a race the emulator
# keeps that core busy, and then the second thread mostly waits for it: measured on the 2-core
# machine with both cores busy (bench/baselines/infer.json), 2 threads gave p50 1.3-2.0 ms against
# 1.2-1.6 ms on one, p99 up to 31 ms, and cost ~30% more CPU a frame (1.7 vs 1.3 ms), taken from
# the game. So play runs on one; a caller with cores to spare (a bench, eval without an emulator)
# passes threads=2.
DEFAULT_THREADS = 1


@dataclass
class PilotOutput:
    """One frame's inference: action = (x, y, a, b, rb) as floats.

    The stick is in -1..1. The buttons are probabilities (0..1) pressed at or above the model's
    own thresholds (or paced: see Pilot), or, for TensorKart-style models (pressed None),
    softsign values rounded as TensorKart's play.py did.
    """

    action: np.ndarray
    activations: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> (H, W, C) float32
    # (a, b, r) as the pilot decided them: at thresholds or paced; None for TensorKart-style outputs
    pressed: tuple[bool, bool, bool] | None = None

    @property
    def state(self) -> ControllerState:
        if self.pressed is None:
            return ControllerState.from_tensorkart(self.action)
        a, b, r = self.pressed
        return ControllerState(x=float(self.action[0]) * STICK_MAX, y=float(self.action[1]) * STICK_MAX, a=a, b=b, r=r)


class Pilot:
    """A driving model compiled for one image per call.

    activations=True (the default) also returns the conv2/conv4 maps for the versus mode's live
    view; predict(..., activations=False) skips copying them out.
    """

    def __init__(self, model: keras.Model, name: str = "model", *, threads: int = DEFAULT_THREADS,
                 engine: str = "auto", model_path: str | os.PathLike | None = None,
                 model_sha256: str | None = None) -> None:
        """engine: "auto" (LiteRT, else TensorFlow), "litert" (raise if it cannot run) or
        "tensorflow". model_path and model_sha256 (of the file `model` was loaded from) let the
        compiled network be cached next to that file; load() passes them."""
        check_driving_model(model, name)
        self.model = model
        self.name = name
        self.layers = ACTIVATION_LAYERS
        self.spec = input_spec(model)
        self.thresholds = button_thresholds(model)
        self.paced = paced_buttons(model)
        self._pace = np.zeros(3)  # running sums of the paced buttons' probabilities
        self._history: list[np.ndarray] = []  # the last spec.history images, oldest first
        self._engine = make_engine(model, engine=engine, threads=threads, model_path=model_path,
                                   model_sha256=model_sha256)
        self.last: PilotOutput | None = None

    @property
    def engine(self) -> str:
        """What runs the network, for people: "LiteRT 2.3.0 (XNNPACK), 1 thread, ..." or
        "TensorFlow tf.function (LiteRT not used: why)"."""
        return self._engine.description

    @classmethod
    def load(cls, path: str | os.PathLike, *, threads: int = DEFAULT_THREADS, engine: str = "auto") -> "Pilot":
        """Load a .keras model (safe mode) and compile it; raises ModelFileError naming the file."""
        require_regular(path, "the model file")  # a FIFO would block the hash below
        try:
            before = file_sha256(path)
        except OSError:
            before = None  # load_model says what is wrong with the file
        model = load_model(path)
        # the cache is keyed by the bytes Keras loaded: a file replaced meanwhile is not cached
        same = before is not None and file_sha256(path) == before
        return cls(model, name=str(path), threads=threads, engine=engine,
                   model_path=path if same else None, model_sha256=before if same else None)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images act()/predict() expect: what the model was trained on."""
        if self.spec.image_size is not None:
            return self.spec.image_size
        return DEFAULT_STORAGE_SIZE if self.spec.layout == "seat" else (2 * DEFAULT_STORAGE_SIZE[0], DEFAULT_STORAGE_SIZE[1])

    def view(self, full_image: np.ndarray, seat: int, seat_layout) -> np.ndarray:
        """The image this model is fed from a full-screen frame, exactly as the recorder stored its
        training frames: the seat's region ("seat" models) or the whole screen ("whole"), resized
        to the size it was trained on. seat_layout: a kartstudio.game.SeatLayout."""
        part = seat_layout.crop(full_image, seat) if self.spec.layout == "seat" else full_image
        return resize(part, self.image_size)

    def reset(self) -> None:
        """Forget the frame history: call at the start of every run, race or episode."""
        self._history.clear()
        self._pace[:] = 0.0

    def _stacked(self, image: np.ndarray) -> np.ndarray:
        """The current image with the ones before it, oldest first, on the channel axis."""
        if self.spec.history == 1:
            return image
        if self._history and self._history[-1].shape != image.shape:
            self._history.clear()
        self._history.append(image)
        del self._history[: -self.spec.history]
        frames = [self._history[0]] * (self.spec.history - len(self._history)) + self._history
        return np.concatenate(frames, axis=-1)

    def predict(self, image: np.ndarray, activations: bool = True) -> PilotOutput:
        """Run the model on one (H, W, 3) uint8 RGB image (see view()); a model with frame history
        also sees the images given to the calls before (since reset())."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise KartStudioError(f"the pilot needs an (H, W, 3) RGB image, got shape {image.shape}")
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        action, maps = self._engine.run(self._stacked(image), activations)
        maps = dict(zip(ACTIVATION_LAYERS, maps))
        pressed = None if self.thresholds is None else self._press(action[2:])
        out = PilotOutput(action, maps, pressed)
        self.last = out
        return out

    def _press(self, probabilities: np.ndarray) -> tuple[bool, bool, bool]:
        """Each button pressed at its threshold, or paced: when the running sum of its probability
        reaches half a press, which then counts as spent (error diffusion, so no randomness)."""
        pressed = []
        for i, (p, t, paced) in enumerate(zip(probabilities, self.thresholds, self.paced)):
            if paced:
                self._pace[i] += float(p)
                press = self._pace[i] >= 0.5
                self._pace[i] -= float(press)
            else:
                press = float(p) >= t
            pressed.append(bool(press))
        return tuple(pressed)

    def act(self, image: np.ndarray) -> ControllerState:
        """The controller state the model chooses for this image (stick x80, buttons at their thresholds)."""
        return self.predict(image, activations=False).state

    def warm_up(self, shape: tuple[int, int] | None = None) -> None:
        """Run the network once with and once without the maps ahead of the first real frame
        (first runs allocate buffers)."""
        blank = np.zeros((*(shape or self.image_size), 3), np.uint8)
        self.predict(blank, activations=True)
        self.predict(blank, activations=False)
        self.reset()
        self.last = None


__all__ = ["DEFAULT_THREADS", "Pilot", "PilotOutput"]
