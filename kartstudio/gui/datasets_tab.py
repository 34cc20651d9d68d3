"""The Datasets tab: every session in the data folder, a frame scrubber with the action trace
plotted under it, excluded ranges (trim), delete to the trash, and TensorKart import."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.common import (ImageView, NameLabel, Notice, describe_error, human_duration, human_size,
                                   name_view)
from kartstudio.gui.workers import BackgroundTask, Cancelled
from kartstudio.session import session_rows
from kartstudio.settings import Settings

COLUMNS = ("File", "Kind", "Seat", "Track", "Frames", "Duration", "Size", "Excluded")
TRACE_COLOURS = {"x": "#1f77b4", "y": "#9467bd", "a": "#2ca02c", "b": "#d62728", "rb": "#ff7f0e"}


def _size_of(path: Path) -> str:
    try:
        return human_size(path.stat().st_size)
    except OSError:
        return ""


class DatasetsTab(QtWidgets.QWidget):
    sessions_changed = QtCore.pyqtSignal()

    def __init__(self, settings: Settings, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.rows: list[dict] = []
        self.session = None  # the open Session being viewed
        self.actions = np.zeros((0, 5), np.float32)
        self.mark_in: int | None = None
        self._frame_error = False  # the notice shows a frame's error (cleared when a good frame is shown)
        self.import_task: BackgroundTask | None = None
        self.progress: QtWidgets.QProgressDialog | None = None

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.folder_label = NameLabel()
        lv.addWidget(self.folder_label)
        self.table = name_view(QtWidgets.QTableWidget(0, len(COLUMNS)))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_select)
        lv.addWidget(self.table, 1)
        buttons = QtWidgets.QHBoxLayout()
        refresh = QtWidgets.QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        buttons.addWidget(refresh)
        self.import_button = QtWidgets.QPushButton("Import TensorKart…")
        menu = QtWidgets.QMenu(self.import_button)
        menu.addAction("A record.py folder (data.csv + PNGs)…", self.choose_import)
        menu.addAction("Prepared arrays (X.npy + y.npy)…", self.choose_import_arrays)
        self.import_button.setMenu(menu)
        buttons.addWidget(self.import_button)
        delete = QtWidgets.QPushButton("Delete…")
        delete.clicked.connect(lambda: self.delete_selected())
        buttons.addWidget(delete)
        lv.addLayout(buttons)
        from kartstudio.gui.datacheck_panel import DataCheckPanel  # the data check of listed/selected sessions

        self.check_panel = DataCheckPanel(
            lambda: [row["path"] for row in self.rows],
            lambda: list(dict.fromkeys(i.data(QtCore.Qt.ItemDataRole.UserRole) for i in self.table.selectedItems())))
        self.check_panel.session_activated.connect(self.select_path)
        lv.addWidget(self.check_panel)
        split.addWidget(left)

        right = QtWidgets.QWidget()
        rv = QtWidgets.QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        self.viewer_title = QtWidgets.QLabel("Select a session to scrub through its frames")
        rv.addWidget(self.viewer_title)
        self.image = ImageView("no session selected", (320, 120))
        rv.addWidget(self.image, 3)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self.show_frame)
        rv.addWidget(self.slider)
        self.frame_label = QtWidgets.QLabel("")
        self.frame_label.setStyleSheet("font-family:monospace;")
        rv.addWidget(self.frame_label)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "frame")
        self.plot.setLabel("left", "action")
        for side in ("bottom", "left"):  # frame numbers and actions, never "frame (x0.001)"
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.plot.setXRange(0, 100, padding=0)  # empty: frames 0..100, not -400..400
        # above the traces, on a pale background, so neither hides the other
        self.plot.addLegend(offset=(5, 5), brush=pg.mkBrush(255, 255, 255, 200)).setZValue(1000)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setYRange(-1.1, 1.1)
        self.curves = {k: self.plot.plot([], [], pen=pg.mkPen(c, width=1.5), name=k) for k, c in TRACE_COLOURS.items()}
        self.cursor = pg.InfiniteLine(0, movable=True, pen=pg.mkPen("#000", width=1))
        self.cursor.sigPositionChanged.connect(lambda line: self.slider.setValue(int(round(line.value()))))
        self.plot.addItem(self.cursor)
        self.excluded_items: list[pg.LinearRegionItem] = []
        rv.addWidget(self.plot, 2)
        trim = QtWidgets.QHBoxLayout()
        self.in_button = QtWidgets.QPushButton("Mark start [")
        self.in_button.clicked.connect(self.mark_start)
        self.out_button = QtWidgets.QPushButton("Exclude to here ]")
        self.out_button.clicked.connect(self.mark_end)
        self.clear_button = QtWidgets.QPushButton("Remove exclusion here")
        self.clear_button.clicked.connect(self.remove_exclusion_here)
        for b in (self.in_button, self.out_button, self.clear_button):
            b.setEnabled(False)
            trim.addWidget(b)
        self.trim_label = QtWidgets.QLabel("")
        trim.addWidget(self.trim_label, 1)
        rv.addLayout(trim)
        self.notice = Notice()
        rv.addWidget(self.notice)
        split.addWidget(right)
        split.setSizes([560, 700])
        outer = QtWidgets.QVBoxLayout(self)
        outer.addWidget(split)
        self.refresh()

    # -- the list ----------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.settings.sessions_folder

    def refresh(self, *_args) -> None:
        selected = self.selected_path()
        self.folder_label.setText(f"Sessions in {self.folder}")
        self.rows = session_rows(self.folder)
        self.table.setRowCount(len(self.rows))
        for r, info in enumerate(self.rows):
            path = Path(info["path"])
            if "problem" in info:
                values = [path.name, "unreadable", "", info["problem"], "", "", _size_of(path), ""]
            else:
                frames = str(info["frames"])
                if info.get("cut_short"):  # truncation named in the list; the whole line on hover
                    frames = f"{info['frames']} of {info['frames_claimed']} (cut short)"
                values = [
                    path.name, info["kind"], "whole" if info.get("layout") == "whole" else str(info["seat"]),
                    info["track"], frames,
                    human_duration(info["duration_s"]), human_size(info["bytes_on_disk"]),
                    str(info["excluded_frames"]) if info["excluded_frames"] else "",
                ]
            for c, value in enumerate(values):
                item = QtWidgets.QTableWidgetItem(value)
                item.setData(QtCore.Qt.ItemDataRole.UserRole, str(path))
                if c == 0:
                    item.setToolTip(str(path))
                if info.get("cut_short_note"):
                    item.setToolTip(info["cut_short_note"])
                if c in (2, 4, 7):
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        if selected:
            self.select_path(selected)

    def selected_path(self) -> Path | None:
        items = self.table.selectedItems()
        return Path(items[0].data(QtCore.Qt.ItemDataRole.UserRole)) if items else None

    def select_path(self, path: str | Path) -> bool:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(QtCore.Qt.ItemDataRole.UserRole) == str(path):
                self.table.selectRow(r)
                return True
        return False

    # -- the viewer --------------------------------------------------------------------------------
    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _on_select(self) -> None:
        path = self.selected_path()
        self._close_session()
        self.notice.clear_message()
        self._frame_error = False
        self.mark_in = None
        if path is None:
            return self._show_empty("Select a session to scrub through its frames")
        from kartstudio.session import open_session

        try:
            self.session = open_session(path)
            # only the frames the session holds: a recovered file keeps label rows past them
            self.actions = np.asarray(self.session.actions[: len(self.session)], dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - damaged files are shown, not raised
            self._close_session()
            self.notice.show_message(describe_error(exc), "error")
            return self._show_empty(path.name)
        s = self.session
        n = len(s)
        meta = s.meta
        if s.cut_short:
            state = f" (cut short: {n} of {s.frames_claimed} frames recovered)"
            self.notice.show_message(s.cut_short_note or "", "warning")
        else:
            state = "" if s.complete else " (not closed cleanly)"
        fps = "? fps" if s.fps is None else f"{s.fps:.1f} fps"
        self.viewer_title.setText(
            f"<b>{path.name}</b> — {'whole screen' if s.layout == 'whole' else f'seat {meta.seat}'}, "
            f"{meta.game}/{meta.track}, {meta.kind}, {n} frames, {s.codec}, {fps}{state}"
        )
        frames = np.arange(n)
        for i, key in enumerate(TRACE_COLOURS):
            self.curves[key].setData(frames, self.actions[:, i] if n else [])
        self.plot.setXRange(0, max(1, n - 1))
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        for b in (self.slider, self.in_button, self.out_button, self.clear_button):
            b.setEnabled(n > 0)
        self._draw_excluded()
        self.show_frame(0)

    def _show_empty(self, title: str) -> None:
        self.viewer_title.setText(title)
        self.image.set_image(None)
        self.frame_label.setText("")
        for curve in self.curves.values():
            curve.clear()
        for b in (self.slider, self.in_button, self.out_button, self.clear_button):
            b.setEnabled(False)
        self._draw_excluded()

    def show_frame(self, i: int) -> None:
        s = self.session
        if s is None or not len(s):
            return
        i = int(max(0, min(i, len(s) - 1)))
        try:
            self.image.set_image(s.frame(i))  # decoded, whatever the codec
            if self._frame_error:  # the last frame's error no longer applies
                self._frame_error = False
                self.notice.show_message(s.cut_short_note or "", "warning")
        except Exception as exc:  # noqa: BLE001 - a damaged frame (SessionFileError names file and frame)
            message = describe_error(exc)
            self.image.set_image(None)
            self.image.setText(f"frame {i + 1} cannot be shown")  # in place of the picture, never the last one
            self.notice.show_message(message, "error")
            self._frame_error = True
        x, y, a, b, rb = self.actions[i]
        excluded = any(start <= i < stop for start, stop in s.excluded)
        try:
            t = float(s.timestamps[i]) - float(s.timestamps[0])  # as floats: no int64 wrap
        except Exception:  # noqa: BLE001
            t = float("nan")
        when = f"t={t:6.2f}s" if np.isfinite(t) and abs(t) < 1e9 else "t=?"
        self.frame_label.setText(
            f"frame {i + 1}/{len(s)}  {when}  x={x:+.2f} y={y:+.2f} a={a:.0f} b={b:.0f} rb={rb:.0f}"
            + ("  [excluded]" if excluded else "")
        )
        self.cursor.blockSignals(True)
        self.cursor.setValue(i)
        self.cursor.blockSignals(False)
        if self.slider.value() != i:
            self.slider.setValue(i)

    def _draw_excluded(self) -> None:
        for item in self.excluded_items:
            self.plot.removeItem(item)
        self.excluded_items = []
        if self.session is None:
            return
        for start, stop in self.session.excluded:
            item = pg.LinearRegionItem((start, stop - 1), movable=False, brush=pg.mkBrush(220, 50, 50, 60))
            self.plot.addItem(item)
            self.excluded_items.append(item)
        excluded = len(self.session) - len(self.session.included_indices())
        mark = f"  start marked at frame {self.mark_in + 1}" if self.mark_in is not None else ""
        self.trim_label.setText(f"{excluded} frames excluded from training{mark}")

    # -- trimming ----------------------------------------------------------------------------------
    def mark_start(self) -> None:
        self.mark_in = self.slider.value()
        self._draw_excluded()

    def mark_end(self) -> None:
        if self.session is None:
            return
        if self.mark_in is None:
            self.notice.show_message("Mark the start of the range first ('Mark start ['), then move to its end.", "warning")
            return
        a, b = sorted((self.mark_in, self.slider.value()))
        self.set_ranges([*self.session.excluded, (a, b + 1)])
        self.mark_in = None
        self._draw_excluded()

    def remove_exclusion_here(self) -> None:
        if self.session is None:
            return
        i = self.slider.value()
        kept = [(a, b) for a, b in self.session.excluded if not a <= i < b]
        if len(kept) == len(self.session.excluded):
            self.notice.show_message("The current frame is not inside an excluded range.", "info")
            return
        self.set_ranges(kept)

    def set_ranges(self, ranges: list[tuple[int, int]]) -> None:
        """Write the excluded ranges (merged) to the session file and show them."""
        from kartstudio.session import set_excluded

        path, i = self.session.path, self.slider.value()
        merged: list[tuple[int, int]] = []
        for a, b in sorted(ranges):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        self._close_session()  # HDF5 wants the read handle closed before writing
        try:
            set_excluded(path, merged)
        except Exception as exc:  # noqa: BLE001
            self.notice.show_message(describe_error(exc), "error")
        self.refresh()
        self.select_path(path)
        self._on_select()
        self.show_frame(i)
        self.sessions_changed.emit()

    # -- delete ------------------------------------------------------------------------------------
    def delete_selected(self, confirm: bool = True) -> bool:
        path = self.selected_path()
        if path is None:
            self.notice.show_message("Select a session to delete.", "info")
            return False
        if confirm:
            box = QtWidgets.QMessageBox(self)
            box.setIcon(QtWidgets.QMessageBox.Icon.Question)
            box.setWindowTitle("Delete session")
            box.setText(f"Move {path.name} to the trash?")
            box.setInformativeText("You can restore it from the trash later.")
            trash = box.addButton("Move to Trash", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
            box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
            box.exec()
            if box.clickedButton() is not trash:
                return False
        self._close_session()
        ok, _where = QtCore.QFile.moveToTrash(str(path))
        if not ok:
            answer = QtWidgets.QMessageBox.warning(
                self, "No trash here", f"{path.name} cannot be moved to a trash on this system. Delete it permanently?",
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            ) if confirm else QtWidgets.QMessageBox.StandardButton.No
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                return False
            path.unlink(missing_ok=True)
        self.refresh()
        self._show_empty("Select a session to scrub through its frames")
        self.sessions_changed.emit()
        return True

    # -- import ------------------------------------------------------------------------------------
    def choose_import(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a TensorKart recording folder (with data.csv)")
        if folder:
            self.start_import([folder])

    def choose_import_arrays(self) -> None:
        x, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose TensorKart's X.npy", "", "NumPy arrays (*.npy)")
        if not x:
            return
        y = Path(x).with_name("y.npy")
        if not y.is_file():
            y_name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose the matching y.npy", str(Path(x).parent),
                                                              "NumPy arrays (*.npy)")
            if not y_name:
                return
            y = Path(y_name)
        self.start_import_arrays(x, y)

    def start_import_arrays(self, x_path: str | Path, y_path: str | Path) -> BackgroundTask | None:
        """Import TensorKart's X.npy/y.npy into a new session, with a progress dialog."""
        from kartstudio.session import new_session_path

        out = new_session_path(self.folder, f"tensorkart-{Path(x_path).parent.name or 'arrays'}", 1)
        out.unlink()

        def work(report, cancelled):
            from kartstudio.importers import import_tensorkart_arrays

            def progress(done: int, total: int) -> None:
                if cancelled.is_set():
                    raise Cancelled()
                if done % 50 == 0 or done == total:
                    report("progress", (done, total))

            return import_tensorkart_arrays(x_path, y_path, out, skip_bad=True, progress=progress)

        return self._run_import(work, Path(x_path).name)

    def start_import(self, folders: list[str | Path], seat: int | None = None) -> BackgroundTask | None:
        """Import TensorKart recording folders, one new session each, with a progress dialog.
        seat None: the whole screen (TensorKart's single player); 1 or 2: that half of a split screen."""
        from kartstudio.session import new_session_path

        folders = [Path(f) for f in folders]
        missing = [f for f in folders if not ((f / "data.csv").is_file() or (f / "joystick.csv").is_file())]
        if missing:
            self.notice.show_message(f"{missing[0]} is not a TensorKart recording: no data.csv in it", "error")
            return None
        # Free names; the importer creates the files itself and refuses existing ones.
        outs = [new_session_path(self.folder, f"tensorkart-{f.name}", seat or 1) for f in folders]
        for out in outs:
            out.unlink()

        def work(report, cancelled):
            from kartstudio.importers import import_tensorkart_folders

            def progress(done: int, total: int) -> None:
                if cancelled.is_set():
                    raise Cancelled()  # the importer removes its half-written output
                report("progress", (done, total))

            return import_tensorkart_folders(folders, outs, skip_bad=True, seat=seat, progress=progress)

        return self._run_import(work, folders[0].name)

    def _run_import(self, work, what: str) -> BackgroundTask:
        self.import_task = BackgroundTask(work, "import").start()
        self.progress = QtWidgets.QProgressDialog(f"Importing {what}…", "Cancel", 0, 100, self)
        self.progress.setWindowTitle("Import TensorKart")
        self.progress.setMinimumDuration(0)
        self.progress.canceled.connect(self.import_task.cancel)
        self.progress.show()
        self._import_timer = QtCore.QTimer(self)
        self._import_timer.setInterval(50)
        self._import_timer.timeout.connect(self._poll_import)
        self._import_timer.start()
        return self.import_task

    def _poll_import(self) -> None:
        task = self.import_task
        if task is None:
            return
        for kind, payload in task.poll():
            if kind == "progress":
                done, total = payload
                self.progress.setMaximum(max(1, total))
                self.progress.setValue(done)
            elif kind in ("done", "error", "cancelled"):
                self._import_timer.stop()
                self.progress.reset()
                self.progress.hide()
                self.import_task = None
                if kind == "done":
                    reports = payload if isinstance(payload, list) else [payload]
                    self.refresh()
                    self.select_path(reports[-1].path)
                    self.notice.show_message(" ".join(
                        f"Imported {r.frames} frames into {r.path.name}"
                        + (f", skipped {r.skipped_rows} bad rows" if r.skipped_rows else "")
                        + f"; {r.duration:.1f} s, timing: {r.timing}." for r in reports), "info")
                    self.sessions_changed.emit()
                elif kind == "error":
                    self.notice.show_message(f"Import failed: {payload}", "error")
                else:
                    self.notice.show_message("Import cancelled; nothing was written.", "info")
                return
