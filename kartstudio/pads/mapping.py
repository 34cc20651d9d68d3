"""From SDL's game-controller layout to the N64 controller, per pad, saved by pad GUID.

Defaults follow TensorKart's Xbox layout: A = A, X = B, right bumper = R; the rest is the
usual N64-on-Xbox layout (left bumper = L, left trigger = Z, Start = Start, right stick =
C buttons, D-pad = D-pad).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from kartstudio.configfile import is_number, need, read_json_config
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


def _valid_control(control) -> bool:
    return isinstance(control, str) and (control in SDL_BUTTONS or (control[:1] in "+-" and control[1:] in SDL_AXES))


def _checked_mappings(data) -> dict[str, PadMapping]:
    """pads.json's content: GUID -> mapping, every field checked (a bad one would stop pad polling)."""
    need(isinstance(data, dict), "it is not a JSON object")
    mappings = {}
    for guid, saved in data.items():
        need(isinstance(saved, dict), f"pad {guid} is {saved!r}; expected an object")
        buttons = saved.get("buttons", {})
        need(isinstance(buttons, dict), f"pad {guid}: buttons is not an object")
        for n64, control in buttons.items():
            need(n64 in DEFAULT_BUTTONS and _valid_control(control), f"pad {guid}: cannot map N64 {n64} to SDL {control!r}")
        deadzone, reach, centre = saved.get("deadzone", 0.12), saved.get("reach", 1.0), saved.get("centre", [0.0, 0.0])
        need(is_number(deadzone) and 0 <= deadzone <= 0.9, f"pad {guid}: deadzone {deadzone!r} is not from 0 to 0.9")
        need(is_number(reach) and deadzone < reach <= 2, f"pad {guid}: reach {reach!r} is not above the deadzone and at most 2")
        need(isinstance(centre, list) and len(centre) == 2 and all(is_number(c) and -1 <= c <= 1 for c in centre),
             f"pad {guid}: centre {centre!r} is not two numbers from -1 to 1")
        mappings[guid] = PadMapping({**DEFAULT_BUTTONS, **buttons}, float(deadzone), (float(centre[0]), float(centre[1])), float(reach))
    return mappings


def _load_all() -> dict[str, PadMapping]:
    return read_json_config(_mappings_file(), _checked_mappings, "the pad mappings file") or {}


def load_mapping(guid: str) -> PadMapping:
    """This pad's saved mapping, or the defaults (a bad pads.json is set aside, see configfile)."""
    return _load_all().get(guid) or PadMapping()


def save_mapping(guid: str, mapping: PadMapping) -> None:
    """Remember this pad's mapping and calibration (by GUID, so it follows the pad between ports)."""
    path = _mappings_file()
    everything = {key: asdict(m) for key, m in _load_all().items()}
    for n64, control in mapping.buttons.items():
        name = control.lstrip("+-")
        if n64 not in DEFAULT_BUTTONS or (name not in SDL_BUTTONS and name not in SDL_AXES):
            raise ValueError(f"cannot map N64 {n64} to SDL {control}")
    everything[guid] = asdict(mapping)
    write_json(path, everything)
