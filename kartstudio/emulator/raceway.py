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
from collections import deque
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
# The game draws 320x240; a window of that size shows every pixel it drew, with no upscaling filter,
# and mupen64plus runs about twice as fast as at 640x480 (255 vs 110-130 game frames/s with nothing
# captured, 2-core EPYC). The benchmarks record and score there; the app keeps a 640x480 window.
NATIVE_RESOLUTION = (320, 240)


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


def rom_path() -> Path:
    """The built Raceway ROM, built now if this source has not been built yet (about 2 s), so the
    app offers the game with no user file at all. KartStudioError, one line, when the cross
    compiler is missing."""
    return build_rom()


def built_rom() -> Path | None:
    """The ROM of this source if it is built already (rom_path() returns it at once), else None:
    the app builds it off its UI thread when it is not."""
    try:
        out = Path(tempfile.gettempdir()) / "kartstudio-raceway" / f"kartstudio-raceway-{source_digest()}.z64"
    except KartStudioError:
        return None
    return out if out.is_file() and out.stat().st_size == ROM_SIZE else None


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


# -- the state channel ----------------------------------------------------------------------
STATE_CHANNEL_ENV = {"KARTSTUDIO_STATE_CHANNEL": str(STATE_CHANNEL)}  # add to mupen64plus's environment
_HEADER = struct.Struct(">BBBBIHBB")  # command, version, phase, players, frame, track, laps, countdown
_SEAT = struct.Struct(">HBBhhHIHb")  # progress, lap, flags, lateral/16, heading, speed*16, pad, time, curve
FLAG_OFFROAD, FLAG_FINISHED, FLAG_LEADING, FLAG_AIRBORNE, FLAG_DRIFTING = 1, 2, 4, 8, 16


def state_channel_env() -> dict[str, str]:
    """The environment that turns the input plugin's state channel on (port 4, which has no pad)."""
    return dict(STATE_CHANNEL_ENV)


@dataclass(frozen=True, slots=True)
class RacewayState:
    """One seat's kart in one game frame, as the game itself reports it (never drawn on screen)."""

    seat: int  # 1 (top half) or 2 (bottom half)
    lap: int  # laps completed (0 until the kart first crosses the line after the start)
    lap_fraction: float  # 0..1 along the current lap from the start line
    lateral: float  # offset from the centre line in road half-widths: +1 = right road edge, -1 = left edge
    heading_error: float  # kart heading minus road heading, radians, + = pointing right
    speed: float  # track units per frame (the road's half width is 1024 units); SPEED_MAX at full speed
    off_road: bool
    finished: bool
    leading: bool  # ahead of the other kart (2P)
    airborne: bool  # hopping (R)
    drifting: bool
    race_frames: int  # game frames since the start (frozen at the finish); 60 a second
    curve_ahead: int  # curvature of the road ~3000 units ahead, signed (+ right), 0 = straight
    buttons: int  # the BUTTONS value (mupen64plus's layout) the game read this frame

    @property
    def progress(self) -> float:
        """Laps driven, with the fraction of the current one (1.5 = half way round the second lap)."""
        return self.lap + self.lap_fraction

    @property
    def race_time(self) -> float:
        """Seconds since the start (the time at the finish once finished)."""
        return self.race_frames / FPS

    @property
    def controller(self) -> ControllerState:
        return ControllerState.from_buttons(self.buttons)

    @property
    def speed_fraction(self) -> float:
        return self.speed / SPEED_MAX


@dataclass(frozen=True, slots=True)
class RacewayFrame:
    """Everything the game reported for one game frame."""

    frame: int  # the game's frame counter (one per controller read)
    phase: str  # one of PHASES: title, mode, track, countdown, race, results, paused
    players: int
    track: int
    laps: int  # laps in this race
    countdown: int  # seconds left in the countdown (0 otherwise)
    seats: tuple[RacewayState, ...]  # one per player (seat 1 first)
    packet: int = 0  # the plugin's packet counter

    def seat(self, seat: int) -> RacewayState:
        return self.seats[seat - 1]

    @property
    def racing(self) -> bool:
        return self.phase == "race"


def decode_state(data: bytes, packet: int = 0) -> RacewayFrame:
    """The game's 46-byte state packet as a RacewayFrame (ValueError if it is not one)."""
    if len(data) != STATE_SIZE or data[0] != STATE_CMD:
        raise ValueError(f"not a Raceway state packet ({len(data)} bytes, command {data[:1].hex() or 'none'})")
    cmd, version, phase, players, frame, track_no, laps, countdown = _HEADER.unpack_from(data, 0)
    if version != STATE_VERSION:
        raise ValueError(f"Raceway state packet version {version}; this KartStudio reads version {STATE_VERSION}")
    seats = []
    for i in range(min(players, 2)):
        progress, lap, flags, lat16, heading, speed16, raw_pad, time_frames, curve = _SEAT.unpack_from(data, 12 + 17 * i)
        seats.append(RacewayState(
            seat=i + 1, lap=lap, lap_fraction=progress / 65536, lateral=lat16 / 16 / ROAD_HALF,
            heading_error=heading * 2 * 3.141592653589793 / 65536, speed=speed16 / 16,
            off_road=bool(flags & FLAG_OFFROAD), finished=bool(flags & FLAG_FINISHED),
            leading=bool(flags & FLAG_LEADING), airborne=bool(flags & FLAG_AIRBORNE),
            drifting=bool(flags & FLAG_DRIFTING), race_frames=time_frames, curve_ahead=curve,
            buttons=int.from_bytes(raw_pad.to_bytes(4, "big"), "little"),  # reply bytes -> BUTTONS order
        ))  # fmt: skip
    name = PHASES[phase] if phase < len(PHASES) else f"unknown-{phase}"
    return RacewayFrame(frame, name, players, track_no, laps, countdown, tuple(seats), packet)


class StateReader:
    """The latest Raceway state from a connected PluginClient (the plugin started with state_channel_env())."""

    def __init__(self, client, keep: int = 600) -> None:
        self.client = client
        self.latest: RacewayFrame | None = None
        self.recent: deque[RacewayFrame] = deque(maxlen=keep)  # the last `keep` states read (find())

    def read(self, sync: bool = True) -> list[RacewayFrame]:
        """Every state received since the last read, oldest first (sync: including every frame the game
        finished until now). Malformed packets are skipped."""
        if sync:
            self.client.sync()
        frames = []
        for packet in self.client.game_states():
            try:
                frames.append(decode_state(packet.data, packet.seq))
            except ValueError:
                continue
        if frames:
            self.latest = frames[-1]
            self.recent.extend(frames)
        return frames

    def find(self, frame: int) -> RacewayFrame | None:
        """The state of game frame `frame` among the recent ones; else the newest one before it
        (its packet not received yet), else None."""
        best = None
        for state in reversed(self.recent):
            if state.frame == frame:
                return state
            if state.frame < frame and best is None:
                best = state
                break
        return best

    def wait(self, predicate, timeout: float = 5.0) -> RacewayFrame:
        """The first state (from now on) for which predicate(frame) is true; KartStudioError after timeout."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            for frame in self.read(sync=False):
                if predicate(frame):
                    return frame
            if time.monotonic() > deadline:
                seen = f"last: {self.latest.phase} frame {self.latest.frame}" if self.latest else "no state received"
                raise KartStudioError(f"KartStudio Raceway did not reach the expected state within {timeout:g} s ({seen})")
            time.sleep(0.01)


# -- the menu macro ----------------------------------------------------------------------------
def menu_macro_steps(track: int, players: int = 2, laps: int = 3, start_wait: int = 10) -> dict:
    """A menu macro (kartstudio.emulator.macro's JSON format) from boot to the countdown of a race on
    `track` (0-999). Every press lasts one poll and is followed by one poll with nothing pressed: the
    game acts on buttons going down, once per frame, and reads the pads once per frame."""
    if not 0 <= track <= 999:
        raise ValueError(f"track {track} is not 0-999")
    if players not in (1, 2) or not 1 <= laps <= 9:
        raise ValueError("players must be 1 or 2 and laps 1-9")
    steps: list[dict] = [{"wait": start_wait, "note": "title screen"}]

    def press(button: str, note: str = "", times: int = 1) -> None:
        for _ in range(times):
            steps.append({"press": [button], "frames": 1, **({"note": note} if note else {})})
            steps.append({"wait": 1})

    press("start", "title -> mode select")
    if players == 2:
        press("dpad_down", "cursor to 2 PLAYER VS")
    press("a", "mode chosen -> track select (track 0, 3 laps)")
    press("r", "track +100", track // 100)
    press("c_right", "track +10", track // 10 % 10)
    press("dpad_right", "track +1", track % 10)
    if laps > 3:
        press("dpad_up", "one lap more", laps - 3)
    elif laps < 3:
        press("dpad_down", "one lap less", 3 - laps)
    steps.append({"press": ["a"], "frames": 1, "note": "race: the countdown starts"})
    return {"name": f"KartStudio Raceway: {players}P race on track {track}, {laps} laps", "verified": True,
            "steps": steps}


def menu_macro(track: int, players: int = 2, laps: int = 3):
    from kartstudio.emulator.macro import Macro

    return Macro.from_dict(menu_macro_steps(track, players, laps), f"raceway track {track}")


COUNTDOWN_FRAMES = 180  # after the macro's last press, the karts move 180 frames later
