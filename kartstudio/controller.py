"""The N64 controller: one state per seat, as the game reads it.

Packs to and from mupen64plus's BUTTONS union (m64p_plugin.h) and to and from TensorKart's
5-tuple ``(x, y, a, b, rb)`` with the stick in -1..1 (TensorKart's play.py scales by 80).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

STICK_MAX = 80  # what a real N64 stick reaches; TensorKart scales its -1..1 output by 80

# Bit positions in mupen64plus's BUTTONS.Value, low bit first (m64p_plugin.h).
BUTTON_BITS: dict[str, int] = {
    "dpad_right": 0,
    "dpad_left": 1,
    "dpad_down": 2,
    "dpad_up": 3,
    "start": 4,
    "z": 5,
    "b": 6,
    "a": 7,
    "c_right": 8,
    "c_left": 9,
    "c_down": 10,
    "c_up": 11,
    "r": 12,
    "l": 13,
}
BUTTON_NAMES: tuple[str, ...] = tuple(BUTTON_BITS)
X_AXIS_SHIFT = 16
Y_AXIS_SHIFT = 24

# Per-frame storage in session files: x, y, then one column per button in BUTTON_NAMES order.
STATE_COLUMNS: tuple[str, ...] = ("x", "y", *BUTTON_NAMES)


def clamp_stick(v: float) -> int:
    return int(max(-STICK_MAX, min(STICK_MAX, round(v))))


@dataclass(frozen=True)
class ControllerState:
    """One N64 controller: stick in N64 units (-80..80, clamped) and 14 buttons."""

    x: int = 0
    y: int = 0
    a: bool = False
    b: bool = False
    z: bool = False
    start: bool = False
    l: bool = False  # noqa: E741 - the button is called L
    r: bool = False
    c_up: bool = False
    c_down: bool = False
    c_left: bool = False
    c_right: bool = False
    dpad_up: bool = False
    dpad_down: bool = False
    dpad_left: bool = False
    dpad_right: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", clamp_stick(self.x))
        object.__setattr__(self, "y", clamp_stick(self.y))
        for name in BUTTON_NAMES:
            object.__setattr__(self, name, bool(getattr(self, name)))

    # -- mupen64plus BUTTONS -------------------------------------------------
    def to_buttons(self) -> int:
        """The 32-bit BUTTONS.Value mupen64plus's GetKeys hands to the game."""
        value = 0
        for name, bit in BUTTON_BITS.items():
            if getattr(self, name):
                value |= 1 << bit
        value |= (self.x & 0xFF) << X_AXIS_SHIFT
        value |= (self.y & 0xFF) << Y_AXIS_SHIFT
        return value

    @classmethod
    def from_buttons(cls, value: int) -> "ControllerState":
        value &= 0xFFFFFFFF

        def signed8(v: int) -> int:
            return v - 256 if v >= 128 else v

        buttons = {name: bool(value >> bit & 1) for name, bit in BUTTON_BITS.items()}
        return cls(
            x=signed8(value >> X_AXIS_SHIFT & 0xFF),
            y=signed8(value >> Y_AXIS_SHIFT & 0xFF),
            **buttons,
        )

    # -- TensorKart ------------------------------------------------------------
    def to_tensorkart(self) -> tuple[float, float, float, float, float]:
        """TensorKart's label: (x, y) in -1..1, then A, B, right trigger as 0/1."""
        return (
            self.x / STICK_MAX,
            self.y / STICK_MAX,
            float(self.a),
            float(self.b),
            float(self.r),
        )

    @classmethod
    def from_tensorkart(cls, action: Iterable[float]) -> "ControllerState":
        """TensorKart's 5-tuple back to a state, as its play.py does: stick times 80, buttons rounded."""
        x, y, a, b, rb = (float(v) for v in action)
        return cls(x=x * STICK_MAX, y=y * STICK_MAX, a=round(a) >= 1, b=round(b) >= 1, r=round(rb) >= 1)

    # -- session storage -------------------------------------------------------
    def to_row(self) -> np.ndarray:
        """The int16 row stored per frame in a session file (see STATE_COLUMNS)."""
        return np.array([self.x, self.y, *(getattr(self, n) for n in BUTTON_NAMES)], dtype=np.int16)

    @classmethod
    def from_row(cls, row: Iterable[int]) -> "ControllerState":
        values = [int(v) for v in row]
        return cls(x=values[0], y=values[1], **{n: bool(v) for n, v in zip(BUTTON_NAMES, values[2:])})

    def pressed(self) -> list[str]:
        return [n for n in BUTTON_NAMES if getattr(self, n)]

    @property
    def is_neutral(self) -> bool:
        return self == NEUTRAL


NEUTRAL = ControllerState()


def aggregate(states: Iterable[ControllerState], previous: ControllerState = NEUTRAL) -> ControllerState:
    """One label from every pad sample since the previous frame.

    The stick takes the sample of largest magnitude (a sharp flick is kept); a button is pressed
    if it was pressed in any sample, so a tap that lasted one poll is never lost. With no samples
    the pad has not changed, so the previous state holds.
    """
    states = list(states)
    if not states:
        return previous
    stick = max(states, key=lambda s: s.x * s.x + s.y * s.y)
    buttons = {n: any(getattr(s, n) for s in states) for n in BUTTON_NAMES}
    return ControllerState(x=stick.x, y=stick.y, **buttons)


__all__ = [
    "ControllerState",
    "NEUTRAL",
    "STICK_MAX",
    "BUTTON_BITS",
    "BUTTON_NAMES",
    "STATE_COLUMNS",
    "aggregate",
    "clamp_stick",
]
