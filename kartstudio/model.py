"""The driving networks (Keras 3), their preprocessing, and safe loading.

Three networks map a seat's view (or the whole screen) to TensorKart's 5 outputs ``(x, y, a, b, rb)``:

- ``kartstudio`` (the default recipe's): 5 convolutions (24, 36, 48, 64, 64 filters with
  TensorKart's kernels and strides, max pooling between the 2nd and 3rd), then dropout once and
  two dense layers feeding a stick output (tanh) and button probabilities (sigmoid) with press
  thresholds stored in the file (the ``Actions`` layer). Trained with ``DrivingLoss``.
- ``seed``: the seed fork's network: the same convolutions, dropout after the 5th, TensorKart's
  4 dense layers each followed by dropout, 5 softsign outputs (kept for comparison).
- ``tensorkart``: TensorKart's exact network (train.py), so its ``model_weights.h5`` loads into it.

Every model starts with a ``Preprocess`` layer that takes RGB images of any size with values
0..255, resizes them to 66x200 and scales them to 0..1 (what TensorKart's skimage resize gave).
The layer is registered and serializable, so a saved ``.keras`` file carries its own
preprocessing settings in its config and loads in Keras safe mode: no Lambda layer, no code.

This module is the one place that imports TensorFlow; it keeps TensorFlow's C++ logging quiet
first. Other modules take ``tf`` and ``keras`` from here.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kartstudio.h5guard import check_self_contained

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the first TensorFlow import


def _import_tensorflow_quietly():
    """Import TensorFlow and Keras without their start-up chatter.

    TF_CPP_MIN_LOG_LEVEL does not cover what TensorFlow's C++ side prints before its logging is
    set up (oneDNN and CUDA-stub notices, a cuInit error on machines without a GPU), so stderr
    is pointed at /dev/null while TensorFlow loads and looks for devices, then restored.
    """
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here, still silenced
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf, keras


tf, keras = _import_tensorflow_quietly()

from kartstudio.errors import KartStudioError  # noqa: E402

INPUT_SIZE = (66, 200)  # (height, width) the networks see, as TensorKart's X.npy
OUTPUT_NAMES = ("x", "y", "a", "b", "rb")
ACTIVATION_LAYERS = ("conv2", "conv4")  # shown live in the versus mode
STICK_WEIGHT = 2.0  # the driving loss: squared stick error against button cross-entropy


class ModelFileError(KartStudioError):
    """A model file that cannot be used (missing, corrupt, unsafe, or not a driving model)."""


def resize_images(images, size: tuple[int, int] = INPUT_SIZE):
    """Resize a batch of (B, H, W, 3) images to `size` the way training and the pilot both do.

    Area averaging: antialiased when shrinking, as skimage's resize was in TensorKart, and
    cheaper than antialiased bilinear (0.08 vs 0.2 ms for a 320x120 seat in a batch, here).
    uint8 images go in as they are (a separate cast first costs half as much again); the result
    is float32. A batch that already has the size (known while tracing) is only cast.
    """
    if tuple(images.shape[1:3]) == tuple(size):
        return tf.cast(images, tf.float32)
    return tf.image.resize(images, size, method="area")


LAYOUTS = ("seat", "whole")  # a model sees one seat's region of the screen, or the whole screen


@dataclass(frozen=True)
class InputSpec:
    """What a model must be given, from its Preprocess layer's config.

    layout: "seat" (one seat's region of the split screen) or "whole" (the whole screen).
    image_size: (height, width) the frames were stored at when it was trained; the pilot resizes
        a live frame to it first, exactly as the recorder does, so the model sees what it learnt on.
    history: frames seen at once (1 = the current frame only), stacked on the channel axis,
        oldest first.
    """

    layout: str = "seat"
    image_size: tuple[int, int] | None = None
    history: int = 1


@keras.saving.register_keras_serializable(package="kartstudio")
class Preprocess(keras.layers.Layer):
    """Images of any size, values 0..255 -> (66, 200, 3 x history) floats in 0..1.

    Its settings (size, scale) and what the model must be fed (layout, image_size, history) live
    in the model's config, so a model file says how its input must be prepared and the pilot and
    trainer never guess.
    """

    def __init__(self, size=INPUT_SIZE, scale=1.0 / 255.0, layout="seat", image_size=None, history=1, **kwargs):
        super().__init__(**kwargs)
        self.size = (int(size[0]), int(size[1]))
        self.scale = float(scale)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.layout = layout
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.history = int(history)

    def call(self, images):
        return resize_images(images, self.size) * self.scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size[0], self.size[1], input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "size": list(self.size),
            "scale": self.scale,
            "layout": self.layout,
            "image_size": None if self.image_size is None else list(self.image_size),
            "history": self.history,
        }


def input_spec(model: keras.Model) -> InputSpec:
    layer = model.get_layer("preprocess")
    return InputSpec(getattr(layer, "layout", "seat"), getattr(layer, "image_size", None), getattr(layer, "history", 1))


def set_input_spec(model: keras.Model, layout: str, image_size: tuple[int, int] | None) -> None:
    """Record in the model what it is trained on (the trainer calls this from the sessions' attributes)."""
    layer = model.get_layer("preprocess")
    if layout not in LAYOUTS:
        raise KartStudioError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    layer.layout = layout
    layer.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))


@keras.saving.register_keras_serializable(package="kartstudio")
def euclidean_loss(y_true, y_pred):
    """TensorKart's loss: the distance between predicted and true 5-vectors, per sample."""
    return keras.ops.sqrt(keras.ops.sum(keras.ops.square(y_pred - y_true), axis=-1))


PRESS_WEIGHT = 4.0


@keras.saving.register_keras_serializable(package="kartstudio")
def press_weighted_mse(y_true, y_pred):
    """MSE where a pressed button counts PRESS_WEIGHT times (measured: drives far worse; kept for comparison)."""
    weights = keras.ops.concatenate(
        [keras.ops.ones_like(y_true[:, :2]), 1.0 + (PRESS_WEIGHT - 1.0) * y_true[:, 2:]], axis=-1
    )
    return keras.ops.mean(weights * keras.ops.square(y_pred - y_true), axis=-1)


@keras.saving.register_keras_serializable(package="kartstudio")
class DrivingLoss(keras.losses.Loss):
    """The default recipe's loss: the stick as regression, the buttons as classification.

    Squared error summed over the stick's two axes (times stick_weight), plus binary
    cross-entropy per button where a press counts button_weights[i] times: a rare button (the
    brake) still moves the gradient. Needs a model with probability outputs (``Actions``).
    """

    def __init__(self, button_weights=(1.0, 1.0, 1.0), stick_weight=STICK_WEIGHT, name="driving", **kwargs):
        super().__init__(name=name, **kwargs)
        self.button_weights = [float(w) for w in button_weights]
        self.stick_weight = float(stick_weight)

    def call(self, y_true, y_pred):
        ops = keras.ops
        stick = ops.sum(ops.square(y_pred[:, :2] - y_true[:, :2]), axis=-1)
        p = ops.clip(y_pred[:, 2:], 1e-6, 1.0 - 1e-6)
        t = y_true[:, 2:]
        w = ops.convert_to_tensor(self.button_weights, dtype=p.dtype)
        bce = -(w * t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
        return self.stick_weight * stick + ops.mean(bce, axis=-1)

    def get_config(self):
        return {**super().get_config(), "button_weights": self.button_weights, "stick_weight": self.stick_weight}


def button_weights(actions: np.ndarray, most: float = 10.0) -> tuple[float, float, float]:
    """How much a press counts per button: sqrt(released / pressed) in the labels, 1..`most`."""
    pressed = np.clip(np.asarray(actions, np.float64)[:, 2:].mean(axis=0), 1e-6, 1.0)
    return tuple(float(w) for w in np.clip(np.sqrt((1.0 - pressed) / pressed), 1.0, most))


LOSSES = {
    "driving": DrivingLoss,
    "mse": "mse",
    "euclidean": euclidean_loss,
    "press-weighted": press_weighted_mse,
}


def make_loss(name: str, actions: np.ndarray | None = None, stick_weight: float = STICK_WEIGHT):
    """The loss function for `name`; the driving loss weighs button presses by their rarity in `actions`."""
    if name not in LOSSES:
        raise KartStudioError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    if name == "driving":
        weights = button_weights(actions) if actions is not None and len(actions) else (1.0, 1.0, 1.0)
        return DrivingLoss(weights, stick_weight)
    loss = LOSSES[name]
    return keras.losses.get(loss) if isinstance(loss, str) else loss


@keras.saving.register_keras_serializable(package="kartstudio")
class Actions(keras.layers.Layer):
    """The 5 driving outputs (x, y, a, b, rb): the stick in -1..1 and each button's probability.

    ``thresholds`` (one per button) are the probabilities at which the pilot presses it; the
    trainer chooses them on validation frames and they are saved in the model's config.
    A ``paced`` button is instead pressed on the share of frames its probability gives (a running
    sum: 0.3 presses it on 3 frames in 10), the way a player holds a speed by tapping the gas;
    a threshold would hold it down whenever the model leans to pressing (docs/practice.md).
    """

    def __init__(self, thresholds=(0.5, 0.5, 0.5), paced=(False, False, False), **kwargs):
        super().__init__(**kwargs)
        self.thresholds = [float(t) for t in thresholds]
        self.paced = [bool(p) for p in paced]

    def call(self, inputs):
        stick, buttons = inputs
        return keras.ops.concatenate([stick, buttons], axis=-1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 5)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.thresholds, "paced": self.paced}


def _actions_layer(model: keras.Model) -> Actions | None:
    """The model's Actions layer; None for TensorKart-style outputs."""
    try:
        layer = model.get_layer("actions")
    except ValueError:
        return None
    return layer if isinstance(layer, Actions) else None


def button_thresholds(model: keras.Model) -> tuple[float, float, float] | None:
    """The per-button press thresholds of a model with probability outputs; None for TensorKart-style outputs."""
    layer = _actions_layer(model)
    return None if layer is None else tuple(layer.thresholds)


def paced_buttons(model: keras.Model) -> tuple[bool, bool, bool]:
    """Which buttons the pilot presses on the share of frames their probability gives (Actions.paced)."""
    layer = _actions_layer(model)
    return (False, False, False) if layer is None else tuple(layer.paced)


def _image_input(channels: int = 3) -> keras.KerasTensor:
    return keras.Input(shape=(None, None, channels), name="image")


def _conv_body(x):
    """The seed's convolutions: 24, 36, 48, 64, 64 filters, TensorKart's kernels and strides, max
    pooling between the 2nd and 3rd. 'same' padding keeps room for the 3x3 convolutions after the
    extra pooling layer (with TensorKart's 'valid' padding the 4th would get a 2-pixel-high input)."""
    x = keras.layers.Conv2D(24, 5, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(36, 5, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(48, 5, strides=2, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv4")(x)
    return keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv5")(x)


def _tensorkart_head(x, dropout: float):
    """TensorKart's dense layers: 1164, 100, 50, 10 (relu), each followed by dropout, then 5 softsign."""
    for i, units in enumerate((1164, 100, 50, 10), start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    return keras.layers.Dense(5, activation="softsign", name="actions")(x)


def build_kartstudio(dropout: float = 0.2, history: int = 1) -> keras.Model:
    """The default network: the seed's convolutions, then a head without a bottleneck.

    Dropout sits once, on the flattened features; two dense layers (256, 64) feed two outputs:
    the stick (tanh, a regression) and the buttons (sigmoid probabilities, pressed above the
    thresholds the trainer stores in ``Actions``). The seed's 1164-100-50-10 head with dropout
    after each layer left the brake output dead (see docs/practice.md).
    """
    image = _image_input(3 * history)
    x = Preprocess(name="preprocess", history=history)(image)
    x = _conv_body(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(256, activation="relu", name="dense1")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense2")(x)
    stick = keras.layers.Dense(2, activation="tanh", name="stick")(x)
    buttons = keras.layers.Dense(3, activation="sigmoid", name="buttons")(x)
    return keras.Model(image, Actions(name="actions")([stick, buttons]), name="kartstudio")


def build_seed(dropout: float = 0.2) -> keras.Model:
    """The seed fork's network: the same convolutions, dropout after the 5th, then TensorKart's
    4 dense layers each with dropout and 5 softsign outputs (kept for comparison)."""
    image = _image_input()
    x = Preprocess(name="preprocess")(image)
    x = _conv_body(x)
    x = keras.layers.Dropout(dropout, name="conv_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(image, _tensorkart_head(x, dropout), name="seed")


def build_tensorkart(dropout: float = 0.2) -> keras.Model:
    """TensorKart's train.py network, layer for layer (1,595,555 parameters)."""
    image = _image_input()
    x = Preprocess(name="preprocess", layout="whole")(image)
    x = keras.layers.Conv2D(24, 5, strides=2, activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(36, 5, strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(48, 5, strides=2, activation="relu", name="conv3")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv4")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv5")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(image, _tensorkart_head(x, dropout), name="tensorkart")


MODEL_BUILDERS = {"kartstudio": build_kartstudio, "seed": build_seed, "tensorkart": build_tensorkart}
MODEL_KINDS = tuple(MODEL_BUILDERS)


def build_model(kind: str = "kartstudio", history: int = 1) -> keras.Model:
    if kind not in MODEL_BUILDERS:
        raise KartStudioError(f"unknown model kind {kind!r}: choose one of {', '.join(MODEL_KINDS)}")
    if history != 1:
        if kind != "kartstudio":
            raise KartStudioError(f"frame history needs the kartstudio network, not {kind!r}")
        return build_kartstudio(history=history)
    return MODEL_BUILDERS[kind]()


def input_size(model: keras.Model) -> tuple[int, int]:
    """The (height, width) the model's Preprocess layer resizes to."""
    return model.get_layer("preprocess").size


# -- files ---------------------------------------------------------------------------------------


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save as .keras, atomically: a crash mid-save never leaves a half-written model behind."""
    path = Path(path)
    if path.suffix != ".keras":
        raise KartStudioError(f"{path}: model files must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")  # its own name: two processes never share it
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"cannot write model {path}: {exc.strerror or exc}") from None
    return path


def load_model(path: str | os.PathLike, compile: bool = False) -> keras.Model:
    """Load a driving model in Keras safe mode; any problem is one ModelFileError naming the file.

    Safe mode refuses files that carry code (Lambda layers, pickled functions) before any of
    it runs. compile=True also restores the optimizer state (the trainer's resume).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a .keras model file (for TensorKart's model_weights.h5 use `kartstudio import-model`)"
        )
    _check_archive(path)
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/KeyError/OSError for bad files
        text = str(exc)
        if "safe_mode" in text or "lambda" in text.lower():
            raise ModelFileError(
                f"{path} contains code (e.g. a Lambda layer); KartStudio loads models in safe mode and refused it"
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a usable KartStudio model ({first[:200]})") from None
    check_driving_model(model, path)
    return model


MAX_HISTORY = 16  # frames a network may see at once: each one is another full frame per sample in memory
MAX_ARCHIVE_MEMBER = 1 << 30  # bytes: a driving model's weights are a few MB
MAX_WEIGHT = 1e6  # |w| of a trained driving network is far below; 1e30 would make every output NaN


def _check_archive(path: Path) -> None:
    """Refuse a .keras archive whose HDF5 weights point outside themselves, before Keras opens them."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.filename.endswith(".h5"):
                    continue
                if member.file_size > MAX_ARCHIVE_MEMBER:
                    raise ModelFileError(f"{path}: {member.filename} claims {member.file_size} bytes; "
                                         "a driving model's weights are far smaller")
                data = io.BytesIO(archive.read(member))
                try:
                    weights = h5py.File(data, "r")
                except Exception:  # noqa: BLE001 - Keras names the damage in its own words below
                    continue
                with weights:
                    check_self_contained(weights, f"{path} ({member.filename})", ModelFileError)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"{path} is not a readable .keras archive ({type(exc).__name__})") from None


def check_weights(model: keras.Model, path: str | os.PathLike = "model") -> None:
    """Raise ModelFileError if a weight is not a finite number of sane size (it would drive on NaN)."""
    for var in model.weights:
        values = np.asarray(var)
        if values.dtype.kind != "f":
            continue
        if not np.all(np.isfinite(values)):
            raise ModelFileError(f"{path}: weight {var.path} holds values that are not numbers (NaN or infinite); "
                                 "the model cannot drive: retrain it or use another file")
        if values.size and float(np.max(np.abs(values))) > MAX_WEIGHT:
            raise ModelFileError(f"{path}: weight {var.path} holds values above {MAX_WEIGHT:g}; "
                                 "the model cannot drive: retrain it or use another file")


def check_driving_model(model: keras.Model, path: str | os.PathLike = "model") -> None:
    """Raise ModelFileError unless the model maps RGB images to the 5 driving outputs with sane weights."""
    if len(model.inputs) != 1 or model.inputs[0].shape[-1] is None or model.inputs[0].shape[-1] % 3:
        raise ModelFileError(f"{path}: its input is {model.inputs[0].shape if model.inputs else None}, expected RGB images")
    if len(model.outputs) != 1 or tuple(model.outputs[0].shape[1:]) != (5,):
        shape = model.outputs[0].shape if model.outputs else None
        raise ModelFileError(f"{path}: its output is {shape}, expected 5 values (x, y, a, b, rb)")
    try:
        model.get_layer("preprocess")
    except ValueError:
        raise ModelFileError(f"{path} has no KartStudio preprocessing layer; it was not made by KartStudio") from None
    spec = input_spec(model)
    if not (isinstance(spec.history, int) and 1 <= spec.history <= MAX_HISTORY) or model.inputs[0].shape[-1] != 3 * spec.history:
        raise ModelFileError(f"{path} claims a frame history of {spec.history} for an input of "
                             f"{model.inputs[0].shape[-1]} channels; KartStudio models see 1 to {MAX_HISTORY} RGB frames")
    for name in ACTIVATION_LAYERS:
        try:
            model.get_layer(name)
        except ValueError:
            raise ModelFileError(f"{path} has no layer {name!r}; it is not a KartStudio driving model") from None
    check_weights(model, path)


# -- TensorKart weights --------------------------------------------------------------------------


def _legacy_h5_weights(path: Path) -> list[np.ndarray]:
    """The weight arrays of a Keras 1/2 ``save_weights`` HDF5 file, in layer order."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ModelFileError(f"{path} is not an HDF5 weights file (TensorKart's model_weights.h5)") from None
    with f:
        check_self_contained(f, str(path), ModelFileError)
        try:
            return _read_legacy_weights(f)
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}; it is not a Keras weights file like TensorKart's model_weights.h5") from None
        except Exception as exc:  # noqa: BLE001 - a damaged HDF5 object, an attribute h5py cannot read
            raise ModelFileError(f"{path} cannot be read as Keras weights ({type(exc).__name__}); "
                                 "use TensorKart's model_weights.h5") from None


def _read_legacy_weights(f) -> list[np.ndarray]:
    """Every name in the file checked before it is followed: a hand-made file fails in one line."""
    import h5py

    group = f.get("model_weights", f)
    if not isinstance(group, h5py.Group):
        raise ModelFileError("model_weights is not a group")

    def names_of(obj, attr: str) -> list[str]:
        names = np.asarray(obj.attrs.get(attr, []))
        if names.size == 0:
            return []  # a layer without weights (flatten, dropout)
        if names.ndim != 1 or len(names) > 1000 or names.dtype.kind not in "SUO":
            raise ModelFileError(f"{attr} of {obj.name} is not a list of names")
        return [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names]

    if "layer_names" not in group.attrs:
        raise ModelFileError("no layer_names")
    arrays = []
    for layer in names_of(group, "layer_names"):
        g = group.get(layer)
        if not isinstance(g, h5py.Group):
            raise ModelFileError(f"layer {layer!r} is named in layer_names but not stored")
        for w in names_of(g, "weight_names"):
            ds = g.get(w)
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu" or ds.size > 50_000_000:
                raise ModelFileError(f"weight {w!r} of layer {layer!r} is missing or not an array of numbers")
            arrays.append(np.asarray(ds))
    return arrays


def import_tensorkart_weights(weights_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """TensorKart's ``model_weights.h5`` -> a KartStudio ``.keras`` model of the ``tensorkart`` kind.

    Weights are matched in layer order (kernel, bias per layer) and must have TensorKart's shapes.
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise ModelFileError(f"{weights_path}: no such weights file")
    arrays = _legacy_h5_weights(weights_path)
    model = build_tensorkart()
    expected = [v for layer in model.layers for v in layer.weights]
    if len(arrays) != len(expected):
        raise ModelFileError(
            f"{weights_path} holds {len(arrays)} weight arrays; TensorKart's network has {len(expected)}"
        )
    for var, arr in zip(expected, arrays):
        if tuple(var.shape) != arr.shape:
            raise ModelFileError(
                f"{weights_path}: weight {var.path} has shape {arr.shape}, TensorKart's network needs {tuple(var.shape)}"
            )
        var.assign(arr.astype(np.float32))
    check_weights(model, weights_path)
    return save_model(model, out)


__all__ = [
    "ACTIVATION_LAYERS",
    "INPUT_SIZE",
    "Actions",
    "DrivingLoss",
    "InputSpec",
    "LAYOUTS",
    "LOSSES",
    "MODEL_KINDS",
    "ModelFileError",
    "OUTPUT_NAMES",
    "Preprocess",
    "build_kartstudio",
    "build_model",
    "build_seed",
    "button_thresholds",
    "paced_buttons",
    "button_weights",
    "input_spec",
    "make_loss",
    "set_input_spec",
    "build_tensorkart",
    "check_driving_model",
    "euclidean_loss",
    "import_tensorkart_weights",
    "input_size",
    "keras",
    "load_model",
    "resize_images",
    "save_model",
    "tf",
]
