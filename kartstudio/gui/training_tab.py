"""The Training tab (wired to kartstudio.training.trainer when it lands)."""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.common import Notice, optional_module


class TrainingTab(QtWidgets.QWidget):
    model_saved = QtCore.pyqtSignal(str)

    def __init__(self, settings, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        v = QtWidgets.QVBoxLayout(self)
        self.notice = Notice()
        v.addWidget(self.notice)
        v.addStretch(1)
        _, why = optional_module("kartstudio.training.trainer")
        if why:
            self.notice.show_message(f"Training is not available in this build: {why}.", "warning")

    def refresh_sessions(self, *_args) -> None:
        pass

    def shutdown(self) -> None:
        pass
