"""What training refuses or stops on: labels out of range, a bad learning rate, a loss that
is no longer a number; and what an unfinished first epoch leaves behind (nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from kartstudio.bench.training import synthetic_seat_frame, write_synthetic_session
from kartstudio.cli import main
from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError, SessionFileError
from kartstudio.model import load_model
from kartstudio.session import SessionMeta, SessionWriter
from kartstudio.training import SessionDataset, TrainConfig, Trainer
from kartstudio.training.recipe import recipe

SMALL = (60, 160)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guard-sessions")
    for i in range(2):
        write_synthetic_session(folder / f"s{i}.h5", 60, seed=i, size=SMALL, distinct=8)
    return folder


def _session_with_label(path, bad_label, at=3, frames=8):
    rng = np.random.default_rng(0)
    meta = SessionMeta(game="synthetic", track="guard", storage_size=SMALL, source="test", fps=30.0)
    with SessionWriter(path, meta) as w:
        for i in range(frames):
            action = bad_label if i == at else (0.1, 0.0, 1.0, 0.0, 0.0)
            w.append(synthetic_seat_frame(0.1, i, rng, SMALL), ControllerState(a=True), i / 30, i, action=action)
    return path


def _exit_status(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusal of a value that is not a number
        return exc.code


@pytest.mark.parametrize("label", [(1e30, 0, 1, 0, 0), (0, -1.5, 1, 0, 0), (0, 0, 2.0, 0, 0), (0, 0, 1, -0.5, 0),
                                   (0, 0, 1, 0, float("nan"))])
def test_labels_out_of_range_are_refused_naming_the_session(tmp_path, label):
    bad = _session_with_label(tmp_path / "bad.h5", label)
    with pytest.raises(SessionFileError) as err:
        SessionDataset([bad])
    text = str(err.value)
    assert str(bad) in text and "frame 3" in text and "out of range" in text and "\n" not in text


def test_train_cli_refuses_bad_labels_and_learning_rates(tmp_path, sessions, capsys):
    bad = _session_with_label(tmp_path / "bad.h5", (1e30, 0, 1, 0, 0))
    assert main(["train", str(bad), "-o", str(tmp_path / "m.keras"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.h5" in err and "out of range" in err and len(err.splitlines()) == 1
    for lr in ("inf", "nan", "0", "-1e-3"):
        assert _exit_status(["train", str(sessions), "-o", str(tmp_path / "m.keras"), "--lr", lr]) == 2
        err = capsys.readouterr().err.strip()
        assert "--lr" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m.checkpoints").exists()


def test_a_loss_that_is_not_a_number_stops_the_run_and_keeps_the_last_finite_model(tmp_path, sessions):
    out = tmp_path / "m.keras"

    def on_epoch(p):  # after a good first epoch, a learning rate that blows the weights up
        trainer.model.optimizer.learning_rate.assign(1e35)

    trainer = Trainer(TrainConfig.from_recipe(recipe("seed-mse", epochs=4, batch_size=20), val_sessions=0), on_epoch=on_epoch)
    result = trainer.fit([sessions], out)
    assert result.stopped_because is not None and "epoch 2" in result.stopped_because
    assert "epoch 1" in result.stopped_because and "kept" in result.stopped_because
    assert result.epochs_done == 1 and result.best_epoch == 1 and len(result.history) == 1
    assert np.isfinite(result.best_loss)
    assert result.model_path == out
    for name in (out, result.checkpoint_dir / "best.keras", result.checkpoint_dir / "last.keras"):
        assert all(np.isfinite(w).all() for w in load_model(name).get_weights()), name


def test_an_unfinished_first_epoch_leaves_no_checkpoint_folder(tmp_path, sessions):
    trainer = Trainer(TrainConfig.from_recipe(recipe("default", epochs=2, batch_size=20), val_sessions=0),
                      on_batch=lambda p: trainer.cancel())
    result = trainer.fit([sessions], tmp_path / "m.keras")
    assert result.cancelled and result.model_path is None and result.epochs_done == 0
    assert not (tmp_path / "m.checkpoints").exists()
    assert not (tmp_path / "m.keras").exists()


def test_a_frame_that_does_not_decompress_mid_training_is_named(tmp_path, capsys):
    """Read on TensorFlow's threads, the error still reaches the user as one line naming the file."""
    path = write_synthetic_session(tmp_path / "a.h5", 60, seed=3, size=SMALL, distinct=8)
    with SessionDataset([path], batch_size=10) as ds:
        offset, size = int(ds.index.offsets[30]), int(ds.index.sizes[30])
    with open(path, "r+b") as f:  # the index is fine (the file opens); one frame's bytes are not
        f.seek(offset)
        f.write(b"\0" * size)
    assert main(["train", str(path), "-o", str(tmp_path / "m.keras"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{path} is damaged: frame 30 does not decompress: re-record or delete it") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "m.checkpoints").exists()


def test_the_recipe_stick_weight_reaches_the_driving_loss_and_bad_weights_are_refused():
    from kartstudio.model import make_loss
    from kartstudio.training.trainer import TrainConfig

    cfg = TrainConfig.from_recipe(recipe("default", stick_weight=5.0))
    assert cfg.stick_weight == 5.0
    actions = np.array([[0.1, 0, 1, 0, 0], [-0.2, 0, 0, 1, 0]], np.float32)
    assert make_loss("driving", actions, stick_weight=cfg.stick_weight).stick_weight == 5.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(KartStudioError, match="stick weight"):
            TrainConfig(stick_weight=bad).check()


def test_frame_history_on_another_network_is_refused_before_training():
    from kartstudio.training.trainer import TrainConfig

    with pytest.raises(KartStudioError, match="kartstudio network"):
        TrainConfig(history=3, model="seed").check()
    TrainConfig(history=3).check()  # the default network takes it


def _whole_screen_session(path, frames=30):
    rng = np.random.default_rng(1)
    meta = SessionMeta(game="tensorkart", track="luigi", storage_size=SMALL, source="tensorkart-npy", fps=10.0,
                       layout="whole")
    with SessionWriter(path, meta) as w:
        for i in range(frames):
            w.append(synthetic_seat_frame(0.2, i, rng, SMALL), ControllerState(a=True), i / 10, i)
    return path


def test_whole_screen_and_seat_sessions_are_never_mixed_and_fine_tuning_keeps_the_layout(tmp_path, sessions, capsys):
    """Either order used to train: the first file decided what the model looks at."""
    whole = _whole_screen_session(tmp_path / "luigi.h5")
    seat = sessions / "s0.h5"
    for order in ([seat, whole], [whole, seat]):
        assert main(["train", *map(str, order), "-o", str(tmp_path / "m.keras"), "--epochs", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert "luigi.h5" in err and "s0.h5" in err and "train them separately" in err and "\n" not in err
    assert not (tmp_path / "m.keras").exists()
    # a whole-screen model fine-tuned on seat sessions would silently become a seat model
    trainer = Trainer(TrainConfig.from_recipe(recipe("seed-mse", epochs=1, batch_size=10), val_sessions=0))
    model_path = trainer.fit([whole], tmp_path / "whole.keras").model_path
    from kartstudio.model import input_spec

    assert input_spec(load_model(model_path)).layout == "whole"
    with pytest.raises(KartStudioError, match="whole-screen recordings but these sessions hold one seat"):
        Trainer(TrainConfig.from_recipe(recipe("seed-mse", epochs=1, batch_size=10), val_sessions=0, init_model=str(model_path))
                ).fit([seat], tmp_path / "tuned.keras")
    assert not (tmp_path / "tuned.keras").exists()
