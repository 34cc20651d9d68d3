"""Training to a budget: a number of epochs (the benchmarks' default: the same training on any
machine) or a wall-clock time (the real Trainer, cancelled once the time is spent; the epoch in
progress at the limit is dropped and the best whole epoch is kept).

Used by `kartstudio bench drive` and by DAgger's retraining.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from kartstudio.errors import KartStudioError


def train_with_budget(data: Sequence, output: Path, config, seconds: float,
                      log: Callable[[str], None] | None = None):
    """Train `config` (a kartstudio.training.TrainConfig) on `data`, stopping after `seconds`.

    Returns (TrainResult, seconds spent). Raises KartStudioError when no epoch finished.
    """
    from kartstudio.training.trainer import Trainer

    start = time.monotonic()
    trainer: Trainer

    def on_batch(p) -> None:
        if time.monotonic() - start > seconds:
            trainer.cancel()

    def on_epoch(p) -> None:
        if log is not None:
            val = "" if p.val_loss is None else f" val {p.val_loss:.4f}"
            log(f"  training: epoch {p.epoch}/{p.epochs} loss {p.loss:.4f}{val} ({p.samples_per_s:.0f} samples/s, "
                f"{(time.monotonic() - start) / 60:.1f} min)")

    trainer = Trainer(config, on_batch=on_batch, on_epoch=on_epoch)
    result = trainer.fit([str(p) for p in data], output)
    if result.model_path is None:
        raise KartStudioError(
            f"training finished no epoch in {seconds / 60:.1f} minutes; give it more time (--train-minutes)"
        )
    return result, time.monotonic() - start


def check_training_budget(minutes: float, train_epochs: int | None, train_minutes: float | None) -> None:
    """A benchmark's demonstration minutes and training budget (epochs, or minutes when epochs is None)."""
    if not minutes > 0:
        raise KartStudioError("--minutes must be above 0")
    if train_epochs is None and not (train_minutes is not None and train_minutes > 0):
        raise KartStudioError("give the training budget: --train-epochs N or --train-minutes M (above 0)")
    if train_epochs is not None and not 1 <= train_epochs <= 1000:
        raise KartStudioError(f"--train-epochs must be 1-1000, got {train_epochs}")


def budgeted(recipe, train_epochs: int | None):
    """The recipe training exactly `train_epochs` epochs (None: as it is, for a time budget)."""
    from dataclasses import replace

    return recipe if train_epochs is None else replace(recipe, epochs=int(train_epochs))


def budget_seconds(train_minutes: float | None) -> float:
    return float("inf") if train_minutes is None else train_minutes * 60


def samples_per_s(result, seconds: float) -> float | None:
    """Training samples per second of the run (what the host managed: printed beside a score)."""
    if not seconds or not result.epochs_done:
        return None
    return round(result.train_frames * result.epochs_done / seconds, 1)


__all__ = ["budget_seconds", "budgeted", "check_training_budget", "samples_per_s", "train_with_budget"]
