"""The Record tab: one panel per seat (live preview of its half, pad meter, file name, counters,
its own record toggle) and one 'Record session' button for both seats.

Both seats record through one kartstudio.recording_desk.RecordingDesk (one Recorder, fed by the game
loop thread): 'Record session' starts both seats on the same frame, a seat's own toggle starts or
stops it alone. The desk names the files, refuses what cannot start and stops a seat in trouble;
the panels only show it. Stopping drains the writer's queue on a helper thread, so the window
keeps repainting at every step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.common import ImageView, NameLabel, Notice, describe_error, narrow
from kartstudio.gui.game_controller import GameController
from kartstudio.gui.widgets import PadMeter
from kartstudio.recording_desk import Finished, RecordingDesk, SeatPlan
from kartstudio.session import SessionMeta, session_name

REFRESH_MS = 33  # previews and meters at ~30 Hz, whatever the game's rate


class SeatPanel(QtWidgets.QGroupBox):
    recording_changed = QtCore.pyqtSignal()
    saved = QtCore.pyqtSignal(str)  # path of a finished session file

    def __init__(self, seat: int, game: GameController, desk: RecordingDesk, parent=None) -> None:
        super().__init__(f"Seat {seat} — {'top' if seat == 1 else 'bottom'} half", parent)
        self.seat = seat
        self.game = game
        self.desk = desk
        self.path: Path | None = None  # the file it records to, or last recorded
        self.name_edited = False
        self._fps_mark = (time.monotonic(), 0)
        self.fps = 0.0
        self._unplugged = False
        self._default_key = None  # the driver the list chose itself last time (not the user)

        v = QtWidgets.QVBoxLayout(self)
        self.preview = ImageView(f"Seat {seat}: start the game to see this half", (240, 90))
        v.addWidget(self.preview, 1)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Driven by"))
        self.driver_box = narrow(QtWidgets.QComboBox(), 12)
        self.driver_box.currentIndexChanged.connect(self._apply_driver)
        row.addWidget(self.driver_box, 1)
        v.addLayout(row)
        self.meter = PadMeter()
        v.addWidget(self.meter)
        form = QtWidgets.QFormLayout()
        self.name_edit = QtWidgets.QLineEdit()
        self.name_edit.setToolTip("The session file for this seat, in the sessions folder. Edit it to choose your "
                                  "own name; an existing file is never overwritten.")
        self.name_edit.textEdited.connect(self._on_name_edited)
        form.addRow("File", self.name_edit)
        self.codec_box = QtWidgets.QComboBox()
        self.codec_box.addItem("lossless (exact pixels)", "lossless")
        self.codec_box.addItem("jpeg (about 3x smaller)", "jpeg")
        self.codec_box.setCurrentIndex(max(0, self.codec_box.findData(game.settings.frames_codec)))
        self.codec_box.setToolTip("How this seat's frames are stored; the default is chosen in Settings")
        form.addRow("Store frames", self.codec_box)
        self.counters = QtWidgets.QLabel("frames 0 · 0.0 fps · dropped 0")
        self.counters.setStyleSheet("font-family:monospace;")
        form.addRow("Recorded", self.counters)
        v.addLayout(form)
        row = QtWidgets.QHBoxLayout()
        self.toggle = QtWidgets.QPushButton(f"● Record seat {seat}")
        self.toggle.setCheckable(True)
        self.toggle.clicked.connect(self._on_toggle)
        row.addWidget(self.toggle)
        self.last_saved = NameLabel("")
        row.addWidget(self.last_saved, 1)
        v.addLayout(row)
        self.notice = Notice()
        v.addWidget(self.notice)
        self.refresh_drivers()
        self.refresh_name()

    # -- drivers -----------------------------------------------------------------------------------
    def refresh_drivers(self) -> None:
        current = self.driver_box.currentData()
        self.driver_box.blockSignals(True)
        self.driver_box.clear()
        self._choices = self.game.driver_choices(self.seat)
        for choice in self._choices:
            self.driver_box.addItem(choice.label, choice.key)
        keys = [c.key for c in self._choices]
        paired = self.game.paired_pad(self.seat)
        paired_index = next((i for i, c in enumerate(self._choices) if paired is not None and c.pad is paired), None)
        defaulted = current is None or current == self._default_key  # not the user's own choice
        if paired_index is not None and (defaulted or str(current).startswith("pad:")):
            index = paired_index  # the pair-controllers wizard's choice beats any other pad and a default
        elif current in keys:
            index = keys.index(current)
        else:
            # default: seat 1 the keyboard (last pad), seat 2 the first gamepad if any, else nobody
            pads = [i for i, c in enumerate(self._choices) if c.pad is not None]
            keyboard = next((i for i, c in enumerate(self._choices) if c.pad is self.game.keyboard), 0)
            # only pads plugged in now: one seen earlier and unplugged would pause the recording
            gamepads = [i for i in pads if i != keyboard and getattr(self._choices[i].pad, "connected", True)]
            if self.seat == 1:
                index = gamepads[0] if gamepads else keyboard
            else:
                index = gamepads[1] if len(gamepads) > 1 else keys.index("nobody")
        self.driver_box.setCurrentIndex(index)
        self.driver_box.blockSignals(False)
        if defaulted or index == paired_index:
            self._default_key = self.driver_box.currentData()
        if self.driver_box.currentData() != current:  # the same pad keeps its driver (a hot-plug elsewhere)
            self._apply_driver()

    def choose_driver(self, key: str) -> bool:
        index = self.driver_box.findData(key)
        if index >= 0:
            self.driver_box.setCurrentIndex(index)
            self._apply_driver()
        return index >= 0

    def current_choice(self):
        i = self.driver_box.currentIndex()
        return self._choices[i] if 0 <= i < len(self._choices) else None

    def _apply_driver(self) -> None:
        loop = self.game.loop
        choice = self.current_choice()
        if loop is not None and choice is not None and not self.game.versus_active:
            loop.set_driver(self.seat, choice.make())

    # -- file names --------------------------------------------------------------------------------
    def refresh_name(self) -> None:
        if not self.name_edited and not self.recording:
            self.name_edit.setText(session_name(self.game.track(), self.seat))

    def _on_name_edited(self, text: str) -> None:
        self.name_edited = bool(text.strip())

    def plan(self) -> SeatPlan:
        """What this seat records, as its widgets say (the desk names and claims the file)."""
        loop = self.game.loop
        choice = self.current_choice()
        pad = choice.pad if choice is not None and choice.pad is not None else loop.applied_pad(self.seat)
        meta = SessionMeta(
            game=self.game.game_name(),
            track=self.game.track(),
            # a seat no pad drives (the expert, nobody) is named by its driver, not "seat 1 driver"
            pad_name=choice.pad.name if choice is not None and choice.pad is not None else (
                choice.label if choice is not None else getattr(pad, "name", "")),
            pad_guid=getattr(pad, "guid", "") if choice is None or choice.pad is not None else "",
            storage_size=tuple(self.game.settings.storage_size),
            codec=self.codec_box.currentData(),
            jpeg_quality=int(self.game.settings.jpeg_quality),
            kind="play",
            source="kartstudio-gui",
            fps=float(self.game.backend.fps if self.game.backend is not None else 30.0),
            extra={"driver": choice.label if choice else ""},
        )
        return SeatPlan(meta, pad, self.name_edit.text() if self.name_edited else None)

    # -- recording ---------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.desk.recording(self.seat)

    @property
    def busy(self) -> bool:
        return self.desk.busy(self.seat)

    @property
    def recorder(self):
        """The Recorder this seat records through (shared with the other seat), while it does."""
        return self.desk.recorder if self.recording or self.busy else None

    def _on_toggle(self) -> None:
        if self.recording:
            self.stop()
        else:
            self.start()
        self.toggle.setChecked(self.recording)

    def start(self) -> bool:
        """Start recording this seat alone; False (with the reason shown) if it cannot."""
        return start_seats(self.game, self.desk, [self])[self.seat]

    def show_started(self, path: Path) -> None:
        self.path = path
        self.name_edit.setText(path.name)
        self.notice.clear_message()
        self._fps_mark = (time.monotonic(), 0)
        self.name_edit.setReadOnly(True)
        self.codec_box.setEnabled(False)
        self.toggle.setChecked(True)
        self.toggle.setText(f"■ Stop seat {self.seat}")
        self.last_saved.setText(f"recording to {path.name}")
        self.recording_changed.emit()

    def show_refused(self, why: str) -> None:
        self.notice.show_message(why, "error")
        self.toggle.setChecked(False)

    def stop(self, wait: bool = False) -> None:
        """Stop this seat alone; its queue is written and the file closed on a helper thread."""
        self.desk.stop([self.seat], wait=wait)
        self.sync()

    def sync(self) -> None:
        """Show what the desk reports for this seat: its error, its finished file, its button."""
        update = self.desk.poll(self.seat)
        if update.error:
            self.notice.show_message(update.error, "error")
        if update.finished is not None:
            self._show_finished(update.finished)
        elif self.busy:
            self.toggle.setEnabled(False)
            self.toggle.setText("finishing…")

    def _show_finished(self, finished: Finished) -> None:
        self.name_edited = False
        self.name_edit.setReadOnly(False)
        self.codec_box.setEnabled(True)
        self.toggle.setEnabled(True)
        self.toggle.setChecked(False)
        self.toggle.setText(f"● Record seat {self.seat}")
        self.refresh_name()
        self.last_saved.setText(f"saved {finished.path.name} ({finished.frames} frames)")
        self.saved.emit(str(finished.path))
        self.recording_changed.emit()

    # -- refresh (UI timer) ------------------------------------------------------------------------
    def refresh(self) -> None:
        loop = self.game.loop
        frame = loop.latest() if loop is not None else None
        if frame is not None and self.isVisible():
            self.preview.set_image(self.game.backend.layout.crop(frame.image, self.seat))
        choice = self.current_choice()
        pad = choice.pad if choice is not None else None
        if pad is not None and not getattr(pad, "connected", True):
            what = "recording is paused until it is back" if self.recording else "plug it back in"
            self.notice.show_message(f"Seat {self.seat}'s pad '{pad.name}' is unplugged: {what}.", "warning")
            self._unplugged = True
        elif self._unplugged:
            self._unplugged = False
            self.notice.clear_message()
        if pad is not None:
            self.meter.set_state(pad.last)
        elif loop is not None:
            state = loop.status.applied.get(self.seat)
            if state is not None:
                self.meter.set_state(state)
        self.sync()
        c = self.desk.counters(self.seat)
        if c is not None:
            now = time.monotonic()
            t0, n0 = self._fps_mark
            if now - t0 >= 1.0:
                self.fps = (c.written - n0) / (now - t0)
                self._fps_mark = (now, c.written)
            extra = f" · paused {c.paused}" if c.paused else ""
            self.counters.setText(f"frames {c.written} · {self.fps:.1f} fps · dropped {c.dropped}{extra}")


def start_seats(game: GameController, desk: RecordingDesk, panels: list[SeatPanel]) -> dict[int, bool]:
    """Start the panels' seats together (one frame); each refused seat shows why in its panel."""
    loop = game.loop
    if loop is None or not loop.status.running:
        for panel in panels:
            panel.show_refused("Start the game first (▶ Start at the top), then record.")
        return {panel.seat: False for panel in panels}
    armed = [p for p in panels if not p.recording and not p.busy]
    try:
        started, refused = desk.start(loop, game.settings.sessions_folder, {p.seat: p.plan() for p in armed})
    except Exception as exc:  # noqa: BLE001 - shown in the panels
        started, refused = {}, {p.seat: describe_error(exc) for p in armed}
    for panel in armed:
        if panel.seat in started:
            panel.show_started(started[panel.seat])
        else:
            panel.show_refused(refused.get(panel.seat, f"seat {panel.seat} did not start"))
    return {p.seat: p.recording for p in panels}


class RecordTab(QtWidgets.QWidget):
    session_saved = QtCore.pyqtSignal(str)

    def __init__(self, game: GameController, start_game: Callable[[], bool] | None = None, parent=None) -> None:
        """start_game: how 'Record session' starts a game that is not running (the main window's, which
        checks the game source first); by default the game itself."""
        super().__init__(parent)
        self.game = game
        self._start_game = start_game or game.start
        self._record_when_started = False
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)  # focus here = the keyboard drives
        v = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        self.session_button = QtWidgets.QPushButton("● Record session")
        self.session_button.setMinimumHeight(36)
        self.session_button.setStyleSheet("font-weight:bold;")
        self.session_button.setToolTip("Start or stop recording both seats at once (the game starts if needed)")
        self.session_button.clicked.connect(self.toggle_session)
        top.addWidget(self.session_button)
        self.folder_label = NameLabel()
        top.addWidget(self.folder_label, 1)
        v.addLayout(top)
        self.notice = Notice()
        v.addWidget(self.notice)
        row = QtWidgets.QHBoxLayout()
        self.desk = RecordingDesk()
        self.panels = {seat: SeatPanel(seat, game, self.desk) for seat in (1, 2)}
        for panel in self.panels.values():
            row.addWidget(panel)
            panel.recording_changed.connect(self._update_button)
            panel.saved.connect(self.session_saved)
        v.addLayout(row, 1)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self._timer.start()
        self._name_timer = QtCore.QTimer(self)
        self._name_timer.setInterval(1000)
        self._name_timer.timeout.connect(self._refresh_names)
        self._name_timer.start()
        self._update_button()
        self._refresh_names()

    @property
    def recording(self) -> bool:
        return any(p.recording for p in self.panels.values())

    def apply_drivers(self) -> None:
        """Each seat driven by what its panel says (after a race of the Versus tab ends)."""
        for panel in self.panels.values():
            panel._apply_driver()

    def toggle_session(self) -> None:
        if self.recording:
            self.stop_all()
        else:
            self.start_all()

    def start_all(self) -> bool:
        loop = self.game.loop
        if loop is None or not loop.status.running:
            if not self.game.running:
                if not self._start_game():
                    return False
            self._record_when_started = True
            self.notice.show_message("Starting the game; recording begins with its first frames…", "info")
            return True
        ok = all(start_seats(self.game, self.desk, list(self.panels.values())).values())
        self._update_button()
        return ok

    def stop_all(self, wait: bool = False) -> None:
        """Stop every recording seat after the same frame (wait: until their files are written)."""
        self._record_when_started = False
        self.desk.stop(wait=wait)
        for panel in self.panels.values():
            panel.sync()
        self._update_button()

    def refresh_drivers(self) -> None:
        for panel in self.panels.values():
            panel.refresh_drivers()

    def on_game_started(self) -> None:
        self.refresh_drivers()
        for panel in self.panels.values():
            panel._apply_driver()
            panel.refresh_name()
        if self._record_when_started:
            self._record_when_started = False
            self.notice.clear_message()
            self.start_all()

    def on_game_stopped(self) -> None:
        self.stop_all(wait=True)

    def _refresh(self) -> None:
        for panel in self.panels.values():
            panel.refresh()

    def _refresh_names(self) -> None:
        self.folder_label.setText(f"Sessions are saved in {self.game.settings.sessions_folder}")
        for panel in self.panels.values():
            panel.refresh_name()

    def _update_button(self) -> None:
        self.session_button.setText("■ Stop session" if self.recording else "● Record session")
