"""The Versus tab: a trained model drives seat 1 (top), a human seat 2 (bottom); or, in 1-player
mode ("Watch the AI drive"), the AI drives the one car on the whole screen.

Shows the AI's live activation maps (conv layers 2 and 4, every feature map in a grid) and its
stick and button outputs, at the game's frame rate. 'Take over' (or the L button / Q key on the
takeover pad) hands seat 1 to a human; in 1-player mode the person drives while holding L (Q)
and the AI again once it is let go (TensorKart's override). Everything the human does then is
recorded as a correction session (kind="correction") for DAgger, and handing back resumes the AI.
The mode is the game's: switching it restarts the game with 1 or 2 players (kartstudio.versus).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.common import TIP, ImageView, Notice, describe_error, missing_module, name_box, narrow
from kartstudio.gui.game_controller import GameController
from kartstudio.gui.widgets import PadMeter, tile_maps
from kartstudio.gui.workers import BackgroundTask
from kartstudio.errors import KartStudioError
from kartstudio.paths import run_finished
from kartstudio.session import SessionMeta
from kartstudio.versus import AI_SEAT, HUMAN_SEAT, Versus  # noqa: F401 - seats re-exported

REFRESH_MS = 33
MODES = ((2, "Race the AI (2 players)", "▶ Race the AI"),
         (1, "Watch the AI drive (1 player)", "▶ Watch the AI drive"))
HOLD_TEXT = ("Hold L on the override pad (Q on the keyboard) to drive yourself; let go and the AI drives again. "
             "What you drive is saved as correction sessions.")
TOGGLE_TEXT = ("L on the takeover pad (Q on the keyboard) toggles it too.\n"
               "Your corrections are saved as correction sessions.")


class VersusTab(QtWidgets.QWidget):
    session_saved = QtCore.pyqtSignal(str)
    race_ended = QtCore.pyqtSignal()  # the AI no longer drives: seats go back to what the Record tab says

    def __init__(self, game: GameController, start_game: Callable[[], bool] | None = None,
                 stop_game: Callable[[], None] | None = None, parent=None) -> None:
        """start_game, stop_game: how the tab starts a game and stops one of the other mode (the main
        window's, which check the game source and stop recordings first); by default the game itself."""
        super().__init__(parent)
        self.game = game
        self._start_game = start_game or game.start
        self._stop_game = stop_game or game.stop
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
        mode = QtWidgets.QHBoxLayout()
        mode.addWidget(QtWidgets.QLabel("Mode"))
        self.mode_box = QtWidgets.QComboBox()
        for players, label, _ in MODES:
            self.mode_box.addItem(label, players)
        self.mode_box.setToolTip("2 players: the AI on seat 1 (top), you on seat 2 (bottom). 1 player: the AI drives "
                                 "one car on the whole screen (a whole-screen model's game) and you override it by "
                                 "holding L. Changing it restarts the game.")
        self.mode_box.currentIndexChanged.connect(self._mode_changed)
        mode.addWidget(self.mode_box)
        self.mode_hint = QtWidgets.QLabel("")
        self.mode_hint.setWordWrap(True)
        self.mode_hint.setStyleSheet("color: palette(mid);")
        mode.addWidget(self.mode_hint, 1)
        outer.addLayout(mode)
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
        self.human_label = QtWidgets.QLabel("Seat 2 (you)")
        seats.addWidget(self.human_label)
        self.human_box = narrow(QtWidgets.QComboBox(), 12)
        seats.addWidget(self.human_box, 1)
        self.takeover_pad_label = QtWidgets.QLabel("Takeover pad")
        seats.addWidget(self.takeover_pad_label)
        self.takeover_box = narrow(QtWidgets.QComboBox(), 12)
        self.takeover_box.currentIndexChanged.connect(self._count_l_from_now)
        seats.addWidget(self.takeover_box, 1)
        outer.addLayout(seats)

        middle = QtWidgets.QHBoxLayout()
        views = QtWidgets.QVBoxLayout()
        self.ai_view = ImageView("Seat 1 — the AI", (240, 90))
        self.human_view = ImageView("Seat 2 — you", (240, 90))
        self.ai_view_label = QtWidgets.QLabel("<b>Seat 1 (AI)</b>")
        views.addWidget(self.ai_view_label)
        views.addWidget(self.ai_view, 1)
        self.human_view_label = QtWidgets.QLabel("<b>Seat 2 (human)</b>")
        views.addWidget(self.human_view_label)
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
        box = self.human_group = QtWidgets.QGroupBox("Seat 2 (you)")
        hl = QtWidgets.QVBoxLayout(box)
        self.human_meter = PadMeter()
        hl.addWidget(self.human_meter)
        bottom.addWidget(box, 1)
        # The takeover button and its hint get a row of their own under the meters: as a third column
        # they pushed the meters past the width the tab has beside the emulator at 1366x768.
        take = QtWidgets.QHBoxLayout()
        self.takeover_button = QtWidgets.QPushButton("Take over seat 1")
        self.takeover_button.setCheckable(True)
        self.takeover_button.setMinimumHeight(40)
        self.takeover_button.setEnabled(False)
        self.takeover_button.clicked.connect(lambda on: self.set_takeover(on))
        take.addWidget(self.takeover_button)
        self.takeover_label = QtWidgets.QLabel(TOGGLE_TEXT)
        self.takeover_label.setWordWrap(True)
        take.addWidget(self.takeover_label, 1)
        outer.addLayout(bottom)
        outer.addLayout(take)

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
        self._mode_changed()

    # -- mode --------------------------------------------------------------------------------------
    @property
    def players(self) -> int:
        """The mode chosen: 2 (race the AI on the split screen) or 1 (watch the AI drive the whole screen)."""
        return int(self.mode_box.currentData() or 2)

    def set_mode(self, players: int) -> None:
        self.mode_box.setCurrentIndex(max(0, self.mode_box.findData(players)))

    def _mode_changed(self, *_args) -> None:
        """Show the chosen mode: 1 player hides seat 2 and holds L to override; 2 players as before."""
        one = self.players == 1
        if self.racing and self.race.players != self.players:
            self.stop_versus()  # the race was of the other mode: the next start restarts the game
        for widget in (self.human_label, self.human_box, self.human_view_label, self.human_view, self.human_group):
            widget.setVisible(not one)
        self.takeover_pad_label.setText("Override pad" if one else "Takeover pad")
        self.ai_view_label.setText("<b>The AI's car (whole screen)</b>" if one else "<b>Seat 1 (AI)</b>")
        self.ai_box.setTitle("AI outputs" if one else "AI outputs (seat 1)")
        if not self.taken_over:
            self.takeover_button.setText("Take over" if one else "Take over seat 1")
            self.takeover_label.setText(HOLD_TEXT if one else TOGGLE_TEXT)
        if not self.racing and self._load_task is None:
            self.start_button.setText(self._start_text())
        self.game.players = self.players if not self.game.running else self.game.players
        self._show_mode_hint()

    def _start_text(self) -> str:
        return next(text for players, _, text in MODES if players == self.players)

    def _show_mode_hint(self) -> None:
        one = self.players == 1
        running = self.game.running_players
        hint = ("One car on the whole screen: for whole-screen (TensorKart-style) models; any model can drive it."
                if one else "The AI on seat 1 (top half), you on seat 2 (bottom half).")
        if running is not None and running != self.players:
            hint += f" The game runs with {running} player{'s' if running > 1 else ''}: starting restarts it."
        note = self.game.macro_note(self.players)
        if note:
            hint += f" Note: {note}."
        self.mode_hint.setText(hint)

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
        running = self.game.running_players
        if running is not None and running != self.players:  # the game of the other mode: restart it
            self._stop_game()
        if not self.game.running:
            self.game.players = self.players
        if self.game.loop is None or not self.game.loop.status.running:
            if not self.game.running:
                if not self._start_game():
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
            self.notice.show_message(f"The game stopped while the model was loading; press "
                                     f"{self._start_text()[2:]} again.", "warning")
            self.start_button.setText(self._start_text())
            return
        human = self._pad(self.human_box) if self.players > 1 else None
        try:  # a whole-screen model on the split screen is refused in one line (drivers.check_view)
            self.race = Versus(loop, pilot, human, self.game.settings.sessions_folder, self._correction_meta,
                               self.game.track())
        except KartStudioError as exc:
            self.notice.show_message(f"Cannot race this model: {exc}.", "error")
            self.start_button.setText(self._start_text())
            return
        self.game.versus_active = True
        self._count_l_from_now()
        self.race.start()
        self.takeover_button.setEnabled(True)
        name = Path(self._model_path).name
        if self.race.players == 1:
            self.notice.show_message(f"{name} drives the car on the whole screen. Hold L on the override pad (Q on "
                                     f"the keyboard) to drive yourself." + (f" Note: {self.race.note}." if self.race.note
                                                                            else ""), "info")
        else:
            self.notice.show_message(f"Racing {name}: the AI drives seat 1 (top), you seat 2 (bottom).", "info")

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
            self.race_ended.emit()  # seats go back to what the Record tab says
        self.start_button.setText(self._start_text())
        self.ai_stats.setText("not racing")
        self.takeover_button.setEnabled(False)
        self.takeover_button.setChecked(False)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._show_mode_hint()  # the game box may have changed meanwhile (the macro note is Mario Kart 64's)

    def on_game_started(self) -> None:
        self.refresh_drivers()
        self._show_mode_hint()

    def on_game_stopped(self) -> None:
        self.stop_versus()
        if self.notice.level == "info":
            self.notice.clear_message()

    # -- takeover ----------------------------------------------------------------------------------
    @property
    def taken_over(self) -> bool:
        return self.race is not None and self.race.taken_over

    def set_takeover(self, on: bool, wait: bool = False, hold: bool = False) -> bool:
        """Hand seat 1 to the human (on) or back to the AI (off); corrections are recorded meanwhile.
        hold: started by holding L on the override pad (1-player mode): letting go hands it back."""
        race = self.race
        if on and not self.taken_over:
            if race is None:
                self.takeover_button.setChecked(False)
                return False
            pad = self._pad(self.takeover_box)
            try:
                path = race.take_over(pad, hold=hold)
            except Exception as exc:  # noqa: BLE001
                self.notice.show_message(describe_error(exc), "error")
                self.takeover_button.setChecked(False)
                return False
            one = race.players == 1
            self.takeover_button.setChecked(True)
            self.takeover_button.setText("Hand back to the AI" if one else "Hand seat 1 back to the AI")
            how = " while you hold L" if hold else ""
            self.takeover_label.setText(f"You drive {'the car' if one else 'seat 1'} with {pad.name}{how}; "
                                        f"recording corrections to {path.name}")
            return True
        if not on and self.taken_over:
            self._stopping = race.hand_back(wait=False)
            if wait:
                self._stopping.join()
                self._finish_correction()
            self.takeover_button.setChecked(False)
            self.takeover_button.setText("Take over" if race.players == 1 else "Take over seat 1")
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
                    self.start_button.setText(self._start_text())
        if self._stopping is not None and not self._stopping.is_alive():
            self._finish_correction()
        self.follow_hold()
        if not self.isVisible():
            return
        loop = self.game.loop
        frame = loop.latest() if loop is not None else None
        if frame is not None:
            layout = self.game.backend.layout
            self.ai_view.set_image(layout.crop(frame.image, AI_SEAT))
            if HUMAN_SEAT in layout.regions:
                self.human_view.set_image(layout.crop(frame.image, HUMAN_SEAT))
        self.human_meter.set_state(self._pad(self.human_box).last)
        driver = self.pilot_driver
        if driver is None:
            return
        outputs, activations, state, steps, ms = driver.snapshot()
        one = self.race.players == 1
        if self.taken_over:  # the meter shows who drives seat 1 now: the human's pad during a takeover
            self.ai_box.setTitle("You drive (override)" if one else "Seat 1: you (takeover)")
            self.ai_meter.set_state(self._pad(self.takeover_box).last)
        elif outputs is not None:
            self.ai_box.setTitle("AI outputs" if one else "AI outputs (seat 1)")
            self.ai_meter.set_state(state)
        for name, view, label in (("conv2", self.conv2_view, self.conv2_label), ("conv4", self.conv4_view, self.conv4_label)):
            maps = activations.get(name)
            if maps is not None:
                view.set_image(tile_maps(maps))
                label.setText(f"<b>{name}</b> feature maps: {maps.shape[-1]} × {maps.shape[-3]}×{maps.shape[-2]}")
        if activations:
            self.activation_frames += 1
        who = "YOU (correction)" if self.taken_over else "AI"
        # the network's raw outputs (x, y, A, B, R) on a line of their own: beside the meter's lamps they
        # did not fit next to the emulator on a 1366x768 screen
        raw = "" if outputs is None else "raw " + " ".join(f"{float(v):+.2f}" for v in outputs) + "\n"
        self.ai_stats.setText(f"{raw}{'car' if one else 'seat 1'}: {who}   inference {ms:.1f} ms   frames driven {steps}")
        if not one:
            self.take_l_presses()

    def follow_hold(self) -> None:
        """1-player mode: the person drives while holding L on the override pad, the AI once it is let
        go (Versus.hold_wants; TensorKart's play.py did this on the left bumper). A tap of L toggles
        nothing here: presses are only counted, so switching to 2 players later toggles nothing either."""
        race = self.race
        if race is None or race.players != 1:
            return
        self._count_l_from_now()
        want = race.hold_wants(self._pad(self.takeover_box))
        if want is True:
            self.set_takeover(True, hold=True)
        elif want is False:
            self.set_takeover(False)

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
