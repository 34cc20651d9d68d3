"""ROM header check: the three byte orders, Mario Kart 64 or not, and files that are not ROMs."""

import struct

import pytest

from kartstudio.emulator import testrom
from kartstudio.emulator.rom import MIN_ROM_SIZE, RomError, check_rom, parse_header, require_mario_kart_64, to_big_endian
from kartstudio.errors import KartStudioError


def synthetic_rom(name: str, code: str, version: int = 0, size: int = MIN_ROM_SIZE) -> bytes:
    """A big-endian image with just a header (made up here; no game code or data)."""
    rom = bytearray(size)
    struct.pack_into(">IIII", rom, 0, 0x80371240, 0x0F, 0x80000400, 0x1444)
    rom[0x20:0x34] = name.ljust(20).encode("ascii")
    rom[0x3B:0x3F] = code.encode("ascii")
    rom[0x3F] = version
    return bytes(rom)


def reorder(z64: bytes, byte_order: str) -> bytes:
    """Re-order big-endian bytes the way .v64 / .n64 dumps store them (independent of rom.py)."""
    if byte_order == "z64":
        return z64
    out = bytearray(len(z64))
    for i in range(0, len(z64), 4):
        word = z64[i : i + 4]
        out[i : i + 4] = word[1::-1] + word[3:1:-1] if byte_order == "v64" else word[::-1]
    return bytes(out)


@pytest.mark.parametrize("byte_order, magic", [("z64", "80371240"), ("v64", "37804012"), ("n64", "40123780")])
def test_mario_kart_header_in_every_byte_order(tmp_path, byte_order, magic):
    image = reorder(synthetic_rom("MARIOKART64", "NKTE", version=1), byte_order)
    assert image[:4].hex() == magic
    path = tmp_path / f"game.{byte_order}"
    path.write_bytes(image)
    info = check_rom(path)
    assert info.byte_order == byte_order
    assert info.name == "MARIOKART64"
    assert info.game_code == "NKTE"
    assert info.region == "North America"
    assert info.version == 1
    assert info.is_mario_kart_64
    assert require_mario_kart_64(path).is_mario_kart_64
    assert "Mario Kart 64" in info.describe()


@pytest.mark.parametrize("code, region", [("NKTJ", "Japan"), ("NKTP", "Europe")])
def test_other_regions_of_mario_kart(code, region):
    info = parse_header(synthetic_rom("MARIOKART64", code)[:64])
    assert info.is_mario_kart_64 and info.region == region


def test_another_game_is_a_rom_but_not_mario_kart(tmp_path):
    path = tmp_path / "other.z64"
    path.write_bytes(synthetic_rom("SOME OTHER GAME", "NXXE"))
    info = check_rom(path)
    assert not info.is_mario_kart_64
    with pytest.raises(RomError, match="not Mario Kart 64"):
        require_mario_kart_64(path)


def test_byte_order_round_trip():
    data = bytes(range(64))
    for byte_order in ("v64", "n64"):
        assert to_big_endian(reorder(data, byte_order), byte_order) == data


@pytest.mark.parametrize(
    "content, message",
    [
        (b"PK\x03\x04" + bytes(MIN_ROM_SIZE), "not an N64 ROM"),  # a zip file
        (b"hello", "too short"),
        (b"", "too short"),
    ],
)
def test_files_that_are_not_roms(tmp_path, content, message):
    path = tmp_path / "notarom.z64"
    path.write_bytes(content)
    with pytest.raises(KartStudioError, match=message):
        check_rom(path)


def test_truncated_rom(tmp_path):
    path = tmp_path / "cut.z64"
    path.write_bytes(synthetic_rom("MARIOKART64", "NKTE", size=4096))
    with pytest.raises(RomError, match="too small"):
        check_rom(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(RomError, match="does not exist"):
        check_rom(tmp_path / "nope.z64")
    with pytest.raises(RomError, match="is a folder"):
        check_rom(tmp_path)


def test_each_game_gets_the_video_plugin_that_draws_it():
    from kartstudio.emulator.launcher import MK64_VIDEO, VIDEO_FOR_GAME, VIDEO_FOR_TEST_ROM, video_for

    assert parse_header(testrom.build_rom(b"\x00" * 16)[:64]).game == "kartstudio-test"
    assert video_for("kartstudio-test") == VIDEO_FOR_TEST_ROM == "mupen64plus-video-glide64mk2"
    assert video_for("mk64") == MK64_VIDEO == "mupen64plus-video-rice"
    assert video_for("kartstudio-raceway") == VIDEO_FOR_TEST_ROM  # any homebrew ROM of ours: a CPU framebuffer
    assert video_for("n64-NSME") == MK64_VIDEO  # another cartridge: the commercial games' plugin
    assert set(VIDEO_FOR_GAME) >= {"mk64", "kartstudio-test"}


def test_test_rom_header_is_built_as_documented():
    rom = testrom.build_rom(b"\x00" * 16)
    info = parse_header(rom[:64], size=len(rom))
    assert (info.name, info.game_code, info.byte_order) == ("KARTSTUDIO TEST", "NKSE", "z64")
    assert not info.is_mario_kart_64
    assert len(rom) == testrom.ROM_SIZE
    assert struct.unpack(">II", rom[0x10:0x18]) == testrom.cic6102_checksum(rom)


@pytest.mark.skipif(bool(testrom.toolchain_missing()), reason="binutils-mips-linux-gnu is not installed")
def test_test_rom_builds_from_source(tmp_path):
    path = testrom.build_test_rom(tmp_path)
    rom = path.read_bytes()
    info = check_rom(path)
    assert info.name == "KARTSTUDIO TEST"
    code = testrom.assemble()
    assert rom[testrom.BOOT_START : testrom.BOOT_START + len(code)] == code
    assert 100 < len(code) < testrom.BOOT_END - testrom.BOOT_START
    assert testrom.build_test_rom(tmp_path) == path  # cached: same source, same file


@pytest.mark.skipif(bool(testrom.toolchain_missing()), reason="binutils-mips-linux-gnu is not installed")
def test_testrom_build_command_writes_the_rom_and_never_overwrites(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "try.z64"
    run = [sys.executable, "-m", "kartstudio", "testrom", "build", "-o", str(out)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "KartStudio's test ROM" in first.stdout, first.stderr
    assert check_rom(out).is_test_rom
    again = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
