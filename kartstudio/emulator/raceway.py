"""KartStudio Raceway: our own open 2-player kart game for the N64, built from source, and its state channel.

The game's source is kartstudio/emulator/raceway/ (C and a little assembly, our own code). ``build_rom``
compiles it with Debian's MIPS cross compiler (gcc-mips-linux-gnu, binutils-mips-linux-gnu) into a
1 MB big-endian ROM: the boot stub sits in the IPL3 area (which mupen64plus's HLE boot runs from SP
DMEM) and copies the program from ROM 0x1000 to RDRAM 0x400. The built ROM is never committed.

State channel: every game frame, after it has read both pads and moved the karts, the game sends
one joybus command (0x4B, 46 bytes) to controller port 4, which has no pad. Our input plugin,
started with ``KARTSTUDIO_STATE_CHANNEL=4`` (see ``state_channel_env``), takes that port's raw data
and forwards the bytes to KartStudio over its socket (message KS_GAME_STATE); the picture never
shows them. ``decode_state`` turns them into a ``RacewayFrame`` with one ``RacewayState`` per seat;
``PluginClient.game_states()`` returns what arrived; ``StateReader`` keeps the latest.

Menus (controller 1; one game frame = one input poll): see ``menu_macro_steps`` and docs/raceway.md.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kartstudio.controller import ControllerState
from kartstudio.emulator import testrom
from kartstudio.errors import KartStudioError

SOURCE_DIR = Path(__file__).resolve().parent / "raceway"
C_SOURCES = ("game.c", "render.c", "track.c", "gfx.c")
NAME = "KARTSTUDIO RACEWAY"
GAME_CODE = "NKRE"  # N = cartridge, KR = KartStudio Raceway, E = North America (NTSC timings)
ROM_SIZE = 1 << 20
PROGRAM_OFFSET = 0x1000  # in the ROM; loaded at RDRAM 0x400 by the boot stub
PROGRAM_LIMIT = 0x000F0000 - 0x400  # the stack is below 0x100000, the framebuffers above it

CC = "mips-linux-gnu-gcc"
TOOLS = (CC, "mips-linux-gnu-as", "mips-linux-gnu-objcopy")
CFLAGS = [
    "-ffreestanding", "-nostdlib", "-march=vr4300", "-mabi=32", "-mno-abicalls", "-fno-pic", "-G0", "-EB",
    "-O2", "-msoft-float", "-mno-check-zero-division", "-fno-builtin", "-fno-strict-aliasing", "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables", "-Wall", "-Wextra", "-Wno-unused-parameter",
]  # fmt: skip

STATE_CMD = 0x4B
STATE_VERSION = 1
STATE_SIZE = 46
STATE_CHANNEL = 4  # controller port 4 (joybus channel 3)
PHASES = ("title", "mode", "track", "countdown", "race", "results", "paused")
SPEED_MAX = 56.0  # units per frame; the road's half width is 1024 units
ROAD_HALF = 1024
RUMBLE_OUT = 1200
LAT_LIMIT = 2000
FPS = 60


def toolchain_missing() -> list[str]:
    """The cross-compiler programs the build needs that are not installed."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(cmd: list[str], what: str) -> None:
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise KartStudioError(f"building KartStudio Raceway failed ({what}): {(run.stderr or run.stdout).strip()[-1500:]}")


def _sources() -> list[Path]:
    files = [SOURCE_DIR / name for name in (*C_SOURCES, "raceway.h", "crt0.S", "boot.S", "raceway.ld")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise KartStudioError(f"the Raceway source is incomplete ({', '.join(missing)} missing): restore "
                              "kartstudio/emulator/raceway/ from the repository")
    return files


def source_digest() -> str:
    """A short hash of the game's source and build flags: names the built ROM."""
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for f in _sources():
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def compile_program(workdir: Path) -> tuple[bytes, bytes]:
    """(boot stub, program) as flat big-endian binaries."""
    missing = toolchain_missing()
    if missing:
        raise KartStudioError(f"{', '.join(missing)} not found: install the MIPS cross compiler "
                              "(sudo apt-get install gcc-mips-linux-gnu binutils-mips-linux-gnu)")
    _sources()
    elf, prog = workdir / "raceway.elf", workdir / "program.bin"
    _run([CC, *CFLAGS, "-T", str(SOURCE_DIR / "raceway.ld"), "-static", "-no-pie", "-Wl,--build-id=none", "-o", str(elf),
          str(SOURCE_DIR / "crt0.S"), *(str(SOURCE_DIR / c) for c in C_SOURCES)], "compile and link")
    _run(["mips-linux-gnu-objcopy", "-O", "binary", "-j", ".text", "-j", ".rodata", "-j", ".data", str(elf),
          str(prog)], "objcopy")
    program = prog.read_bytes()
    nm = subprocess.run(["mips-linux-gnu-nm", str(elf)], capture_output=True, text=True).stdout
    symbols = {parts[2]: int(parts[0], 16) & 0xFFFFFFFF for parts in (ln.split() for ln in nm.splitlines()) if len(parts) == 3}
    end = symbols.get("__bss_end", 0x80000400 + len(program))
    if end - 0x80000400 > PROGRAM_LIMIT:
        raise KartStudioError(f"KartStudio Raceway needs {end - 0x80000400} bytes of RDRAM; at most {PROGRAM_LIMIT} fit")
    length = (len(program) + 7) & ~7  # PI DMA copies an even length; 8 keeps it simple
    boot_obj, boot_bin = workdir / "boot.o", workdir / "boot.bin"
    _run(["mips-linux-gnu-as", "-march=vr4300", "-EB", f"--defsym=PROG_LEN={length}", "-o", str(boot_obj),
          str(SOURCE_DIR / "boot.S")], "boot stub")
    _run(["mips-linux-gnu-objcopy", "-O", "binary", "-j", ".text", str(boot_obj), str(boot_bin)], "boot objcopy")
    boot = boot_bin.read_bytes()
    if len(boot) > testrom.BOOT_END - testrom.BOOT_START:
        raise KartStudioError(f"the Raceway boot stub is {len(boot)} bytes; it must fit in the IPL3 area")
    return boot, program.ljust(length, b"\0")


def rom_image(boot: bytes, program: bytes) -> bytes:
    """The 1 MB .z64 image: header, boot stub at 0x40, program at 0x1000, CIC-6102 checksum."""
    if PROGRAM_OFFSET + len(program) > ROM_SIZE:
        raise KartStudioError(f"the Raceway program ({len(program)} bytes) does not fit in a 1 MB ROM")
    rom = bytearray(ROM_SIZE)
    struct.pack_into(">IIII", rom, 0, 0x80371240, 0x0000000F, 0x80000400, 0x00001444)
    rom[0x20:0x34] = NAME.ljust(20).encode("ascii")
    rom[0x3B:0x3F] = GAME_CODE.encode("ascii")
    rom[testrom.BOOT_START : testrom.BOOT_START + len(boot)] = boot
    rom[PROGRAM_OFFSET : PROGRAM_OFFSET + len(program)] = program
    struct.pack_into(">II", rom, 0x10, *testrom.cic6102_checksum(bytes(rom)))
    return bytes(rom)


def build_rom(out_path: str | Path | None = None) -> Path:
    """Builds the ROM from source and returns its path. out_path: a file, or a folder (the file is
    then named by the source's hash and only rebuilt when the source changes); default: a folder in
    the system's temporary directory."""
    digest = source_digest()
    out = Path(out_path) if out_path is not None else Path(tempfile.gettempdir()) / "kartstudio-raceway"
    if out.suffix.lower() != ".z64":
        out.mkdir(parents=True, exist_ok=True)
        out = out / f"kartstudio-raceway-{digest}.z64"
        if out.is_file() and out.stat().st_size == ROM_SIZE:
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kartstudio-raceway-") as tmp:
        image = rom_image(*compile_program(Path(tmp)))
    part = out.with_suffix(".part")
    part.write_bytes(image)
    part.replace(out)
    return out
