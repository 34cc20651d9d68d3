"""The pair-controllers wizard: every pad shown live; seat 1 presses a button, then seat 2."""

from __future__ import annotations

import sys

from PyQt6 import QtCore, QtWidgets

from kartstudio.pads.pairing import SEATS, PairingModel


class PairWizard(QtWidgets.QDialog):
    def __init__(self, parent=None, manager=None) -> None:
        super().__init__(parent)
        if manager is None:
            from kartstudio.pads.sdl import manager as shared_manager

            manager = shared_manager()
        self.manager = manager
        self.model = PairingModel(manager)
        self.setWindowTitle("Pair controllers")
        self.resize(560, 360)

        layout = QtWidgets.QVBoxLayout(self)
        self.prompt = QtWidgets.QLabel()
        self.prompt.setStyleSheet("font-size: 16px; font-weight: bold; padding: 6px;")
        layout.addWidget(self.prompt)
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Pad", "Stick", "Pressed", "Seat"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table)
        self.seat_labels: dict[int, QtWidgets.QLabel] = {}
        row = QtWidgets.QHBoxLayout()
        self.pair_buttons: dict[int, QtWidgets.QPushButton] = {}
        self.clear_buttons: dict[int, QtWidgets.QPushButton] = {}
        for seat in SEATS:
            label = QtWidgets.QLabel()
            self.seat_labels[seat] = label
            again = QtWidgets.QPushButton(f"Pair seat {seat} again")
            again.clicked.connect(lambda _=False, s=seat: self._listen(s))
            self.pair_buttons[seat] = again
            clear = QtWidgets.QPushButton("Clear")
            clear.setToolTip(f"Seat {seat} drives with the keyboard until you pair a pad with it again")
            clear.clicked.connect(lambda _=False, s=seat: self._changed(self.model.clear, s))
            self.clear_buttons[seat] = clear
            row.addWidget(label, 1)
            row.addWidget(again)
            row.addWidget(clear)
        layout.addLayout(row)
        self.swap_button = QtWidgets.QPushButton("Swap seats")
        self.swap_button.setToolTip("Seat 1's pad drives seat 2 and seat 2's pad seat 1")
        self.swap_button.clicked.connect(lambda: self._changed(self.model.swap))
        layout.addWidget(self.swap_button, 0, QtCore.Qt.AlignmentFlag.AlignLeft)
        self.last_change = ""  # what Swap or Clear just did, said above the table
        self.notice = QtWidgets.QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #8a5a00;")
        layout.addWidget(self.notice)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        if manager.error:
            self.notice.setText(f"Gamepads are unavailable: {manager.error}. The keyboard still drives.")

        # Start with the first seat that has no pad plugged in for it.
        missing = self.model.missing()
        first = next((s for s in SEATS if s not in self.model.seats or s in missing), None)
        if first is not None:
            self.model.listen(first)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(30)
        self.refresh()

    def _listen(self, seat: int) -> None:
        self.last_change = ""
        self.model.listen(seat)
        self.refresh()

    def _changed(self, action, *args) -> None:
        action(*args)
        self.last_change = self.model.message
        self.refresh()

    def refresh(self) -> None:
        seat = self.model.poll()
        if seat is not None:  # go on to the next seat still without a pad
            nxt = next((s for s in SEATS if s not in self.model.seats), None)
            if nxt is not None:
                self.model.listen(nxt)
        pads = self.manager.connected()
        self.table.setRowCount(len(pads))
        for row, pad in enumerate(pads):
            state = pad.last
            seat_of = next((s for s, p in self.model.seats.items() if p.key == pad.key), None)
            cells = [pad.name, f"x {state.x:+d}  y {state.y:+d}", " ".join(sorted(pad.pressed)) or "-",
                     f"seat {seat_of}" if seat_of else ""]
            for col, text in enumerate(cells):
                item = self.table.item(row, col)
                if item is None:
                    self.table.setItem(row, col, QtWidgets.QTableWidgetItem(text))
                elif item.text() != text:
                    item.setText(text)
        missing = self.model.missing()
        for s, label in self.seat_labels.items():
            pairing = self.model.seats.get(s)
            if pairing is None and self.model.listening == s:
                label.setText(f"Seat {s}: waiting for a button on its pad")
            elif pairing is None:  # a pad plugged in but not paired drives nothing yet: say so
                free = sum(1 for pad in pads if not any(p.key == pad.key for p in self.model.seats.values()))
                label.setText(f"Seat {s}: keyboard" + (f" ({free} pad(s) plugged in, not paired)" if free else ""))
            elif s in missing:
                label.setText(f"Seat {s}: {pairing.name} - not plugged in")
            else:
                label.setText(f"Seat {s}: {pairing.name}")
        if self.model.listening is not None:
            self.prompt.setText(self.model.message if "already" not in self.model.message
                                else f"Seat {self.model.listening}: press any button on your pad")
        else:
            state = ("Both seats are paired." if all(s in self.model.seats for s in SEATS)
                     else "Press 'Pair seat N again' to choose a pad.")
            self.prompt.setText(f"{self.last_change}. {state}" if self.last_change else state)
        for s, button in self.clear_buttons.items():
            button.setEnabled(s in self.model.seats)
        self.swap_button.setEnabled(bool(self.model.seats))
        problems = [self.model.message] if "already" in self.model.message else []
        problems += [f"{name} (seat {s}) is not plugged in: plug it in, or pair another pad."
                     for s, name in missing.items()]
        if not pads:
            problems.append("No gamepad found: plug one in (it shows up here at once), or drive with the keyboard.")
        if not self.manager.error:
            self.notice.setText("\n".join(problems))

    def done(self, result: int) -> None:
        self.timer.stop()
        super().done(result)


def main() -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    PairWizard().exec()
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
