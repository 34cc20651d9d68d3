"""The Pilot: one compiled call per frame, outputs and activation maps, from any image size."""

import sys

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


# -- the engines: LiteRT (XNNPACK) and the tf.function fallback ---------------------------------

from kartstudio.bench.training import check_engine, synthetic_seat_frame  # noqa: E402
from kartstudio.pilot_engine import AreaResize, EngineError, cache_path  # noqa: E402


def _frames(n: int, size=(120, 320)) -> np.ndarray:
    """n seat views: a road bending left to right, with capture-like noise so no two are alike."""
    rng = np.random.default_rng(7)
    road = [synthetic_seat_frame(float(s), i, rng, size) for i, s in enumerate(np.linspace(-1, 1, 50))]
    noise = rng.integers(-12, 13, (max(1, n // 50 + 1), *size, 3), dtype=np.int16)
    return np.stack([np.clip(road[i % 50] + noise[i // 50], 0, 255).astype(np.uint8) for i in range(n)])


def test_litert_gives_the_keras_models_actions_and_maps_on_1000_frames(model):
    pilot = Pilot(model, engine="litert")
    assert pilot.engine.startswith("LiteRT") and "XNNPACK" in pilot.engine and "1 thread" in pilot.engine
    frames = _frames(1000)
    worst = check_engine(pilot, model, frames)
    assert worst["frames"] == 1000
    assert worst["max_abs_diff_action"] <= 1e-4
    assert worst["max_abs_diff_conv2"] <= 1e-3 and worst["max_abs_diff_conv4"] <= 1e-3
    # the frames really drive the network to different actions (a constant would pass the above too)
    actions = np.array([pilot.predict(f, activations=False).action for f in frames[::20]])
    assert actions.std(axis=0).max() > 1e-3
    # and the tf.function fallback agrees with it, buttons decided the same way
    tf_pilot = Pilot(model, engine="tensorflow", threads=2)
    assert tf_pilot.engine.startswith("TensorFlow")
    for f in frames[::97]:
        lite, ref = pilot.predict(f), tf_pilot.predict(f)
        np.testing.assert_allclose(lite.action, ref.action, atol=1e-4)
        assert lite.pressed == ref.pressed


def test_the_resize_in_the_pilot_is_the_models_own():
    rng = np.random.default_rng(2)
    for shape in [(120, 320, 3), (240, 640, 3), (66, 200, 3), (101, 333, 3), (120, 320, 9), (50, 90, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = resize_images(image[None]).numpy()[0] / 255.0
        got = AreaResize(shape, (66, 200), 1 / 255.0)(image)
        assert got.shape == (66, 200, shape[2])
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_a_history_model_runs_on_litert(tmp_path):
    keras.utils.set_random_seed(4)
    model = build_model("kartstudio", history=3)
    pilot = Pilot(model, engine="litert")
    frames = _frames(5)
    for i, frame in enumerate(frames):
        out = pilot.predict(frame)
        stack = np.concatenate([frames[max(0, j)] for j in range(i - 2, i + 1)], axis=-1)
        expected = model(stack[None].astype(np.float32), training=False)[0]
        np.testing.assert_allclose(out.action, expected, atol=1e-4)


def test_the_compiled_network_is_cached_next_to_the_model_and_only_ours_is_read(tmp_path, model, monkeypatch):
    path = tmp_path / "bc.keras"
    save_model(model, path)
    frame = _frames(1)[0]
    first = Pilot.load(path)
    assert "compiled now and cached" in first.engine and cache_path(path).is_file()
    again = Pilot.load(path)
    assert "compiled earlier (cache)" in again.engine
    np.testing.assert_array_equal(again.predict(frame).action, first.predict(frame).action)

    # a changed model is compiled again: the cache is for the old file's bytes
    keras.utils.set_random_seed(11)
    other = build_model("kartstudio")
    save_model(other, path)
    changed = Pilot.load(path)
    assert "compiled now" in changed.engine
    expected = other(frame[None].astype(np.float32), training=False)[0]
    np.testing.assert_allclose(changed.predict(frame).action, expected, atol=1e-4)
    assert "compiled earlier (cache)" in Pilot.load(path).engine

    # a cache file we did not write (another user's key, or edited) is never used
    data = bytearray(cache_path(path).read_bytes())
    data[-100] ^= 0xFF
    cache_path(path).write_bytes(bytes(data))
    assert "compiled now" in Pilot.load(path).engine
    assert "compiled earlier (cache)" in Pilot.load(path).engine
    monkeypatch.setenv("KARTSTUDIO_CONFIG_DIR", str(tmp_path / "someone-else"))
    assert "compiled now" in Pilot.load(path).engine  # their key: our cache is not theirs


def test_an_unwritable_cache_compiles_in_memory(tmp_path, model):
    path = tmp_path / "ro.keras"
    save_model(model, path)
    cache_path(path).mkdir()  # where the cache would go, something we cannot replace (works as root too)
    pilot = Pilot.load(path)
    assert pilot.engine.endswith("compiled now") and cache_path(path).is_dir()
    assert pilot.predict(_frames(1)[0]).action.shape == (5,)


def test_without_litert_the_tf_function_runs_and_says_so(model, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if not installed
    with caplog.at_level("WARNING", logger="kartstudio.pilot_engine"):
        pilot = Pilot(model)
    assert pilot.engine.startswith("TensorFlow") and "ai-edge-litert" in pilot.engine
    assert [r.getMessage() for r in caplog.records] == [f"pilot: {pilot.engine}"]
    out = pilot.predict(np.full((120, 320, 3), 90, np.uint8))
    np.testing.assert_allclose(out.action, model(np.full((1, 120, 320, 3), 90, np.float32), training=False)[0], atol=1e-5)
    with pytest.raises(EngineError, match="ai-edge-litert"):
        Pilot(model, engine="litert")
    with pytest.raises(KartStudioError, match="threads"):
        Pilot(model, threads=0)
