"""Menu macro files: parsing, validation, expansion to per-poll states (no emulator needed)."""

import json

import pytest

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.emulator.macro import Macro, load_mk64_vs_macro, play
from kartstudio.errors import KartStudioError


def test_the_shipped_mk64_macro_loads_and_ends_at_character_select():
    macro = load_mk64_vs_macro()
    assert macro.verified is False  # nobody could check it against the game; the docs say so
    assert 100 < macro.length < 2000
    presses = [s for s in macro.steps if not s.state.is_neutral]
    assert presses and all(s.seat == 1 for s in presses)
    assert "character select" in macro.steps[-1].note


def test_steps_expand_to_one_state_per_poll():
    macro = Macro.from_dict({"steps": [
        {"wait": 2}, {"press": ["a", "z"], "frames": 3}, {"stick": [-80, 40], "seat": 2},
    ]})
    frames = list(macro.frames())
    assert len(frames) == macro.length == 6
    assert frames[0] == {1: NEUTRAL, 2: NEUTRAL}
    assert frames[2][1] == ControllerState(a=True, z=True) and frames[2][2] == NEUTRAL
    assert frames[5] == {1: NEUTRAL, 2: ControllerState(x=-80, y=40)}
    calls = []
    assert play(macro, calls.append) == 6 and calls == frames


def test_override_file_via_environment(tmp_path, monkeypatch):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "steps": [{"press": ["start"], "frames": 1}]}))
    monkeypatch.setenv("KARTSTUDIO_MK64_MACRO", str(path))
    assert load_mk64_vs_macro().name == "mine"


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "non-empty list"),
        ({"steps": [{"press": ["x"]}]}, "press takes a list of buttons"),
        ({"steps": [{"wait": 0}]}, "frames must be"),
        ({"steps": [{"wait": 2, "press": ["a"]}]}, "presses nothing"),
        ({"steps": [{"stick": [100, 0]}]}, "stick must be"),
        ({"steps": [{"press": ["a"], "seat": 5}]}, "seat must be"),
        ({"steps": [{"press": ["a"], "hold": 3}]}, "unknown key"),
        ({"steps": ["a"]}, "must be an object"),
    ],
)
def test_bad_macros_are_refused_with_a_clear_message(data, message):
    with pytest.raises(KartStudioError, match=message):
        Macro.from_dict(data, "test.json")


def test_unreadable_macro_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KartStudioError, match="not readable JSON"):
        Macro.load(bad)
    with pytest.raises(KartStudioError, match="does not exist"):
        Macro.load(tmp_path / "none.json")
