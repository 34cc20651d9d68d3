"""TrainConfig: a training recipe (kartstudio.training.recipe) plus the settings of one run, checked.

    config = TrainConfig.from_recipe(recipe("tensorkart", epochs=20), seed=1, val_sessions=2)
    config.check()   # every number in range, the names known: one line naming the field otherwise

The recipe's fields are written once, in Recipe: TrainConfig is a Recipe with the run's own
settings added (seed, validation sessions, resume, devices, ...), so TrainConfig() is the
default recipe.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

from kartstudio.errors import KartStudioError
from kartstudio.model import LOSSES, MAX_HISTORY, MODEL_KINDS
from kartstudio.training.dataset import CACHE_MB, check_history
from kartstudio.training.distribute import PEER_TIMEOUT_S
from kartstudio.training.recipe import Recipe
from kartstudio.training.validation import HOLDOUTS


@dataclass(frozen=True)
class TrainConfig(Recipe):
    """How to train: the recipe's fields (defaults: the default recipe's) and the run's own."""

    seed: int = 0
    val_sessions: int | None = None  # whole session files held out for validation (None: as the recipe says)
    patience: int = 0  # early stopping: epochs without improvement before stopping (0 = off)
    min_delta: float = 0.0  # a loss must drop by more than this to count as an improvement
    init_model: str | None = None  # start from this .keras model instead (fine-tuning, DAgger)
    checkpoint_dir: str | None = None  # default: <output>.checkpoints next to the output
    resume: bool = False  # continue the run saved in checkpoint_dir
    tensorboard: bool = True
    devices: str | None = None  # None/"auto": all GPUs, else the CPU; "cpu", a GPU count, "GPU:0,GPU:1" (distribute.py)
    mixed_precision: bool | None = None  # float16 compute for a new model; None: on GPUs with tensor cores only
    cache_mb: float = CACHE_MB  # RAM for resized training frames, so later epochs skip decoding them; 0: none
    peer_timeout_s: float = PEER_TIMEOUT_S  # several machines: how long to wait for the other workers

    @classmethod
    def from_recipe(cls, recipe: Recipe, seed: int = 0, **settings) -> "TrainConfig":
        """A run of `recipe`; settings: other TrainConfig fields (or recipe fields to change)."""
        values = {f.name: getattr(recipe, f.name) for f in fields(Recipe)}
        return cls(**{**values, "seed": seed, **settings})

    def check(self) -> None:
        """Every number in range (one line naming the field and its range), the names known."""
        for name, (label, low, high, kind) in LIMITS.items():
            value = getattr(self, name)
            if value is None and name == "val_sessions":
                continue
            _check_number(label, value, low, high, kind)
        if self.loss not in LOSSES:
            raise KartStudioError(f"unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.model not in MODEL_KINDS:
            raise KartStudioError(f"unknown model {self.model!r}: choose one of {', '.join(MODEL_KINDS)}")
        if self.val_holdout not in HOLDOUTS:
            raise KartStudioError(f"unknown validation hold-out (val_holdout) {self.val_holdout!r}: choose one of "
                                  + ", ".join(f"{name} ({what})" for name, what in HOLDOUTS.items()))
        check_history(self.history)
        if self.history != 1 and self.model != "kartstudio" and not (self.init_model or self.resume):
            raise KartStudioError(f"frame history needs the kartstudio network, not {self.model!r}")


# The numbers a run can use, checked in one place (TrainConfig.check: `train`, the Training tab,
# `bench drive --set`, DAgger): field -> (what to call it, lowest, highest, kind). kind "whole":
# a whole number; "above": a number above `low`; "number": from `low` to `high`. Guards, not
# defaults: every recipe's values lie well inside.
LIMITS: dict[str, tuple[str, float, float, str]] = {
    "epochs": ("epochs (--epochs)", 1, 100_000, "whole"),
    "batch_size": ("batch size (batch_size, --batch-size)", 1, 10_000, "whole"),
    "learning_rate": ("learning rate (learning_rate, --lr)", 0, 10, "above"),
    "stick_weight": ("stick weight (stick_weight)", 0, 1000, "above"),
    "seed": ("seed (--seed)", 0, 2**32 - 1, "whole"),
    "val_sessions": ("validation sessions (val_sessions, --val-sessions)", 0, 100_000, "whole"),
    "val_fraction": ("validation share (val_fraction)", 0, 0.9, "number"),
    "patience": ("patience (--patience)", 0, 100_000, "whole"),
    "min_delta": ("min_delta", 0, 1e6, "number"),
    "turn_oversample": ("turn oversampling (turn_oversample, --oversample-turns)", 1, 100, "number"),
    "history": ("frame history (history, --history)", 1, MAX_HISTORY, "whole"),
    "cache_mb": ("cache size (cache_mb, --cache-mb)", 0, 1e6, "number"),
    "reaction_s": ("reaction time (reaction_s)", 0, 2, "number"),
    "peer_timeout_s": ("peer timeout (--peer-timeout)", 0, 86_400, "above"),
}


def _check_number(label: str, value, low: float, high: float, kind: str) -> None:
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    finite = real and math.isfinite(value)
    if kind == "whole":
        ok = finite and value == int(value) and low <= value <= high
        what = f"a whole number from {low:,} to {high:,}".replace(",", "")
    elif kind == "above":
        ok = finite and low < value <= high
        what = f"a number above {low:g}, at most {high:g}"
    else:
        ok = finite and low <= value <= high
        what = f"a number from {low:g} to {high:g}"
    if not ok:
        raise KartStudioError(f"{label} must be {what}, got {value!r}")


__all__ = ["LIMITS", "TrainConfig"]
