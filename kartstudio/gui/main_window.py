"""The KartStudio window: game source and status on top, then the Record, Datasets, Training and
Versus tabs. Each tab is its own module; this one only lays them out and wires the game to them."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from kartstudio import __version__
from kartstudio.errors import KartStudioError
from kartstudio.gui.common import NameLabel, Notice, StatusLabel, scroll_page
from kartstudio.gui.game_controller import SOURCE_LABELS, GameController
from kartstudio.gui.keyboard import HELP as KEYBOARD_HELP
from kartstudio.gui.keyboard import KeyboardFilter
from kartstudio.settings import Settings, SettingsError, load_settings, save_settings

# Settings the running game was started with: a change applies from the next start (said so).
RESTART_SETTINGS = {"video_plugin": "video plugin", "emulator": "emulator program", "rom_path": "ROM",
                    "game_source": "game source", "practice_seed": "practice track seed",
                    "raceway_track": "Raceway track"}
SLOW_GAME_POLLS = 55  # below this the game runs visibly slower than full speed (60)
NO_ROM_TEXT = (
    "No Mario Kart 64 ROM is set, so the practice track is selected: press Start and drive now "
    "(or choose KartStudio Raceway (N64), our own kart game in the emulator, which needs no ROM either). "
    "To race in Mario Kart 64, click 'Choose ROM…' and pick your own cartridge dump (.z64, .v64 or .n64); "
    "KartStudio never ships one."
)


def icon_path() -> Path | None:
    """The app icon: resources/ next to the package (source tree) or inside a PyInstaller bundle."""
    import sys

    here = Path(__file__).resolve()
    candidates = [
        here.parents[2] / "resources" / "kartstudio.png",
        Path(getattr(sys, "_MEIPASS", here.parents[2])) / "resources" / "kartstudio.png",
    ]
    return next((c for c in candidates if c.is_file()), None)


class RaiseGameOnClick(QtCore.QObject):
    """After every click in the app, the emulator window goes back on top: the screen capture
    records whatever lies over the window's place, and the app's own window must never be it."""

    def __init__(self, game: GameController, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.game = game

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if (event.type() == QtCore.QEvent.Type.MouseButtonRelease and self.game.running
                and QtWidgets.QApplication.activeModalWidget() is None):  # a dialog stays usable
            QtCore.QTimer.singleShot(0, self.game.raise_window)  # after the click has done its work
        return False


class PageTabs(QtWidgets.QTabWidget):
    """Tabs whose pages sit in scroll areas (scroll_page), still addressed by the page itself:
    setCurrentWidget(record_tab), currentWidget() is record_tab."""

    def addTab(self, page, label):  # noqa: N802 - Qt's name
        return super().addTab(scroll_page(page), label)

    def currentWidget(self):  # noqa: N802 - Qt's name
        area = super().currentWidget()
        return area.widget() if isinstance(area, QtWidgets.QScrollArea) else area

    def setCurrentWidget(self, page) -> None:  # noqa: N802 - Qt's name
        for i in range(self.count()):
            area = self.widget(i)
            if area is page or (isinstance(area, QtWidgets.QScrollArea) and area.widget() is page):
                self.setCurrentIndex(i)
                return


GAP = 4  # pixels between the emulator's window and the app's


def place_beside(emulator: QtCore.QRect, free: QtCore.QRect, least: QtCore.QSize,
                 most: QtCore.QSize) -> QtCore.QRect | None:
    """Where the app's window (frame included) goes on a screen it shares with the emulator window
    pinned at its top-left: beside it (to the right, the full height) when the window fits there,
    else below it; as large as the space allows up to `most`. None if neither space holds `least`."""
    right = emulator.x() + emulator.width() + GAP
    beside = QtCore.QRect(right, free.top(), free.x() + free.width() - right, free.height())
    top = emulator.y() + emulator.height() + GAP
    below = QtCore.QRect(free.left(), top, free.width(), free.y() + free.height() - top)
    for space in (beside, below):
        if space.width() >= least.width() and space.height() >= least.height():
            return QtCore.QRect(space.topLeft(), QtCore.QSize(min(space.width(), most.width()),
                                                              min(space.height(), most.height())))
    return None


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self.setWindowTitle(f"KartStudio {__version__}")
        icon = icon_path()
        if icon:
            self.setWindowIcon(QtGui.QIcon(str(icon)))
        self.resize(1280, 860)
        self.game = GameController(self.settings, self)
        self.force_close = False  # SIGTERM and the like: close without asking
        self._key_filter = KeyboardFilter(self.game.keyboard, self, lambda: [self.record_tab, self.versus_tab])
        QtWidgets.QApplication.instance().installEventFilter(self._key_filter)
        self._raise_filter = RaiseGameOnClick(self.game, self)
        QtWidgets.QApplication.instance().installEventFilter(self._raise_filter)

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 2)
        layout.addWidget(self._build_game_bar())
        self.tabs = PageTabs()
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setDocumentMode(True)  # no frame around the pages: their room goes to the controls
        layout.addWidget(self.tabs, 1)
        # Under the tabs, so that its coming and going never moves a control the user aims at.
        self.notice = Notice()
        layout.addWidget(self.notice)
        self.setCentralWidget(central)
        self._build_tabs()
        self._build_menu()
        self.statusBar().showMessage(KEYBOARD_HELP)

        self.game.started.connect(self._on_game_started)
        self.game.stopped.connect(self._on_game_stopped)
        self.game.failed.connect(lambda text: self.notice.show_message(text, "error"))
        self.game.pads_changed.connect(self.record_tab.refresh_drivers)  # hot-plug: the lists follow at once
        self.game.pads_changed.connect(self.versus_tab.refresh_drivers)
        self._status_timer = QtCore.QTimer(self)
        self._status_timer.setInterval(250)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()
        self._refresh_source()
        if self.settings.problem:
            self.notice.show_message(self.settings.problem, "warning")
        self._show_config_problems()

    # -- layout ------------------------------------------------------------------------------------
    def _build_game_bar(self) -> QtWidgets.QWidget:
        # Two rows, so the window fits beside the emulator on a 1366-pixel screen. Start/Stop is the
        # first of its row and has one width: it never moves under the mouse as the status changes.
        bar = QtWidgets.QGroupBox("Game")
        grid = QtWidgets.QGridLayout(bar)
        grid.setContentsMargins(6, 4, 6, 4)
        row = QtWidgets.QHBoxLayout()
        self.source_box = QtWidgets.QComboBox()
        for key, label in SOURCE_LABELS.items():
            self.source_box.addItem(label, key)
        self.source_box.setCurrentIndex(max(0, self.source_box.findData(self.settings.game_source)))
        self.source_box.currentIndexChanged.connect(self._on_source_chosen)
        self.source_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        # wide enough for every game's whole name: the ROM label beside it is the one that elides
        self.source_box.setMinimumContentsLength(max(len(label) for label in SOURCE_LABELS.values()))
        row.addWidget(self.source_box)
        # KartStudio Raceway's track number: the menu macro races on it (shown for Raceway only).
        self.track_box = QtWidgets.QSpinBox()
        self.track_box.setRange(0, 999)
        self.track_box.setPrefix("track ")
        self.track_box.setValue(self.settings.raceway_track)
        self.track_box.setToolTip("KartStudio Raceway track 0-999 (0 the oval, 1-5 named, every other one generated "
                                  "from its number); the game starts in a 2-player race on it")
        self.track_box.valueChanged.connect(self._on_track_chosen)
        row.addWidget(self.track_box)
        self.rom_label = NameLabel()
        row.addWidget(self.rom_label, 1)
        self.rom_button = QtWidgets.QPushButton("Choose ROM…")
        self.rom_button.clicked.connect(self.choose_rom)
        row.addWidget(self.rom_button)
        self.pair_button = QtWidgets.QPushButton("Pair controllers…")
        self.pair_button.clicked.connect(self.open_pair_wizard)
        row.addWidget(self.pair_button)
        settings_button = QtWidgets.QPushButton("Settings…")
        settings_button.clicked.connect(self.open_settings)
        row.addWidget(settings_button)
        grid.addLayout(row, 0, 0)
        row = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("▶ Start")
        width = max(self.start_button.fontMetrics().horizontalAdvance(t) for t in ("▶ Start", "■ Stop")) + 40
        self.start_button.setFixedWidth(width)
        self.start_button.clicked.connect(self.toggle_game)
        row.addWidget(self.start_button)
        self.status_label = StatusLabel("stopped")
        row.addWidget(self.status_label, 1)
        self.menus_button = QtWidgets.QPushButton("Menus → 2P VS race")
        self.menus_button.setToolTip("Play the menu macro: from boot to a 2-player VS race in Mario Kart 64")
        self.menus_button.clicked.connect(self.go_to_vs_race)
        self.menus_button.setVisible(False)
        row.addWidget(self.menus_button)  # last in its row: showing it moves nothing to its left
        grid.addLayout(row, 1, 0)
        return bar

    def _build_tabs(self) -> None:
        from kartstudio.gui.datasets_tab import DatasetsTab
        from kartstudio.gui.record_panel import RecordTab
        from kartstudio.gui.training_tab import TrainingTab
        from kartstudio.gui.versus_tab import VersusTab

        self.record_tab = RecordTab(self.game, start_game=self.start_game)
        self.datasets_tab = DatasetsTab(self.settings)
        self.training_tab = TrainingTab(self.settings)
        self.versus_tab = VersusTab(self.game, start_game=self.start_game, stop_game=self.stop_game)
        self.tabs.addTab(self.record_tab, "Record")
        self.tabs.addTab(self.datasets_tab, "Datasets")
        self.tabs.addTab(self.training_tab, "Training")
        self.tabs.addTab(self.versus_tab, "Versus the AI")
        self.record_tab.session_saved.connect(self.datasets_tab.refresh)
        self.record_tab.session_saved.connect(self.training_tab.refresh_sessions)
        self.versus_tab.session_saved.connect(self.datasets_tab.refresh)
        self.versus_tab.session_saved.connect(self.training_tab.refresh_sessions)
        self.versus_tab.race_ended.connect(self.record_tab.apply_drivers)
        self.datasets_tab.sessions_changed.connect(self.training_tab.refresh_sessions)
        self.training_tab.model_saved.connect(self.versus_tab.refresh_models)
        self.training_tab.model_kept.connect(lambda path: self.versus_tab.refresh_models(unfinished=path))

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.addAction("Choose ROM…", self.choose_rom)
        menu.addAction("Settings…", self.open_settings)
        menu.addAction("Pair controllers…", self.open_pair_wizard)
        menu.addAction("Build the test ROM…", self.build_test_rom)
        menu.addSeparator()
        menu.addAction("Quit", QtGui.QKeySequence.StandardKey.Quit, self.close)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("Keyboard controls", lambda: QtWidgets.QMessageBox.information(self, "Keyboard", KEYBOARD_HELP))
        help_menu.addAction("About KartStudio", self._about)

    def _about(self) -> None:
        QtWidgets.QMessageBox.about(
            self, "About KartStudio",
            f"KartStudio {__version__}\nRecord yourself playing, train a network on it, race it.\n"
            f"Settings: {self.settings_path()}\nData: {self.settings.data_folder}",
        )

    @staticmethod
    def settings_path() -> Path:
        from kartstudio.settings import settings_path

        return settings_path()

    # -- game source -------------------------------------------------------------------------------
    def _on_source_chosen(self) -> None:
        source = self.source_box.currentData()
        if source == self.settings.game_source:
            return
        self.settings.game_source = source
        self._save_quietly()
        self._refresh_source()

    def _on_track_chosen(self, track: int) -> None:
        if track != self.settings.raceway_track:
            self.settings.raceway_track = track
            self._save_quietly()

    def _refresh_source(self) -> None:
        s = self.settings
        raceway = s.game_source == "raceway"
        self.track_box.setVisible(raceway)
        if self.track_box.value() != s.raceway_track:  # the Settings dialog sets it too
            self.track_box.setValue(s.raceway_track)
        self.rom_button.setVisible(not raceway)  # Raceway needs no file of the user's
        if raceway:
            self.rom_label.setText("no ROM needed")
            self.rom_label.setToolTip("KartStudio Raceway is built from KartStudio's own source")
        elif s.rom_path:
            name = Path(s.rom_path).name
            self.rom_label.setText(f"ROM: {name}" if s.has_rom else f"ROM: {name} (missing!)")
            self.rom_label.setToolTip(s.rom_path)
        else:
            self.rom_label.setText("ROM: not set (practice track only)")
        problem = GameController.source_problem(s.game_source, s)
        if not s.rom_path and s.game_source == "practice" and not problem:
            self.notice.show_message(NO_ROM_TEXT, "info")
        elif problem:
            self.notice.show_message(problem, "warning")
        elif self.notice.level in ("info", "warning"):
            self.notice.clear_message()
        self.start_button.setEnabled(not problem or self.game.running)

    def choose_rom(self) -> None:
        # The current ROM's folder, else the home folder (never "/", the home folder's parent).
        start = Path(self.settings.rom_path).expanduser().parent if self.settings.rom_path else Path.home()
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Choose your Mario Kart 64 ROM", str(start),
            "N64 ROMs (*.z64 *.n64 *.v64);;All files (*)",
        )
        if path:
            self.set_rom(path)

    def build_test_rom(self, path: str | None = None) -> bool:
        """Build KartStudio's own test ROM into a file the user picks, and choose it: the emulator path
        can be tried without a Mario Kart 64 dump."""
        from kartstudio.emulator.testrom import write_test_rom

        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(
                self, "Build KartStudio's test ROM", str(Path.home() / "kartstudio-test.z64"), "N64 ROMs (*.z64)")
            if not path:
                return False
        try:
            built = write_test_rom(path)
        except KartStudioError as exc:
            self.notice.show_message(str(exc), "error")
            return False
        return self.set_rom(str(built))

    def set_rom(self, path: str) -> bool:
        """Check and keep a ROM path; the check's one-line message is shown if it is not usable."""
        from kartstudio.emulator.rom import require_game_rom

        try:
            info = require_game_rom(path)
        except KartStudioError as exc:  # RomError says what is wrong
            self.notice.show_message(str(exc), "error")
            return False
        self.statusBar().showMessage(f"ROM: {info.describe()}", 8000)
        if self.notice.level == "error":
            self.notice.clear_message()  # the refusal of the ROM chosen before no longer holds
        self.settings.rom_path = str(path)
        self.settings.game_source = "mk64"
        self._save_quietly()
        self.source_box.setCurrentIndex(self.source_box.findData("mk64"))
        self._refresh_source()
        return True

    def _save_quietly(self) -> None:
        try:
            save_settings(self.settings)
        except SettingsError as exc:
            self.notice.show_message(str(exc), "error")

    # -- start / stop ------------------------------------------------------------------------------
    def toggle_game(self) -> None:
        if self.game.running or self.game.building:  # Stop while Raceway builds: it does not start
            self.stop_game()
        else:
            self.start_game()

    def start_game(self) -> bool:
        problem = GameController.source_problem(self.settings.game_source, self.settings)
        if problem:
            self.notice.show_message(problem, "error")
            return False
        if self.notice.level == "error":
            self.notice.clear_message()
        ok = self.game.start(self.settings.game_source)
        if ok:
            self.start_button.setText("■ Stop")
            self.source_box.setEnabled(False)
            self.track_box.setEnabled(False)
        return ok

    def stop_game(self) -> None:
        self.record_tab.stop_all(wait=True)
        self.versus_tab.stop_versus()
        self.game.stop()

    def go_to_vs_race(self) -> None:
        """Drive the menus to a 2-player VS race with the emulator's menu macro (on the game thread)."""
        loop = self.game.loop
        if loop is None or self.game.backend is None or not self.game.backend.plays_menu_macros:
            return

        def play(backend) -> str:
            from kartstudio.emulator.macro import load_mk64_vs_macro

            reports = backend.play_macro(load_mk64_vs_macro())
            return f"Menu macro played ({len(reports)} input polls): the race should be on."

        self._last_note = ""
        self.statusBar().showMessage("Playing the menu macro…", 5000)
        loop.call_soon(play, "the menu macro")

    def _on_game_started(self) -> None:
        if self.tabs.currentWidget() in (self.record_tab, self.versus_tab):
            self.tabs.currentWidget().setFocus()  # the keyboard drives from here on
        self.start_button.setText("■ Stop")
        self.source_box.setEnabled(False)
        self.track_box.setEnabled(False)
        if self.notice.text() == NO_ROM_TEXT:
            self.notice.clear_message()  # racing now: the no-ROM hint only takes room
        self.record_tab.on_game_started()
        self.versus_tab.on_game_started()
        self._step_aside()

    def _step_aside(self) -> None:
        """Make room for the pinned emulator window: the app moves and shrinks into the space beside
        it (or below it), so no control lies under the emulator, which is kept on top."""
        emulator = self.game.window_frame()
        screen = self.screen()
        if emulator is None or screen is None:
            return
        free = screen.availableGeometry()
        margins = self.frameGeometry().size() - self.geometry().size()  # the window manager's frame
        least = self.minimumSizeHint().expandedTo(self.minimumSize()) + margins
        spot = place_beside(QtCore.QRect(*emulator), free, least, QtCore.QSize(1400, 4000))
        if spot is None:
            self.statusBar().showMessage("The screen has no room beside or below the emulator for this window; "
                                         "the emulator stays on top.", 10000)
            return
        if self.isMaximized() or self.isFullScreen():
            self.showNormal()
        self.resize(spot.size() - margins)
        self.move(spot.topLeft())  # move() places the frame's corner

    def _on_game_stopped(self) -> None:
        self.start_button.setText("▶ Start")
        self.source_box.setEnabled(True)
        self.track_box.setEnabled(True)
        self.record_tab.on_game_stopped()
        self.versus_tab.on_game_stopped()

    def _show_config_problems(self) -> None:
        """A pads.json or pairing.json that was set aside (read when the pads start): said once."""
        from kartstudio.configfile import take_problems

        problems = take_problems()
        if problems:
            self.notice.show_message(" ".join(problems), "warning")

    def _refresh_status(self) -> None:
        self._show_config_problems()
        loop = self.game.loop
        if loop is None and self.game.building:
            self.status_label.set_status("● building the game…", "KartStudio Raceway is compiled from source "
                                         "on first use (a few seconds); it starts when it is built")
            self.status_label.setStyleSheet("color:#b80;font-weight:bold;")
            return
        if loop is None:
            self.menus_button.setVisible(False)
            self.status_label.set_status("● stopped")
            self.status_label.setStyleSheet("color:#777;")
            if not self.game.running:
                self.start_button.setText("▶ Start")
                self.source_box.setEnabled(True)
                self.track_box.setEnabled(True)
            return
        st = loop.status
        # The macro knows Mario Kart 64's menus only: not offered for the test ROM.
        self.menus_button.setVisible(self.game.source == "mk64" and self.game.game_name() == "mk64" and st.running)
        if st.note and st.note != getattr(self, "_last_note", ""):
            self._last_note = st.note
            self.notice.show_message(st.note, "error" if "failed" in st.note else "info")
        colour_warn = False
        if st.starting:
            text, colour = "● starting…", "#b80"
        else:
            text = f"● {self.game.title()} running · {st.fps:.1f} fps captured"
            if st.polls_per_s is not None:
                # the game's own speed: MK64 polls its pads once per frame, 60 a second at full speed
                text += f" · game {st.polls_per_s:.0f} polls/s"
                if st.polls_per_s < SLOW_GAME_POLLS:
                    colour_warn = True
                    text += " (slow: the video plugin or the CPU holds it back)"
            if self.game.source in ("mk64", "raceway"):  # the emulator's window
                place = self.game.window_place()
                text += f" · pinned at {place[0]},{place[1]}" if place else " · not pinned yet"
                held = self.game.capture_problem()
                if held:  # frames are held back rather than recording the wrong picture
                    colour_warn = True
                    text += f" · no frames: {held.split(';')[0]}"
                blank = self.game.picture_problem()
                if blank:  # never a black picture under a green "running"
                    colour_warn = True
                    text += " · blank picture"
                    if self.notice.text() != blank[0].upper() + blank[1:] + ".":
                        self.notice.show_message(blank[0].upper() + blank[1:] + ".", "warning")
                elif self.notice.level == "warning" and self.notice.text().startswith("The picture has been"):
                    self.notice.clear_message()
            colour = "#b80" if colour_warn else "#1a8f3a"
        why = []
        if colour_warn:
            why.append("Orange: " + "; ".join(filter(None, [
                self.game.capture_problem(), self.game.picture_problem(),
                "the game runs slower than full speed (60 polls/s)" if (st.polls_per_s or 60) < SLOW_GAME_POLLS else ""])))
        self.status_label.set_status(text, "\n".join([*why, f"{st.frames} frames since start"]))
        self.status_label.setStyleSheet(f"color:{colour};font-weight:bold;")

    # -- dialogs -----------------------------------------------------------------------------------
    def open_settings(self) -> None:
        from kartstudio.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        before = {name: getattr(self.settings, name) for name in RESTART_SETTINGS}
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self._settings_saved(before)

    def _settings_saved(self, before: dict) -> None:
        changed = [what for name, what in RESTART_SETTINGS.items()
                   if getattr(self.settings, name) != before.get(name, getattr(self.settings, name))]
        self._refresh_source()
        if changed and self.game.running:  # the running game keeps what it was started with
            verb = "takes" if len(changed) == 1 else "take"
            self.notice.show_message(f"Saved. The {' and the '.join(changed)} {verb} effect when the game restarts: "
                                     "■ Stop, then ▶ Start.", "warning")
        self.datasets_tab.refresh()
        self.training_tab.refresh_sessions()
        self.training_tab.refresh_models()
        self.versus_tab.refresh_models()

    def open_pair_wizard(self) -> None:
        from kartstudio.gui.pair_wizard import PairWizard

        PairWizard(parent=self).exec()
        self.record_tab.refresh_drivers()
        self.versus_tab.refresh_drivers()

    # -- closing -----------------------------------------------------------------------------------
    def busy_with(self) -> str:
        """What closing now would end ("" if nothing): recording, a takeover, training."""
        work = []
        if self.record_tab.recording:
            work.append("recording")
        if self.versus_tab.taken_over:
            work.append("recording corrections")
        if self.training_tab.running:
            work.append("training")
        return " and ".join(work)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        work = self.busy_with()
        if work and not self.force_close:
            answer = QtWidgets.QMessageBox.question(
                self, "Quit KartStudio?",
                f"KartStudio is {work}. Quit anyway? Recordings are saved up to now; training keeps its "
                "best checkpoint so far.",
            )
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        # Recordings are finished and flushed before anything else goes away.
        self.record_tab.stop_all(wait=True)
        self.versus_tab.stop_versus()
        self.training_tab.shutdown()
        self.game.stop()
        QtWidgets.QApplication.instance().removeEventFilter(self._key_filter)
        QtWidgets.QApplication.instance().removeEventFilter(self._raise_filter)
        super().closeEvent(event)
