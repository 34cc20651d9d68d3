"""The whole loop on the practice track, tiny: expert demonstrations -> real Recorder -> real
Trainer -> the model drives (eval) -> DAgger corrections -> retrained. Asserts that it runs and
writes real files with sensible contents, not that the tiny model drives well."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("Box2D", reason="the practice track needs gymnasium[box2d]")

from kartstudio.cli import main  # noqa: E402
from kartstudio.practice.demos import record_demonstrations, record_track  # noqa: E402
from kartstudio.session import open_session  # noqa: E402


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demos")
    return folder, record_track(folder, seed=1000, seats=(1, 2), limit=300)


def test_demonstrations_are_two_seat_sessions_labelled_by_the_expert(demos):
    folder, result = demos
    assert result.frames >= 300 and len(result.paths) == 2
    with open_session(result.paths[0]) as s1, open_session(result.paths[1]) as s2:
        assert (s1.meta.seat, s2.meta.seat) == (1, 2)
        assert s1.meta.game == "practice" and s1.meta.kind == "play" and s1.meta.track == "seed-1000"
        assert s1.frames.shape[1:] == (120, 320, 3)
        assert len(s1) + len(s2) == result.frames
        actions = s1.actions[:]
        assert actions[:, 2].mean() > 0.5  # the expert mostly holds the gas
        assert np.abs(actions[:, 0]).max() > 0.05  # and steers
        # the stored seat image is the seat's own view: its car (red for seat 1) sits near the bottom centre
        frame = s1.frames[len(s1) // 2]
        assert (frame[98:118, 150:170] == (204, 0, 0)).all(axis=-1).any()


def test_minutes_of_demonstrations_count_frames_of_all_seats(tmp_path):
    result = record_demonstrations(tmp_path, minutes=8 / 60)  # 200 frames at 25 fps
    assert 200 <= result.frames <= 202 and len(result.paths) == 2


def test_record_train_eval_and_dagger_end_to_end(demos, tmp_path, capsys):
    folder, _ = demos
    model = tmp_path / "tiny.keras"
    assert main(["train", str(folder), "-o", str(model), "--epochs", "1", "--quiet"]) == 0
    assert model.is_file()
    capsys.readouterr()

    assert main(["eval", "--model", str(model), "--episodes", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 1 and math.isfinite(report["mean_return"])
    assert report["details"][0]["steps"] > 0
    # the same weights with the gas at its threshold instead of paced (the ablation's comparison)
    assert main(["eval", "--model", str(model), "--episodes", "1", "--gas", "threshold", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["driver"] == "tiny.keras (gas threshold)" and math.isfinite(report["mean_return"])

    out = tmp_path / "tiny-dagger.keras"
    corrections = tmp_path / "corrections"
    assert main([
        "dagger", "--model", str(model), "--data", str(folder), "-o", str(out), "--folder", str(corrections),
        "--tracks", "1", "--minutes", str(100 / 25 / 60), "--epochs", "1", "--episodes", "1", "--json",
    ]) == 0
    result = json.loads(capsys.readouterr().out)
    assert out.is_file() and math.isfinite(result["before"]["mean_return"])
    (round1,) = result["rounds"]
    # the 100 frames asked for, or fewer where the tiny model leaves the road and the episode ends
    frames = round1["correction_frames"]
    assert 0 < frames <= 100 and math.isfinite(round1["mean_return"])
    (path,) = round1["correction_files"]
    with open_session(path) as s:
        assert s.meta.kind == "correction" and len(s) == frames and s.meta.extra["labels"] == "expert"


@pytest.mark.parametrize("change, words", [
    ("history=0", "history"),
    ("stick_weight=-1", "stick weight"),
    ("nope=1", "FIELD=VALUE"),
])
def test_bench_drive_refuses_a_bad_recipe_change_before_recording(tmp_path, capsys, change, words):
    folder = tmp_path / "bench"
    assert main(["bench", "drive", "--quick", "--folder", str(folder), "--set", change]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not (folder / "sessions").exists()  # nothing was recorded


@pytest.mark.parametrize("args, words", [
    (["--train-epochs", "2", "--train-minutes", "1"], "not both"),
    (["--train-epochs", "0"], "train-epochs"),
])
def test_bench_drive_takes_one_training_budget(tmp_path, capsys, args, words):
    folder = tmp_path / "bench"
    try:
        status = main(["bench", "drive", "--quick", "--folder", str(folder), *args])
    except SystemExit as exc:  # argparse's own refusal of a value
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not (folder / "sessions").exists()


def test_the_guard_trains_a_number_of_epochs_not_a_time():
    # The guard compares the same training on any machine: its quick run trains 20 epochs, with no
    # clock (issue 22 item 8); --train-minutes is the time budget, without an epoch count of its own.
    from kartstudio.practice.bench import QUICK, BenchDriveConfig
    from kartstudio.training.budget import budget_seconds

    quick = BenchDriveConfig(**QUICK)
    assert quick.training_config().epochs == 20 and budget_seconds(quick.train_minutes) == float("inf")
    timed = BenchDriveConfig(minutes=5.0, train_epochs=None, train_minutes=5.0)
    assert timed.training_config().epochs == timed.training_recipe().epochs and budget_seconds(timed.train_minutes) == 300
