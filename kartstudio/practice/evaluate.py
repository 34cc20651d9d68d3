"""Driving score on the practice track: a driver (the expert or a model) on unseen tracks.

Each episode is one CarRacing run on one seed (one track), seat 1 alone, at the game's frame
rate but not paced on the wall clock. The car is shown as the model was trained to see it: a seat
model on the top half of the split screen (players=2, the default for seat models), a whole-screen
model in a 1-player game on the whole screen (players=1); a whole-screen model is never scored on
a split screen (drivers.check_view). The score is CarRacing's return (900 is its "solved" mark),
with the share of track tiles covered and the time spent with no wheel on the road.

    report = evaluate_expert(episodes=20)
    report = evaluate_model("driver.keras", episodes=20)
    report.mean_return, report.min_return, report.as_dict()
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kartstudio.drivers import Driver, PilotDriver, load_pilot, players_for
from kartstudio.errors import KartStudioError
from kartstudio.game import Frame
from kartstudio.play import play
from kartstudio.practice.backend import EpisodeResult, PracticeBackend
from kartstudio.practice.expert import ExpertDriver

# Evaluation tracks: far from the seeds demonstrations use (DEMO_SEED_START) and from the app's
# default practice seed, so "unseen" holds unless someone records on these on purpose.
EVAL_SEED_START = 10_000


@dataclass
class EvalReport:
    driver: str
    episodes: list[EpisodeResult]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def returns(self) -> np.ndarray:
        return np.array([e.episode_return for e in self.episodes], dtype=np.float64)

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean()) if self.episodes else float("nan")

    @property
    def min_return(self) -> float:
        return float(self.returns.min()) if self.episodes else float("nan")

    @property
    def mean_tiles_fraction(self) -> float:
        return float(np.mean([e.tiles_fraction for e in self.episodes])) if self.episodes else float("nan")

    @property
    def mean_off_track_s(self) -> float:
        return float(np.mean([e.off_track_s for e in self.episodes])) if self.episodes else float("nan")

    @property
    def laps_finished(self) -> int:
        return sum(e.lap_finished for e in self.episodes)

    def as_dict(self) -> dict:
        return {
            "driver": self.driver,
            "episodes": len(self.episodes),
            "mean_return": round(self.mean_return, 2),
            "min_return": round(self.min_return, 2),
            "max_return": round(float(self.returns.max()), 2) if self.episodes else None,
            "mean_tiles_fraction": round(self.mean_tiles_fraction, 4),
            "mean_off_track_s": round(self.mean_off_track_s, 2),
            "laps_finished": self.laps_finished,
            "seconds": round(self.seconds, 1),
            "details": [e.as_dict() for e in self.episodes],
            **self.extra,
        }

    def summary(self) -> str:
        return (
            f"{self.driver}: mean return {self.mean_return:.1f}, min {self.min_return:.1f} over {len(self.episodes)} "
            f"tracks; tiles covered {100 * self.mean_tiles_fraction:.1f}% on average; off track "
            f"{self.mean_off_track_s:.1f} s per run on average; {self.laps_finished} laps finished ({self.seconds:.0f} s)"
        )


def run_episode(seed: int, driver: Driver, draw: bool, on_frame: Callable[[Frame], None] | None = None,
                players: int = 2) -> EpisodeResult:
    """One run of `driver` on track `seed` (seat 1 alone) until the lap, the time limit or the map edge.
    players=2: seat 1's half of the split screen; 1: a 1-player game, the car on the whole screen."""
    with PracticeBackend(seed=seed, seats=(1,), realtime=False, restart=False, draw=draw, players=players) as game:
        play(game, {1: driver}, None if on_frame is None else (lambda frame, labels: on_frame(frame)))
        return game.results(1)[0]


def evaluate(
    name: str,
    make_driver: Callable[[], Driver],
    episodes: int = 20,
    seed_start: int = EVAL_SEED_START,
    draw: bool = True,
    on_episode: Callable[[int, EpisodeResult], None] | None = None,
    players: int = 2,
) -> EvalReport:
    """make_driver: a new kartstudio.drivers Driver per episode (so no state carries over)."""
    if episodes < 1:
        raise KartStudioError(f"episodes must be at least 1, got {episodes}")
    t0 = time.perf_counter()
    results = []
    for k in range(episodes):
        result = run_episode(seed_start + k, make_driver(), draw, players=players)
        results.append(result)
        if on_episode is not None:
            on_episode(k, result)
    return EvalReport(name, results, time.perf_counter() - t0, {"seed_start": seed_start, "players": players})


def evaluate_expert(episodes: int = 20, seed_start: int = EVAL_SEED_START, params=None, on_episode=None) -> EvalReport:
    # the expert reads the track, so frames need not be drawn
    return evaluate("expert", lambda: ExpertDriver(params), episodes, seed_start, draw=False, on_episode=on_episode)


def evaluate_model(model, episodes: int = 20, seed_start: int = EVAL_SEED_START, on_episode=None,
                   players: int | None = None) -> EvalReport:
    """model: a .keras path or a loaded kartstudio.pilot.Pilot. A new PilotDriver per episode
    resets the pilot's frame history on every track. players: see drivers.players_for() (None: the
    model's own layout decides)."""
    pilot = load_pilot(model) if isinstance(model, (str, os.PathLike)) else model
    name = os.path.basename(str(model)) if isinstance(model, (str, os.PathLike)) else getattr(pilot, "name", "model")
    players = players_for(pilot, players)
    return evaluate(name, lambda: PilotDriver(pilot), episodes, seed_start, draw=True, on_episode=on_episode,
                    players=players)
