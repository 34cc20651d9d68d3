"""The pair-controllers wizard end to end, with SDL virtual pads and real Qt widgets."""

import pytest

from kartstudio.gui.pair_wizard import PairWizard
from kartstudio.pads.pairing import PairingModel
from kartstudio.pads.sdl import PadManager
from kartstudio.pads.virtual import VirtualPad

A, START = 0, 6


@pytest.fixture
def manager():
    m = PadManager().start()
    yield m
    m.stop()


def _tap(qtbot, pad, button, source):
    pad.set_button(button, True)
    qtbot.waitUntil(lambda: bool(source.pressed), timeout=2000)
    qtbot.wait(80)
    pad.set_button(button, False)
    qtbot.waitUntil(lambda: not source.pressed, timeout=2000)


def test_wizard_pairs_two_seats_refuses_one_pad_twice_and_remembers(qtbot, manager):
    pad_a = VirtualPad("Pad A", product=51)
    pad_b = VirtualPad("Pad B", product=52)
    try:
        qtbot.waitUntil(lambda: len(manager.connected()) == 2, timeout=3000)
        src = {p.name: p for p in manager.connected()}
        wizard = PairWizard(manager=manager)
        qtbot.addWidget(wizard)
        wizard.show()
        assert "Seat 1: press any button" in wizard.prompt.text()
        qtbot.waitUntil(lambda: wizard.table.rowCount() == 2, timeout=2000)

        _tap(qtbot, pad_a, A, src["Pad A"])
        qtbot.waitUntil(lambda: wizard.model.seats.get(1) is not None, timeout=2000)
        assert wizard.model.seats[1].name == "Pad A"
        assert "Seat 2: press any button" in wizard.prompt.text()
        assert wizard.seat_labels[2].text() == "Seat 2: waiting for a button on its pad"

        _tap(qtbot, pad_a, START, src["Pad A"])  # the same pad cannot take seat 2 too
        qtbot.waitUntil(lambda: "already drives seat 1" in wizard.notice.text(), timeout=2000)
        assert 2 not in wizard.model.seats

        _tap(qtbot, pad_b, A, src["Pad B"])
        qtbot.waitUntil(lambda: wizard.model.seats.get(2) is not None, timeout=2000)
        assert wizard.model.seats[2].name == "Pad B"
        assert "Both seats are paired" in wizard.prompt.text()
        wizard.close()

        # next launch: restored by identity, not by port or order
        restored = PairingModel(manager)
        assert restored.pad_for(1) is src["Pad A"] and restored.pad_for(2) is src["Pad B"]

        pad_b.detach()
        qtbot.waitUntil(lambda: not src["Pad B"].connected, timeout=2000)
        again = PairWizard(manager=manager)
        qtbot.addWidget(again)
        qtbot.waitUntil(lambda: "Pad B (seat 2) is not plugged in" in again.notice.text(), timeout=2000)
        assert "not plugged in" in again.seat_labels[2].text()
        again.close()
    finally:
        pad_a.detach()
        pad_b.detach()


def _seat_cells(wizard):
    """Pad name -> the wizard table's Seat column, as the user sees it."""
    return {wizard.table.item(r, 0).text(): wizard.table.item(r, 3).text() for r in range(wizard.table.rowCount())}


def test_wizard_swaps_the_seats_and_clears_one(qtbot, manager):
    from PyQt6 import QtCore

    left = QtCore.Qt.MouseButton.LeftButton
    pad_a = VirtualPad("Pad A", product=53)
    pad_b = VirtualPad("Pad B", product=54)
    try:
        qtbot.waitUntil(lambda: len(manager.connected()) == 2, timeout=3000)
        src = {p.name: p for p in manager.connected()}
        wizard = PairWizard(manager=manager)
        qtbot.addWidget(wizard)
        wizard.show()
        assert not wizard.swap_button.isEnabled() and not wizard.clear_buttons[1].isEnabled()
        _tap(qtbot, pad_a, A, src["Pad A"])
        qtbot.waitUntil(lambda: 1 in wizard.model.seats, timeout=2000)
        _tap(qtbot, pad_b, A, src["Pad B"])
        qtbot.waitUntil(lambda: 2 in wizard.model.seats, timeout=2000)

        qtbot.mouseClick(wizard.swap_button, left)
        assert (wizard.model.seats[1].name, wizard.model.seats[2].name) == ("Pad B", "Pad A")
        assert "Seats swapped: seat 1 Pad B, seat 2 Pad A" in wizard.prompt.text()
        assert wizard.seat_labels[1].text() == "Seat 1: Pad B" and wizard.seat_labels[2].text() == "Seat 2: Pad A"
        qtbot.waitUntil(lambda: _seat_cells(wizard) == {"Pad A": "seat 2", "Pad B": "seat 1"}, timeout=2000)
        saved = PairingModel(manager)  # what the Record tab reads at the next start
        assert saved.pad_for(1) is src["Pad B"] and saved.pad_for(2) is src["Pad A"]

        qtbot.mouseClick(wizard.clear_buttons[1], left)
        assert 1 not in wizard.model.seats and wizard.model.seats[2].name == "Pad A"
        # the freed pad is plugged in but drives nothing: the seat's line says so
        assert wizard.seat_labels[1].text() == "Seat 1: keyboard (1 pad(s) plugged in, not paired)"
        assert not wizard.clear_buttons[1].isEnabled() and wizard.clear_buttons[2].isEnabled()
        assert PairingModel(manager).pad_for(1) is None

        # swapping with one seat empty moves the pad; the empty seat goes to the other side
        qtbot.mouseClick(wizard.swap_button, left)
        assert wizard.model.seats[1].name == "Pad A" and 2 not in wizard.model.seats
        assert "seat 2 no pad" in wizard.prompt.text()

        # a cleared seat can take a pad again, and the freed pad is no longer "already driving"
        qtbot.mouseClick(wizard.clear_buttons[1], left)
        assert wizard.model.seats == {} and not wizard.swap_button.isEnabled()
        qtbot.mouseClick(wizard.pair_buttons[2], left)
        assert "Seat 2: press any button" in wizard.prompt.text()
        _tap(qtbot, pad_a, A, src["Pad A"])
        qtbot.waitUntil(lambda: 2 in wizard.model.seats, timeout=2000)
        assert wizard.model.seats[2].name == "Pad A"
        wizard.close()
    finally:
        pad_a.detach()
        pad_b.detach()


def _pair(qtbot, model, seat, pad, source):
    model.listen(seat)
    pad.set_button(A, True)
    qtbot.waitUntil(lambda: bool(source.pressed), timeout=2000)
    assert model.poll() == seat
    pad.set_button(A, False)
    qtbot.waitUntil(lambda: not source.pressed, timeout=2000)


def test_the_app_lists_pads_plugged_in_later_and_versus_follows_the_pairing(qtbot):
    """Pads plugged in after start-up appear in every seat's list at once (no wizard, no game start);
    with seat 1 = pad A and seat 2 = pad B, Versus gives seat 2 (you) pad B and the takeover pad A."""
    from kartstudio.gui.main_window import MainWindow
    from kartstudio.pads import sdl

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    manager = sdl.manager()  # the app's own pad thread
    pad_a = VirtualPad("Pair A", product=61)
    pad_b = VirtualPad("Pair B", product=62)
    try:
        record, versus = window.record_tab.panels, window.versus_tab
        qtbot.waitUntil(lambda: all(box.findText(name) >= 0 for name in ("Pair A", "Pair B") for box in (
            record[1].driver_box, record[2].driver_box, versus.human_box, versus.takeover_box)), timeout=3000)
        src = {p.name: p for p in manager.connected()}
        model = PairingModel(manager)
        _pair(qtbot, model, 1, pad_a, src["Pair A"])
        _pair(qtbot, model, 2, pad_b, src["Pair B"])
        window.record_tab.refresh_drivers()  # what the app does when the wizard closes
        versus.refresh_drivers()
        assert record[1].driver_box.currentText() == "Pair A" and record[2].driver_box.currentText() == "Pair B"
        assert versus.human_box.currentText() == "Pair B" and versus.takeover_box.currentText() == "Pair A"
        assert versus._pad(versus.human_box) is src["Pair B"]
        # the user's own choice stays when the pad list changes again
        versus.human_box.setCurrentIndex(versus.human_box.findText("Keyboard"))
        pad_c = VirtualPad("Pair C", product=63)
        try:
            qtbot.waitUntil(lambda: versus.human_box.findText("Pair C") >= 0, timeout=3000)
            assert versus.human_box.currentText() == "Keyboard" and versus.takeover_box.currentText() == "Pair A"
        finally:
            pad_c.detach()
    finally:
        pad_a.detach()
        pad_b.detach()
        window.close()
