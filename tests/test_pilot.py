"""The Pilot: one compiled call per frame, outputs and activation maps, from any image size."""

import numpy as np
import pytest

from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.model import ModelFileError, build_model, keras, resize_images, save_model
from kartstudio.pilot import Pilot


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    return build_model("kartstudio")


def test_pilot_matches_the_model_and_returns_activations(model):
    pilot = Pilot(model)
    rng = np.random.default_rng(0)
    for shape in [(120, 320), (66, 200), (240, 640)]:
        image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
        out = pilot.predict(image)
        assert out.action.shape == (5,)
        # the model's own preprocessing, applied by the model called directly
        expected = model(image[None].astype(np.float32), training=False)[0]
        np.testing.assert_allclose(out.action, expected, atol=1e-5)
        assert set(out.activations) == {"conv2", "conv4"}
        assert out.activations["conv2"].shape == (17, 50, 36)
        assert out.activations["conv4"].shape == (4, 13, 64)
        # conv2's map is what the network computes for this image
        sub = keras.Model(model.inputs[0], model.get_layer("conv2").output)
        np.testing.assert_allclose(out.activations["conv2"], sub(image[None].astype(np.float32))[0], atol=1e-4)
        without = pilot.predict(image, activations=False)
        assert without.activations == {}
        np.testing.assert_allclose(without.action, out.action, atol=1e-6)


def test_act_turns_outputs_into_a_controller_state(model):
    pilot = Pilot(model)
    image = np.full((120, 320, 3), 90, np.uint8)
    state = pilot.act(image)
    assert isinstance(state, ControllerState)
    assert state == ControllerState.from_tensorkart(pilot.last.action)


def test_resize_matches_between_training_and_pilot():
    image = np.random.default_rng(1).integers(0, 255, (1, 120, 320, 3), dtype=np.uint8)
    resized = resize_images(image).numpy()
    assert resized.shape == (1, 66, 200, 3)
    # area averaging keeps the mean brightness
    assert abs(resized.mean() - image.mean()) < 1.0


def test_pilot_load_refuses_bad_files_and_bad_images(tmp_path, model):
    with pytest.raises(ModelFileError, match="nope.keras"):
        Pilot.load(tmp_path / "nope.keras")
    save_model(model, tmp_path / "ok.keras")
    pilot = Pilot.load(tmp_path / "ok.keras")
    with pytest.raises(KartStudioError, match="RGB image"):
        pilot.predict(np.zeros((120, 320), np.uint8))
    out = pilot.predict(np.zeros((120, 320, 3), np.float32))  # other dtypes are converted
    assert out.action.shape == (5,)
