"""Menu macros: data-driven input sequences (frames to wait, buttons to press) played through lock-step.

A macro file (JSON) lists steps; each holds some buttons and/or a stick position for `frames`
input polls of controller 1, or waits (`wait`: polls with nothing pressed):

    {"name": "...", "steps": [
        {"wait": 10, "note": "Nintendo logo"},
        {"press": ["a"], "frames": 2},
        {"stick": [80, 0], "frames": 2, "seat": 1},
        {"press": ["start"], "frames": 2, "seat": 2}
    ]}

Buttons are ControllerState's names (a, b, z, start, l, r, c_up, ..., dpad_right); `seat` is 1
unless given. The data is only data: nothing in it is evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator, Mapping

from kartstudio.controller import BUTTON_NAMES, NEUTRAL, ControllerState
from kartstudio.errors import KartStudioError

MK64_VS_MACRO = "mk64_vs_macro.json"  # 2 players: to the VS character select
MK64_TT_MACRO = "mk64_tt_macro.json"  # 1 player: a time trial on Luigi Raceway (gym-mupen64plus's timings)


@dataclass(frozen=True)
class MacroStep:
    frames: int
    seat: int
    state: ControllerState
    note: str = ""


@dataclass(frozen=True)
class Macro:
    name: str
    steps: tuple[MacroStep, ...]
    verified: bool = False

    @property
    def length(self) -> int:
        return sum(step.frames for step in self.steps)

    def frames(self, seats: tuple[int, ...] = (1, 2)) -> Iterator[dict[int, ControllerState]]:
        """Per poll: the state of every seat (neutral unless a step presses something for it)."""
        for step in self.steps:
            states = {seat: NEUTRAL for seat in seats}
            if step.seat in states:
                states[step.seat] = step.state
            for _ in range(step.frames):
                yield dict(states)

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "macro") -> "Macro":
        if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list) or not data["steps"]:
            raise KartStudioError(f"{source}: a macro needs a non-empty list \"steps\"")
        steps = [_parse_step(raw, f"{source}: step {i + 1}") for i, raw in enumerate(data["steps"])]
        return cls(name=str(data.get("name", source)), steps=tuple(steps), verified=bool(data.get("verified", False)))

    @classmethod
    def load(cls, path: str | Path) -> "Macro":
        from kartstudio.paths import open_regular

        path = Path(path)
        try:
            with open_regular(path, "the macro file", "r") as f:  # a FIFO is refused, never waited on
                data = json.loads(f.read())
        except FileNotFoundError:
            raise KartStudioError(f"macro file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KartStudioError(f"macro file {path} is not readable JSON ({exc}); fix or restore it") from None
        return cls.from_dict(data, str(path))


def _parse_step(raw: object, where: str) -> MacroStep:
    if not isinstance(raw, Mapping):
        raise KartStudioError(f"{where} must be an object like {{\"press\": [\"a\"], \"frames\": 2}}")
    unknown = set(raw) - {"wait", "press", "stick", "frames", "seat", "note"}
    if unknown:
        raise KartStudioError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if "wait" in raw:
        if "press" in raw or "stick" in raw:
            raise KartStudioError(f"{where}: a wait step presses nothing")
        frames = raw["wait"]
    else:
        frames = raw.get("frames", 1)
    if not isinstance(frames, int) or isinstance(frames, bool) or not 1 <= frames <= 100_000:
        raise KartStudioError(f"{where}: frames must be a whole number from 1 to 100000, not {frames!r}")
    seat = raw.get("seat", 1)
    if seat not in (1, 2, 3, 4):
        raise KartStudioError(f"{where}: seat must be 1-4, not {seat!r}")
    press = raw.get("press", [])
    if not isinstance(press, list) or any(b not in BUTTON_NAMES for b in press):
        raise KartStudioError(f"{where}: press takes a list of buttons from {', '.join(BUTTON_NAMES)}")
    stick = raw.get("stick", [0, 0])
    if (not isinstance(stick, list) or len(stick) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and -80 <= v <= 80 for v in stick)):
        raise KartStudioError(f"{where}: stick must be [x, y] with whole numbers from -80 to 80")
    state = ControllerState(x=stick[0], y=stick[1], **{b: True for b in press})
    return MacroStep(frames=frames, seat=seat, state=state, note=str(raw.get("note", "")))


def load_mk64_vs_macro(path: str | Path | None = None) -> Macro:
    """The boot-to-VS macro: `path`, else $KARTSTUDIO_MK64_MACRO, else the one in kartstudio/resources."""
    import os

    override = path or os.environ.get("KARTSTUDIO_MK64_MACRO")
    if override:
        return Macro.load(override)
    text = resources.files("kartstudio.resources").joinpath(MK64_VS_MACRO).read_text()
    return Macro.from_dict(json.loads(text), MK64_VS_MACRO)


def load_mk64_tt_macro(path: str | Path | None = None) -> Macro:
    """The boot-to-time-trial macro (a 1-player race, one kart on the whole screen): `path`, else
    $KARTSTUDIO_MK64_TT_MACRO, else the one in kartstudio/resources (unverified: see its `about`)."""
    import os

    override = path or os.environ.get("KARTSTUDIO_MK64_TT_MACRO")
    if override:
        return Macro.load(override)
    text = resources.files("kartstudio.resources").joinpath(MK64_TT_MACRO).read_text()
    return Macro.from_dict(json.loads(text), MK64_TT_MACRO)


def load_mk64_macro(players: int = 2, path: str | Path | None = None) -> Macro:
    """Mario Kart 64's boot macro for a game of `players`: 2 the VS macro, 1 the time-trial macro."""
    if players not in (1, 2):
        raise KartStudioError(f"Mario Kart 64's menu macros are for 1 or 2 players, not {players}")
    return load_mk64_tt_macro(path) if players == 1 else load_mk64_vs_macro(path)


def play(macro: Macro, step: Callable[[dict[int, ControllerState]], object], seats: tuple[int, ...] = (1, 2),
         progress: Callable[[int, int], None] | None = None) -> int:
    """Play `macro` through `step` (one call per poll: a lock-step backend's or plugin client's step).

    Returns the number of polls played.
    """
    total = macro.length
    done = 0
    for states in macro.frames(seats):
        step(states)
        done += 1
        if progress is not None:
            progress(done, total)
    return done


def safe_note(note: str, limit: int = 40) -> str:
    """A file-name-safe form of a step's note."""
    cleaned = "".join(c if c.isalnum() else "-" for c in note.lower()).strip("-")
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned[:limit] or "step"


def play_with_screenshots(backend, macro: Macro, folder: str | Path, log: Callable[[str], None] = print) -> list[Path]:
    """Play `macro` through a started EmulatorBackend in lock-step, saving a PNG of the screen after
    each step (the game stands still between polls, so each picture is exactly where that step
    left the game). For tuning a macro: the file names carry the step number and its note."""
    from mss.tools import to_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    was_lockstep = backend.lockstep
    backend.set_lockstep(True)
    saved: list[Path] = []
    poll = 0
    try:
        for number, step in enumerate(macro.steps, 1):
            backend.play_macro(Macro(macro.name, (step,)))
            poll += step.frames
            image = backend.capture.grab()
            path = folder / f"step-{number:03d}-poll-{poll:05d}-{safe_note(step.note)}.png"
            to_png(image.tobytes(), (image.shape[1], image.shape[0]), output=str(path))
            saved.append(path)
            what = ", ".join(step.state.pressed()) or ("stick" if (step.state.x or step.state.y) else "wait")
            log(f"step {number:3d}  polls {poll - step.frames + 1:5d}-{poll:5d}  seat {step.seat}  {what:12s} {step.note}")
    finally:
        backend.set_lockstep(was_lockstep)
    return saved
