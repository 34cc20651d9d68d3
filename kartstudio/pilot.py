"""Fast per-frame inference: a trained model driving one seat.

``model.predict`` costs ~36 ms per frame here (it builds a data pipeline on every call), more
than a 30 fps frame allows. The Pilot instead traces the model once into a ``tf.function`` that
takes one uint8 seat image of any size, applies the model's own preprocessing (its Preprocess
layer resizes to 66x200 and scales) and returns the 5 outputs together with the activations of
conv layers 2 and 4, all in one call.

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

from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.model import ACTIVATION_LAYERS, check_driving_model, keras, load_model, tf


@dataclass
class PilotOutput:
    """One frame's inference: action = (x, y, a, b, rb) as floats (softsign, -1..1)."""

    action: np.ndarray
    activations: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> (H, W, C) float32

    @property
    def state(self) -> ControllerState:
        return ControllerState.from_tensorkart(self.action)


class Pilot:
    """A driving model compiled for one image per call.

    activations=True (the default) also returns the conv2/conv4 maps for the versus mode's live
    view; predict(..., activations=False) skips copying them out.
    """

    def __init__(self, model: keras.Model, name: str = "model") -> None:
        check_driving_model(model, name)
        self.model = model
        self.name = name
        self.layers = ACTIVATION_LAYERS
        # One functional model with three outputs: the actions and the two conv maps.
        self._inference = keras.Model(
            model.inputs[0], [model.outputs[0], *(model.get_layer(n).output for n in ACTIVATION_LAYERS)]
        )
        # Traced once here (about a second each); the concrete functions are then called
        # directly, which skips tf.function's per-call argument matching (~0.3 ms a frame).
        signature = [tf.TensorSpec((None, None, 3), tf.uint8, name="image")]
        self._with_maps = tf.function(self._run_with_maps, input_signature=signature).get_concrete_function()
        self._without_maps = tf.function(self._run_without_maps, input_signature=signature).get_concrete_function()
        self.last: PilotOutput | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Pilot":
        """Load a .keras model (safe mode) and compile it; raises ModelFileError naming the file."""
        return cls(load_model(path), name=str(path))

    def _run_with_maps(self, image):
        outputs = self._inference(image[None], training=False)
        return [t[0] for t in outputs]

    def _run_without_maps(self, image):
        return self.model(image[None], training=False)[0]

    def predict(self, image: np.ndarray, activations: bool = True) -> PilotOutput:
        """Run the model on one (H, W, 3) uint8 RGB seat image of any size."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise KartStudioError(f"the pilot needs an (H, W, 3) RGB image, got shape {image.shape}")
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        if activations:
            action, *maps = self._with_maps(image)
            out = PilotOutput(action.numpy(), {n: m.numpy() for n, m in zip(ACTIVATION_LAYERS, maps)})
        else:
            out = PilotOutput(self._without_maps(image).numpy())
        self.last = out
        return out

    def act(self, image: np.ndarray) -> ControllerState:
        """The controller state the model chooses for this seat image (stick x80, buttons rounded)."""
        return self.predict(image, activations=False).state

    def warm_up(self, shape: tuple[int, int] = (120, 320)) -> None:
        """Run both functions once ahead of the first real frame (first runs allocate buffers)."""
        blank = np.zeros((*shape, 3), np.uint8)
        self.predict(blank, activations=True)
        self.predict(blank, activations=False)
        self.last = None


__all__ = ["Pilot", "PilotOutput"]
