"""The driving networks: structure, saving and safe loading, TensorKart weights import."""

import json
import zipfile

import h5py
import numpy as np
import pytest

from kartstudio.cli import main
from kartstudio.model import (
    Actions,
    DrivingLoss,
    ModelFileError,
    button_thresholds,
    button_weights,
    build_kartstudio,
    build_seed,
    input_spec,
    make_loss,
    set_input_spec,
    build_model,
    build_tensorkart,
    import_tensorkart_weights,
    keras,
    load_model,
    save_model,
)


def _layers(model, kind):
    return [layer for layer in model.layers if type(layer).__name__ == kind]


def test_seed_network_matches_the_seed_description():
    m = build_seed()
    names = [layer.name for layer in m.layers]
    convs = _layers(m, "Conv2D")
    assert [c.filters for c in convs] == [24, 36, 48, 64, 64]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 3 + [(3, 3)] * 2
    assert [c.strides for c in convs] == [(2, 2)] * 3 + [(1, 1)] * 2
    # pooling between the 2nd and 3rd convolution, dropout after the 5th
    assert names.index("conv2") < names.index("pool") < names.index("conv3")
    assert type(m.layers[names.index("conv5") + 1]).__name__ == "Dropout"
    dense = _layers(m, "Dense")
    assert [d.units for d in dense] == [1164, 100, 50, 10, 5]
    for d in dense[:4]:  # each hidden dense layer is followed by dropout
        assert type(m.layers[names.index(d.name) + 1]).__name__ == "Dropout"
    assert dense[-1].activation.__name__ == "softsign"
    # any image size in, 5 outputs
    for shape in [(66, 200), (120, 320), (240, 640)]:
        assert m(np.zeros((2, *shape, 3), np.float32)).shape == (2, 5)


def test_kartstudio_network_keeps_the_seed_convolutions_and_splits_stick_from_buttons():
    m = build_kartstudio()
    names = [layer.name for layer in m.layers]
    assert [c.filters for c in _layers(m, "Conv2D")] == [24, 36, 48, 64, 64]
    assert names.index("conv2") < names.index("pool") < names.index("conv3")  # the Versus tab shows conv2/conv4
    assert m.get_layer("stick").activation.__name__ == "tanh"
    assert m.get_layer("buttons").activation.__name__ == "sigmoid"
    assert isinstance(m.get_layer("actions"), Actions)
    # no dropout between the last dense layers and the outputs (the seed's bottleneck)
    assert [type(m.layers[names.index(n) - 1]).__name__ for n in ("dense2",)] == ["Dense"]
    x = np.random.default_rng(0).integers(0, 255, (2, 120, 320, 3)).astype(np.float32)
    y = np.asarray(m(x))
    assert y.shape == (2, 5) and np.all(np.abs(y[:, :2]) <= 1) and np.all((y[:, 2:] >= 0) & (y[:, 2:] <= 1))
    # a history of 3 frames: 9 input channels, the same outputs
    h = build_kartstudio(history=3)
    assert h(np.zeros((1, 120, 320, 9), np.float32)).shape == (1, 5)
    assert input_spec(h).history == 3


def test_driving_loss_weighs_rare_presses_and_is_zero_when_exact():
    actions = np.zeros((100, 5), np.float32)
    actions[:4, 3] = 1  # the brake pressed on 4% of frames
    actions[:50, 2] = 1  # gas on half
    w = button_weights(actions)
    assert w[0] == 1.0 and w[1] == pytest.approx(np.sqrt(96 / 4)) and w[2] == 10.0  # never pressed: capped
    loss = make_loss("driving", actions)
    assert isinstance(loss, DrivingLoss) and loss.button_weights == list(w)
    exact = np.array([[0.5, 0.0, 1.0, 0.0, 0.0]], np.float32)
    assert float(loss(exact, exact)) < 1e-4
    missed_brake = float(loss(np.array([[0, 0, 0, 1, 0]], np.float32), np.array([[0, 0, 0, 0.1, 0]], np.float32)))
    missed_gas = float(loss(np.array([[0, 0, 1, 0, 0]], np.float32), np.array([[0, 0, 0.1, 0, 0]], np.float32)))
    assert missed_brake > 4 * missed_gas  # a missed brake costs more than a missed (common) gas press
    with pytest.raises(Exception, match="unknown loss"):
        make_loss("hinge")


def test_thresholds_and_input_spec_survive_save_and_safe_load(tmp_path):
    m = build_model("kartstudio")
    m.get_layer("actions").thresholds = [0.7, 0.2, 0.5]
    set_input_spec(m, "whole", (240, 320))
    loaded = load_model(save_model(m, tmp_path / "m.keras"))
    assert button_thresholds(loaded) == (0.7, 0.2, 0.5)
    spec = input_spec(loaded)
    assert spec.layout == "whole" and tuple(spec.image_size) == (240, 320)
    assert button_thresholds(build_seed()) is None  # softsign outputs: TensorKart's rounding


def test_tensorkart_network_is_tensorkarts():
    m = build_tensorkart()
    assert m.count_params() == 1_595_555  # TensorKart's train.py summary
    assert not _layers(m, "MaxPooling2D")
    assert m.get_layer("flatten").output.shape[1:] == (1152,)
    assert [d.units for d in _layers(m, "Dense")] == [1164, 100, 50, 10, 5]


def test_save_and_load_round_trip_keeps_outputs_and_preprocessing(tmp_path):
    m = build_model("kartstudio")
    path = save_model(m, tmp_path / "m.keras")
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    pre = config["config"]["layers"][1]
    assert pre["class_name"] == "Preprocess" and pre["config"]["size"] == [66, 200]
    loaded = load_model(path)
    x = np.random.default_rng(0).integers(0, 255, (3, 120, 320, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), m(x), atol=1e-6)


def test_model_with_code_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "ran"

    def payload(t):
        marker.touch()  # would prove the file's code ran
        return t[:, :5, 0, 0]

    inp = keras.Input((None, None, 3))
    evil = keras.Model(inp, keras.layers.Lambda(payload)(inp))
    evil.save(tmp_path / "evil.keras")
    marker.unlink(missing_ok=True)
    with pytest.raises(ModelFileError, match="evil.keras.*safe mode"):
        load_model(tmp_path / "evil.keras")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a model", None])
def test_corrupt_or_missing_model_is_one_clear_error(tmp_path, content):
    path = tmp_path / "broken.keras"
    if content is None:  # a real model cut in half
        save_model(build_tensorkart(), tmp_path / "whole.keras")
        data = (tmp_path / "whole.keras").read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="broken.keras"):
        load_model(path)
    with pytest.raises(ModelFileError, match="missing.keras: no such model file"):
        load_model(tmp_path / "missing.keras")


def test_model_with_wrong_outputs_is_refused(tmp_path):
    inp = keras.Input((66, 200, 3))
    other = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(inp)))
    other.save(tmp_path / "other.keras")
    with pytest.raises(ModelFileError, match="other.keras: its output .* expected 5"):
        load_model(tmp_path / "other.keras")


def _tensorkart_weights_file(path, rng, break_shape=False):
    """An HDF5 file laid out as Keras 2's save_weights wrote TensorKart's model_weights.h5."""
    layers = [
        ("conv2d_1", [(5, 5, 3, 24), (24,)]),
        ("conv2d_2", [(5, 5, 24, 36), (36,)]),
        ("conv2d_3", [(5, 5, 36, 48), (48,)]),
        ("conv2d_4", [(3, 3, 48, 64), (64,)]),
        ("conv2d_5", [(3, 3, 64, 64), (64,)]),
        ("flatten_1", []),
        ("dense_1", [(1152, 1164), (1164,)]),
        ("dropout_1", []),
        ("dense_2", [(1164, 100), (100,)]),
        ("dropout_2", []),
        ("dense_3", [(100, 50), (50,)]),
        ("dropout_3", []),
        ("dense_4", [(50, 10), (10,)]),
        ("dropout_4", []),
        ("dense_5", [(10, 5), (5,)]),
    ]
    arrays = []
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        f.attrs["backend"] = b"tensorflow"
        for name, shapes in layers:
            g = f.create_group(name)
            wnames = []
            for shape, kind in zip(shapes, ("kernel", "bias")):
                if break_shape and name == "dense_1" and kind == "kernel":
                    shape = (1000, 1164)
                a = rng.normal(0, 0.05, shape).astype(np.float32)
                g.create_dataset(f"{name}/{kind}:0", data=a)
                wnames.append(f"{name}/{kind}:0".encode())
                arrays.append(a)
            g.attrs["weight_names"] = wnames
    return arrays


def test_tensorkart_weights_import(tmp_path):
    rng = np.random.default_rng(1)
    arrays = _tensorkart_weights_file(tmp_path / "model_weights.h5", rng)
    out = import_tensorkart_weights(tmp_path / "model_weights.h5", tmp_path / "tk.keras")
    model = load_model(out)
    loaded = [np.asarray(v) for v in model.weights]
    assert len(loaded) == len(arrays) == 20
    for a, b in zip(arrays, loaded):
        np.testing.assert_array_equal(a, b)


def test_import_model_cli(tmp_path, capsys):
    _tensorkart_weights_file(tmp_path / "model_weights.h5", np.random.default_rng(2))
    assert main(["import-model", str(tmp_path / "model_weights.h5"), "-o", str(tmp_path / "tk.keras")]) == 0
    assert (tmp_path / "tk.keras").is_file()

    _tensorkart_weights_file(tmp_path / "bad_weights.h5", np.random.default_rng(2), break_shape=True)
    assert main(["import-model", str(tmp_path / "bad_weights.h5"), "-o", str(tmp_path / "bad.keras")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad_weights.h5" in err[0] and "(1000, 1164)" in err[0]
    assert not (tmp_path / "bad.keras").exists()

    (tmp_path / "junk.h5").write_bytes(b"junk")
    assert main(["import-model", str(tmp_path / "junk.h5"), "-o", str(tmp_path / "j.keras")]) == 2
    assert "junk.h5 is not an HDF5 weights file" in capsys.readouterr().err


def test_press_weighted_loss_counts_presses_more_and_survives_save(tmp_path):
    from kartstudio.model import PRESS_WEIGHT, build_model, keras, load_model, press_weighted_mse, save_model

    truth = np.array([[0.5, 0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0, 0.0]], np.float32)
    guess = np.zeros_like(truth)
    pressed, released = keras.ops.convert_to_numpy(press_weighted_mse(truth, guess))
    assert pressed == pytest.approx((0.25 + PRESS_WEIGHT) / 5) and released == pytest.approx(0.25 / 5)
    model = build_model("tensorkart")
    model.compile(optimizer="adam", loss=press_weighted_mse)
    save_model(model, tmp_path / "m.keras")
    assert load_model(tmp_path / "m.keras").count_params() == model.count_params()  # safe mode accepts it
