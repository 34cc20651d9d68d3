"""What every game backend offers: full-screen frames out, one controller state in per seat.

The emulator (mupen64plus + our input plugin) and the practice track (Gymnasium CarRacing)
both implement GameBackend, so the recorder, trainer and versus mode work on either unchanged.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError

SCREEN_WIDTH = 640
SCREEN_HEIGHT = 480


@dataclass(frozen=True)
class Frame:
    """One full-screen image as the game showed it.

    number: the game's own frame counter (emulator: input polls of controller 1; practice: steps).
    timestamp: seconds on time.monotonic(), the clock pad samples use too.
    image: (480, 640, 3) uint8 RGB, seat 1 on the top half, seat 2 on the bottom half.
    inputs: the controller state the game read for each seat for this frame, where the backend
        knows it exactly (seat -> state); the recorder then labels with it instead of pad samples.
    game_state: what the game itself reported about this frame, where it reports anything (KartStudio
        Raceway: a RacewayFrame from its state channel, the one whose frame counter is `number`).
        Metadata only, for scoring, experts and label checks: never stored with the pictures and
        never part of a model's input.
    """

    number: int
    timestamp: float
    image: np.ndarray
    inputs: dict[int, ControllerState] | None = None
    game_state: Any = None


@dataclass(frozen=True)
class SeatLayout:
    """Where each seat's view sits on the full screen: seat -> (left, top, width, height)."""

    regions: dict[int, tuple[int, int, int, int]]

    @classmethod
    def split_screen(cls, width: int = SCREEN_WIDTH, height: int = SCREEN_HEIGHT) -> "SeatLayout":
        """Mario Kart 64's 2-player split screen: seat 1 on the top half, seat 2 on the bottom half."""
        half = height // 2
        return cls({1: (0, 0, width, half), 2: (0, half, width, height - half)})

    @classmethod
    def whole_screen(cls, width: int = SCREEN_WIDTH, height: int = SCREEN_HEIGHT) -> "SeatLayout":
        """A 1-player game: seat 1 has the whole screen (TensorKart's recordings, a time trial)."""
        return cls({1: (0, 0, width, height)})

    @property
    def players(self) -> int:
        """Players sharing the screen: 1 (seat 1 on the whole screen) or 2 (the split screen)."""
        return len(self.regions)

    def crop(self, image: np.ndarray, seat: int) -> np.ndarray:
        left, top, width, height = self.regions[seat]
        return image[top : top + height, left : left + width]


class GameBackend(abc.ABC):
    """A running game. Not thread-safe unless a subclass says so; one consumer reads frames."""

    name: str = "game"
    seats: tuple[int, ...] = (1, 2)
    fps: float = 30.0
    layout: SeatLayout = SeatLayout.split_screen()

    @abc.abstractmethod
    def start(self) -> None:
        """Start the game (boot the emulator, reset the track). Raises KartStudioError on failure."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the game and free what it holds. Safe to call twice."""

    @abc.abstractmethod
    def set_controller(self, seat: int, state: ControllerState) -> None:
        """The state the game reads for `seat` from its next input poll on."""

    @abc.abstractmethod
    def next_frame(self, timeout: float | None = None) -> Frame | None:
        """The next frame, paced at the game's rate; None when the game has ended."""

    def frames(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    @property
    def running(self) -> bool:
        return False

    # -- optional capabilities ---------------------------------------------------------------------
    # What only some games offer, declared here with neutral defaults so that the play layer and the
    # GUI call them on any backend instead of probing for them; a backend overrides what it has.

    capture_problem: Any = None  # why frames are held back now (None: they flow), e.g. the window is covered
    picture_problem: str | None = None  # why the picture is not the game's (None: it looks like it)
    plays_menu_macros: bool = False  # play_macro() drives the game's menus (the emulator)

    @property
    def track(self) -> str | None:
        """The track being raced where the game reports it, for sessions' `track`; None otherwise."""
        return None

    @property
    def exit_reason(self) -> str | None:
        """How the game ended, once it has (e.g. the emulator crashed); None while it runs or if unknown."""
        return None

    def game_rate(self) -> float | None:
        """The game's own speed (input polls per second) where the backend counts them; None otherwise."""
        return None

    def first_picture(self) -> np.ndarray | None:
        """The screen before the first frame, where the game can show one (the practice track: a pilot
        then drives from its first picture); None otherwise."""
        return None

    def window_place(self) -> tuple[int, int] | None:
        """Where the game's window is pinned on the screen (x, y); None when it has no window."""
        return None

    def window_frame(self) -> Any:
        """The game window's place on the screen with its decorations (a Geometry: x, y, width, height),
        or None when it has no window. May raise KartStudioError while the window closes."""
        return None

    def raise_window(self) -> None:
        """Put the game's window on top (the app calls this after each click in its own window); nothing
        when it has no window. May raise KartStudioError while the window closes."""

    def play_macro(self, macro, progress=None) -> list:
        """Play a menu macro (kartstudio.emulator.macro); only where plays_menu_macros is True."""
        raise KartStudioError(f"{self.name} has no menus to drive with a macro")

    def __enter__(self) -> "GameBackend":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
