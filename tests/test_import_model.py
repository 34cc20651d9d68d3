"""A TensorKart model brought over with `import-model` drives as it did in TensorKart.

TensorKart's network is built here layer for layer as its train.py did (a Sequential model of
66x200x3 floats in 0..1), trained briefly so its outputs vary, and its weights saved in the
Keras 2 HDF5 layout of ``model.save_weights('model_weights.h5')``. After the import, KartStudio's
Pilot, fed whole game screens as a "whole" model is, must give what TensorKart's own pipeline
gives (skimage's resize of the whole screenshot to 66x200, then predict).
"""

import h5py
import numpy as np
import pytest
from skimage.transform import resize as skimage_resize

from kartstudio.bench.record import synthetic_view
from kartstudio.cli import main
from kartstudio.game import SeatLayout
from kartstudio.model import input_spec, keras, load_model
from kartstudio.pilot import Pilot


def _tensorkart_network(keep_prob=0.8):
    """train.py's create_model(): NVIDIA's network with TensorKart's dense sizes."""
    layers = keras.layers
    drop = 1 - keep_prob
    return keras.Sequential([
        keras.Input((66, 200, 3)),
        layers.Conv2D(24, (5, 5), strides=(2, 2), activation="relu"),
        layers.Conv2D(36, (5, 5), strides=(2, 2), activation="relu"),
        layers.Conv2D(48, (5, 5), strides=(2, 2), activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(1164, activation="relu"), layers.Dropout(drop),
        layers.Dense(100, activation="relu"), layers.Dropout(drop),
        layers.Dense(50, activation="relu"), layers.Dropout(drop),
        layers.Dense(10, activation="relu"), layers.Dropout(drop),
        layers.Dense(5, activation="softsign"),
    ])


def _tensorkart_resize(screenshot):
    """utils.py's resize_image: skimage's resize to (66, 200, 3), floats in 0..1."""
    return skimage_resize(screenshot, (66, 200, 3))


@pytest.fixture(scope="module")
def tensorkart(tmp_path_factory):
    """(TensorKart's model, its model_weights.h5, the screenshots it was trained on)."""
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    model = _tensorkart_network()
    assert model.count_params() == 1_595_555
    # whole 640x480 game screens of a road scene (textured grass, kerbs, a kart), as TensorKart saw,
    # labelled with what the road does (its bends), so the network learns outputs that vary
    ts = [5 * i for i in range(32)]
    shots = [synthetic_view(t, 1 + i % 2, 480, 640) for i, t in enumerate(ts)]
    X = np.stack([_tensorkart_resize(s) for s in shots])
    y = 0.9 * np.float32([[np.sin(0.02 * t + 1 + i % 2), np.cos(0.05 * t), i % 2, t % 3 == 0, 0.5 * np.sin(0.05 * t)]
                          for i, t in enumerate(ts)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(X, y, epochs=12, batch_size=16, verbose=0)
    path = tmp_path_factory.mktemp("tk") / "model_weights.h5"
    with h5py.File(path, "w") as f:  # what Keras 2's model.save_weights('model_weights.h5') wrote
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return model, path, shots


@pytest.fixture(scope="module")
def imported(tensorkart, tmp_path_factory):
    _, weights, _ = tensorkart
    out = tmp_path_factory.mktemp("ks") / "tensorkart.keras"
    assert main(["import-model", str(weights), "-o", str(out)]) == 0
    return out


def test_imported_model_is_fed_the_whole_screen(imported):
    spec = input_spec(load_model(imported))
    assert spec.layout == "whole"
    assert Pilot.load(imported).image_size == (240, 320)  # the whole 4:3 screen, as imports store it


def test_same_66x200_input_gives_the_same_outputs(tensorkart, imported):
    model, _, shots = tensorkart
    X = np.stack([_tensorkart_resize(s) for s in shots]).astype(np.float32)
    theirs = model.predict(X, verbose=0)
    ours = load_model(imported).predict(X * 255.0, verbose=0)  # KartStudio models take 0..255
    assert np.ptp(theirs, axis=0).max() > 0.1  # a model whose outputs vary, not a constant one
    assert np.abs(theirs - ours).max() < 1e-3


@pytest.mark.parametrize("screen", [(480, 640), (600, 800)])
def test_pilot_on_screenshots_reproduces_tensorkarts_pipeline(tensorkart, imported, screen):
    model, _, _ = tensorkart
    pilot = Pilot.load(imported)
    layout = SeatLayout.split_screen()
    # unseen frames of the same road; 800x600 is what real public recordings hold
    shots = [synthetic_view(5 * t + 2, 1 + t % 2, *screen) for t in range(12)]
    theirs = model.predict(np.stack([_tensorkart_resize(s) for s in shots]), verbose=0)
    ours = np.stack([pilot.predict(pilot.view(s, 1, layout), activations=False).action for s in shots])
    assert np.abs(theirs - ours).max() < 0.01, np.abs(theirs - ours).max(axis=0)
