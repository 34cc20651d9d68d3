import itertools

import pytest

from kartstudio.controller import BUTTON_BITS, BUTTON_NAMES, NEUTRAL, ControllerState, aggregate


def test_stick_is_clamped_to_n64_range():
    assert ControllerState(x=200, y=-300) == ControllerState(x=80, y=-80)


@pytest.mark.parametrize("x,y", [(0, 0), (80, -80), (-80, 80), (-1, 1), (37, -52)])
def test_buttons_value_round_trip_stick(x, y):
    state = ControllerState(x=x, y=y, a=True, r=True)
    assert ControllerState.from_buttons(state.to_buttons()) == state


def test_every_button_sits_on_its_m64p_plugin_bit():
    for name, bit in BUTTON_BITS.items():
        assert ControllerState(**{name: True}).to_buttons() == 1 << bit
    # m64p_plugin.h: X_AXIS is the third byte, Y_AXIS the fourth, both signed
    assert ControllerState(x=-1).to_buttons() == 0xFF << 16
    assert ControllerState(y=5).to_buttons() == 5 << 24


def test_all_button_combinations_round_trip():
    for combo in itertools.islice(itertools.product([False, True], repeat=len(BUTTON_NAMES)), 0, 16384, 97):
        state = ControllerState(x=-12, y=44, **dict(zip(BUTTON_NAMES, combo)))
        assert ControllerState.from_buttons(state.to_buttons()) == state
        assert ControllerState.from_row(state.to_row()) == state


def test_tensorkart_tuple_matches_play_py_scaling():
    state = ControllerState.from_tensorkart((0.5, -1.0, 0.9, 0.2, 1.0))
    assert (state.x, state.y, state.a, state.b, state.r) == (40, -80, True, False, True)
    assert state.to_tensorkart() == (0.5, -1.0, 1.0, 0.0, 1.0)


def test_aggregate_keeps_one_poll_tap_and_largest_stick():
    samples = [ControllerState(x=10), ControllerState(x=-70, b=True), ControllerState(x=20)]
    label = aggregate(samples)
    assert label.x == -70 and label.b


def test_aggregate_without_samples_holds_previous():
    previous = ControllerState(x=33, a=True)
    assert aggregate([], previous) == previous
    assert aggregate([]) == NEUTRAL
