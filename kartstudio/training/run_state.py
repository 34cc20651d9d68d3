"""A training run's progress as its checkpoint folder keeps it: ``state.json``.

Written after every whole epoch (what `--resume` continues from) and once more when the run ends,
with ``finished`` (whether it went to its end), which kartstudio.paths.run_finished reads without
TensorFlow so the app never preselects a cancelled run's model. The keys are those earlier
versions wrote; a file without the newer ones still reads (they take their defaults).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kartstudio.errors import KartStudioError
from kartstudio.paths import write_json

STATE_FILE = "state.json"


@dataclass
class RunState:
    epochs_done: int = 0  # whole epochs saved in last.keras
    best_loss: float | None = None  # of the monitored loss (the validation loss when something is held out)
    best_epoch: int | None = None  # 1-based: the epoch saved in best.keras
    wait: int = 0  # epochs since the best one (early stopping)
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, val_loss, samples_per_s, input_wait
    val_paths: list[str] = field(default_factory=list)  # sessions held out whole for validation
    val_end_share: float = 0.0  # share of each session held out at its end instead (0: none)
    config: dict = field(default_factory=dict)  # the TrainConfig of the run (its loss is kept on resume)
    finished: bool | None = None  # set when the run ends: False when cancelled or stopped by a fault

    @classmethod
    def read(cls, folder: str | Path) -> "RunState":
        """The state in `folder`; one line naming the file when it cannot be read."""
        path = Path(folder) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise KartStudioError(f"cannot read {path} ({getattr(exc, 'strerror', None) or exc}); "
                                  "start a new run instead of resuming") from None
        if not isinstance(data, dict):
            raise KartStudioError(f"{path} is not a training state; start a new run instead of resuming")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, folder: str | Path) -> None:
        """Replace `folder`/state.json atomically (a crash leaves the previous epoch's)."""
        data = asdict(self)
        if self.finished is None:  # absent until the run ends, as run_finished expects
            del data["finished"]
        write_json(Path(folder) / STATE_FILE, data)

    def judge(self, monitored: float, epoch: int, min_delta: float) -> bool:
        """Whether `epoch` (1-based) is the new best by `monitored`; keeps the best and the wait."""
        improved = self.best_loss is None or monitored < self.best_loss - min_delta
        if improved:
            self.best_loss, self.best_epoch, self.wait = monitored, epoch, 0
        else:
            self.wait += 1
        return improved

    def add_epoch(self, record: dict) -> None:
        self.history.append(record)
        self.epochs_done = record["epoch"]


__all__ = ["RunState", "STATE_FILE"]
