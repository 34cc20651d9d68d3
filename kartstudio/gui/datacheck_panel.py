"""The Datasets tab's data check: kartstudio.datacheck run on a worker thread, its findings listed.

Only widgets: the check itself is the engine's (the same as `kartstudio check`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.workers import BackgroundTask, Cancelled

Paths = Callable[[], list]  # -> the session paths to check


class DataCheckPanel(QtWidgets.QGroupBox):
    """Buttons to check every listed session or the selected ones, a status line and one line per
    finding. Double-clicking a finding about one session emits session_activated(path)."""

    session_activated = QtCore.pyqtSignal(str)
    finished = QtCore.pyqtSignal()  # a check ended (done, failed or cancelled)

    def __init__(self, listed: Paths, selected: Paths, parent=None) -> None:
        super().__init__("Data check", parent)  # a short title: the tab must fit beside the emulator at 1366x768
        self._listed, self._selected = listed, selected
        self.task: BackgroundTask | None = None
        self.report = None  # the last CheckReport shown
        layout = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.all_button = QtWidgets.QPushButton("Check all")
        self.all_button.setToolTip("Check every session in the list, together, as training would use them")
        self.all_button.clicked.connect(lambda: self.start(self._listed()))
        self.selected_button = QtWidgets.QPushButton("Check selected")
        self.selected_button.setToolTip("Check the selected sessions together")
        self.selected_button.clicked.connect(lambda: self.start(self._selected()))
        row.addWidget(self.all_button)
        row.addWidget(self.selected_button)
        self.status = QtWidgets.QLabel("What a model trained on these sessions will lack: one-sided steering, unused buttons, "
                                       "standing still, repeated frames, too little data, mixed layouts.")
        self.status.setWordWrap(True)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.findings = QtWidgets.QListWidget()
        self.findings.setWordWrap(True)
        self.findings.setMaximumHeight(160)
        self.findings.itemDoubleClicked.connect(self._activated)
        layout.addWidget(self.findings)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._poll)

    @property
    def running(self) -> bool:
        return self.task is not None

    def start(self, paths) -> BackgroundTask | None:
        """Check `paths` on a worker thread (a check still running is cancelled first)."""
        paths = [Path(p) for p in paths]
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.findings.clear()
        self.report = None
        if not paths:
            self.status.setText("No sessions to check: select some in the list, or record or import some first.")
            return None

        def work(report, cancelled):
            from kartstudio.datacheck import check_sessions

            def progress(done: int, total: int) -> None:
                if cancelled.is_set():
                    raise Cancelled()
                report("progress", (done, total))

            return check_sessions(paths, progress=progress)

        self.status.setText(f"Checking {len(paths)} session{'s' if len(paths) != 1 else ''}…")
        self.task = BackgroundTask(work, "data-check").start()
        self._timer.start()
        return self.task

    def _poll(self) -> None:
        task = self.task
        if task is None:
            self._timer.stop()
            return
        for kind, payload in task.poll():
            if kind == "progress":
                done, total = payload
                self.status.setText(f"Checking… {done} of {total} files read")
            elif kind in ("done", "error", "cancelled"):
                self._timer.stop()
                self.task = None
                if kind == "done":
                    self.show_report(payload)
                elif kind == "error":
                    self.status.setText(f"The check failed: {payload}")
                else:
                    self.status.setText("Check cancelled.")
                self.finished.emit()
                return

    def show_report(self, report) -> None:
        self.report = report
        summary = report.summary()
        self.status.setText(summary[0].upper() + summary[1:] + (":" if report.findings else "."))
        self.findings.clear()
        for finding in report.findings:
            item = QtWidgets.QListWidgetItem(finding.message)
            item.setToolTip(finding.message)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, finding.session or "")
            self.findings.addItem(item)

    def _activated(self, item: QtWidgets.QListWidgetItem) -> None:
        path = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if path:
            self.session_activated.emit(path)
