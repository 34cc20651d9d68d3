"""The running game as the window sees it: which backend, who drives each seat, its status.

Owns the engine's GameLoop (kartstudio.play) and the keyboard pad; the record and versus tabs
ask it for the loop and the seat drivers (kartstudio.drivers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PyQt6 import QtCore

from kartstudio.errors import KartStudioError
from kartstudio.drivers import NeutralDriver, PadDriver
from kartstudio.practice.expert import ExpertDriver
from kartstudio.raceway.expert import RacewayExpertDriver
from kartstudio.gui.keyboard import QtKeyboardPad
from kartstudio.play import GameLoop
from kartstudio.settings import Settings

SOURCE_LABELS = {"practice": "Practice track (CarRacing)", "mk64": "Mario Kart 64 (mupen64plus)",
                 "raceway": "KartStudio Raceway (N64)"}  # raceway: our own game, built from source


@dataclass
class DriverChoice:
    """One entry of a seat's 'Driven by' list."""

    key: str
    label: str
    make: Callable[[], object]  # -> a Driver for GameLoop
    pad: object | None = None  # the PadSource behind it (labels and pad name in session files)


class GameController(QtCore.QObject):
    started = QtCore.pyqtSignal()  # the loop is running (frames flowing)
    stopped = QtCore.pyqtSignal()  # the loop ended (by the user, the game, or an error)
    failed = QtCore.pyqtSignal(str)  # one line for the user
    pads_changed = QtCore.pyqtSignal()  # a gamepad was plugged in or out: the pad lists follow

    def __init__(self, settings: Settings, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.keyboard = QtKeyboardPad()
        self.loop: GameLoop | None = None
        self.backend = None
        self.source = settings.game_source
        self._game = "mk64"  # the running ROM's game (kartstudio.emulator.rom.RomInfo.game)
        self.rom = None  # its RomInfo
        self._announced = False
        self.versus_active = False  # the Versus tab drives the seats; the Record tab leaves them alone
        self.players = 2  # the game the next start makes: 2 (split screen) or 1 (one car on the whole screen)
        self._extra_pads: list = []
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._watch)
        self._pad_changes = 0
        self._build = None  # the Raceway ROM being built off the UI thread (a Future), then the game starts
        self._pads_timer = QtCore.QTimer(self)
        self._pads_timer.setInterval(200)
        self._pads_timer.timeout.connect(self._watch_pads)
        self._pads_timer.start()

    def _watch_pads(self) -> None:
        from kartstudio.pads import sdl

        changes = sdl.pad_changes()
        if changes != self._pad_changes:
            self._pad_changes = changes
            self.pads_changed.emit()

    # -- backends ----------------------------------------------------------------------------------
    @staticmethod
    def source_problem(source: str, settings: Settings) -> str:
        """Why `source` cannot start now ("" if it can)."""
        if source == "practice":
            return ""
        if source == "raceway":  # built from source on first use: only the cross compiler can be missing
            from kartstudio.emulator import raceway

            missing = raceway.toolchain_missing() if raceway.built_rom() is None else []
            return (f"KartStudio Raceway is built from source on first use and needs the MIPS cross compiler "
                    f"({', '.join(missing)} not found): sudo apt-get install gcc-mips-linux-gnu "
                    "binutils-mips-linux-gnu") if missing else ""
        if not settings.rom_path:
            return ("No Mario Kart 64 ROM is set. Choose your own cartridge dump (.z64, .v64 or .n64) with "
                    "'Choose ROM…'; the practice track works without it.")
        from kartstudio.emulator.rom import require_game_rom

        try:
            require_game_rom(settings.rom_path)  # settings.json may name any file
        except KartStudioError as exc:
            return str(exc)
        return ""

    @property
    def running_players(self) -> int | None:
        """Players of the running game's screen (1 or 2); None when no game runs."""
        if not self.running or self.backend is None:
            return None
        return self.backend.layout.players

    def macro_note(self, players: int | None = None) -> str:
        """What to know about the menu macro that takes a game of `players` (default: the next
        start's) to its race ("" if nothing): Mario Kart 64's time-trial macro is unverified."""
        if self.settings.game_source != "mk64" or (players or self.players) != 1:
            return ""
        from kartstudio.emulator.macro import load_mk64_tt_macro

        try:
            if load_mk64_tt_macro().verified:
                return ""
        except KartStudioError as exc:
            return str(exc)
        return ("the 1-player time-trial menu macro is unverified (no ROM was there to check it): if the race "
                "does not start by itself, drive the menus with your pad")

    def make_backend(self, source: str):
        s = self.settings
        if source == "practice":
            from kartstudio.practice.backend import PracticeBackend

            return PracticeBackend(seed=s.practice_seed, players=self.players)
        from kartstudio.emulator.backend import EmulatorBackend

        from kartstudio.emulator.rom import require_game_rom

        video = "" if s.video_plugin == "auto" else s.video_plugin  # "": the plugin that draws this game
        if source == "raceway":
            from kartstudio.emulator import raceway
            from kartstudio.raceway.game import raceway_backend

            self.rom = require_game_rom(raceway.rom_path())  # built already by start(), off the UI thread
            self._game = self.rom.game
            # Free-run at full speed, as a person plays; the macro takes the game to a 2P race on the track.
            return raceway_backend(s.raceway_track, players=self.players, rom=self.rom.path, lockstep=False,
                                   speed_limit=True, fps=float(raceway.FPS), video=video, emulator=s.emulator)

        if not s.rom_path:
            raise KartStudioError("no Mario Kart 64 ROM is set; choose it with 'Choose ROM…' or use the practice track")
        self.rom = require_game_rom(s.rom_path)
        self._game = self.rom.game
        if self.players == 1:  # a time trial: one kart on the whole screen (the macro is Mario Kart 64's)
            from kartstudio.emulator.macro import load_mk64_tt_macro
            from kartstudio.game import SeatLayout

            macro = load_mk64_tt_macro() if self.rom.is_mario_kart_64 else None
            backend = EmulatorBackend(rom=s.rom_path, video=video, emulator=s.emulator, seats=(1,), macro=macro)
            backend.layout = SeatLayout.whole_screen()
            return backend
        return EmulatorBackend(rom=s.rom_path, video=video, emulator=s.emulator)

    # -- control -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.loop is not None and self.loop.alive

    @property
    def building(self) -> bool:
        """The Raceway ROM is being built; the game starts when it is (or says why it cannot)."""
        return self._build is not None

    def start(self, source: str | None = None) -> bool:
        """Start the game on a background thread; False (and failed emitted) if it cannot."""
        if self.running or self.building:
            return True
        self.source = source or self.settings.game_source
        if self.source == "raceway":
            from kartstudio.emulator import raceway

            if raceway.built_rom() is None:  # a first build takes seconds: never on the UI thread
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(1, thread_name_prefix="raceway-build")
                self._build = pool.submit(raceway.rom_path)
                pool.shutdown(wait=False)
                self._timer.start()  # _watch starts the game once the ROM is there
                return True
        return self._launch()

    def _launch(self) -> bool:
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
        self._build = None  # a build under way finishes, but the game is not started
        if self.loop is not None:
            self.loop.stop()
            self.loop.wait(wait)
        self.keyboard.enabled = False
        self._watch()

    def _watch(self) -> None:
        build = self._build
        if build is not None and build.done():
            self._build = None
            error = build.exception()
            if error is not None:
                from kartstudio.gui.common import describe_error

                self._timer.stop()
                self.failed.emit(describe_error(error))
                self.stopped.emit()
                return
            self._launch()
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
        return self.backend.window_place() if self.backend is not None else None

    def window_frame(self) -> tuple[int, int, int, int] | None:
        """The emulator window with its decorations (x, y, width, height), if the backend shows one."""
        if self.backend is None or not self.running:
            return None
        try:
            g = self.backend.window_frame()
        except KartStudioError:
            return None  # the window is closing
        return (g.x, g.y, g.width, g.height) if g is not None else None

    def raise_window(self) -> None:
        """Put the emulator window back on top of the app (after a click in the app)."""
        if self.backend is None or not self.running:
            return
        try:
            self.backend.raise_window()
        except KartStudioError:
            pass  # the window is closing: the loop reports how the game ended

    def capture_problem(self) -> str:
        """Why no frames are taken now ("" when they flow), e.g. the emulator window is covered."""
        problem = self.backend.capture_problem if self.running and self.backend is not None else None
        return str(problem) if problem else ""

    # -- who drives --------------------------------------------------------------------------------
    def game_name(self) -> str:
        """What sessions record as the game: practice, or what the ROM is (mk64, kartstudio-test)."""
        return "practice" if self.source == "practice" else self._game

    def track(self) -> str:
        value = self.backend.track if self.backend is not None else None
        if value:
            return str(value)
        if self.source == "raceway":
            return str(self.settings.raceway_track)  # sessions record the track's number (game raceway)
        # The ROM's game until the backend knows the track (kartstudio-test, not mk64, for the test ROM).
        return f"seed-{self.settings.practice_seed}" if self.source == "practice" else self._game

    def title(self) -> str:
        """The running game for people: Practice track, MK64, or the ROM's own name."""
        one = " (1 player)" if self.running_players == 1 else ""
        if self.source == "practice":
            return f"Practice track{one}"
        if self.source == "raceway":
            return f"Raceway track {self.settings.raceway_track}{one}"
        if self._game == "mk64":
            return "MK64"
        return self.rom.name.title() if self.rom is not None and self.rom.name else self._game

    def picture_problem(self) -> str:
        """Why the emulator's picture is not the game's ("" when it is): it has stayed one colour."""
        problem = self.backend.picture_problem if self.running and self.backend is not None else None
        return str(problem) if problem else ""

    def pads(self) -> list:
        """Gamepads connected now, then pads added by hand, then the keyboard."""
        from kartstudio.pads import sdl

        try:
            found = sdl.connected_pads()
        except KartStudioError:
            found = []  # no SDL here: the keyboard still drives
        return [*found, *self._extra_pads, self.keyboard]

    def paired_pad(self, seat: int):
        """The pad the pair-controllers wizard gave `seat`, if one was paired and is here."""
        from kartstudio.pads import sdl
        from kartstudio.pads.pairing import PairingModel

        try:
            return PairingModel(sdl.manager()).pad_for(seat)
        except KartStudioError:
            return None

    def add_pad(self, pad) -> None:
        """A pad made elsewhere (the pairing wizard, tests with scripted pads)."""
        self._extra_pads.append(pad)

    def driver_choices(self, seat: int) -> list[DriverChoice]:
        choices = [DriverChoice(f"pad:{p.guid or id(p)}", p.name, (lambda p=p: PadDriver(p)), p) for p in self.pads()]
        if self.source == "practice":
            choices.append(DriverChoice("expert", "Expert driver (practice track)", ExpertDriver))
        elif self.source == "raceway":  # reads the game's state channel, never the picture
            choices.append(DriverChoice("expert", "Expert driver (Raceway)", RacewayExpertDriver))
        choices.append(DriverChoice("nobody", "Nobody (neutral controller)", NeutralDriver))
        return choices
