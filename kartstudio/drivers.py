"""Who drives a seat: a pad, the keyboard, the practice track's expert, the trained pilot, or a
human taking a seat over from the pilot. One set of drivers for the app, eval, demos and DAgger.

A driver is asked once before the first frame (frame None) and then once per frame:

    state = driver.act(game, seat, frame)   # the controller state for `seat` from now on
    driver.label                            # what to record for that frame (often the same state)

`label` differs from what the driver does where the recording should teach something else: a
nudged expert does the nudge but is labelled with the expert's own decision, and a pilot being
corrected by the expert (DAgger) drives while the expert's decision is the label.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.game import Frame, GameBackend


class Driver(Protocol):
    name: str
    label: ControllerState  # what the last act() means to record

    def act(self, game: GameBackend, seat: int, frame: Frame | None) -> ControllerState:
        """The controller state for `seat` from now on, having seen `frame` (None before the first)."""


class _Driver:
    name = "driver"

    def __init__(self) -> None:
        self.label: ControllerState = NEUTRAL

    def act(self, game: GameBackend, seat: int, frame: Frame | None) -> ControllerState:
        self.label = self._act(game, seat, frame)
        return self.label

    def _act(self, game, seat, frame) -> ControllerState:
        raise NotImplementedError


class NeutralDriver(_Driver):
    name = "nobody"

    def _act(self, game, seat, frame) -> ControllerState:
        return NEUTRAL


class PadDriver(_Driver):
    """A human pad (gamepad or keyboard): its latest state. Scripted pads are asked for a sample
    each frame (they are programs standing in for a person)."""

    def __init__(self, pad) -> None:
        super().__init__()
        self.pad = pad
        self.name = pad.name

    def _act(self, game, seat, frame) -> ControllerState:
        sample = getattr(self.pad, "sample", None)  # ScriptedPadSource only
        return sample() if callable(sample) else self.pad.last


class ScriptedExperts(_Driver):
    """A scripted expert per seat, made on first use, driving through a human-like profile (reaction
    time, thumb lag, noise; seeded per seat) when `human` is given. The games' own experts derive
    from it where they live (practice.expert.ExpertDriver, raceway.expert.RacewayExpertDriver): the
    play layer never imports a game."""

    def __init__(self, params=None, human=None, fps: float = 25.0, seed: int = 0) -> None:
        super().__init__()
        self.params = params
        self.human = human
        self.fps = fps
        self.seed = seed
        self._experts: dict[int, object] = {}

    def _expert(self, seat: int, make, humanize):
        """Seat's expert: make(seat) the first time, wrapped by humanize(expert, profile, fps, seed)."""
        expert = self._experts.get(seat)
        if expert is None:
            expert = make(seat)
            if self.human is not None:
                expert = humanize(expert, self.human, self.fps, self.seed * 10 + seat)
            self._experts[seat] = expert
        return expert


@dataclass
class Nudges:
    """Random steering nudges on top of a driver: now and then a held offset for a few frames."""

    rate: float = 1 / 40  # chance per frame that a nudge starts
    frames: tuple[int, int] = (4, 10)
    stick: tuple[int, int] = (30, 70)  # size of the offset in stick units, either side
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _left: int = 0
    _offset: int = 0

    def apply(self, state: ControllerState) -> ControllerState:
        if self._left == 0 and self.rng.random() < self.rate:
            self._left = self.rng.randint(*self.frames)
            self._offset = self.rng.choice((-1, 1)) * self.rng.randint(*self.stick)
        if self._left == 0:
            return state
        self._left -= 1
        return replace(state, x=state.x + self._offset)


class NudgedDriver:
    """A driver with steering nudges (DART-style noise): the car drifts off the line and the
    driver brings it back; the label is the driver's own decision, never the nudge."""

    def __init__(self, driver, nudges: Nudges) -> None:
        self.driver = driver
        self.nudges = nudges
        self.name = f"{driver.name} (nudged)"
        self.label = NEUTRAL

    def act(self, game, seat, frame) -> ControllerState:
        self.label = self.driver.act(game, seat, frame)
        return self.nudges.apply(self.label)


def load_pilot(path: str | os.PathLike):
    """Load and warm up a Pilot from a .keras file (TensorFlow's import and the first traced call
    take seconds: the app calls this off the UI thread)."""
    from kartstudio.pilot import Pilot

    if not os.path.isfile(path):
        raise KartStudioError(f"{path}: no such model file; train one with `kartstudio train` or pass another path")
    pilot = Pilot.load(path)
    pilot.warm_up()
    return pilot


def model_layout(pilot) -> str:
    """What part of the screen `pilot`'s model was trained on: "seat" or "whole" (its Preprocess layer)."""
    spec = getattr(pilot, "spec", None)
    return getattr(spec, "layout", "seat") or "seat"


def view_problem(pilot, layout) -> str:
    """Why `pilot` cannot be fed the view it was trained on in a game shown as `layout` (a
    SeatLayout), "" where it can. The one rule for the Versus tab, eval and the env:

    - a whole-screen model in a 1-player game: the whole screen (what it learnt on);
    - a seat model in a 2-player game: its seat's half;
    - a seat model in a 1-player game: its one seat is the whole screen, resized to its size
      (allowed: "any model" can be watched; see view_note());
    - a whole-screen model in a 2-player game: refused, never fed both players' halves."""
    if model_layout(pilot) == "whole" and layout.players > 1:
        name = os.path.basename(str(getattr(pilot, "name", "") or "this model"))
        return (f"{name} was trained on the whole screen; race it in 1-player mode (Watch the AI drive), "
                f"not on a {layout.players}-player split screen")
    return ""


def view_note(pilot, layout) -> str:
    """What a person should know about the view `pilot` gets in a game shown as `layout` ("" if nothing)."""
    if model_layout(pilot) == "seat" and layout.players == 1:
        return ("this model was trained on one seat of the split screen; in 1-player mode it sees the "
                "whole screen squeezed to a seat's shape, so it may drive worse")
    return ""


def check_view(pilot, layout) -> None:
    """Raise KartStudioError (view_problem's line) where `pilot` cannot race in a game shown as `layout`."""
    problem = view_problem(pilot, layout)
    if problem:
        raise KartStudioError(problem)


def players_for(pilot, players: int | None = None) -> int:
    """The players of the game a model is scored or raced in (eval, the env): `players` if given
    (checked: a whole-screen model in a 2-player game is refused), else the model's own layout:
    1 for a whole-screen model, 2 (its seat of the split screen) for a seat model."""
    from kartstudio.game import SeatLayout

    if players is None:
        return 1 if model_layout(pilot) == "whole" else 2
    if players not in (1, 2):
        raise KartStudioError(f"players must be 1 or 2, not {players}")
    check_view(pilot, SeatLayout.whole_screen() if players == 1 else SeatLayout.split_screen())
    return players


class PilotDriver:
    """The trained model driving a seat: one inference per frame on the picture the model file
    says it was trained on (pilot.view: the seat or the whole screen, at its size).

    The pilot's frame history starts empty with each new PilotDriver (one per race or episode).
    activations: also compute the conv maps (the Versus tab shows them); the latest outputs and
    maps are kept for the UI thread (snapshot(), under a lock)."""

    name = "AI"

    def __init__(self, pilot, activations: bool = False) -> None:
        self.pilot = pilot
        self.pilot.reset()
        self.with_maps = activations
        self.label = NEUTRAL
        self._lock = threading.Lock()
        self.outputs: tuple[float, ...] | None = None
        self.activations: dict[str, object] = {}
        self.steps = 0
        self.inference_ms = 0.0

    def act(self, game, seat, frame) -> ControllerState:
        if self.steps == 0:
            check_view(self.pilot, game.layout)  # never a whole-screen model on both players' halves
        if frame is None:
            picture = game.first_picture()  # the practice track can show its first picture
            if picture is None:
                return NEUTRAL
            frame = Frame(0, time.monotonic(), picture)
        image = self.pilot.view(frame.image, seat, game.layout)
        t0 = time.perf_counter()
        out = self.pilot.predict(image, activations=self.with_maps)
        ms = (time.perf_counter() - t0) * 1000
        self.label = out.state
        with self._lock:
            self.outputs = tuple(float(v) for v in out.action)
            self.activations = out.activations
            self.steps += 1
            self.inference_ms = 0.9 * self.inference_ms + 0.1 * ms if self.steps > 1 else ms
        return self.label

    def snapshot(self):
        """(outputs, activations, state, frames driven, smoothed inference ms)."""
        with self._lock:
            return self.outputs, dict(self.activations), self.label, self.steps, self.inference_ms


class CorrectedDriver:
    """One driver drives, another says what it would have done: the label (DAgger's expert
    labels on the pilot's own states, or a human's corrections while the AI keeps watching)."""

    def __init__(self, driving, labelling) -> None:
        self.driving = driving
        self.labelling = labelling
        self.name = f"{driving.name}, labelled by {labelling.name}"
        self.label = NEUTRAL

    def act(self, game, seat, frame) -> ControllerState:
        self.label = self.labelling.act(game, seat, frame)
        return self.driving.act(game, seat, frame)


class TakeoverDriver:
    """A human has taken a seat from the AI: the pad drives, and the AI keeps running on every
    frame, so its maps and would-be outputs stay live while the human shows it what to do.

    release: buttons never handed to the game nor recorded (the override button held down for a
    hold-to-drive takeover is the person's signal to KartStudio, not a move in the race)."""

    def __init__(self, pad, pilot_driver: PilotDriver, release: tuple[str, ...] = ()) -> None:
        self.pad_driver = PadDriver(pad)
        self.pilot_driver = pilot_driver
        self.release = {name: False for name in release}
        self.name = f"{pad.name} (takeover)"
        self.label = NEUTRAL
        self.in_effect = False  # the game has read the pad's state (see took_effect())
        self._handed: list[ControllerState] = []  # states handed to the game until then

    def act(self, game, seat, frame) -> ControllerState:
        self.pilot_driver.act(game, seat, frame)
        self.label = self.pad_driver.act(game, seat, frame)
        if self.release:
            self.label = replace(self.label, **self.release)
        if not self.in_effect:
            self._handed.append(self.label)
            del self._handed[:-64]  # a game that stopped polling reads the latest state when it resumes
        return self.label

    def took_effect(self, frame: Frame, seat: int) -> bool:
        """Whether the takeover is in effect by `frame` (call it for each frame, in order): the
        first frame after this driver has acted whose input for `seat`, as the game read it
        (Frame.inputs), is a state this driver handed over, and every frame after that one.
        Before it the game still read the AI's state (it polls on its own clock), so those frames
        are no correction. Without Frame.inputs it is the first frame after this driver acted."""
        if not self.in_effect and self._handed:
            read = frame.inputs.get(seat) if frame.inputs else None
            if read is None or read in self._handed:
                self.in_effect, self._handed = True, []
        return self.in_effect
