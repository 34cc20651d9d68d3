"""A training run's state.json (kartstudio.training.run_state): what resume and the app read back."""

import json

import pytest

from kartstudio.errors import KartStudioError
from kartstudio.paths import run_finished
from kartstudio.training.run_state import RunState

# What KartStudio wrote before RunState (one epoch, then the end of the run): keys as they were.
OLD_STATE = {
    "epochs_done": 2, "best_loss": 0.25, "best_epoch": 1, "wait": 1,
    "history": [{"epoch": 1, "loss": 0.5, "val_loss": 0.25, "samples_per_s": 900.0, "input_wait": 0.1},
                {"epoch": 2, "loss": 0.4, "val_loss": 0.3, "samples_per_s": 950.0, "input_wait": 0.1}],
    "val_paths": ["/data/s2.h5"], "config": {"loss": "driving", "epochs": 60}, "finished": False,
}


def test_state_round_trips_and_is_written_atomically(tmp_path):
    state = RunState(val_paths=["/data/a.h5"], val_end_share=0.1, config={"loss": "mse"})
    assert state.judge(0.5, 1, 0.0) and not state.judge(0.6, 2, 0.0)  # the second epoch is no better
    state.add_epoch({"epoch": 1, "loss": 0.7, "val_loss": 0.5, "samples_per_s": 10.0, "input_wait": 0.0})
    state.write(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind
    assert RunState.read(tmp_path) == state
    assert "finished" not in json.loads((tmp_path / "state.json").read_text())
    assert (state.best_epoch, state.best_loss, state.wait, state.epochs_done) == (1, 0.5, 1, 1)
    # until the run ends, whether it finished is unknown to the app; then it is written
    model = tmp_path / "m.keras"  # its checkpoint folder is m.checkpoints
    folder = tmp_path / "m.checkpoints"
    state.write(folder)
    assert run_finished(model) is None
    state.finished = True
    state.write(folder)
    assert run_finished(model) is True and RunState.read(folder).finished is True


def test_a_state_json_of_an_earlier_version_reads(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({**OLD_STATE, "a_key_from_elsewhere": 1}))
    state = RunState.read(tmp_path)
    assert state.epochs_done == 2 and state.best_epoch == 1 and state.val_paths == ["/data/s2.h5"]
    assert state.history == OLD_STATE["history"] and state.config["loss"] == "driving"
    assert state.val_end_share == 0.0 and state.finished is False  # a key it lacks takes its default
    state.write(tmp_path)  # and what is written back keeps every key it had
    again = json.loads((tmp_path / "state.json").read_text())
    assert {k: again[k] for k in OLD_STATE} == OLD_STATE


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_damaged_state_json_is_one_line(tmp_path, text):
    (tmp_path / "state.json").write_text(text)
    with pytest.raises(KartStudioError, match="state.json.*start a new run") as err:
        RunState.read(tmp_path)
    assert "\n" not in str(err.value)
