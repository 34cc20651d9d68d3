"""USB and Bluetooth gamepads through SDL2 (the library pygame ships).

One PadManager thread polls every pad at POLL_HZ, finds pads plugged in or out while running,
and pushes timestamped N64 controller states into one GamepadSource per pad. A pad is known by
its SDL GUID and name (plus an ordinal when two identical pads are plugged in), never by the
USB port or enumeration order, so a pad keeps its seat and its mapping wherever it is plugged.
"""

from __future__ import annotations

import threading
import time

from kartstudio.controller import NEUTRAL
from kartstudio.pads import sdl2lib
from kartstudio.pads.base import PadSource
from kartstudio.pads.mapping import SDL_AXES, SDL_BUTTONS, PadMapping, load_mapping

POLL_HZ = 500


class GamepadSource(PadSource):
    """One physical pad. The same object comes back when the pad is plugged in again."""

    def __init__(self, key: str, guid: str, name: str, mapping: PadMapping) -> None:
        super().__init__()
        self.key = key  # guid, or guid#2 for a second identical pad
        self.guid = guid
        self.name = name
        self.mapping = mapping
        self.connected = False
        self.pressed: set[str] = set()  # SDL button names held now (for the pairing wizard)


class PadManager:
    def __init__(self, poll_hz: float = POLL_HZ) -> None:
        self.period = 1.0 / poll_hz
        self.pads: dict[str, GamepadSource] = {}  # by key, connected or not
        self._open: dict[int, tuple[int, GamepadSource]] = {}  # SDL instance id -> (controller, pad)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.changes = 0  # pads plugged in or out so far: a view of the pads compares it to refresh
        self.error: str | None = None

    def start(self) -> "PadManager":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kartstudio-pads", daemon=True)
            self._thread.start()
            self._started.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def connected(self) -> list[GamepadSource]:
        with self._lock:
            return [p for p in self.pads.values() if p.connected]

    def known(self) -> list[GamepadSource]:
        with self._lock:
            return list(self.pads.values())

    def wait_polls(self, n: int, timeout: float = 2.0) -> None:
        """Wait until the thread has polled n more times (tests, and after plugging a pad)."""
        target = self.polls + n
        deadline = time.monotonic() + timeout
        while self.polls < target and time.monotonic() < deadline:
            time.sleep(self.period)

    # -- the polling thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            sdl2lib.init_controllers()
        except Exception as exc:  # noqa: BLE001 - reported through .error, the app goes on with the keyboard
            self.error = str(exc)
            self._started.set()
            return
        lib = sdl2lib.sdl()
        self._started.set()
        try:
            self._poll_until_stopped(lib)
        except Exception as exc:  # noqa: BLE001 - a dead thread must say so: the pads would just freeze
            self.error = f"gamepad polling stopped: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        for controller, pad in self._open.values():
            lib.SDL_GameControllerClose(controller)
            pad.connected = False  # a pad no longer read is shown (and recorded) as unplugged
        self._open.clear()

    def _poll_until_stopped(self, lib) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            lib.SDL_JoystickUpdate()
            self._detect(lib)
            now = time.monotonic()
            for controller, pad in list(self._open.values()):
                axes = [lib.SDL_GameControllerGetAxis(controller, a) for a in range(len(SDL_AXES))]
                buttons = [bool(lib.SDL_GameControllerGetButton(controller, b)) for b in range(len(SDL_BUTTONS))]
                pad.pressed = {name for name, b in SDL_BUTTONS.items() if buttons[b]}
                pad.push(pad.mapping.state(axes, buttons), now)
            self.polls += 1
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()

    def _detect(self, lib) -> None:
        present = {}
        for index in range(lib.SDL_NumJoysticks()):
            present[lib.SDL_JoystickGetDeviceInstanceID(index)] = index
        for instance in [i for i in self._open if i not in present]:
            controller, pad = self._open.pop(instance)
            lib.SDL_GameControllerClose(controller)
            pad.connected = False
            pad.pressed = set()
            pad.push(NEUTRAL)  # an unplugged pad holds nothing down
            self.changes += 1
        for instance, index in present.items():
            if instance in self._open or not lib.SDL_IsGameController(index):
                continue
            controller = lib.SDL_GameControllerOpen(index)
            if not controller:
                continue
            guid = sdl2lib.device_guid(index)
            name = (lib.SDL_JoystickNameForIndex(index) or b"gamepad").decode(errors="replace")
            pad = self._pad_for(guid, name)
            self._open[instance] = (controller, pad)
            pad.connected = True
            self.changes += 1

    def _pad_for(self, guid: str, name: str) -> GamepadSource:
        """The known pad with this identity that is not plugged in now, or a new one."""
        with self._lock:
            ordinal = 1
            while True:
                key = guid if ordinal == 1 else f"{guid}#{ordinal}"
                pad = self.pads.get(key)
                if pad is None:
                    pad = self.pads[key] = GamepadSource(key, guid, name if ordinal == 1 else f"{name} #{ordinal}",
                                                         load_mapping(guid))
                    return pad
                if not pad.connected:
                    return pad
                ordinal += 1


_manager: PadManager | None = None


def manager() -> PadManager:
    """The app's one PadManager, started on first use."""
    global _manager
    if _manager is None:
        _manager = PadManager().start()
    return _manager


def pad_changes() -> int:
    """How many times a pad was plugged in or out since start-up (0 before the pads are started)."""
    return _manager.changes if _manager is not None else 0


def connected_pads() -> list[GamepadSource]:
    """Every pad seen since start-up (a pad unplugged mid-race keeps its seat, paused)."""
    return manager().known()
