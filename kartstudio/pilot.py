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
    tf,
)
from kartstudio.session import DEFAULT_STORAGE_SIZE


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

    def __init__(self, model: keras.Model, name: str = "model") -> None:
        check_driving_model(model, name)
        self.model = model
        self.name = name
        self.layers = ACTIVATION_LAYERS
        self.spec = input_spec(model)
        self.thresholds = button_thresholds(model)
        self.paced = paced_buttons(model)
        self._pace = np.zeros(3)  # running sums of the paced buttons' probabilities
        self._history: list[np.ndarray] = []  # the last spec.history images, oldest first
        # One functional model with three outputs: the actions and the two conv maps.
        self._inference = keras.Model(
            model.inputs[0], [model.outputs[0], *(model.get_layer(n).output for n in ACTIVATION_LAYERS)]
        )
        # Traced once here (about a second each); the concrete functions are then called
        # directly, which skips tf.function's per-call argument matching (~0.3 ms a frame).
        signature = [tf.TensorSpec((None, None, 3 * self.spec.history), tf.uint8, name="image")]
        self._with_maps = tf.function(self._run_with_maps, input_signature=signature).get_concrete_function()
        self._without_maps = tf.function(self._run_without_maps, input_signature=signature).get_concrete_function()
        self.last: PilotOutput | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Pilot":
        """Load a .keras model (safe mode) and compile it; raises ModelFileError naming the file."""
        return cls(load_model(path), name=str(path))

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

    def _run_with_maps(self, image):
        outputs = self._inference(image[None], training=False)
        return [t[0] for t in outputs]

    def _run_without_maps(self, image):
        return self.model(image[None], training=False)[0]

    def predict(self, image: np.ndarray, activations: bool = True) -> PilotOutput:
        """Run the model on one (H, W, 3) uint8 RGB image (see view()); a model with frame history
        also sees the images given to the calls before (since reset())."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise KartStudioError(f"the pilot needs an (H, W, 3) RGB image, got shape {image.shape}")
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        image = self._stacked(image)
        if activations:
            action, *maps = self._with_maps(image)
            action, maps = action.numpy(), {n: m.numpy() for n, m in zip(ACTIVATION_LAYERS, maps)}
        else:
            action, maps = self._without_maps(image).numpy(), {}
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
        """Run both functions once ahead of the first real frame (first runs allocate buffers)."""
        blank = np.zeros((*(shape or self.image_size), 3), np.uint8)
        self.predict(blank, activations=True)
        self.predict(blank, activations=False)
        self.reset()
        self.last = None


__all__ = ["Pilot", "PilotOutput"]
