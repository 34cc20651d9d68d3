"""Training a driving model from session files: the streaming dataset and the Trainer.

    from kartstudio.training import Trainer, TrainConfig
    result = Trainer(TrainConfig(epochs=10), on_epoch=print).fit(["sessions/"], "driver.keras")

Importing this package imports TensorFlow (via kartstudio.model).
"""

from kartstudio.training.dataset import ArrayDataset, SessionDataset, split_by_session
from kartstudio.training.trainer import BatchProgress, EpochProgress, TrainConfig, Trainer, TrainResult

__all__ = [
    "ArrayDataset",
    "BatchProgress",
    "EpochProgress",
    "SessionDataset",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "split_by_session",
]
