"""Gamepads through real SDL: virtual game controllers that SDL enumerates like USB pads."""

import time

import pytest

from kartstudio.controller import ControllerState
from kartstudio.pads.mapping import DEFAULT_BUTTONS, PadMapping, load_mapping, save_mapping
from kartstudio.pads.sdl import PadManager
from kartstudio.pads.virtual import VirtualPad

A, B, X, START, LB, RB = 0, 1, 2, 6, 9, 10
LEFTX, LEFTY, RIGHTX, LEFTTRIGGER = 0, 1, 2, 4


@pytest.fixture
def manager():
    m = PadManager().start()
    assert m.error is None, m.error
    yield m
    m.stop()


@pytest.fixture
def pads():
    made = []

    def make(name, product):
        pad = VirtualPad(name, product=product)
        made.append(pad)
        return pad

    yield make
    for pad in made:
        pad.detach()


def _until(condition, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_enumeration_and_identity_by_guid_and_name(manager, pads):
    pads("Left pad", 11)
    pads("Right pad", 12)
    assert _until(lambda: len(manager.connected()) == 2)
    found = {p.name: p for p in manager.connected()}
    assert set(found) == {"Left pad", "Right pad"}
    assert found["Left pad"].guid != found["Right pad"].guid and all(len(p.guid) == 32 for p in found.values())


def test_hot_plug_out_and_back_keeps_the_same_pad(manager, pads):
    pad = pads("Hot pad", 21)
    assert _until(lambda: any(p.name == "Hot pad" for p in manager.connected()))
    source = next(p for p in manager.connected() if p.name == "Hot pad")
    pad.set_button(A, True)
    assert _until(lambda: source.last.a)
    pad.detach()
    assert _until(lambda: not source.connected)
    assert source.last == ControllerState()  # unplugged: nothing held down
    pads("Hot pad", 21)
    assert _until(lambda: source.connected)  # same GUID + name: same object, same seat
    assert [p for p in manager.known() if p.name == "Hot pad"] == [source]


def test_mapping_follows_tensorkart_xbox_defaults(manager, pads):
    pad = pads("Map pad", 31)
    assert _until(lambda: manager.connected())
    source = next(p for p in manager.connected() if p.name == "Map pad")
    pad.set_axis(LEFTX, 32767)
    pad.set_axis(LEFTY, -32768)  # stick up
    for b in (A, X, RB):
        pad.set_button(b, True)
    pad.set_axis(LEFTTRIGGER, 32767)
    assert _until(lambda: source.last.a and source.last.b and source.last.r and source.last.z)
    s = source.last
    assert s.x > 50 and s.y > 50  # right and up, N64 convention
    assert not s.l and not s.start


def test_deadzone_and_calibration():
    m = PadMapping(deadzone=0.1)
    assert m.stick(2000, -2000) == (0, 0)  # inside the dead zone
    assert m.stick(32767, 0) == (80, 0)
    assert m.stick(0, 32767) == (0, -80)
    worn = PadMapping(deadzone=0.1, centre=(0.05, 0.0), reach=0.85)
    assert worn.stick(int(0.05 * 32767), 0) == (0, 0)  # its rest position reads as centre
    assert worn.stick(int(0.9 * 32767), 0) == (80, 0)  # a worn stick still reaches full lock


def test_remap_is_saved_per_guid():
    mapping = PadMapping(buttons={**DEFAULT_BUTTONS, "b": "b"}, deadzone=0.2)
    save_mapping("0300aaaa", mapping)
    assert load_mapping("0300aaaa").buttons["b"] == "b" and load_mapping("0300aaaa").deadzone == 0.2
    assert load_mapping("0300bbbb").buttons["b"] == "x"  # other pads keep TensorKart's default
    with pytest.raises(ValueError):
        save_mapping("0300aaaa", PadMapping(buttons={"a": "no-such-button"}))


def test_polling_runs_many_times_per_frame(manager, pads):
    # The poller aims at POLL_HZ (500); the >= 250 Hz target is a performance figure (README,
    # "Measured"), which a loaded 2-core machine does not meet on every half second. The test only
    # asserts what load cannot excuse: several samples per 30 fps frame (a 5 Hz poller fails).
    pads("Rate pad", 41)
    assert _until(lambda: manager.connected())
    source = next(p for p in manager.connected() if p.name == "Rate pad")
    source.drain()
    start = time.monotonic()
    time.sleep(0.5)
    samples = source.drain()
    rate = len(samples) / (time.monotonic() - start)
    assert rate >= 100, f"{rate:.0f} Hz"
    gaps = [b.timestamp - a.timestamp for a, b in zip(samples, samples[1:])]
    assert sorted(gaps)[len(gaps) // 2] < 1 / 100
