"""Training with a time budget: the real Trainer, cancelled once the budget is spent.

Used by `kartstudio bench drive` and by DAgger's retraining; the epoch in progress at the limit
is dropped and the best whole epoch is kept.
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


__all__ = ["train_with_budget"]
