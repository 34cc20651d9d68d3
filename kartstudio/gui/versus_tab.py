"""The Versus tab: a trained model drives seat 1 (top), a human seat 2 (bottom).

Shows the AI's live activation maps (conv layers 2 and 4, every feature map in a grid) and its
stick and button outputs, at the game's frame rate. 'Take over' (or the L button / Q key on the
takeover pad) hands seat 1 to a human; everything the human does then is recorded as a
correction session (kind="correction") for DAgger, and handing back resumes the AI.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.common import TIP, ImageView, Notice, describe_error, missing_module, name_box, narrow
from kartstudio.gui.game import GameController
from kartstudio.gui.widgets import PadMeter, tile_maps
from kartstudio.gui.workers import BackgroundTask
from kartstudio.paths import run_finished
from kartstudio.session import SessionMeta
from kartstudio.versus import AI_SEAT, HUMAN_SEAT, Versus  # noqa: F401 - seats re-exported
REFRESH_MS = 33


class VersusTab(QtWidgets.QWidget):
    session_saved = QtCore.pyqtSignal(str)

    def __init__(self, game: GameController, parent=None) -> None:
        super().__init__(parent)
        self.game = game
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)  # focus here = the keyboard drives
        self.race: Versus | None = None  # the engine's race while one runs
        self._saved: list[Path] = []
        self._known_models: set[str] = set()
        self._stopping: threading.Thread | None = None
        self._load_task: BackgroundTask | None = None
        self._seen_l: tuple[object, int] | None = None  # (takeover pad, its L presses handled)
        self._defaults: dict[int, object] = {}  # the pad each box took by default (not the user's choice)
        self.activation_frames = 0

        outer = QtWidgets.QVBoxLayout(self)
        self.notice = Notice()
        outer.addWidget(self.notice)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Model"))
        self.model_box = name_box(QtWidgets.QComboBox())
        narrow(self.model_box, 20)
        top.addWidget(self.model_box, 1)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self.browse_model)
        top.addWidget(browse)
        self.start_button = QtWidgets.QPushButton("▶ Race the AI")
        self.start_button.clicked.connect(self.toggle_versus)
        top.addWidget(self.start_button)
        outer.addLayout(top)
        seats = QtWidgets.QHBoxLayout()  # a row of its own: the tab fits beside the emulator
        seats.addWidget(QtWidgets.QLabel("Seat 2 (you)"))
        self.human_box = narrow(QtWidgets.QComboBox(), 12)
        seats.addWidget(self.human_box, 1)
        seats.addWidget(QtWidgets.QLabel("Takeover pad"))
        self.takeover_box = narrow(QtWidgets.QComboBox(), 12)
        self.takeover_box.currentIndexChanged.connect(self._count_l_from_now)
        seats.addWidget(self.takeover_box, 1)
        outer.addLayout(seats)

        middle = QtWidgets.QHBoxLayout()
        views = QtWidgets.QVBoxLayout()
        self.ai_view = ImageView("Seat 1 — the AI", (240, 90))
        self.human_view = ImageView("Seat 2 — you", (240, 90))
        views.addWidget(QtWidgets.QLabel("<b>Seat 1 (AI)</b>"))
        views.addWidget(self.ai_view, 1)
        views.addWidget(QtWidgets.QLabel("<b>Seat 2 (human)</b>"))
        views.addWidget(self.human_view, 1)
        middle.addLayout(views, 2)
        maps = QtWidgets.QVBoxLayout()
        self.conv2_label = QtWidgets.QLabel("<b>conv2</b> feature maps")
        maps.addWidget(self.conv2_label)
        self.conv2_view = ImageView("activations of conv layer 2 appear here", (240, 120))
        maps.addWidget(self.conv2_view, 3)
        self.conv4_label = QtWidgets.QLabel("<b>conv4</b> feature maps")
        maps.addWidget(self.conv4_label)
        self.conv4_view = ImageView("activations of conv layer 4 appear here", (240, 80))
        maps.addWidget(self.conv4_view, 2)
        middle.addLayout(maps, 3)
        outer.addLayout(middle, 1)

        bottom = QtWidgets.QHBoxLayout()
        box = self.ai_box = QtWidgets.QGroupBox("AI outputs (seat 1)")
        bl = QtWidgets.QVBoxLayout(box)
        self.ai_meter = PadMeter()
        bl.addWidget(self.ai_meter)
        self.ai_stats = QtWidgets.QLabel("not racing")
        self.ai_stats.setStyleSheet("font-family:monospace;")
        bl.addWidget(self.ai_stats)
        bottom.addWidget(box, 2)
        box = QtWidgets.QGroupBox("Seat 2 (you)")
        hl = QtWidgets.QVBoxLayout(box)
        self.human_meter = PadMeter()
        hl.addWidget(self.human_meter)
        bottom.addWidget(box, 1)
        take = QtWidgets.QVBoxLayout()
        self.takeover_button = QtWidgets.QPushButton("Take over seat 1")
        self.takeover_button.setCheckable(True)
        self.takeover_button.setMinimumHeight(40)
        self.takeover_button.setEnabled(False)
        self.takeover_button.clicked.connect(lambda on: self.set_takeover(on))
        take.addWidget(self.takeover_button)
        self.takeover_label = QtWidgets.QLabel("L on the takeover pad (Q on the keyboard) toggles it too.\n"
                                               "Your corrections are saved as correction sessions.")
        self.takeover_label.setWordWrap(True)
        take.addWidget(self.takeover_label)
        bottom.addLayout(take, 1)
        outer.addLayout(bottom)

        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self._timer.start()
        why = missing_module("kartstudio.pilot")  # imported (with TensorFlow) only when a race starts
        self.available = why is None
        if not self.available:
            self.notice.show_message(f"Racing the AI is not available in this build: {why}.", "warning")
            self.start_button.setEnabled(False)
        self.refresh_models()
        self.refresh_drivers()

    # -- choices -----------------------------------------------------------------------------------
    def refresh_models(self, *_args, unfinished: str = "") -> None:
        """List the models folder, newest first. A model that appeared since the last look (a
        training run just saved it) is selected: racing a stale model by accident helps nobody.
        unfinished: a cancelled or failed run's model, listed but never selected by itself."""
        if unfinished:
            self._known_models.add(unfinished)
        current = self.model_box.currentData()
        self.model_box.clear()
        folder = self.game.settings.models_folder
        models = sorted(folder.glob("*.keras"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.exists() else []
        models = [p for p in models if not p.name.startswith(".")]
        for path in models:
            self.model_box.addItem(path.name, str(path))
            self.model_box.setItemData(self.model_box.count() - 1, str(path), TIP)
        fresh = [str(p) for p in models if str(p) not in self._known_models]
        self._known_models.update(str(p) for p in models)
        fresh = [p for p in fresh if run_finished(p) is not False]  # a cancelled run's model is listed, not chosen
        if fresh:
            current = fresh[0]  # the newest new model
        if current and self.model_box.findData(current) < 0 and Path(current).exists():
            self.model_box.addItem(Path(current).name, current)
        if current:
            self.model_box.setCurrentIndex(max(0, self.model_box.findData(current)))
        if self.model_box.count() == 0:
            self.model_box.addItem("no models yet: train one in the Training tab", None)

    def choose_model(self, path: str | Path) -> None:
        path = str(path)
        if self.model_box.findData(path) < 0:
            self.model_box.insertItem(0, Path(path).name, path)
            self.model_box.setItemData(0, path, TIP)
        self.model_box.setCurrentIndex(self.model_box.findData(path))

    def browse_model(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose a model", str(self.game.settings.models_folder),
                                                        "Keras models (*.keras)")
        if path:
            self.choose_model(path)

    def refresh_drivers(self) -> None:
        """List the pads; each box keeps its pad (by identity, the list may have grown), else takes the
        pairing's: seat 2 (you) the pad paired with seat 2, the takeover the one paired with seat 1."""
        pads = self.game.pads()
        old = list(getattr(self, "_pads", []))
        for box, seat, default_last in ((self.human_box, 2, False), (self.takeover_box, 1, True)):
            chosen = old[box.currentData()] if box.currentData() is not None and box.currentData() < len(old) else None
            box.blockSignals(True)
            box.clear()
            for i, pad in enumerate(pads):
                box.addItem(getattr(pad, "name", "pad"), i)
            paired = self.game.paired_pad(seat)
            if chosen is not None and chosen in pads and (paired is None or chosen is not self._defaults.get(seat)):
                index = pads.index(chosen)  # the user's own choice stays
            elif paired is not None and paired in pads:
                index = pads.index(paired)
            else:
                # no pairing: you (seat 2) take the first gamepad plugged in, the keyboard if none; the takeover
                # the keyboard (the last pad)
                plugged = [i for i, pad in enumerate(pads) if getattr(pad, "connected", True)]
                index = (plugged[0] if plugged else 0) if not default_last else len(pads) - 1
            box.setCurrentIndex(index)
            self._defaults[seat] = pads[index] if pads else None
            box.blockSignals(False)
        self._pads = pads
        if self._seen_l is not None and self._seen_l[0] is not self._pad(self.takeover_box):
            self._count_l_from_now()

    def _pad(self, box: QtWidgets.QComboBox):
        i = box.currentData()
        return self._pads[i] if i is not None and 0 <= i < len(self._pads) else self.game.keyboard

    # -- start / stop ------------------------------------------------------------------------------
    @property
    def racing(self) -> bool:
        return self.race is not None

    @property
    def pilot_driver(self):
        return self.race.pilot_driver if self.race is not None else None

    def toggle_versus(self) -> None:
        if self.racing or self._load_task is not None:
            self.stop_versus()
        else:
            self.start_versus()

    def start_versus(self) -> bool:
        model = self.model_box.currentData()
        if not model:
            self.notice.show_message("Choose a model first: train one in the Training tab, or Browse… for a "
                                     ".keras file.", "error")
            return False
        if self.game.loop is None or not self.game.loop.status.running:
            if not self.game.running:
                window = self.window()
                if not (window.start_game() if hasattr(window, "start_game") else self.game.start()):
                    return False
        self.notice.show_message(f"Loading {Path(model).name}…", "info")
        self.start_button.setText("■ Stop")
        from kartstudio.drivers import load_pilot

        self._load_task = BackgroundTask(lambda report, cancelled: load_pilot(model), "pilot").start()
        self._model_path = model
        return True

    def _correction_meta(self, pad) -> SessionMeta:
        return SessionMeta(
            game=self.game.game_name(), track=self.game.track(), pad_name=pad.name, pad_guid=pad.guid,
            storage_size=tuple(self.game.settings.storage_size), kind="correction",
            codec=self.game.settings.frames_codec, jpeg_quality=int(self.game.settings.jpeg_quality),
            source="kartstudio-gui-takeover", fps=float(self.game.backend.fps),
            extra={"model": str(self._model_path)},
        )

    def _pilot_loaded(self, pilot) -> None:
        loop = self.game.loop
        if loop is None and self.game.building:  # Raceway's first start builds the ROM: race once it runs
            QtCore.QTimer.singleShot(200, lambda: self._pilot_loaded(pilot))
            return
        if loop is None:
            self.notice.show_message("The game stopped while the model was loading; press Race the AI again.", "warning")
            self.start_button.setText("▶ Race the AI")
            return
        self.race = Versus(loop, pilot, self._pad(self.human_box), self.game.settings.sessions_folder,
                           self._correction_meta, self.game.track())
        self.game.versus_active = True
        self._count_l_from_now()
        self.race.start()
        self.takeover_button.setEnabled(True)
        self.notice.show_message(f"Racing {Path(self._model_path).name}: the AI drives seat 1 (top), you seat 2 "
                                 "(bottom).", "info")

    def stop_versus(self) -> None:
        if self._load_task is not None:
            self._load_task.cancel()
            self._load_task = None
        self.set_takeover(False, wait=True)
        if self._stopping is not None:  # a correction still being written: announce it before the race goes
            self._stopping.join()
            self._finish_correction()
        if self.race is not None:
            self.race.stop()
            self.race = None
            self.game.versus_active = False
            window = self.window()
            if hasattr(window, "record_tab"):
                for panel in window.record_tab.panels.values():
                    panel._apply_driver()  # seats go back to what the Record tab says
        self.start_button.setText("▶ Race the AI")
        self.takeover_button.setEnabled(False)
        self.takeover_button.setChecked(False)

    def on_game_started(self) -> None:
        self.refresh_drivers()

    def on_game_stopped(self) -> None:
        self.stop_versus()
        if self.notice.level == "info":
            self.notice.clear_message()

    # -- takeover ----------------------------------------------------------------------------------
    @property
    def taken_over(self) -> bool:
        return self.race is not None and self.race.taken_over

    def set_takeover(self, on: bool, wait: bool = False) -> bool:
        """Hand seat 1 to the human (on) or back to the AI (off); corrections are recorded meanwhile."""
        race = self.race
        if on and not self.taken_over:
            if race is None:
                self.takeover_button.setChecked(False)
                return False
            pad = self._pad(self.takeover_box)
            try:
                path = race.take_over(pad)
            except Exception as exc:  # noqa: BLE001
                self.notice.show_message(describe_error(exc), "error")
                self.takeover_button.setChecked(False)
                return False
            self.takeover_button.setChecked(True)
            self.takeover_button.setText("Hand seat 1 back to the AI")
            self.takeover_label.setText(f"You drive seat 1 with {pad.name}; recording corrections to {path.name}")
            return True
        if not on and self.taken_over:
            self._stopping = race.hand_back(wait=False)
            if wait:
                self._stopping.join()
                self._finish_correction()
            self.takeover_button.setChecked(False)
            self.takeover_button.setText("Take over seat 1")
            return True
        return self.taken_over == on

    @property
    def corrections_saved(self) -> list[Path]:
        return list(self._saved)

    def _finish_correction(self) -> None:
        self._stopping = None
        done = self.race.finish() if self.race is not None else None
        if done is None:
            return
        path, written = done
        self._saved.append(path)
        if self.race.error:
            self.takeover_label.setText(f"Correction session {path.name} stopped early: {self.race.error}")
        else:
            self.takeover_label.setText(f"Saved correction session {path.name} ({written} frames).")
        self.session_saved.emit(str(path))

    # -- refresh (UI timer) ------------------------------------------------------------------------
    def _refresh(self) -> None:
        task = self._load_task
        if task is not None:
            for kind, payload in task.poll():
                if kind == "done":
                    self._load_task = None
                    self._pilot_loaded(payload)
                elif kind == "error":
                    self._load_task = None
                    self.notice.show_message(f"Cannot race this model: {payload}", "error")
                    self.start_button.setText("▶ Race the AI")
        if self._stopping is not None and not self._stopping.is_alive():
            self._finish_correction()
        if not self.isVisible():
            return
        loop = self.game.loop
        frame = loop.latest() if loop is not None else None
        if frame is not None:
            layout = self.game.backend.layout
            self.ai_view.set_image(layout.crop(frame.image, AI_SEAT))
            self.human_view.set_image(layout.crop(frame.image, HUMAN_SEAT))
        self.human_meter.set_state(self._pad(self.human_box).last)
        driver = self.pilot_driver
        if driver is None:
            return
        outputs, activations, state, steps, ms = driver.snapshot()
        if self.taken_over:  # the meter shows who drives seat 1 now: the human's pad during a takeover
            self.ai_box.setTitle("Seat 1: you (takeover)")
            self.ai_meter.set_state(self._pad(self.takeover_box).last)
        elif outputs is not None:
            self.ai_box.setTitle("AI outputs (seat 1)")
            self.ai_meter.set_state(state, tuple(float(v) for v in outputs))
        for name, view, label in (("conv2", self.conv2_view, self.conv2_label), ("conv4", self.conv4_view, self.conv4_label)):
            maps = activations.get(name)
            if maps is not None:
                view.set_image(tile_maps(maps))
                label.setText(f"<b>{name}</b> feature maps: {maps.shape[-1]} × {maps.shape[-3]}×{maps.shape[-2]}")
        if activations:
            self.activation_frames += 1
        who = "YOU (correction)" if self.taken_over else "AI"
        self.ai_stats.setText(f"seat 1: {who}   inference {ms:.1f} ms   frames driven {steps}")
        self.take_l_presses()

    def _count_l_from_now(self, *_args) -> None:
        """Presses of L before now (another takeover pad, before the race) toggle nothing."""
        pad = self._pad(self.takeover_box) if hasattr(self, "_pads") else None
        self._seen_l = (pad, getattr(pad, "l_presses", 0)) if pad is not None else None

    def take_l_presses(self) -> None:
        """The takeover pad's L toggles the takeover (TensorKart used the left bumper for its override),
        once per press. The presses are counted by the pad on every sample (500 a second for a gamepad,
        every key event for the keyboard), so a tap shorter than this tab's refresh is never lost."""
        pad = self._pad(self.takeover_box)
        count = getattr(pad, "l_presses", 0)
        if self._seen_l is None or self._seen_l[0] is not pad:
            self._seen_l = (pad, count)  # presses before this pad was the takeover pad do not count
            return
        new = count - self._seen_l[1]
        self._seen_l = (pad, count)
        if new % 2:
            self.set_takeover(not self.taken_over)
