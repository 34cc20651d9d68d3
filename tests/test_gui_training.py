"""The Training tab with the real Trainer (TensorFlow) on a tiny set: live points, cancel, errors."""

import os

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("kartstudio.training.trainer")

from test_gui import window, write_session  # noqa: E402,F401 - fixture and helper


def test_training_worker_runs_an_epoch_and_the_plot_gets_points(window, qtbot):
    folder = window.settings.sessions_folder
    for i in range(3):
        write_session(folder, f"s{i}-p1.h5", n=60)
    tab = window.training_tab
    window.tabs.setCurrentWidget(tab)
    tab.refresh_sessions()
    assert len(tab.chosen_sessions()) == 3
    tab.epochs_box.setValue(2)
    tab.batch_box.setValue(16)
    tab.val_box.setValue(1)
    tab.name_edit.setText("tiny")
    saved = []
    tab.model_saved.connect(saved.append)
    assert tab.start_training()
    assert tab.running and not tab.start_button.isEnabled()
    qtbot.waitUntil(lambda: not tab.running, timeout=180_000)
    assert tab.notice.level == "info" and "Training finished" in tab.notice.text(), tab.notice.text()
    xs, ys = tab.batch_curve.getData()
    assert len(xs) == tab.batches_seen >= 2 * 8  # 2 epochs x ceil(120/16) batches, every one plotted
    ex, ey = tab.loss_curve.getData()
    vx, vy = tab.val_curve.getData()
    assert list(ex) == [1, 2] and list(vx) == [1, 2] and all(v > 0 for v in vy)
    assert tab.samples_per_s > 0 and tab.checkpoints.count() == 2
    assert tab.devices == "CPU:0" and tab.device_label.text() == "Device: CPU:0"  # what it trained on
    assert saved == [str(window.settings.models_folder / "tiny.keras")]
    assert (window.settings.models_folder / "tiny.keras").is_file()
    # which epoch was saved, and which session was held out (validation sessions are whole files)
    outcome = tab.outcome.text()
    assert "tiny.keras (epoch " in outcome and "best validation loss" in outcome, outcome
    held = outcome.split("validation: 1 of 3 sessions held out whole (")[1]
    assert held.split(")")[0] in {"s0-p1.h5", "s1-p1.h5", "s2-p1.h5"} and held.endswith(", 60 frames."), outcome
    assert not tab.plot.getAxis("left").autoSIPrefix  # plain loss values, no "(x0.001)"
    # the versus tab lists the new model at once
    assert window.versus_tab.model_box.findData(saved[0]) >= 0
    # DAgger step: fine-tune that model on a correction session
    write_session(folder, "fix-p1.h5", n=40, kind="correction")
    tab.refresh_sessions()
    tab.select_no_sessions()
    tab.session_list.item(0).setCheckState(tab.session_list.item(0).checkState().Checked)
    assert tab.chosen_sessions() == [str(folder / "fix-p1.h5")]
    tab.init_box.setCurrentIndex(tab.init_box.findData(saved[0]))
    tab.epochs_box.setValue(1)
    tab.name_edit.setText("tiny-dagger")
    assert tab.start_training()
    qtbot.waitUntil(lambda: not tab.running, timeout=180_000)
    assert "Training finished" in tab.notice.text(), tab.notice.text()
    assert saved[-1] == str(window.settings.models_folder / "tiny-dagger.keras")


def test_cancel_stops_training_and_keeps_the_window_usable(window, qtbot):
    folder = window.settings.sessions_folder
    write_session(folder, "only-p1.h5", n=200)
    tab = window.training_tab
    tab.refresh_sessions()
    tab.epochs_box.setValue(500)
    tab.batch_box.setValue(8)
    assert tab.start_training()
    qtbot.waitUntil(lambda: tab.batches_seen >= 3, timeout=120_000)
    # one session: its last tenth is held out, and the tab says so while it trains
    assert tab.outcome.text() == "Validation: the last 10% of the session, 20 frames."
    tab.cancel_training()
    qtbot.waitUntil(lambda: not tab.running, timeout=60_000)
    text = tab.notice.text()
    assert "cancelled" in text
    kept = tab.model_path is not None and tab.model_path.exists()
    assert ("Kept the best model so far" in text) == kept and ("no model was saved" in text) == (not kept), text
    assert tab.start_button.isEnabled()
    # no ETA of a run that stopped; the bar says where it stopped
    assert tab.stats.text().startswith("cancelled after") and "ETA" not in tab.stats.text()
    assert "cancelled" in tab.progress.format()
    # a cancelled run's model is listed in Versus but never raced by default: a finished one is
    models = window.settings.models_folder
    models.mkdir(parents=True, exist_ok=True)
    versus = window.versus_tab
    for name, signal in (("finished.keras", tab.model_saved), ("cancelled.keras", tab.model_kept)):
        (models / name).write_bytes(b"stand-in: Versus only lists files")
        signal.emit(str(models / name))
    assert versus.model_box.findText("cancelled.keras") >= 0
    assert versus.model_box.currentText() == "finished.keras"
    if kept:  # the next start of the app knows it too, from the run's state.json
        from kartstudio.paths import run_finished

        assert run_finished(tab.model_path) is False
        os.utime(tab.model_path)  # the newest model of all
        versus._known_models.clear()  # as at a new start
        versus.refresh_models()
        assert versus.model_box.findText(tab.model_path.name) >= 0
        assert versus.model_box.currentText() != tab.model_path.name


def test_training_errors_are_shown_in_the_tab(window, qtbot):
    tab = window.training_tab
    tab.refresh_sessions()
    assert not tab.start_training()  # no sessions at all
    assert tab.notice.level == "error" and "at least one session" in tab.notice.text()
    path = write_session(window.settings.sessions_folder, "x-p1.h5", n=20)
    tab.refresh_sessions()
    tab.select_all_sessions()
    path.write_bytes(b"damaged after listing")
    assert tab.start_training()
    qtbot.waitUntil(lambda: not tab.running, timeout=120_000)
    assert tab.notice.level == "error" and "Training failed" in tab.notice.text() and "x-p1.h5" in tab.notice.text()


def test_fine_tuning_in_the_tab_keeps_the_models_frame_history(tmp_path):
    from dataclasses import replace

    from kartstudio.gui.training_worker import TrainingJob, make_trainer
    from kartstudio.model import build_model, save_model
    from kartstudio.training.recipe import recipe

    save_model(build_model("kartstudio", history=3), tmp_path / "h3.keras")
    fresh = TrainingJob(("a.h5",), str(tmp_path / "m.keras"), recipe("default", epochs=1, batch_size=8, learning_rate=1e-4))
    tuned = replace(fresh, init_model=str(tmp_path / "h3.keras"))
    assert TrainingJob.from_json(tuned.to_json()) == tuned  # what the child process reads is what the tab sent
    assert make_trainer(tuned, None, None).config.history == 3
    config = make_trainer(fresh, None, None).config
    assert config.history == 1 and (config.epochs, config.batch_size, config.learning_rate) == (1, 8, 1e-4)
