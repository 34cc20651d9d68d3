"""The Versus tab (wired to kartstudio.pilot when it lands)."""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from kartstudio.gui.common import Notice, optional_module


class VersusTab(QtWidgets.QWidget):
    session_saved = QtCore.pyqtSignal(str)

    def __init__(self, game, parent=None) -> None:
        super().__init__(parent)
        self.game = game
        v = QtWidgets.QVBoxLayout(self)
        self.notice = Notice()
        v.addWidget(self.notice)
        v.addStretch(1)
        _, why = optional_module("kartstudio.pilot")
        if why:
            self.notice.show_message(f"Racing the AI is not available in this build: {why}.", "warning")

    def refresh_models(self, *_args) -> None:
        pass

    def refresh_drivers(self) -> None:
        pass

    def on_game_started(self) -> None:
        pass

    def on_game_stopped(self) -> None:
        pass

    def stop_versus(self) -> None:
        pass
