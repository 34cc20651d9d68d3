"""The Training tab: choose sessions and settings, train in the background with live loss /
val-loss curves, samples/s, ETA and checkpoints; Cancel stops within one batch.

The trainer (kartstudio.training.trainer) runs in a child process (`python -m
kartstudio.gui.training_process`, sent a TrainingJob; a frozen build, which has no separate
Python, uses a worker thread instead) and reports as JSON lines; a 10 Hz timer here turns its
reports into plot points, so TensorFlow never blocks the window.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.common import Notice, human_duration, missing_module, name_box, name_view
from kartstudio.gui.datasets_tab import session_rows
from kartstudio.gui.workers import BackgroundTask
from kartstudio.settings import Settings

TRAINER_MODULE = "kartstudio.training.trainer"


class TrainingTab(QtWidgets.QWidget):
    model_saved = QtCore.pyqtSignal(str)  # a finished run's model (Versus selects it)
    model_kept = QtCore.pyqtSignal(str)  # a cancelled or failed run's best so far (listed, never preselected)

    def __init__(self, settings: Settings, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.task: BackgroundTask | None = None
        self.trainer = None
        self.batches_seen = 0
        self.samples_per_s = 0.0
        self.devices = ""  # what the run trains on, from the trainer ("CPU:0", "2 x GPU (mirrored)")
        self.epochs_done = 0
        self.last_error = ""
        self.model_path: Path | None = None
        self._listed: set[str] = set()
        self.batch_points: tuple[list[float], list[float]] = ([], [])
        self.epoch_points: dict[str, tuple[list[float], list[float]]] = {"loss": ([], []), "val_loss": ([], [])}

        outer = QtWidgets.QHBoxLayout(self)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(QtWidgets.QLabel("<b>Sessions to train on</b>"))
        self.session_list = name_view(QtWidgets.QListWidget())
        left.addWidget(self.session_list, 1)
        row = QtWidgets.QHBoxLayout()
        for text, slot in (("All", self.select_all_sessions), ("None", self.select_no_sessions),
                           ("Refresh", self.refresh_sessions)):
            b = QtWidgets.QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        left.addLayout(row)

        form = QtWidgets.QFormLayout()
        self.name_edit = QtWidgets.QLineEdit(time.strftime("model-%Y%m%d-%H%M"))
        form.addRow("Model name", self.name_edit)
        from kartstudio.training.recipe import RECIPES  # plain dataclasses: no TensorFlow here

        self.recipe_box = QtWidgets.QComboBox()
        self.recipe_box.addItems(list(RECIPES))
        self.recipe_box.setToolTip("default: KartStudio's measured recipe (docs/practice.md); seed-mse and "
                                   "tensorkart: the older networks and losses, for comparison")
        form.addRow("Recipe", self.recipe_box)
        self.epochs_box = QtWidgets.QSpinBox()
        self.epochs_box.setRange(1, 10000)
        form.addRow("Epochs", self.epochs_box)
        self.batch_box = QtWidgets.QSpinBox()
        self.batch_box.setRange(1, 4096)
        form.addRow("Batch size", self.batch_box)
        self.lr_box = QtWidgets.QDoubleSpinBox()
        self.lr_box.setDecimals(5)
        self.lr_box.setRange(0.00001, 0.1)
        self.lr_box.setSingleStep(0.0001)
        form.addRow("Learning rate", self.lr_box)
        self.loss_box = QtWidgets.QComboBox()
        self.loss_box.addItems(["driving", "mse", "euclidean", "press-weighted"])  # kartstudio.model.LOSSES
        form.addRow("Loss", self.loss_box)
        self.val_box = QtWidgets.QSpinBox()
        self.val_box.setRange(-1, 100)
        self.val_box.setSpecialValueText("auto")  # -1: the recipe's share of the sessions
        self.val_box.setToolTip("Whole sessions held out to pick the best epoch and the button thresholds "
                                "(auto: a tenth of them when there are 5 or more, else the last tenth of each "
                                "session; the tensorkart recipe always holds out the last tenth; 0: none)")
        form.addRow("Validation sessions", self.val_box)
        self.init_box = name_box(QtWidgets.QComboBox())
        self.init_box.setToolTip("Fine-tune an existing model, e.g. on your correction sessions after racing it (DAgger)")
        form.addRow("Start from", self.init_box)
        self.augment_box = QtWidgets.QCheckBox("mirror and jitter frames")
        form.addRow("Augment", self.augment_box)
        self.recipe_box.currentTextChanged.connect(self.apply_recipe)
        self.apply_recipe(self.recipe_box.currentText())
        left.addLayout(form)
        row = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("▶ Start training")
        self.start_button.clicked.connect(self.start_training)
        self.cancel_button = QtWidgets.QPushButton("■ Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_training)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        left.addLayout(row)
        left_box = QtWidgets.QWidget()
        left_box.setLayout(left)
        left_box.setMaximumWidth(420)
        outer.addWidget(left_box)

        right = QtWidgets.QVBoxLayout()
        self.notice = Notice()
        right.addWidget(self.notice)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "loss")
        for side in ("bottom", "left"):  # plain numbers: no "(x0.001)" unit prefix on a unitless loss
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.plot.addLegend(offset=(-10, 10))
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.batch_curve = self.plot.plot([], [], pen=pg.mkPen("#9ecae1", width=1), name="loss (batches)")
        self.loss_curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=6,
                                         symbolBrush="#1f77b4", name="loss (epoch)")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen("#d62728", width=2), symbol="s", symbolSize=6,
                                        symbolBrush="#d62728", name="val loss")
        right.addWidget(self.plot, 1)
        self.stats = QtWidgets.QLabel("not running")
        self.stats.setStyleSheet("font-family:monospace;font-size:13px;")
        right.addWidget(self.stats)
        self.device_label = QtWidgets.QLabel("Device: chosen when training starts (every GPU, else the CPU)")
        self.device_label.setWordWrap(True)  # never wider than the room beside the emulator
        self.device_label.setToolTip("Several GPUs train in step (tf.distribute); several machines: "
                                     "kartstudio train --worker-hosts (docs/training.md)")
        right.addWidget(self.device_label)
        self.progress = QtWidgets.QProgressBar()
        right.addWidget(self.progress)
        right.addWidget(QtWidgets.QLabel("<b>Checkpoints</b>"))
        self.checkpoints = name_view(QtWidgets.QListWidget())
        self.checkpoints.setMaximumHeight(110)
        right.addWidget(self.checkpoints)
        self.outcome = QtWidgets.QLabel("")  # which epoch was saved, which sessions were held out
        self.outcome.setWordWrap(True)
        right.addWidget(self.outcome)
        outer.addLayout(right, 1)

        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll)
        why = missing_module(TRAINER_MODULE)  # imported (with TensorFlow) only when training starts
        self.available = why is None
        if not self.available:
            self.notice.show_message(f"Training is not available in this build: {why}.", "warning")
            self.start_button.setEnabled(False)
        self.refresh_sessions()
        self.refresh_models()

    # -- sessions ------------------------------------------------------------------------------------
    def refresh_sessions(self, *_args) -> None:
        checked = set(self.chosen_sessions())
        self.session_list.clear()
        for info in session_rows(self.settings.sessions_folder):
            if "problem" in info or not info["frames"]:
                continue
            used = info["frames"] - info["excluded_frames"]
            item = QtWidgets.QListWidgetItem(
                f"{Path(info['path']).name}  ·  {info['kind']}  ·  {used} frames")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, info["path"])
            item.setToolTip(info["path"])
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            on = info["path"] in checked or info["path"] not in self._listed  # new sessions start ticked
            self._listed.add(info["path"])
            item.setCheckState(QtCore.Qt.CheckState.Checked if on else QtCore.Qt.CheckState.Unchecked)
            self.session_list.addItem(item)

    def refresh_models(self, *_args) -> None:
        current = self.init_box.currentData()
        self.init_box.clear()
        self.init_box.addItem("a new network", None)
        folder = self.settings.models_folder
        if folder.exists():
            for path in sorted(folder.glob("*.keras"), key=lambda p: p.stat().st_mtime, reverse=True):
                if not path.name.startswith("."):
                    self.init_box.addItem(path.name, str(path))
                    self.init_box.setItemData(self.init_box.count() - 1, str(path), QtCore.Qt.ItemDataRole.ToolTipRole)
        self.init_box.setCurrentIndex(max(0, self.init_box.findData(current)))

    def chosen_sessions(self) -> list[str]:
        out = []
        for i in range(self.session_list.count()):
            item = self.session_list.item(i)
            if item.checkState() == QtCore.Qt.CheckState.Checked:
                out.append(item.data(QtCore.Qt.ItemDataRole.UserRole))
        return out

    def _check_all(self, state) -> None:
        for i in range(self.session_list.count()):
            self.session_list.item(i).setCheckState(state)

    def select_all_sessions(self) -> None:
        self._check_all(QtCore.Qt.CheckState.Checked)

    def select_no_sessions(self) -> None:
        self._check_all(QtCore.Qt.CheckState.Unchecked)

    # -- running ---------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.task is not None

    def apply_recipe(self, name: str) -> None:
        """Fill the fields with a recipe's settings (the user may still change each one)."""
        from kartstudio.training.recipe import RECIPES

        r = RECIPES[name]
        self.epochs_box.setValue(r.epochs)
        self.batch_box.setValue(r.batch_size)
        self.lr_box.setValue(r.learning_rate)
        self.loss_box.setCurrentText(r.loss)
        self.augment_box.setChecked(r.augment)
        self.val_box.setValue(-1)

    def model_output_path(self) -> Path:
        name = self.name_edit.text().strip() or time.strftime("model-%Y%m%d-%H%M")
        if not name.endswith(".keras"):
            name += ".keras"
        return self.settings.models_folder / name

    def start_training(self) -> bool:
        if self.running:
            return True
        if not self.available:
            return False
        sessions = self.chosen_sessions()
        if not sessions:
            self.notice.show_message("Choose at least one session to train on (record one in the Record tab, "
                                     "or import TensorKart data in the Datasets tab).", "error")
            return False
        val = self.val_box.value()
        if val < 0:
            val = None  # auto: the recipe decides
        elif val and val >= len(sessions):
            if len(sessions) == 1:
                val = 0  # one session: train on it, without a validation curve
            else:
                self.notice.show_message(f"{val} validation sessions leave none to train on; choose fewer "
                                         f"(you picked {len(sessions)} sessions).", "error")
                return False
        out = self.model_output_path()
        if out.exists():
            self.notice.show_message(f"{out} already exists; choose another model name (nothing is overwritten).",
                                     "error")
            return False
        from kartstudio.gui.training_worker import TrainingJob, make_training_job
        from kartstudio.training.recipe import recipe

        job = TrainingJob(
            sessions=tuple(sessions), output=str(out),
            recipe=recipe(self.recipe_box.currentText(), epochs=self.epochs_box.value(),
                          batch_size=self.batch_box.value(), learning_rate=self.lr_box.value(),
                          loss=self.loss_box.currentText(), augment=self.augment_box.isChecked()),
            val_sessions=val, init_model=self.init_box.currentData(),
        )
        self.notice.clear_message()
        self._reset_plot()
        self.model_path = out
        run, self.trainer_holder = make_training_job(job)
        self.task = BackgroundTask(run, "training").start()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.stats.setText("preparing the data and the model…")
        self.progress.setRange(0, 0)
        self._timer.start()
        return True

    def cancel_training(self) -> None:
        if self.task is None:
            return
        self.task.cancel()
        trainer = self.trainer_holder.get("trainer") if self.trainer_holder else None
        if trainer is not None:
            trainer.cancel()
        self.cancel_button.setEnabled(False)
        self.stats.setText(self.stats.text() + "   (cancelling after this batch…)")

    def shutdown(self) -> None:
        """The window is closing: cancel and wait for the worker (it keeps its last checkpoint)."""
        if self.task is not None:
            self.cancel_training()
            self.task.wait(30)

    def _reset_plot(self) -> None:
        self.batches_seen = 0
        self.samples_per_s = 0.0
        self.epochs_done = 0
        self.batch_points = ([], [])
        self.epoch_points = {"loss": ([], []), "val_loss": ([], [])}
        self.checkpoints.clear()
        self.outcome.setText("")
        for curve in (self.batch_curve, self.loss_curve, self.val_curve):
            curve.clear()

    def _draw(self) -> None:
        for curve, (xs, ys) in ((self.batch_curve, self.batch_points), (self.loss_curve, self.epoch_points["loss"]),
                                (self.val_curve, self.epoch_points["val_loss"])):
            if xs:  # pyqtgraph warns about the bounds of an empty symbol curve
                curve.setData(xs, ys)

    def _poll(self) -> None:
        task = self.task
        if task is None:
            self._timer.stop()
            return
        changed = False
        for kind, payload in task.poll():
            changed = True
            if kind == "batch":
                self._on_batch(payload)
            elif kind == "epoch":
                self._on_epoch(payload)
            elif kind == "checkpoint":
                self.checkpoints.addItem(str(payload))
                self.checkpoints.item(self.checkpoints.count() - 1).setToolTip(str(payload))
                self.checkpoints.scrollToBottom()  # the newest checkpoint in view
            elif kind in ("done", "error", "cancelled"):
                self._finish(kind, payload)
                return
        if changed:
            self._draw()

    def _on_batch(self, p: dict) -> None:
        self.batches_seen += 1
        x = p.get("epoch", 0) + p.get("fraction", 0.0)
        if p.get("loss") is not None:
            self.batch_points[0].append(x)
            self.batch_points[1].append(float(p["loss"]))
        self.samples_per_s = float(p.get("samples_per_s") or self.samples_per_s)
        if p.get("devices") and p["devices"] != self.devices:
            self.devices = str(p["devices"])
            self.device_label.setText(f"Device: {self.devices}")
        if p.get("validation") and not self.outcome.text():  # what is held out, known from the first batch
            text = str(p["validation"])
            self.outcome.setText(text[:1].upper() + text[1:] + ".")
        total, done = p.get("total_batches"), p.get("done_batches")
        if total:
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(done or 0))
        eta = p.get("eta_s")
        self.stats.setText(
            f"epoch {p.get('epoch', 0) + 1}/{self.epochs_box.value()}  batch {p.get('batch', 0) + 1}"
            f"/{p.get('batches', '?')}"
            f"  loss {float(p.get('loss') or 0):.4f}  {self.samples_per_s:.0f} samples/s"
            f"  ETA {human_duration(eta) if eta is not None else '?'}"
        )

    def _on_epoch(self, p: dict) -> None:
        self.epochs_done += 1
        e = p.get("epoch", self.epochs_done - 1) + 1
        for key in ("loss", "val_loss"):
            if p.get(key) is not None:
                self.epoch_points[key][0].append(e)
                self.epoch_points[key][1].append(float(p[key]))

    def _finish(self, kind: str, payload) -> None:
        self._timer.stop()
        self.task = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if kind == "done" or self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(1 if kind == "done" else 0)
        # else the bar stays where the run stopped, and says so
        self.progress.setFormat("%p%" if kind == "done" else f"%p% ({kind if kind != 'error' else 'failed'})")
        self._draw()
        saved = self.model_path if self.model_path is not None and self.model_path.exists() else None
        summary = payload if isinstance(payload, dict) else {}
        self.outcome.setText(outcome_text(summary, saved))
        if kind == "error":
            self.last_error = str(payload)
            self.notice.show_message(f"Training failed: {payload}", "error")
        elif kind == "cancelled":
            kept = (f" Kept the best model so far: {kept_text(summary, saved)}." if saved
                    else " No epoch finished, so no model was saved.")
            self.notice.show_message(f"Training cancelled after {self.epochs_done} epochs.{kept}", "info")
        else:
            self.notice.show_message(f"Training finished: {kept_text(summary, saved) if saved else payload}", "info")
        if saved:
            self.refresh_models()
            (self.model_saved if kind == "done" else self.model_kept).emit(str(saved))
        if kind == "done":
            self.stats.setText(self.stats.text().replace("   (cancelling after this batch…)", ""))
        else:  # no ETA of a run that no longer runs
            self.stats.setText(f"{'cancelled' if kind == 'cancelled' else 'failed'} after {self.epochs_done} of "
                               f"{self.epochs_box.value()} epochs")
        self.name_edit.setText(time.strftime("model-%Y%m%d-%H%M%S"))


def kept_text(summary: dict, saved: Path) -> str:
    """The saved model and the epoch it is from (the best by validation loss, or by training loss)."""
    best, loss = summary.get("best_epoch"), summary.get("best_loss")
    which = "validation" if summary.get("val_frames") else "training"
    epoch = f" (epoch {best}, best {which} loss {loss:.4f})" if best is not None and loss is not None else ""
    return f"{saved}{epoch}"


def outcome_text(summary: dict, saved: Path | None) -> str:
    """One line under the checkpoints: what was saved and what was held out for validation."""
    if not summary:
        return ""
    parts = [f"Saved: {kept_text(summary, saved)}" if saved else "No model saved"]
    held = summary.get("val_sessions") or []
    parts.append(summary.get("validation") or (f"held out for validation: {', '.join(held)}" if held
                                                else "nothing held out (the best epoch is picked by training loss)"))
    return "; ".join(parts) + "."
