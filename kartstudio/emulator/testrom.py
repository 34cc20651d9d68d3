"""Build KartStudio's own homebrew N64 test ROM from tests/rom/testrom.s.

The ROM reads controllers 1 and 2 every video frame and paints the 32 bits it read for each on
the screen (controller 1 on the top half, controller 2 on the bottom half), so a screenshot shows
exactly what the game read. ``decode_screen`` turns a 640x480 screenshot back into the two
controller states. Needs Debian's binutils-mips-linux-gnu; the built ROM is never committed.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError

SOURCE = Path(__file__).resolve().parents[2] / "tests" / "rom" / "testrom.s"
ROM_SIZE = 1 << 20  # 1 MB, the smallest cartridge size
BOOT_START, BOOT_END = 0x40, 0x1000  # mupen64plus's HLE boot runs these bytes from SP DMEM
NAME = "KARTSTUDIO TEST"
GAME_CODE = "NKSE"  # N = cartridge, KS = KartStudio, E = North America (NTSC timings)
CIC_6102_SEED = 0xF8CA4DDC

AS = "mips-linux-gnu-as"
OBJCOPY = "mips-linux-gnu-objcopy"


def toolchain_missing() -> list[str]:
    """The binutils programs the build needs that are not installed."""
    return [tool for tool in (AS, OBJCOPY) if shutil.which(tool) is None]


def assemble(source: Path = SOURCE) -> bytes:
    """Assemble the boot code to a flat big-endian binary."""
    missing = toolchain_missing()
    if missing:
        raise KartStudioError(
            f"{', '.join(missing)} not found: install the MIPS binutils (sudo apt-get install binutils-mips-linux-gnu)"
        )
    if not source.is_file():
        raise KartStudioError(f"test ROM source {source} is missing: restore tests/rom/ from the repository")
    with tempfile.TemporaryDirectory(prefix="kartstudio-rom-") as tmp:
        obj, binary = Path(tmp, "boot.o"), Path(tmp, "boot.bin")
        for cmd in (
            [AS, "-march=vr4300", "-EB", "-o", str(obj), str(source)],
            [OBJCOPY, "-O", "binary", "-j", ".text", str(obj), str(binary)],
        ):
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                raise KartStudioError(f"building the test ROM failed ({cmd[0]}): {run.stderr.strip()}")
        code = binary.read_bytes()
    if len(code) > BOOT_END - BOOT_START:
        raise KartStudioError(f"test ROM boot code is {len(code)} bytes; it must fit in {BOOT_END - BOOT_START}")
    return code


def cic6102_checksum(rom: bytes) -> tuple[int, int]:
    """The two header CRC words the CIC-6102 boot checks (bytes 0x1000..0x101000, as far as the ROM goes)."""
    mask = 0xFFFFFFFF
    t1 = t2 = t3 = t4 = t5 = t6 = CIC_6102_SEED
    for (d,) in struct.iter_unpack(">I", rom[0x1000:0x101000]):
        t6d = (t6 + d) & mask
        if t6d < t6:
            t4 = (t4 + 1) & mask
        t6 = t6d
        t3 ^= d
        shift = d & 0x1F
        r = ((d << shift) | (d >> (32 - shift))) & mask if shift else d
        t5 = (t5 + r) & mask
        t2 = t2 ^ r if t2 > d else t2 ^ t6 ^ d
        t1 = (t1 + (t5 ^ d)) & mask
    return t6 ^ t4 ^ t3, t5 ^ t2 ^ t1


def build_rom(code: bytes, game_code: str = GAME_CODE) -> bytes:
    """A 1 MB big-endian (.z64) ROM image with `code` as its boot code."""
    if len(game_code) != 4 or not game_code.isascii():
        raise ValueError(f"game code {game_code!r} must be 4 ASCII characters")
    rom = bytearray(ROM_SIZE)
    struct.pack_into(">IIII", rom, 0, 0x80371240, 0x0000000F, 0x80000400, 0x00001444)
    rom[0x20:0x34] = NAME.ljust(20).encode("ascii")
    rom[0x3B:0x3F] = game_code.encode("ascii")
    rom[BOOT_START : BOOT_START + len(code)] = code
    struct.pack_into(">II", rom, 0x10, *cic6102_checksum(bytes(rom)))
    return bytes(rom)


def build_test_rom(out_dir: Path | str | None = None, game_code: str = GAME_CODE) -> Path:
    """Assemble and write the test ROM; returns its path. Rebuilt only when the source changes.

    game_code: "NKTE" makes a stand-in that carries Mario Kart 64's game code (and nothing else of
    it), so that tests can run the Mario Kart code paths (boot macro, MarioKart64 env) for real.
    """
    code = assemble()
    digest = hashlib.sha256(code).hexdigest()[:12]
    out = Path(out_dir) if out_dir else Path(tempfile.gettempdir()) / "kartstudio-testrom"
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if game_code == GAME_CODE else f"-{game_code}"
    path = out / f"kartstudio-test-{digest}{suffix}.z64"
    if not path.is_file() or path.stat().st_size != ROM_SIZE:
        tmp = path.with_suffix(".part")
        tmp.write_bytes(build_rom(code, game_code))
        tmp.replace(path)
    return path


def write_test_rom(path: Path | str) -> Path:
    """Build the test ROM into the file `path` (a user trying the emulator path without a cartridge
    dump: `kartstudio testrom build -o FILE`, File -> Build the test ROM). Never overwrites a file."""
    target = Path(path).expanduser()
    if target.exists():
        raise KartStudioError(f"{target} already exists; choose another file name (KartStudio never overwrites)")
    if not target.parent.is_dir():
        raise KartStudioError(f"the folder {target.parent} does not exist; create it or choose another")
    data = build_rom(assemble())
    try:
        with target.open("xb") as f:  # "x": a file that appeared meanwhile is not overwritten either
            f.write(data)
    except OSError as exc:
        raise KartStudioError(f"cannot write {target}: {exc.strerror or exc}; choose a folder you can write to") from None
    return target


# -- reading the screen back -------------------------------------------------------------
# Each seat's half: 5 bands (buttons bits 0-7, buttons bits 8-15, x, y, frame counter) of 8
# cells, high bit on the left. The N64 reply bytes are A B Z Start Dup Ddown Dleft Dright |
# reset 0 L R Cup Cdown Cleft Cright | x | y: mupen64plus's BUTTONS value as little-endian bytes.
BANDS = 5


def _read_band(image: np.ndarray, seat: int, band: int) -> int:
    height, width = image.shape[:2]
    y = int((seat - 1) * height / 2 + (band + 0.5) * height / 2 / BANDS)
    byte = 0
    for cell in range(8):
        green = int(image[y, int((cell + 0.5) * width / 8), 1])  # "on" is green/yellow, "off" dark blue
        byte = byte << 1 | (green > 127)
    return byte


def decode_seat(image: np.ndarray, seat: int) -> int:
    """The 32-bit BUTTONS value the test ROM painted for `seat` (1 top, 2 bottom) in a screenshot."""
    return int.from_bytes(bytes(_read_band(image, seat, band) for band in range(4)), "little")


def decode_screen(image: np.ndarray) -> dict[int, ControllerState]:
    """Both seats' controller states as the test ROM read and painted them."""
    return {seat: ControllerState.from_buttons(decode_seat(image, seat)) for seat in (1, 2)}


def decode_frame_counter(image: np.ndarray) -> int:
    """The low byte of the ROM's own frame counter (painted in both halves' last band)."""
    return _read_band(image, 1, BANDS - 1)


def looks_like_test_screen(image: np.ndarray) -> bool:
    """True when every sampled cell is one of the ROM's colours (not blank, not garbage)."""
    height, width = image.shape[:2]
    for seat in (1, 2):
        for band in range(BANDS):
            y = int((seat - 1) * height / 2 + (band + 0.5) * height / 2 / BANDS)
            for cell in range(8):
                r, g, b = (int(v) for v in image[y, int((cell + 0.5) * width / 8), :3])
                off = r < 40 and g < 40 and 40 < b < 140
                on = g > 200 and b < 60
                if not (off or on):
                    return False
    return True
