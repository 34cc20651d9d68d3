"""`kartstudio doctor`: real checks of this machine, and a clear fix for each thing that is missing."""

import json
import struct

import pytest

from kartstudio.cli import main
from kartstudio.emulator import launcher
from kartstudio.emulator.rom import MIN_ROM_SIZE
from emulator_support import needs_emulator, xdisplay  # noqa: F401 - fixtures


def doctor(capsys, *args):
    code = main(["doctor", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def by_name(result):
    return {c["name"]: c for c in result["checks"]}


def fake_header_rom(path, code="NKTE"):
    """A made-up ROM image: a valid header and zeros (no game in it)."""
    rom = bytearray(MIN_ROM_SIZE)
    struct.pack_into(">I", rom, 0, 0x80371240)
    rom[0x20:0x34] = b"MARIOKART64         "
    rom[0x3B:0x3F] = code.encode()
    path.write_bytes(rom)
    return path


def _plugin_built():
    return launcher.OUR_PLUGIN.is_file()


@pytest.mark.emulator
@needs_emulator
@pytest.mark.skipif(not _plugin_built(), reason="the input plugin is not built (make -C plugin)")
def test_all_essential_checks_pass_here(capsys, monkeypatch, xdisplay, tmp_path):
    monkeypatch.setenv("DISPLAY", xdisplay)
    rom = fake_header_rom(tmp_path / "mk.z64")
    code, result = doctor(capsys, "--rom", str(rom), "--selftest")
    checks = by_name(result)
    assert code == 0 and result["ok"], [c for c in result["checks"] if not c["ok"]]
    for name in ("emulator", "video plugin", "RSP plugin", "input plugin", "X display", "window tools", "ROM", "self-test"):
        assert checks[name]["ok"], checks[name]
    assert "KartStudio" in checks["input plugin"]["detail"]  # it really loaded and named itself
    assert "Mario Kart 64" in checks["ROM"]["detail"]
    assert checks["gamepads"]["essential"] is False


def test_missing_pieces_fail_with_a_fix(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(launcher, "SEARCH_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))  # no mupen64plus, no xdotool, no Xvfb
    monkeypatch.setenv("KARTSTUDIO_PLUGIN", str(tmp_path / "missing.so"))
    monkeypatch.delenv("DISPLAY", raising=False)
    code, result = doctor(capsys)
    checks = by_name(result)
    assert code == 1 and not result["ok"]
    assert not checks["emulator"]["ok"] and "apt-get install" in checks["emulator"]["fix"]
    assert not checks["input plugin"]["ok"] and checks["input plugin"]["fix"] == "make -C plugin"
    assert not checks["X display"]["ok"] and checks["X display"]["fix"]
    assert not checks["window tools"]["ok"]


def test_a_plugin_that_is_not_a_plugin(capsys, monkeypatch, tmp_path):
    bogus = tmp_path / "bogus.so"
    bogus.write_bytes(b"not an ELF file")
    monkeypatch.setenv("KARTSTUDIO_PLUGIN", str(bogus))
    code, result = doctor(capsys)
    check = by_name(result)["input plugin"]
    assert code == 1 and not check["ok"] and "does not load" in check["detail"]


def test_rom_checks(capsys, tmp_path):
    other = fake_header_rom(tmp_path / "other.z64", code="NSME")
    _, result = doctor(capsys, "--rom", str(other))
    assert not by_name(result)["ROM"]["ok"] and "not Mario Kart 64" in by_name(result)["ROM"]["detail"]
    junk = tmp_path / "junk.z64"
    junk.write_bytes(b"hello world" * 10)
    code, result = doctor(capsys, "--rom", str(junk))
    assert code == 1 and not by_name(result)["ROM"]["ok"]


def test_plain_text_output_names_each_fix(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KARTSTUDIO_PLUGIN", str(tmp_path / "missing.so"))
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] input plugin" in out and "fix: make -C plugin" in out
    assert out.rstrip().splitlines()[-1].startswith("not ready: fix")


def test_pads_check_counts_a_virtual_sdl_gamepad():
    """A real SDL virtual joystick (no hardware): the doctor's pad check sees it, and its absence."""
    import ctypes
    import glob
    import os

    import pygame

    from kartstudio.doctor import check_pads

    libs = glob.glob(os.path.join(os.path.dirname(pygame.__file__) + ".libs", "libSDL2-*.so*"))
    if not libs:
        pytest.skip("pygame's bundled SDL2 library was not found")
    sdl = ctypes.CDLL(libs[0])
    pygame.joystick.init()
    before = pygame.joystick.get_count()
    index = sdl.SDL_JoystickAttachVirtual(1, 6, 11, 1)  # game controller, 6 axes, 11 buttons, 1 hat
    assert index >= 0
    try:
        check = check_pads()
        assert check.ok and check.detail.startswith(f"{before + 1}:")
        assert check.essential is False
    finally:
        sdl.SDL_JoystickDetachVirtual(index)
    if before == 0:
        assert not check_pads().ok
