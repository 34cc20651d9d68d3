"""`kartstudio doctor`: is this machine ready to play Mario Kart 64 through KartStudio?

Each check says what it found and, when it fails, the one line that fixes it. Essential checks
are what playing and recording the game need; the others (pads, headless testing) only add.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

M64PLUGIN_INPUT = 4  # m64p_types.h
INPUT_PLUGIN_EXPORTS = (
    "PluginStartup", "PluginShutdown", "PluginGetVersion", "InitiateControllers", "GetKeys",
    "ControllerCommand", "ReadController", "RomOpen", "RomClosed", "SDL_KeyDown", "SDL_KeyUp",
)  # fmt: skip
APT = "sudo apt-get install -y"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    essential: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.essential else "warn")
        text = f"[{mark}] {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f"\n       fix: {self.fix}"
        return text


def check_settings():
    """The saved settings (what the app will use), and a check saying whether they could be read."""
    from kartstudio.settings import load_settings, settings_path

    settings = load_settings()
    if settings.problem:
        return settings, Check("settings", False, settings.problem, "open Settings… in the app and save them again",
                               essential=False)
    where = settings_path()
    return settings, Check("settings", True, str(where) if where.is_file() else f"defaults ({where} not saved yet)",
                           essential=False)


def check_emulator(program: str | None = None) -> Check:
    from kartstudio.emulator.launcher import EMULATOR_NAME, find_emulator
    from kartstudio.errors import KartStudioError

    try:
        path = find_emulator(program)
    except KartStudioError as exc:
        if program and program != EMULATOR_NAME:
            return Check("emulator", False, str(exc), "set 'Emulator (mupen64plus)' in Settings… to the mupen64plus program")
        return Check("emulator", False, "mupen64plus not found on PATH or in /usr/games",
                     f"{APT} mupen64plus-ui-console mupen64plus-data")
    return Check("emulator", True, str(path))


def check_plugins() -> list[Check]:
    from kartstudio.emulator.launcher import MK64_VIDEO, VIDEO_FOR_TEST_ROM, find_plugin_dir, video_plugins

    folder = find_plugin_dir()
    video = video_plugins()
    rsp = bool(folder and (folder / "mupen64plus-rsp-hle.so").is_file())
    return [
        Check("video plugin", MK64_VIDEO in video,
              f"installed: {', '.join(video) or 'none'} ({MK64_VIDEO} draws Mario Kart 64)",
              f"{APT} mupen64plus-video-rice"),
        Check("test-ROM video plugin", VIDEO_FOR_TEST_ROM in video,
              f"{VIDEO_FOR_TEST_ROM} {'installed' if VIDEO_FOR_TEST_ROM in video else 'missing'} (shows the test ROM)",
              f"{APT} mupen64plus-video-glide64mk2", essential=False),
        Check("RSP plugin", rsp, f"mupen64plus-rsp-hle {'installed' if rsp else 'missing'}",
              f"{APT} mupen64plus-rsp-hle"),
    ]


def check_our_plugin() -> Check:
    from kartstudio.emulator.launcher import OUR_PLUGIN

    path = Path(os.environ.get("KARTSTUDIO_PLUGIN", OUR_PLUGIN))
    if not path.is_file():
        return Check("input plugin", False, f"{path} is not built", "make -C plugin")
    try:
        lib = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL | os.RTLD_NOW)
    except OSError as exc:
        return Check("input plugin", False, f"{path} does not load: {exc}", "make -C plugin clean all")
    missing = [name for name in INPUT_PLUGIN_EXPORTS if not hasattr(lib, name)]
    if missing:
        return Check("input plugin", False, f"{path} lacks {', '.join(missing)}", "make -C plugin clean all")
    kind, version, api = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.c_char_p()
    lib.PluginGetVersion(ctypes.byref(kind), ctypes.byref(version), ctypes.byref(api), ctypes.byref(name), None)
    if kind.value != M64PLUGIN_INPUT:
        return Check("input plugin", False, f"{path} says it is plugin type {kind.value}, not input",
                     "make -C plugin clean all")
    label = (name.value or b"?").decode(errors="replace")
    return Check("input plugin", True, f"{label} v{version.value >> 16}.{version.value >> 8 & 0xFF}.{version.value & 0xFF}"
                 f" (API {api.value >> 16}.{api.value >> 8 & 0xFF}.{api.value & 0xFF}), {path}")


def check_display() -> Check:
    display = os.environ.get("DISPLAY")
    if not display:
        return Check("X display", False, "DISPLAY is not set (the emulator needs an X11 window to pin and capture)",
                     "run KartStudio in your desktop session (headless: Xvfb :99 & export DISPLAY=:99)")
    probe = shutil.which("xdpyinfo")
    if probe:
        try:
            run = subprocess.run([probe], capture_output=True, text=True, timeout=5)
            reachable = run.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            reachable = False
        if not reachable:
            return Check("X display", False, f"cannot open display {display}",
                         "check DISPLAY and that the X server runs (xdpyinfo shows why)")
    if os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return Check("X display", True, f"{display} (Xwayland: window moves may be refused by the compositor)")
    return Check("X display", True, display)


def check_xdotool() -> Check:
    missing = [tool for tool, package in (("xdotool", "xdotool"), ("xwininfo", "x11-utils")) if not shutil.which(tool)]
    if missing:
        packages = " ".join("xdotool" if t == "xdotool" else "x11-utils" for t in missing)
        return Check("window tools", False, f"missing {', '.join(missing)} (they find and pin the window at 0,0)",
                     f"{APT} {packages}")
    return Check("window tools", True, "xdotool and xwininfo (find and pin the window at 0,0)")


def check_rom(rom: str | None) -> Check | None:
    from kartstudio.emulator.rom import check_rom as read_header
    from kartstudio.errors import KartStudioError

    rom = rom or os.environ.get("KARTSTUDIO_ROM")
    if not rom:
        return Check("ROM", True, "none set (choose it in the app, or pass --rom PATH to check your Mario Kart 64 dump)",
                     essential=False)
    try:
        info = read_header(rom)
    except KartStudioError as exc:
        return Check("ROM", False, str(exc), "choose your Mario Kart 64 cartridge dump (.z64, .v64 or .n64)")
    if not (info.is_mario_kart_64 or info.is_raceway or info.is_test_rom):
        return Check("ROM", False, info.describe(), "choose your Mario Kart 64 ROM (game code NKT*)")
    return Check("ROM", True, info.describe())


def check_pads() -> Check:
    """Gamepads SDL sees. The keyboard always works, so this is never essential."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame

        pygame.joystick.init()
        names = [pygame.joystick.Joystick(i).get_name() for i in range(pygame.joystick.get_count())]
    except Exception as exc:  # noqa: BLE001 - any SDL failure is just "no pads" here
        return Check("gamepads", False, f"SDL could not list gamepads ({exc})", "pip install pygame", essential=False)
    if not names:
        return Check("gamepads", False, "none connected (the keyboard can drive seat 1)",
                     "plug in a USB gamepad (on Linux your user needs access to /dev/input: the 'input' group)",
                     essential=False)
    return Check("gamepads", True, f"{len(names)}: {', '.join(names)}", essential=False)


def check_headless_tools() -> list[Check]:
    from kartstudio.emulator.testrom import toolchain_missing

    xvfb = shutil.which("Xvfb")
    mips = toolchain_missing()
    return [
        Check("Xvfb", bool(xvfb), f"{'found' if xvfb else 'missing'} (headless runs: tests, the Gymnasium env on a server)",
              f"{APT} xvfb", essential=False),
        Check("MIPS assembler", not mips, "found (builds the test ROM)" if not mips else f"missing {', '.join(mips)}",
              f"{APT} binutils-mips-linux-gnu", essential=False),
    ]


def self_test(display: str | None = None) -> Check:
    """Boot the test ROM with our plugin (on a private Xvfb) and see a sent state come back on screen."""
    from kartstudio.controller import ControllerState
    from kartstudio.emulator import testrom
    from kartstudio.emulator.backend import EmulatorBackend
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM
    from kartstudio.emulator.xvfb import VirtualDisplay
    from kartstudio.errors import KartStudioError

    xvfb = None
    backend = None
    try:
        if display is None:
            xvfb = VirtualDisplay()
            display = xvfb.start()
        backend = EmulatorBackend(testrom.build_test_rom(), video=VIDEO_FOR_TEST_ROM, display=display, lockstep=True)
        backend.start()
        want = {1: ControllerState(x=33, a=True), 2: ControllerState(y=-44, r=True)}
        for seat, state in want.items():
            backend.set_controller(seat, state)
        frame = backend.next_frame()
        shown = testrom.decode_screen(frame.image)
        if shown != want:
            return Check("self-test", False, f"the test ROM showed {shown} instead of {want}",
                         "run `pytest -m emulator` to see which step fails")
        return Check("self-test", True, f"test ROM booted in {backend.startup_s:.2f} s; both seats' input came back on screen")
    except KartStudioError as exc:
        return Check("self-test", False, str(exc), "fix the failing checks above first")
    finally:
        if backend is not None:
            backend.stop()
        if xvfb is not None:
            xvfb.stop()


def run_checks(rom: str | None = None, selftest: bool = False) -> list[Check]:
    """Every check; the ROM and the emulator program are the saved settings' unless given."""
    settings, settings_check = check_settings()
    checks = [settings_check, check_emulator(settings.emulator), *check_plugins(), check_our_plugin(), check_display(),
              check_xdotool()]
    rom_check = check_rom(rom or os.environ.get("KARTSTUDIO_ROM") or settings.rom_path)
    if rom_check is not None:
        checks.append(rom_check)
    checks += [check_pads(), *check_headless_tools()]
    if selftest:
        checks.append(self_test())
    return checks


def essential_ok(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.essential)


def report(checks: list[Check]) -> dict:
    return {"ok": essential_ok(checks), "checks": [asdict(c) for c in checks]}
