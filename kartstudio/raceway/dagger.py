"""DAgger on KartStudio Raceway: the model drives seat 1 in the emulator, its demonstrator says what it
would have done on every frame, and the model is retrained on the demonstrations and those frames.

Behaviour cloning only sees the states its demonstrator visits. A model trained on human-like
demonstrations braked to a standstill in front of a hairpin's sign on 2 of 20 unseen tracks and
stayed there (the sign says "brake" and no demonstration ever stood still in front of one).
Corrections on the model's own states teach what the demonstrator does there: drive on. They are
the same kind of session the app writes when a person takes over from the AI in Versus
(SessionMeta kind="correction"); the labels come from the demonstrator's own profile (the
human-like expert for human-like demonstrations), as a person correcting their own AI would.

    figures = dagger_round(Path("bc.keras"), Path("dagger-1.keras"), demo_paths, Path("corrections"), 1,
                           "human", recipe("default"), RacewayDaggerConfig(), display)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from kartstudio.drivers import CorrectedDriver, PilotDriver, load_pilot
from kartstudio.errors import KartStudioError
from kartstudio.game import Frame
from kartstudio.play import labelled
from kartstudio.raceway.evaluate import run_race
from kartstudio.raceway.expert import RacewayExpertDriver
from kartstudio.raceway.game import race_meta
from kartstudio.recorder import Recorder
from kartstudio.training.recipe import Recipe

DAGGER_TRACK_START = 300  # tracks driven for corrections: demonstrations use 100 on, scoring 500 on


@dataclass(frozen=True)
class RacewayDaggerConfig:
    tracks: int = 6  # tracks driven per round
    race_limit_s: float = 60.0  # game seconds per correction race (a kart stuck for good adds no more)
    epochs: int = 2  # retraining epochs per round, from the current model
    learning_rate: float = 5e-4  # fine-tuning: half the recipe's
    laps: int = 1

    def check(self) -> None:
        if self.tracks < 1 or self.epochs < 1 or self.race_limit_s <= 0:
            raise KartStudioError("DAgger needs at least 1 track and 1 epoch per round, and a race time limit above 0")


def record_corrections(pilot, folder: str | Path, tracks: list[int], labeller: Callable[[], object],
                       config: RacewayDaggerConfig, display: str | None = None,
                       model_name: str = "model") -> tuple[list[Path], int]:
    """The model drives seat 1 on each track (seat 2 stays on the grid, as when it is scored); every
    race frame it sees is recorded with the labeller's decision for it. Returns (files, frames)."""
    paths: list[Path] = []
    frames = 0
    for track in tracks:
        meta = replace(race_meta(1, track, "expert (DAgger labels)", tuple(pilot.image_size), config.laps,
                                 "kartstudio.raceway.dagger", {"driver": model_name, "labels": "demonstrator"}),
                       kind="correction", pad_guid="script:raceway-expert-p1")
        recorder = Recorder(folder, {1: (meta, None)}, queue_size=1000)
        driver = CorrectedDriver(PilotDriver(pilot), labeller())
        count = [0]

        def on_frame(frame: Frame, labels: dict, recorder=recorder, count=count) -> None:
            state = frame.game_state
            if state is not None and state.phase == "race" and not state.seat(1).finished:
                recorder.on_frame(labelled(frame, labels))
                count[0] += 1

        started = recorder.start()
        try:
            run_race(track, {1: driver}, config.laps, display, on_frame=on_frame, limit_s=config.race_limit_s)
        finally:
            recorder.stop()
        recorder.raise_errors()
        paths.append(started[1])
        frames += count[0]
    return paths, frames


def demonstrator(profile: str) -> Callable[[], RacewayExpertDriver]:
    """A new labeller per race: the expert, or the expert through the human-like profile."""
    if profile == "human":
        from kartstudio.raceway.expert import raceway_human_profile

        return lambda: RacewayExpertDriver(human=raceway_human_profile())
    return RacewayExpertDriver


def dagger_round(model: Path, output: Path, data: list[Path], folder: Path, round_no: int, profile: str,
                 recipe: Recipe, config: RacewayDaggerConfig, display: str | None = None, seed: int = 0,
                 log: Callable[[str], None] | None = None) -> dict:
    """One round: `model` drives the round's correction tracks (DAGGER_TRACK_START on), then it is
    fine-tuned into `output` on `data` and every correction in `folder` so far. Returns the round's figures."""
    from kartstudio.session import find_sessions
    from kartstudio.training.budget import train_with_budget
    from kartstudio.training.config import TrainConfig

    config.check()
    pilot = load_pilot(model)
    first = DAGGER_TRACK_START + (round_no - 1) * config.tracks
    tracks = list(range(first, first + config.tracks))
    t0 = time.monotonic()
    paths, frames = record_corrections(pilot, folder, tracks, demonstrator(profile), config, display, model.name)
    drive_s = time.monotonic() - t0
    if log:
        log(f"DAgger round {round_no}: {frames} correction frames on tracks {tracks[0]}-{tracks[-1]} ({drive_s:.0f} s)")
    retrain = replace(recipe, epochs=config.epochs, learning_rate=config.learning_rate)
    # the model keeps the frame history it was built with, whatever the recipe says
    settings = TrainConfig.from_recipe(retrain, seed, init_model=str(model), tensorboard=False,
                                       history=pilot.spec.history)
    corrections = find_sessions([str(folder)])
    train, train_s = train_with_budget([*data, *corrections], output, settings, float("inf"), log)
    return {"round": round_no, "tracks": tracks, "correction_frames": frames,
            "correction_files": len(corrections), "drive_s": round(drive_s, 1), "train_s": round(train_s, 1),
            "epochs_done": train.epochs_done}
