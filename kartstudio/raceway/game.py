"""KartStudio Raceway as a game of the engine: the ROM (built from source, no user file), a backend
that boots straight into a race, the session meta its recordings carry.

For the app (the game box's "KartStudio Raceway (N64)"):

    rom = raceway.rom_path()                         # kartstudio.emulator.raceway: built once, then found
    backend = raceway_backend(track=123, laps=3, lockstep=False, speed_limit=True)   # Versus, recording
    backend.track                                    # "123" once the race is set up (sessions' track)
    frame.game_state                                 # the game's own report (scores, never the model)
"""

from __future__ import annotations

import contextlib
import os

from kartstudio.emulator.raceway import FPS
from kartstudio.session import DEFAULT_STORAGE_SIZE, SessionMeta

GAME = "raceway"  # what sessions record (RomInfo.game)
TITLE = "KartStudio Raceway (N64)"


@contextlib.contextmanager
def display_for_game(display: str | None = None):
    """The X display to run the emulator on: `display`, $DISPLAY, or a private Xvfb for the duration."""
    if display or os.environ.get("DISPLAY"):
        yield display or os.environ["DISPLAY"]
        return
    from kartstudio.emulator.xvfb import VirtualDisplay

    xvfb = VirtualDisplay()
    try:
        yield xvfb.start()
    finally:
        xvfb.stop()


def raceway_backend(track: int, laps: int = 3, players: int = 2, display: str | None = None, lockstep: bool = True,
                    speed_limit: bool = False, rom=None, **kwargs):
    """An EmulatorBackend on KartStudio Raceway that boots straight into a race on `track` (not started).
    players=1: the game's 1-player race, one kart on the whole screen (layout SeatLayout.whole_screen())."""
    from kartstudio.emulator import raceway
    from kartstudio.emulator.backend import EmulatorBackend
    from kartstudio.game import SeatLayout

    backend = EmulatorBackend(rom or raceway.rom_path(), display=display, macro=raceway.menu_macro(track, players, laps),
                              lockstep=lockstep, speed_limit=speed_limit, seats=(1, 2) if players == 2 else (1,), **kwargs)
    if players == 1:
        backend.layout = SeatLayout.whole_screen()
    return backend


def race_meta(seat: int, track: int, driver: str = "", storage_size=DEFAULT_STORAGE_SIZE, laps: int = 3,
              source: str = "recorder", extra: dict | None = None) -> SessionMeta:
    """What a Raceway session file says about itself: game raceway, the track's number, a seat's half
    of the split screen (the Recorder fills in the capture region), 60 frames a second."""
    return SessionMeta(seat=seat, game=GAME, track=str(track), pad_name=driver, storage_size=tuple(storage_size),
                       kind="play", source=source, fps=FPS, layout="seat", extra={"track": track, "laps": laps, **(extra or {})})


def write_menu_macro(path, track: int, players: int = 2, laps: int = 3):
    """The menu macro to a race on `track` as a file in Mario Kart 64's macro format (the Settings'
    macro path, or EmulatorBackend(macro=path)); returns the path."""
    from kartstudio.emulator.raceway import menu_macro_steps
    from kartstudio.paths import write_json

    return write_json(path, menu_macro_steps(track, players, laps))
