"""`kartstudio bench drive`: behaviour cloning on the practice track, end to end, timed.

1. record: expert demonstrations (kartstudio.practice.demos) through the real Recorder;
2. train: the real Trainer on those session files, stopped at a time budget;
3. score: the model and the expert on the same unseen tracks (kartstudio.practice.evaluate);
4. optionally DAgger rounds (kartstudio.practice.dagger), scored again.

Every stage's wall-clock time is reported; nothing is asserted.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from kartstudio.errors import KartStudioError
from kartstudio.practice.demos import DEMO_SEED_START, record_demonstrations
from kartstudio.practice.evaluate import EVAL_SEED_START, evaluate_expert, evaluate_model


@dataclass
class BenchDriveConfig:
    minutes: float = 15.0  # demonstrations, game time, all seats together
    train_minutes: float = 20.0  # the training budget (the epoch in progress at the limit is dropped)
    epochs: int = 60  # most epochs; the time budget usually ends training first
    batch_size: int = 50
    learning_rate: float = 1e-3
    augment: bool = False
    turn_oversample: float = 1.0
    loss: str = "mse"  # "mse" or "euclidean" (TensorKart's); measured: mse 720.9 vs euclidean 374.2 mean return
    model: str = "kartstudio"  # the network: "kartstudio" or "tensorkart"
    episodes: int = 20
    eval_seed_start: int = EVAL_SEED_START
    demo_seed_start: int = DEMO_SEED_START
    dagger_rounds: int = 0

    def check(self) -> None:
        if self.minutes <= 0 or self.train_minutes <= 0:
            raise KartStudioError("--minutes and --train-minutes must be above 0")
        if self.epochs < 1 or self.episodes < 1:
            raise KartStudioError("--epochs and --episodes must be at least 1")


def train_with_budget(data, output: Path, config, seconds: float, log=None, init_model: str | None = None):
    """The real Trainer, cancelled once `seconds` have passed (the best whole epoch is kept)."""
    from kartstudio.training.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        augment=config.augment,
        turn_oversample=config.turn_oversample,
        loss=getattr(config, "loss", "euclidean"),
        model=getattr(config, "model", "kartstudio"),
        init_model=init_model,
        tensorboard=False,
    )
    start = time.monotonic()
    trainer: Trainer

    def on_batch(p) -> None:
        if time.monotonic() - start > seconds:
            trainer.cancel()

    def on_epoch(p) -> None:
        if log is not None:
            log(f"  training: epoch {p.epoch}/{p.epochs} loss {p.loss:.4f} ({p.samples_per_s:.0f} samples/s, "
                f"{(time.monotonic() - start) / 60:.1f} min)")

    trainer = Trainer(cfg, on_batch=on_batch, on_epoch=on_epoch)
    result = trainer.fit([str(p) for p in data], output)
    if result.model_path is None:
        raise KartStudioError(
            f"training finished no epoch in {seconds / 60:.1f} minutes; give it more time (--train-minutes)"
        )
    return result, time.monotonic() - start


def bench_drive(config: BenchDriveConfig, folder: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    config.check()
    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="kartstudio-bench-drive-")
        folder = tmp.name
    root = Path(folder)
    try:
        sessions = root / "sessions"
        t0 = time.monotonic()
        demos = record_demonstrations(sessions, config.minutes, config.demo_seed_start, log=log)
        record_s = time.monotonic() - t0
        if log:
            log(f"recorded {demos.frames} frames ({demos.minutes:.1f} min) on {demos.tracks} tracks in {record_s:.0f} s")

        model_path = root / "bc.keras"
        train, train_s = train_with_budget(demos.paths, model_path, config, config.train_minutes * 60, log)
        if log:
            log(f"trained {train.epochs_done} epochs in {train_s / 60:.1f} min")

        t0 = time.monotonic()
        report = evaluate_model(model_path, config.episodes, config.eval_seed_start)
        eval_s = time.monotonic() - t0
        expert = evaluate_expert(config.episodes, config.eval_seed_start)
        if log:
            log(report.summary())
        result = {
            "machine_cpus": os.cpu_count(),
            "config": asdict(config),
            "demo_minutes": round(demos.minutes, 2),
            "demo_frames": demos.frames,
            "demo_files": len(demos.paths),
            "demo_tracks": demos.tracks,
            "record_s": round(record_s, 1),
            "train_s": round(train_s, 1),
            "epochs_done": train.epochs_done,
            "best_epoch": train.best_epoch,
            "best_loss": None if train.best_loss is None else round(float(train.best_loss), 5),
            "train_frames": train.train_frames,
            "eval_s": round(eval_s, 1),
            "episodes": len(report.episodes),
            "mean_return": round(report.mean_return, 2),
            "min_return": round(report.min_return, 2),
            "mean_tiles_fraction": round(report.mean_tiles_fraction, 4),
            "mean_off_track_s": round(report.mean_off_track_s, 2),
            "expert_mean_return": round(expert.mean_return, 2),
            "expert_min_return": round(expert.min_return, 2),
            "details": [e.as_dict() for e in report.episodes],
            "folder": None if tmp else str(root),
        }
        if config.dagger_rounds:
            from kartstudio.practice.dagger import DaggerConfig, run_dagger

            dcfg = DaggerConfig(rounds=config.dagger_rounds, eval_episodes=config.episodes,
                                eval_seed_start=config.eval_seed_start, score_before=False)
            d = run_dagger(model_path, [sessions], root / "dagger.keras", root / "corrections", dcfg, log=log)
            result["dagger"] = [r.as_dict() for r in d.rounds]
            result["dagger_s"] = round(d.seconds, 1)
        if tmp is None:
            (root / "bench-drive.json").write_text(json.dumps(result, indent=1))
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()
