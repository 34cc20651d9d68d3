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
