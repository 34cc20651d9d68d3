"""From SDL's game-controller layout to the N64 controller, per pad, saved by pad GUID.

Defaults follow TensorKart's Xbox layout: A = A, X = B, right bumper = R; the rest is the
usual N64-on-Xbox layout (left bumper = L, left trigger = Z, Start = Start, right stick =
C buttons, D-pad = D-pad).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from kartstudio.controller import STICK_MAX, ControllerState
from kartstudio.paths import config_dir, write_json

# SDL_GameControllerButton and SDL_GameControllerAxis
SDL_BUTTONS = {
    "a": 0, "b": 1, "x": 2, "y": 3, "back": 4, "guide": 5, "start": 6, "leftstick": 7, "rightstick": 8,
    "leftshoulder": 9, "rightshoulder": 10, "dpup": 11, "dpdown": 12, "dpleft": 13, "dpright": 14,
}
SDL_AXES = {"leftx": 0, "lefty": 1, "rightx": 2, "righty": 3, "lefttrigger": 4, "righttrigger": 5}
AXIS_MAX = 32767

DEFAULT_BUTTONS = {  # N64 button -> SDL control (a button name, or "+axis"/"-axis" past half way)
    "a": "a", "b": "x", "r": "rightshoulder", "l": "leftshoulder", "z": "+lefttrigger", "start": "start",
    "c_up": "-righty", "c_down": "+righty", "c_left": "-rightx", "c_right": "+rightx",
    "dpad_up": "dpup", "dpad_down": "dpdown", "dpad_left": "dpleft", "dpad_right": "dpright",
}


@dataclass
class PadMapping:
    buttons: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_BUTTONS))
    deadzone: float = 0.12  # fraction of full deflection read as centre
    centre: tuple[float, float] = (0.0, 0.0)  # calibration: where this stick rests, -1..1
    reach: float = 1.0  # calibration: how far this stick really goes (worn sticks reach ~0.85)

    def stick(self, raw_x: int, raw_y: int) -> tuple[int, int]:
        """Raw SDL axes to N64 units: centred, dead zone removed, scaled, y up = positive."""
        x = raw_x / AXIS_MAX - self.centre[0]
        y = -(raw_y / AXIS_MAX - self.centre[1])  # SDL: down is positive; N64: up is positive
        r = math.hypot(x, y)
        if r <= self.deadzone:
            return 0, 0
        scale = min(1.0, (r - self.deadzone) / max(1e-6, self.reach - self.deadzone)) / r
        return round(x * scale * STICK_MAX), round(y * scale * STICK_MAX)

    def state(self, axes: list[int], buttons: list[bool]) -> ControllerState:
        x, y = self.stick(axes[0], axes[1])
        pressed = {}
        for n64, control in self.buttons.items():
            if control[0] in "+-":
                value = axes[SDL_AXES[control[1:]]] * (1 if control[0] == "+" else -1)
                pressed[n64] = value > AXIS_MAX // 2
            else:
                pressed[n64] = bool(buttons[SDL_BUTTONS[control]])
        return ControllerState(x=x, y=y, **pressed)


def _mappings_file():
    return config_dir() / "pads.json"


def load_mapping(guid: str) -> PadMapping:
    try:
        saved = json.loads(_mappings_file().read_text()).get(guid)
    except (OSError, ValueError):
        saved = None
    if not saved:
        return PadMapping()
    return PadMapping(
        buttons={**DEFAULT_BUTTONS, **saved.get("buttons", {})},
        deadzone=float(saved.get("deadzone", 0.12)),
        centre=tuple(saved.get("centre", (0.0, 0.0))),
        reach=float(saved.get("reach", 1.0)),
    )


def save_mapping(guid: str, mapping: PadMapping) -> None:
    """Remember this pad's mapping and calibration (by GUID, so it follows the pad between ports)."""
    path = _mappings_file()
    try:
        everything = json.loads(path.read_text())
    except (OSError, ValueError):
        everything = {}
    for n64, control in mapping.buttons.items():
        name = control.lstrip("+-")
        if n64 not in DEFAULT_BUTTONS or (name not in SDL_BUTTONS and name not in SDL_AXES):
            raise ValueError(f"cannot map N64 {n64} to SDL {control}")
    everything[guid] = asdict(mapping)
    write_json(path, everything)
