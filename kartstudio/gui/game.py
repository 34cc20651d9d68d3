"""The running game as the window sees it: which backend, who drives each seat, its status.

Owns the GameLoop (kartstudio.gui.workers) and the keyboard pad; the record and versus tabs
ask it for the loop and the seat drivers. Backends are imported lazily, so a build without the
emulator or the practice track still opens and says what is missing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from PyQt6 import QtCore

from kartstudio.errors import KartStudioError
from kartstudio.gui.common import missing_module, optional_module
from kartstudio.gui.keyboard import QtKeyboardPad
from kartstudio.gui.workers import GameLoop, NeutralDriver, PadDriver
from kartstudio.settings import Settings

SOURCE_LABELS = {"practice": "Practice track (CarRacing)", "mk64": "Mario Kart 64 (mupen64plus)"}


@dataclass
class DriverChoice:
    """One entry of a seat's 'Driven by' list."""

    key: str
    label: str
    make: Callable[[], object]  # -> a Driver for GameLoop
    pad: object | None = None  # the PadSource behind it (labels and pad name in session files)


def _call_with_known(cls, **kwargs):
    """Call cls with the keyword arguments its signature accepts (engine parts evolve in parallel)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return cls(**kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls(**kwargs)
    return cls(**{k: v for k, v in kwargs.items() if k in params})


class GameController(QtCore.QObject):
    started = QtCore.pyqtSignal()  # the loop is running (frames flowing)
    stopped = QtCore.pyqtSignal()  # the loop ended (by the user, the game, or an error)
    failed = QtCore.pyqtSignal(str)  # one line for the user

    def __init__(self, settings: Settings, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.keyboard = QtKeyboardPad()
        self.loop: GameLoop | None = None
        self.backend = None
        self.source = settings.game_source
        self._announced = False
        self.versus_active = False  # the Versus tab drives the seats; the Record tab leaves them alone
        self._extra_pads: list = []
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._watch)

    # -- backends ----------------------------------------------------------------------------------
    @staticmethod
    def source_problem(source: str, settings: Settings) -> str:
        """Why `source` cannot start now ("" if it can)."""
        if source == "practice":
            why = missing_module("kartstudio.practice.backend")
            return f"The practice track is not available: {why}" if why else ""
        if not settings.rom_path:
            return ("No Mario Kart 64 ROM is set. Choose your own cartridge dump (.z64, .v64 or .n64) with "
                    "'Choose ROM…'; the practice track works without it.")
        why = missing_module("kartstudio.emulator.backend")
        return f"The emulator backend is not available: {why}" if why else ""

    def make_backend(self, source: str):
        s = self.settings
        if source == "practice":
            module, why = optional_module("kartstudio.practice.backend")
            if module is None:
                raise KartStudioError(f"the practice track is not available: {why}")
            return _call_with_known(module.PracticeBackend, seed=s.practice_seed)
        module, why = optional_module("kartstudio.emulator.backend")
        if module is None:
            raise KartStudioError(f"the emulator backend is not available: {why}")
        if not s.rom_path:
            raise KartStudioError("no Mario Kart 64 ROM is set; choose it with 'Choose ROM…' or use the practice track")
        return _call_with_known(module.EmulatorBackend, rom=s.rom_path, video=s.video_plugin)

    # -- control -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.loop is not None and self.loop.alive

    def start(self, source: str | None = None) -> bool:
        """Start the game on a background thread; False (and failed emitted) if it cannot."""
        if self.running:
            return True
        self.source = source or self.settings.game_source
        try:
            self.backend = self.make_backend(self.source)
        except Exception as exc:  # noqa: BLE001 - shown in the window
            from kartstudio.gui.common import describe_error

            self.failed.emit(describe_error(exc))
            return False
        self.loop = GameLoop(self.backend)
        self.keyboard.enabled = True
        self._announced = False
        self.loop.start()
        self._timer.start()
        return True

    def stop(self, wait: float = 5.0) -> None:
        if self.loop is not None:
            self.loop.stop()
            self.loop.wait(wait)
        self.keyboard.enabled = False
        self._watch()

    def _watch(self) -> None:
        loop = self.loop
        if loop is None:
            return
        if loop.status.running and not self._announced:
            self._announced = True
            self.started.emit()
        if not loop.alive:
            self._timer.stop()
            self.keyboard.enabled = False
            if loop.status.error:
                self.failed.emit(loop.status.error)
            if self._announced or loop.status.error:
                self._announced = False
                self.stopped.emit()
            self.loop = None

    def window_place(self) -> tuple[int, int] | None:
        """Where the emulator window is pinned (x, y), if the backend pins one."""
        pinner = getattr(self.backend, "pinner", None)
        if pinner is None:
            return None
        try:
            g = pinner.geometry
        except Exception:  # noqa: BLE001 - the window may be closing
            return None
        return (g.x, g.y)

    # -- who drives --------------------------------------------------------------------------------
    def game_name(self) -> str:
        return "practice" if self.source == "practice" else "mk64"

    def track(self) -> str:
        b = self.backend
        for attr in ("track", "track_name"):
            value = getattr(b, attr, None)
            if value:
                return str(value)
        return f"seed-{self.settings.practice_seed}" if self.source == "practice" else "mk64"

    def pads(self) -> list:
        """Gamepads the pads module offers now, then the keyboard."""
        found = []
        module, _ = optional_module("kartstudio.pads.sdl")
        lister = getattr(module, "connected_pads", None) if module else None
        if callable(lister):
            try:
                found = list(lister())
            except Exception:  # noqa: BLE001 - no pads is a normal state
                found = []
        return [*found, *self._extra_pads, self.keyboard]

    def paired_pad(self, seat: int):
        """The pad the pair-controllers wizard gave `seat`, if gamepads work here and one was paired."""
        module, _ = optional_module("kartstudio.pads.sdl")
        if module is None:
            return None
        from kartstudio.pads.pairing import PairingModel

        return PairingModel(module.manager()).pad_for(seat)

    def add_pad(self, pad) -> None:
        """A pad made elsewhere (the pairing wizard, tests with scripted pads)."""
        self._extra_pads.append(pad)

    def driver_choices(self, seat: int) -> list[DriverChoice]:
        choices = [
            DriverChoice(f"pad:{getattr(p, 'guid', '') or id(p)}", getattr(p, "name", "pad"), (lambda p=p: PadDriver(p)), p)
            for p in self.pads()
        ]
        expert = self.expert_factory()
        if expert is not None and self.source == "practice":
            choices.append(DriverChoice("expert", "Expert driver (practice track)", expert))
        choices.append(DriverChoice("nobody", "Nobody (neutral controller)", NeutralDriver))
        return choices

    def expert_factory(self):
        """A factory for the practice track's expert driver, if that part is in this build."""
        module, _ = optional_module("kartstudio.practice.expert")
        if module is None:
            return None
        from kartstudio.gui.drivers import ExpertDriver

        if not ExpertDriver.supported(module):
            return None
        return lambda: ExpertDriver(module, self)
