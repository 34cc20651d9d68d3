"""Loads the built input plugin (.so) in this process and drives it the way mupen64plus-core does.

The core: dlopen()s the plugin, checks PluginGetVersion (type input, API 2.x), calls
PluginStartup(core handle, context, debug callback), InitiateControllers(CONTROL_INFO) to learn
which controllers are present, RomOpen, then GetKeys(control, &BUTTONS) for each present
controller whenever the game polls, and RomClosed / PluginShutdown at the end. This harness makes
exactly those calls through ctypes, so tests and `kartstudio bench plugin` exercise the real .so.

The plugin reads no core functions (its configuration is the KARTSTUDIO_* environment), so the
core handle passed is NULL; the debug callback is real and collects the plugin's log lines.
Timed GetKeys loops run in C (plugin/kartstudio-getkeys-driver.so) so ctypes overhead is not timed.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from kartstudio.emulator.plugin_client import PluginError, plugin_path

M64PLUGIN_INPUT = 4
M64ERR_SUCCESS = 0
DRIVER_FILE = "kartstudio-getkeys-driver.so"
LOG_LEVELS = {1: "error", 2: "warning", 3: "info", 4: "status", 5: "verbose"}


class CONTROL(ctypes.Structure):
    _fields_ = [("Present", ctypes.c_int), ("RawData", ctypes.c_int), ("Plugin", ctypes.c_int), ("Type", ctypes.c_int)]


class CONTROL_INFO(ctypes.Structure):
    _fields_ = [("Controls", ctypes.POINTER(CONTROL))]


DEBUG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


def build_plugin(plugin_dir: Path | None = None) -> Path:
    """Runs `make -C plugin` (quick when up to date) and returns the plugin's path."""
    plugin_dir = plugin_dir or plugin_path().parent
    if shutil.which("make") is None or shutil.which("cc") is None:
        raise PluginError("building the input plugin needs make and a C compiler: apt-get install build-essential")
    result = subprocess.run(["make", "-s", "-C", str(plugin_dir)], capture_output=True, text=True)
    if result.returncode != 0:
        raise PluginError(f"building the input plugin failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return plugin_dir / "mupen64plus-input-kartstudio.so"


class PluginHarness:
    """The built plugin, loaded and started as the core would. Only one per process at a time:
    the plugin, like every mupen64plus plugin, is a singleton."""

    def __init__(self, so_path: str | os.PathLike | None = None):
        self.so_path = Path(so_path) if so_path else plugin_path()
        if not self.so_path.exists():
            raise PluginError(f"the input plugin {self.so_path} is not built: run `make -C plugin`")
        self.lib = ctypes.CDLL(str(self.so_path))
        lib = self.lib
        lib.PluginGetVersion.argtypes = [ctypes.POINTER(ctypes.c_int)] * 3 + [
            ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int)]
        lib.PluginGetVersion.restype = ctypes.c_int
        lib.PluginStartup.argtypes = [ctypes.c_void_p, ctypes.c_void_p, DEBUG_CALLBACK]
        lib.PluginStartup.restype = ctypes.c_int
        lib.PluginShutdown.argtypes = []
        lib.PluginShutdown.restype = ctypes.c_int
        lib.InitiateControllers.argtypes = [CONTROL_INFO]
        lib.InitiateControllers.restype = None
        lib.RomOpen.argtypes = []
        lib.RomOpen.restype = ctypes.c_int
        lib.RomClosed.argtypes = []
        lib.RomClosed.restype = None
        lib.GetKeys.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)]
        lib.GetKeys.restype = None
        self.log: list[tuple[str, str]] = []
        self._log_lock = threading.Lock()
        self._callback = DEBUG_CALLBACK(self._on_debug)  # kept alive while the plugin may call it
        self._controls = (CONTROL * 4)()
        self._driver = None
        self.started = False

    def _on_debug(self, _context, level: int, text: bytes) -> None:
        with self._log_lock:
            self.log.append((LOG_LEVELS.get(level, str(level)), text.decode(errors="replace")))

    def version(self) -> dict:
        kind, ver, api = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        name, caps = ctypes.c_char_p(), ctypes.c_int()
        rc = self.lib.PluginGetVersion(ctypes.byref(kind), ctypes.byref(ver), ctypes.byref(api), ctypes.byref(name),
                                       ctypes.byref(caps))
        return {"rc": rc, "type": kind.value, "version": ver.value, "api": api.value,
                "name": (name.value or b"").decode(), "capabilities": caps.value}

    def start(self, env: Mapping[str, str] | None = None) -> list[int]:
        """Version check, PluginStartup with `env` set (KARTSTUDIO_*; None = unset), InitiateControllers,
        RomOpen, as the core does when a game starts. Returns the present controllers (1-4)."""
        v = self.version()
        if v["type"] != M64PLUGIN_INPUT or v["api"] >> 16 != 2:
            raise PluginError(f"{self.so_path} is not a mupen64plus 2.x input plugin: {v}")
        names = ("KARTSTUDIO_SOCKET", "KARTSTUDIO_TOKEN", "KARTSTUDIO_CONTROLLERS", "KARTSTUDIO_SILENCE_MS")
        saved = {n: os.environ.get(n) for n in names}
        try:
            for n in names:  # the plugin reads these with getenv() during PluginStartup only
                os.environ.pop(n, None)
            os.environ.update(env or {})
            rc = self.lib.PluginStartup(None, None, self._callback)
        finally:
            for n, value in saved.items():
                if value is None:
                    os.environ.pop(n, None)
                else:
                    os.environ[n] = value
        if rc != M64ERR_SUCCESS:
            raise PluginError(f"PluginStartup failed with m64p_error {rc}")
        self.started = True
        self.lib.InitiateControllers(CONTROL_INFO(ctypes.cast(self._controls, ctypes.POINTER(CONTROL))))
        self.lib.RomOpen()
        return self.present()

    def present(self) -> list[int]:
        return [i + 1 for i in range(4) if self._controls[i].Present]

    def controls(self) -> list[dict]:
        return [{f: getattr(c, f) for f, _ in CONTROL._fields_} for c in self._controls]

    def get_keys(self, controller: int) -> int:
        """One poll of `controller` (1-4; the core numbers them 0-3): the BUTTONS value the game reads."""
        keys = ctypes.c_uint32(0xFFFFFFFF)
        self.lib.GetKeys(controller - 1, ctypes.byref(keys))
        return keys.value

    def poll_all(self) -> dict[int, int]:
        """One poll round: GetKeys for every present controller, in order, as the core's PIF pass does."""
        return {c: self.get_keys(c) for c in self.present()}

    def drive(self, rounds: int, interval_ns: int, controllers: tuple[int, ...] | None = None):
        """Calls GetKeys from C `rounds` times for each controller, one round every interval_ns, timing
        every call. Runs without the GIL. Returns (durations_ns, buttons, returned_ns) arrays, one entry
        per call (returned_ns: CLOCK_MONOTONIC when GetKeys returned, the clock of time.monotonic_ns())."""
        if self._driver is None:
            path = self.so_path.parent / DRIVER_FILE
            if not path.exists():
                raise PluginError(f"{path} is not built: run `make -C plugin`")
            self._driver = ctypes.CDLL(str(path))
            self._driver.ks_drive_getkeys.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint64,
                                                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            self._driver.ks_drive_getkeys.restype = ctypes.c_int
        controllers = controllers or tuple(self.present())
        mask = sum(1 << (c - 1) for c in controllers)
        n = rounds * len(controllers)
        durations = np.zeros(n, dtype=np.uint64)
        buttons = np.zeros(n, dtype=np.uint32)
        returned = np.zeros(n, dtype=np.uint64)
        getkeys = ctypes.cast(self.lib.GetKeys, ctypes.c_void_p)
        calls = self._driver.ks_drive_getkeys(getkeys, mask, rounds, interval_ns, durations.ctypes.data,
                                              buttons.ctypes.data, returned.ctypes.data)
        return durations[:calls], buttons[:calls], returned[:calls]

    def stop(self) -> None:
        """RomClosed and PluginShutdown, as the core does when the game stops."""
        if self.started:
            self.lib.RomClosed()
            self.lib.PluginShutdown()
            self.started = False

    def __enter__(self) -> "PluginHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["PluginHarness", "build_plugin", "CONTROL", "CONTROL_INFO"]
