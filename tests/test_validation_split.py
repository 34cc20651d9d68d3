"""Validation with few recordings (issue 21 item 5): with fewer than 5 sessions the default recipe
holds out the last stretch of each session, the tensorkart recipe always its last 10%; with 5 or
more the default recipe holds out whole sessions exactly as before. Real HDF5, real TensorFlow."""

import json
from pathlib import Path

import numpy as np
import pytest

from kartstudio.bench.training import write_synthetic_session
from kartstudio.cli import main
from kartstudio.session import open_session, set_excluded
from kartstudio.training import SessionDataset, TrainConfig, Trainer
from kartstudio.training.recipe import recipe
from kartstudio.training.validation import (
    Stretch,
    ValidationSplit,
    choose_validation,
    held_out_start,
    split_by_session,
)

SMALL = (60, 160)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    return [write_synthetic_session(folder / f"s{i}.h5", 100 + 20 * i, seed=i, size=SMALL, distinct=8)
            for i in range(6)]


def test_the_held_out_end_is_the_last_share_of_a_session_never_all_of_it():
    assert held_out_start(100, 0.1) == 90 and held_out_start(120, 0.1) == 108
    assert held_out_start(5, 0.1) == 4  # at least one frame
    assert held_out_start(2, 0.9) == 1  # never all of them
    assert held_out_start(1, 0.1) == 1 and held_out_start(100, 0.0) == 100  # nothing held out


@pytest.mark.parametrize("count", [1, 2, 3])
def test_few_sessions_hold_out_the_end_of_each(sessions, count):
    split = choose_validation(sessions[:count], None, 0.1, "sessions", seed=0)
    assert split.end_share == 0.1 and split.val_paths == [] and split.train_paths == sessions[:count]
    assert split.validation_paths == sessions[:count]  # the validation frames come from every session
    with SessionDataset(split.train_paths, stretch=split.training, shuffle=False) as train, \
            SessionDataset(split.validation_paths, stretch=split.validation, shuffle=False) as val:
        for k, path in enumerate(sessions[:count]):
            n = 100 + 20 * k
            cut = n - round(n / 10)
            trained = train.index.frame_ids[train.index.file_ids == k]
            held = val.index.frame_ids[val.index.file_ids == k]
            # contiguous: everything before the cut trains, everything from it validates
            np.testing.assert_array_equal(trained, np.arange(cut))
            np.testing.assert_array_equal(held, np.arange(cut, n))
        assert val.frames == sum(round((100 + 20 * k) / 10) for k in range(count))


def test_five_or_more_sessions_still_hold_out_whole_ones_as_before(sessions):
    for count in (5, 6):
        split = choose_validation(sessions[:count], None, 0.1, "sessions", seed=3)
        assert split.end_share == 0 and (split.train_paths, split.val_paths) == split_by_session(sessions[:count], 1, 3)
        assert split.training is None and split.validation is None
    # the tensorkart recipe holds out the last 10% of each session whatever their number
    tk = recipe("tensorkart")
    split = choose_validation(sessions, None, tk.val_fraction, tk.val_holdout, seed=0)
    assert split.end_share == 0.1 and split.train_paths == sessions and not split.val_paths
    # asked for: whole sessions, or none
    assert choose_validation(sessions[:3], 1, 0.1, "sessions").val_paths != []
    assert choose_validation(sessions[:3], 1, 0.1, "sessions").end_share == 0
    assert choose_validation(sessions[:3], 0, 0.1, "end") == ValidationSplit(sessions[:3], [])


def test_frame_history_never_crosses_into_the_held_out_stretch(sessions, tmp_path):
    path = tmp_path / "gappy.h5"
    path.write_bytes(sessions[2].read_bytes())  # 140 frames
    set_excluded(path, [(120, 125)])  # an excluded range inside the held-out end
    with open_session(path) as s:
        keep = s.included_indices()
    cut = keep[held_out_start(len(keep), 0.1)]
    train_side, held_side = Stretch(0.1, held_out=False), Stretch(0.1, held_out=True)
    with SessionDataset([path], history=3, stretch=train_side, shuffle=False) as train, \
            SessionDataset([path], history=3, stretch=held_side, shuffle=False) as val:
        trained = train.index.frame_ids[train.stacks]  # (samples, 3) frame numbers each sample stacks
        held = val.index.frame_ids[val.stacks]
        assert trained.max() < cut  # no training sample sees a held-out frame
        assert held.min() == cut  # no held-out sample sees a training frame: its history starts afresh
        np.testing.assert_array_equal(held[0], [cut, cut, cut])
        assert set(train.index.frame_ids) | set(val.index.frame_ids) == set(keep)
    # with a reaction time the labels come from later pad readings: never from the held-out end
    with open_session(path) as s:
        actions = s.actions[:].astype(np.float32)
        lag = round(0.2 * s.meta.fps)
    with SessionDataset([path], stretch=train_side, shuffle=False, reaction_s=0.2) as train:
        frames = train.index.frame_ids
        np.testing.assert_array_equal(train.actions, actions[np.minimum(frames + lag, cut - 1)])


def test_training_on_three_sessions_validates_on_their_ends_and_resumes_the_same_split(sessions, tmp_path):
    trainer = Trainer(TrainConfig(epochs=2, batch_size=32, seed=0))
    result = trainer.fit(sessions[:3], tmp_path / "m.keras")
    held = [10, 12, 14]  # the last 10% of 100, 120 and 140 frames
    assert result.val_frames == sum(held) and result.train_frames == 360 - sum(held)
    assert result.validation == "validation: the last 10% of each of 3 sessions, 36 frames"
    assert all(h["val_loss"] is not None for h in result.history)
    assert result.best_loss == min(h["val_loss"] for h in result.history)  # the best epoch is picked on them
    state = json.loads((result.checkpoint_dir / "state.json").read_text())
    assert state["val_end_share"] == 0.1 and state["val_paths"] == []
    resumed = Trainer(TrainConfig(epochs=3, batch_size=32, seed=0, resume=True)).fit(sessions[:3], tmp_path / "m.keras")
    assert (resumed.epochs_done, resumed.val_frames, resumed.validation) == (3, 36, result.validation)


def test_the_tensorkart_recipe_holds_out_ten_percent_and_the_cli_says_so(sessions, tmp_path, capsys):
    out = tmp_path / "tk.keras"
    assert main(["train", str(sessions[0]), "-o", str(out), "--recipe", "tensorkart", "--epochs", "1",
                 "--batch-size", "30"]) == 0
    text = capsys.readouterr()
    assert "training on 90 frames from 1 session file(s) on CPU:0; validation: the last 10% of the session, " \
           "10 frames" in text.err
    assert "validation: the last 10% of the session, 10 frames" in text.out  # the summary says it too
    # with five sessions the default recipe holds one out whole, and says which
    assert main(["train", *map(str, sessions[:5]), "-o", str(tmp_path / "d.keras"), "--epochs", "1",
                 "--batch-size", "64", "--quiet"]) == 0
    _, val = split_by_session(sessions[:5], 1, 0)
    assert f"validation: 1 of 5 sessions held out whole ({val[0].name}), " in capsys.readouterr().out


def test_the_validation_line_in_words():
    a, b = Path("a.h5"), Path("b.h5")
    assert ValidationSplit([a, b], [], 0.15).describe(1234) == "validation: the last 15% of each of 2 sessions, 1,234 frames"
    assert ValidationSplit([a], [b]).describe(None) == "validation: 1 of 2 sessions held out whole (b.h5)"
    assert ValidationSplit([a, b], []).describe(0).startswith("validation: nothing held out")
