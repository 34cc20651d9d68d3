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


def test_a_paced_gas_is_pressed_on_the_share_of_frames_its_probability_gives(tmp_path, model):
    model.get_layer("actions").paced = [True, False, False]
    try:
        save_model(model, tmp_path / "paced.keras")
    finally:
        model.get_layer("actions").paced = [False, False, False]
    pilot = Pilot.load(tmp_path / "paced.keras")
    assert pilot.paced == (True, False, False)
    # gas at 0.3: 3 frames in 10, spread out; the brake (not paced) follows its threshold 0.5
    presses = [pilot._press(np.array([0.3, 0.6, 0.2])) for _ in range(10)]
    assert sum(p[0] for p in presses) == 3
    assert all(p[1] and not p[2] for p in presses)
    assert not any(presses[i][0] and presses[i + 1][0] for i in range(9))
    assert sum(pilot._press(np.array([0.95, 0, 0]))[0] for _ in range(20)) >= 19
    pilot.reset()  # a new race starts with nothing owed
    assert pilot._press(np.array([0.4, 0, 0]))[0] is False
    # the decision reaches the controller state
    out = pilot.predict(np.full((120, 320, 3), 90, np.uint8), activations=False)
    assert out.pressed is not None and out.state.a == out.pressed[0]
