"""Menu macro files: parsing, validation, expansion to per-poll states (no emulator needed)."""

import json

import pytest

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.emulator.macro import Macro, load_mk64_macro, load_mk64_tt_macro, load_mk64_vs_macro, play
from kartstudio.errors import KartStudioError


def test_the_shipped_mk64_macro_loads_and_ends_at_character_select():
    macro = load_mk64_vs_macro()
    assert macro.verified is False  # nobody could check it against the game; the docs say so
    assert 100 < macro.length < 2000
    presses = [s for s in macro.steps if not s.state.is_neutral]
    assert presses and all(s.seat == 1 for s in presses)
    assert "character select" in macro.steps[-1].note


def test_the_shipped_time_trial_macro_follows_gym_mupen64plus_and_is_marked_unverified(tmp_path, monkeypatch):
    """The 1-player macro (a time trial on Luigi Raceway, one kart on the whole screen): each press on
    the poll gym-mupen64plus's Mario Kart env makes it, one poll long, so presses two polls apart
    stay two presses; control is handed over at poll 284."""
    macro = load_mk64_tt_macro()
    assert macro.verified is False and macro.length == 284
    pressed, poll = [], 0
    for states in macro.frames((1,)):
        state = states[1]
        if not state.is_neutral:
            pressed.append((poll, "down" if state.y < 0 else "+".join(state.pressed())))
        poll += 1
    assert pressed == [(10, "a"), (80, "a"), (120, "a"), (125, "down"), (130, "a"), (132, "a"), (134, "a"),
                       (160, "a"), (162, "a"), (202, "a"), (230, "a"), (232, "a")]
    assert load_mk64_macro(1) == macro and load_mk64_macro(2) == load_mk64_vs_macro()
    with pytest.raises(KartStudioError, match="1 or 2 players"):
        load_mk64_macro(4)
    mine = tmp_path / "tt.json"
    mine.write_text(json.dumps({"name": "mine", "verified": True, "steps": [{"wait": 3}]}))
    monkeypatch.setenv("KARTSTUDIO_MK64_TT_MACRO", str(mine))
    assert load_mk64_tt_macro().verified is True and load_mk64_tt_macro().length == 3


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


def test_macro_command_saves_a_screenshot_per_step(tmp_path, monkeypatch, capsys):
    """`kartstudio macro` on the stand-in ROM (our test ROM with Mario Kart 64's game code)."""
    import os

    from emulator_support import missing_for_emulator

    from kartstudio.cli import main
    from kartstudio.emulator import testrom
    from kartstudio.emulator.launcher import OUR_PLUGIN, VIDEO_FOR_TEST_ROM
    from kartstudio.emulator.xvfb import VirtualDisplay

    why = missing_for_emulator() or (None if OUR_PLUGIN.is_file() else "the input plugin is not built")
    if why:
        pytest.skip(why)
    rom = testrom.build_test_rom(tmp_path, game_code="NKTE")
    macro_file = tmp_path / "short.json"
    macro_file.write_text(json.dumps({"name": "short", "steps": [
        {"wait": 3, "note": "boot"}, {"press": ["a", "start"], "frames": 2, "note": "press A + Start"},
        {"stick": [-80, 40], "frames": 1, "note": "stick"},
    ]}))
    with VirtualDisplay() as xvfb:
        monkeypatch.setenv("DISPLAY", xvfb.display)
        code = main(["macro", "--rom", str(rom), "--file", str(macro_file), "--shots", str(tmp_path / "shots"),
                     "--video", VIDEO_FOR_TEST_ROM, "--exit"])
    out = capsys.readouterr().out
    assert code == 0 and "saved 3 screenshots" in out
    shots = sorted(os.listdir(tmp_path / "shots"))
    assert shots == ["step-001-poll-00003-boot.png", "step-002-poll-00005-press-a-start.png",
                     "step-003-poll-00006-stick.png"]
    assert all((tmp_path / "shots" / s).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for s in shots)
    # Each picture shows where its step left the game: the test ROM paints what it read.
    from kartstudio.controller import ControllerState

    shown = [testrom.decode_screen(read_png(tmp_path / "shots" / s))[1] for s in shots]
    assert shown == [ControllerState(), ControllerState(a=True, start=True), ControllerState(x=-80, y=40)]


def read_png(path):
    """Decode the plain RGB PNGs mss writes (8-bit, filter 0 on every row) to an array."""
    import struct
    import zlib

    import numpy as np

    data = path.read_bytes()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any(), "expected filter type 0 on every row"
    return rows[:, 1:].reshape(height, width, 3)
