"""DAgger on the practice track: the model drives, the expert labels, the model is retrained.

Behaviour cloning only sees the states a perfect driver visits; once the model drifts off that
line it is somewhere it never learnt about. DAgger (Ross et al., 2011) lets the model drive,
asks the expert what it would have done on every frame the model visited, records those frames
with the expert's labels as correction sessions (SessionMeta kind="correction", the same kind
the app writes when a human takes over from the AI), and retrains on everything so far.

    result = run_dagger("bc.keras", ["sessions/"], "dagger.keras", "corrections/", DaggerConfig())
    result.before.mean_return, result.rounds[-1].mean_return
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from kartstudio.drivers import CorrectedDriver, PilotDriver, load_pilot
from kartstudio.practice.expert import ExpertDriver
from kartstudio.errors import KartStudioError
from kartstudio.game import Frame
from kartstudio.play import labelled, play
from kartstudio.practice.backend import FPS, PracticeBackend
from kartstudio.practice.evaluate import EVAL_SEED_START, EvalReport, evaluate_model
from kartstudio.recorder import Recorder
from kartstudio.session import SessionMeta
from kartstudio.training.budget import train_with_budget
from kartstudio.training.recipe import DEFAULT_RECIPE, Recipe

DAGGER_SEED_START = 5000  # tracks the model drives for corrections (not the evaluation tracks)


@dataclass
class DaggerConfig:
    rounds: int = 1
    tracks: int = 4  # tracks driven per round
    minutes: float = 2.0  # most game time recorded per round
    epochs: int = 4  # retraining epochs per round
    learning_rate: float = 5e-4  # fine-tuning: half the recipe's
    recipe: Recipe = DEFAULT_RECIPE  # loss, augmentation, batch size and validation share for retraining
    eval_episodes: int = 20
    eval_seed_start: int = EVAL_SEED_START
    seed_start: int = DAGGER_SEED_START
    score_before: bool = True

    def check(self) -> None:
        if self.rounds < 1 or self.tracks < 1 or self.epochs < 1 or self.eval_episodes < 1:
            raise KartStudioError("DAgger needs at least 1 round, 1 track, 1 epoch and 1 evaluation episode")
        if self.minutes <= 0:
            raise KartStudioError("--minutes must be above 0")


@dataclass
class RoundResult:
    round: int
    frames: int
    files: list[str]
    model: str
    drive_s: float
    train_s: float
    report: EvalReport

    @property
    def mean_return(self) -> float:
        return self.report.mean_return

    @property
    def min_return(self) -> float:
        return self.report.min_return

    def as_dict(self) -> dict:
        return {
            "round": self.round,
            "correction_frames": self.frames,
            "correction_files": self.files,
            "model": self.model,
            "drive_s": round(self.drive_s, 1),
            "train_s": round(self.train_s, 1),
            "mean_return": round(self.mean_return, 2),
            "min_return": round(self.min_return, 2),
            "laps_finished": self.report.laps_finished,
            "mean_off_track_s": round(self.report.mean_off_track_s, 2),
        }


@dataclass
class DaggerResult:
    model: str
    output: str
    before: EvalReport | None
    rounds: list[RoundResult] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "output": self.output,
            "before": None if self.before is None else {
                "mean_return": round(self.before.mean_return, 2),
                "min_return": round(self.before.min_return, 2),
                "mean_off_track_s": round(self.before.mean_off_track_s, 2),
            },
            "rounds": [r.as_dict() for r in self.rounds],
            "seconds": round(self.seconds, 1),
        }

    def summary(self) -> str:
        lines = []
        if self.before is not None:
            lines.append(f"before: mean return {self.before.mean_return:.1f}, min {self.before.min_return:.1f}")
        for r in self.rounds:
            lines.append(f"round {r.round}: {r.frames} correction frames; mean return {r.mean_return:.1f}, "
                         f"min {r.min_return:.1f}")
        lines.append(f"retrained model: {self.output} ({self.seconds / 60:.1f} min)")
        return "\n".join(lines)


def record_corrections(pilot, folder: str | Path, seeds: list[int], max_frames: int,
                       model_name: str = "model") -> tuple[list[Path], int]:
    """The model drives seat 1 on each track; every frame it sees is recorded with the expert's label
    (at the seat image size the model was trained on)."""
    storage_size = pilot.image_size
    paths: list[Path] = []
    frames = 0
    for seed in seeds:
        if frames >= max_frames:
            break
        meta = SessionMeta(
            seat=1, game="practice", track=f"seed-{seed}", pad_name="expert (DAgger labels)",
            pad_guid="script:expert-p1", storage_size=tuple(storage_size), kind="correction",
            source="kartstudio.practice.dagger", fps=FPS,
            extra={"seed": seed, "driver": model_name, "labels": "expert"},
        )
        recorder = Recorder(folder, {1: (meta, None)}, layout=PracticeBackend.layout, queue_size=1000)
        # the model drives; the expert says what it would do on every frame the model visits
        driver = CorrectedDriver(PilotDriver(pilot), ExpertDriver())

        def on_frame(frame: Frame, labels: dict, recorder=recorder) -> None:
            recorder.on_frame(labelled(frame, labels))

        with PracticeBackend(seed=seed, seats=(1,), realtime=False, restart=False, draw=True) as game:
            started = recorder.start()
            try:
                frames += play(game, {1: driver}, on_frame, max_frames=max_frames - frames)
            finally:
                recorder.stop()
            recorder.raise_errors()
        paths.append(started[1])
    return paths, frames


def run_dagger(model, data, output=None, folder=None, config: DaggerConfig | None = None,
               log: Callable[[str], None] | None = None) -> DaggerResult:
    """Improve `model` (a .keras path) by DAgger; data: what it was trained on (kept in retraining)."""
    from kartstudio.training.config import TrainConfig  # TensorFlow: only when DAgger runs

    config = config or DaggerConfig()
    config.check()
    model = Path(model)
    output = Path(output) if output else model.with_name(model.stem + "-dagger.keras")
    folder = Path(folder) if folder else output.parent / "corrections"
    start = time.monotonic()
    say = log or (lambda text: None)
    pilot = load_pilot(model)
    before = None
    if config.score_before:
        before = evaluate_model(pilot, config.eval_episodes, config.eval_seed_start)
        say(f"before: {before.summary()}")
    result = DaggerResult(str(model), str(output), before)
    corrections: list[Path] = []
    current = model
    for r in range(1, config.rounds + 1):
        t0 = time.monotonic()
        seeds = [config.seed_start + (r - 1) * config.tracks + k for k in range(config.tracks)]
        paths, frames = record_corrections(pilot, folder, seeds, int(config.minutes * 60 * FPS), model.name)
        corrections.extend(paths)
        drive_s = time.monotonic() - t0
        say(f"round {r}: {frames} correction frames on tracks {seeds[0]}-{seeds[-1]} ({drive_s:.0f} s)")
        retrain = replace(config.recipe, epochs=config.epochs, learning_rate=config.learning_rate)
        # the model keeps the frame history it was built with, whatever the recipe says
        settings = TrainConfig.from_recipe(retrain, init_model=str(current), tensorboard=False,
                                           history=pilot.spec.history)
        train, train_s = train_with_budget([*data, *corrections], output, settings, float("inf"), log)
        current = output
        pilot = load_pilot(output)
        report = evaluate_model(pilot, config.eval_episodes, config.eval_seed_start)
        say(f"round {r}: {report.summary()}")
        result.rounds.append(RoundResult(r, frames, [str(p) for p in paths], str(output), drive_s, train_s, report))
    result.seconds = time.monotonic() - start
    return result
