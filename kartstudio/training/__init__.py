"""Training a driving model from session files: the streaming dataset and the Trainer.

    from kartstudio.training import Trainer, TrainConfig
    result = Trainer(TrainConfig(epochs=10), on_epoch=print).fit(["sessions/"], "driver.keras")

The names below import TensorFlow (via kartstudio.model) when first used, not when the package is
imported: `kartstudio.training.recipe` (what a run needs, read by `kartstudio check` and the
Datasets tab's data check) stays a plain import.
"""

import importlib

_WHERE = {
    "ArrayDataset": "dataset",
    "SessionDataset": "dataset",
    "split_by_session": "dataset",
    "BatchProgress": "trainer",
    "EpochProgress": "trainer",
    "TrainConfig": "trainer",
    "Trainer": "trainer",
    "TrainResult": "trainer",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


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
