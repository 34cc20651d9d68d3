"""The race score on KartStudio Raceway: a driver (the expert or a model) on unseen tracks, in the
real emulator, in lock-step (the game waits for each answer, so a slow machine scores the same).

Each race boots mupen64plus with the Raceway ROM, the menu macro goes to a 2-player race on the
track, and the drivers drive through kartstudio.play like everywhere else. The game's state channel
(Frame.game_state) says how far each kart got and when: it is read here, never by a model.

Score per seat (like the practice track's return, ~1000 for a clean fast race):
    1000 x the share of the race distance covered - TIME_COST x seconds per lap
A kart that does not finish within the time limit scores what it covered, with the limit as its time.

    report = evaluate_expert(tracks=20)
    report = evaluate_model("driver.keras", tracks=20)       # seat 1, the seat frames it learnt from
    report.mean_score, report.finished, report.as_dict()
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from kartstudio.drivers import Driver, PilotDriver, load_pilot, players_for
from kartstudio.emulator.raceway import NATIVE_RESOLUTION
from kartstudio.errors import KartStudioError
from kartstudio.game import Frame
from kartstudio.play import play
from kartstudio.raceway.expert import RacewayExpertDriver
from kartstudio.raceway.game import display_for_game, raceway_backend

# Evaluation tracks: demonstrations use DEMO_TRACK_START on, so "unseen" holds.
EVAL_TRACK_START = 500
TIME_COST = 5.0  # score per second of race time per lap
LAP_LIMIT_S = 90.0  # a race is cut off after this many game seconds per lap (a kart stuck for good)


@dataclass
class RaceResult:
    """One seat's race."""

    track: int
    seat: int
    laps: int
    progress: float  # laps driven (capped at the race's laps)
    finished: bool
    race_time_s: float  # game seconds (the finish time, or the time when the race was cut off)
    off_road_s: float
    frames: int  # game frames driven

    @property
    def covered(self) -> float:
        return min(1.0, max(0.0, self.progress / self.laps))

    @property
    def score(self) -> float:
        return 1000.0 * self.covered - TIME_COST * self.race_time_s / self.laps

    def as_dict(self) -> dict:
        return {**asdict(self), "progress": round(self.progress, 4), "race_time_s": round(self.race_time_s, 2),
                "off_road_s": round(self.off_road_s, 2), "score": round(self.score, 2)}


@dataclass
class RacewayReport:
    driver: str
    races: list[RaceResult]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def scores(self) -> np.ndarray:
        return np.array([r.score for r in self.races], dtype=np.float64)

    @property
    def mean_score(self) -> float:
        return float(self.scores.mean()) if self.races else float("nan")

    @property
    def min_score(self) -> float:
        return float(self.scores.min()) if self.races else float("nan")

    @property
    def finished(self) -> int:
        return sum(r.finished for r in self.races)

    @property
    def mean_time_s(self) -> float:
        done = [r.race_time_s for r in self.races if r.finished]
        return float(np.mean(done)) if done else float("nan")

    def as_dict(self) -> dict:
        return {
            "driver": self.driver,
            "races": len(self.races),
            "mean_score": round(self.mean_score, 2),
            "min_score": round(self.min_score, 2),
            "finished": self.finished,
            "mean_finish_time_s": round(self.mean_time_s, 2),
            "mean_off_road_s": round(float(np.mean([r.off_road_s for r in self.races])), 2) if self.races else None,
            "seconds": round(self.seconds, 1),
            "details": [r.as_dict() for r in self.races],
            **self.extra,
        }

    def summary(self) -> str:
        return (f"{self.driver}: mean score {self.mean_score:.1f}, min {self.min_score:.1f} over {len(self.races)} races; "
                f"{self.finished} finished (mean time {self.mean_time_s:.1f} s); {self.seconds:.0f} s wall")


def run_race(track: int, drivers: dict[int, Driver], laps: int = 1, display: str | None = None,
             on_frame: Callable[[Frame, dict], bool | None] | None = None, lockstep: bool = True,
             limit_s: float | None = None, game=None, players: int = 2,
             resolution: tuple[int, int] = NATIVE_RESOLUTION) -> list[RaceResult]:
    """One race on `track` (2-player split screen, or players=1: one kart on the whole screen);
    returns a RaceResult for each seat in `drivers`.

    Ends when every driven seat has finished or at the time limit (game time). on_frame(frame,
    labels) is play()'s hook (a recorder); False from it ends the race there. game: a started
    backend already at this race's countdown (else one is started and stopped here). resolution: the
    window's (the demonstrations' own, demos.record_race: a model is scored on the pictures it learned)."""
    limit_frames = int((limit_s or LAP_LIMIT_S * laps) * 60)
    seats = sorted(drivers)
    off = {s: 0 for s in seats}
    last: dict[int, object] = {}
    counted = [0]

    def watch(frame: Frame, labels: dict) -> bool:
        state = frame.game_state
        if state is not None and hasattr(state, "seats"):
            if state.phase == "race":
                for s in seats:
                    st = state.seat(s)
                    if not st.finished:
                        off[s] += st.off_road * (state.frame - last[s][0] if s in last else 1)
                    last[s] = (state.frame, st)
            if state.phase == "results" or (last and all(last[s][1].finished for s in seats if s in last) and len(last) == len(seats)):
                return False
            if last and max(st.race_frames for _, st in last.values()) >= limit_frames:
                return False
        if on_frame is not None and on_frame(frame, labels) is False:
            return False
        return True

    with contextlib.ExitStack() as stack:
        if game is None:
            shown = stack.enter_context(display_for_game(display))
            game = _started(lambda: raceway_backend(track, laps, players, display=shown, lockstep=lockstep,
                                                    resolution=resolution))
            stack.callback(game.stop)
        play(game, drivers, watch)
    if not last:
        raise KartStudioError(f"the Raceway race on track {track} never started (no race state from the game)")
    results = []
    for s in seats:
        _, st = last[s]
        results.append(RaceResult(track, s, laps, min(float(laps), st.progress), st.finished, st.race_time,
                                  off[s] / 60, st.race_frames))
    return results


START_TRIES = 2  # an emulator that does not come up is started once more before a score is given up


def _started(make_backend):
    """A started backend; a start that fails is tried again once. A long scoring run (20 races, 20
    emulator starts) once lost everything to one plugin that did not listen within its 15 s on a
    loaded machine; a race itself is never retried (its score is what happened)."""
    for attempt in range(1, START_TRIES + 1):
        backend = make_backend()
        try:
            backend.start()
            return backend
        except KartStudioError as exc:
            if attempt == START_TRIES:
                raise
            print(f"kartstudio: the emulator did not start ({exc}); trying once more", file=sys.stderr)


def evaluate(name: str, make_drivers: Callable[[], dict[int, Driver]], tracks: int = 20,
             track_start: int = EVAL_TRACK_START, laps: int = 1, display: str | None = None,
             on_race: Callable[[int, list[RaceResult]], None] | None = None, players: int = 2) -> RacewayReport:
    """make_drivers: new drivers per race ({seat: Driver}); every driven seat is scored."""
    if tracks < 1:
        raise KartStudioError(f"tracks must be at least 1, got {tracks}")
    if not (0 <= track_start and track_start + tracks - 1 <= 999):
        raise KartStudioError(f"tracks {track_start}-{track_start + tracks - 1} are not all in 0-999")
    t0 = time.perf_counter()
    races: list[RaceResult] = []
    with display_for_game(display) as shown:
        for k in range(tracks):
            result = run_race(track_start + k, make_drivers(), laps, shown, players=players)
            races.extend(result)
            if on_race is not None:
                on_race(track_start + k, result)
    return RacewayReport(name, races, time.perf_counter() - t0,
                         {"track_start": track_start, "laps": laps, "players": players})


def evaluate_expert(tracks: int = 20, track_start: int = EVAL_TRACK_START, laps: int = 1, seats=(1, 2),
                    params=None, human=None, display=None, on_race=None) -> RacewayReport:
    """The expert on both seats at once (two karts on the track), each seat scored."""
    name = "Raceway expert" + (" (human-like)" if human is not None else "")
    return evaluate(name, lambda: {s: RacewayExpertDriver(params, human) for s in seats}, tracks, track_start, laps,
                    display, on_race)


def evaluate_model(model, tracks: int = 20, track_start: int = EVAL_TRACK_START, laps: int = 1, display=None,
                   on_race=None, players: int | None = None) -> RacewayReport:
    """model: a .keras path or a loaded Pilot, driving seat 1: a seat model in a 2-player race (the
    top half: the seat frames it was trained on; seat 2 stays on the grid), a whole-screen model in
    the 1-player race (the whole screen); players overrides it (drivers.players_for: a
    whole-screen model is never raced on a split screen). A new PilotDriver per race resets its
    frame history."""
    pilot = load_pilot(model) if isinstance(model, (str, os.PathLike)) else model
    name = os.path.basename(str(model)) if isinstance(model, (str, os.PathLike)) else getattr(pilot, "name", "model")
    players = players_for(pilot, players)
    return evaluate(name, lambda: {1: PilotDriver(pilot)}, tracks, track_start, laps, display, on_race, players)
