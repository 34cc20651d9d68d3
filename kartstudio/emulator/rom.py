"""N64 ROM header check: byte order, internal name, game code, region, is it Mario Kart 64.

ROM dumps come in three byte orders, told apart by the first four bytes:
  .z64  80 37 12 40  big-endian, as on the cartridge
  .v64  37 80 40 12  16-bit words byte-swapped (Doctor V64)
  .n64  40 12 37 80  32-bit words byte-swapped (little-endian)
The extension is not trusted; the bytes decide.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kartstudio.errors import KartStudioError

HEADER_SIZE = 0x40
MIN_ROM_SIZE = 0x100000  # 1 MB: the smallest cartridge (homebrew); commercial games are 4-64 MB
MARIO_KART_64_CODE = "KT"  # cartridge ID in the game code N-KT-x
# The project's own homebrew test ROM (kartstudio.emulator.testrom): accepted where a game is
# played, so the app can be tried and tested without a cartridge dump, and recorded as itself.
TEST_ROM_NAME, TEST_ROM_CODE = "KARTSTUDIO TEST", "NKSE"
# KartStudio Raceway, the project's own kart game (kartstudio.emulator.raceway): a game of its own,
# recorded as game "raceway" (its header is fixed in raceway.rom_image).
RACEWAY_NAME, RACEWAY_CODE = "KARTSTUDIO RACEWAY", "NKRE"

BYTE_ORDERS = {
    bytes.fromhex("80371240"): "z64",
    bytes.fromhex("37804012"): "v64",
    bytes.fromhex("40123780"): "n64",
}

REGIONS = {
    "A": "all regions",
    "B": "Brazil",
    "C": "China",
    "D": "Germany",
    "E": "North America",
    "F": "France",
    "G": "Gateway 64 (NTSC)",
    "H": "Netherlands",
    "I": "Italy",
    "J": "Japan",
    "K": "Korea",
    "L": "Gateway 64 (PAL)",
    "N": "Canada",
    "P": "Europe",
    "S": "Spain",
    "U": "Australia",
    "W": "Scandinavia",
    "X": "Europe",
    "Y": "Europe",
}


class RomError(KartStudioError):
    """A file that is not a usable N64 ROM."""


def readable(text: str) -> str:
    """Header text as people can read it: NUL and other control bytes written as \\xNN."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def to_big_endian(data: bytes, byte_order: str) -> bytes:
    """Bytes in .z64 order from bytes in `byte_order` (length a multiple of 4)."""
    if byte_order == "z64":
        return bytes(data)
    swapped = bytearray(data)
    if byte_order == "v64":
        swapped[0::2], swapped[1::2] = data[1::2], data[0::2]
    elif byte_order == "n64":
        for k in range(4):
            swapped[k::4] = data[3 - k :: 4]
    else:
        raise ValueError(f"unknown byte order {byte_order!r}")
    return bytes(swapped)


@dataclass(frozen=True)
class RomInfo:
    path: str
    size: int
    byte_order: str  # z64, v64 or n64
    name: str  # internal name, 20 characters at 0x20, trailing spaces removed
    game_code: str  # 4 characters at 0x3B: media (N = cartridge), 2-character ID, region
    region: str
    version: int

    @property
    def is_mario_kart_64(self) -> bool:
        return self.game_code[1:3] == MARIO_KART_64_CODE

    @property
    def is_test_rom(self) -> bool:
        return (self.name, self.game_code) == (TEST_ROM_NAME, TEST_ROM_CODE)

    @property
    def is_raceway(self) -> bool:
        return (self.name, self.game_code) == (RACEWAY_NAME, RACEWAY_CODE)

    @property
    def game(self) -> str:
        """What a session records as its game: mk64, raceway (KartStudio Raceway), kartstudio-test
        (the project's test ROM), or n64-<game code> for any other cartridge."""
        if self.is_mario_kart_64:
            return "mk64"
        if self.is_raceway:
            return "raceway"
        if self.is_test_rom:
            return "kartstudio-test"
        return "n64-" + "".join(c if c.isalnum() else "_" for c in self.game_code)

    def describe(self) -> str:
        what = ("Mario Kart 64" if self.is_mario_kart_64 else "KartStudio Raceway" if self.is_raceway else
                "KartStudio's test ROM" if self.is_test_rom else "not Mario Kart 64")
        return (
            f"{Path(self.path).name}: {readable(self.name) or '(no name)'} [{readable(self.game_code)}] {self.region}, "
            f"v1.{self.version}, {self.size // (1 << 20)} MiB .{self.byte_order} - {what}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "name": readable(self.name), "game_code": readable(self.game_code),
                "is_mario_kart_64": self.is_mario_kart_64, "game": self.game}


def parse_header(header: bytes, path: str = "", size: int | None = None) -> RomInfo:
    """Read the first 0x40 bytes of a ROM in any byte order."""
    if len(header) < HEADER_SIZE:
        raise RomError(f"{path or 'ROM'}: too short to be an N64 ROM; choose a .z64, .v64 or .n64 file")
    byte_order = BYTE_ORDERS.get(bytes(header[:4]))
    if byte_order is None:
        raise RomError(
            f"{path or 'ROM'} is not an N64 ROM (its first bytes are {header[:4].hex()}, "
            "an N64 ROM starts with 80371240, 37804012 or 40123780); choose a .z64, .v64 or .n64 dump"
        )
    h = to_big_endian(header[:HEADER_SIZE], byte_order)
    name = h[0x20:0x34].decode("shift_jis", errors="replace").rstrip(" \x00")
    code = h[0x3B:0x3F].decode("ascii", errors="replace")
    return RomInfo(
        path=path,
        size=len(header) if size is None else size,
        byte_order=byte_order,
        name=name,
        game_code=code,
        region=REGIONS.get(code[3:4], f"unknown region {readable(code[3:4])}"),
        version=h[0x3F],
    )


def check_rom(path: str | Path) -> RomInfo:
    """The header of the ROM at `path`, or a RomError that says what is wrong with the file."""
    from kartstudio.paths import NotRegularFileError, open_regular, user_path

    p = user_path(path, "the ROM path", RomError)
    if not p.exists():
        raise RomError(f"ROM file {p} does not exist; check the path")
    if p.is_dir():
        raise RomError(f"{p} is a folder; choose the ROM file itself (.z64, .v64 or .n64)")
    try:
        with open_regular(p, "the ROM file") as f:  # a FIFO is refused, never waited on
            size = os.fstat(f.fileno()).st_size
            header = f.read(HEADER_SIZE)
    except NotRegularFileError as exc:
        raise RomError(f"{exc} (.z64, .v64 or .n64)") from None
    except OSError as exc:
        raise RomError(f"cannot read ROM file {p}: {exc.strerror}; check its permissions") from exc
    info = parse_header(header, str(p), size)
    if size < MIN_ROM_SIZE:
        raise RomError(f"{p} is only {size} bytes, too small for an N64 ROM; the dump is incomplete")
    return info


def _not_mk64(path: str | Path, info: RomInfo) -> RomError:
    return RomError(
        f"{Path(path).name} is '{readable(info.name) or '(no name)'}' (game code {readable(info.game_code)}), "
        "not Mario Kart 64 (NKT*); choose your Mario Kart 64 ROM"
    )


def require_mario_kart_64(path: str | Path) -> RomInfo:
    """check_rom, and also refuse a ROM that is another game."""
    info = check_rom(path)
    if not info.is_mario_kart_64:
        raise _not_mk64(path, info)
    return info


def require_game_rom(path: str | Path) -> RomInfo:
    """The one check for the ROM the app plays (Choose ROM, the Settings dialog, settings.json,
    starting the game): Mario Kart 64, KartStudio Raceway, or KartStudio's own test ROM (each
    recorded as its own game)."""
    info = check_rom(path)
    if not (info.is_mario_kart_64 or info.is_raceway or info.is_test_rom):
        raise _not_mk64(path, info)
    return info
