"""The training recipe: network, outputs, loss, augmentation and schedule, defined once.

`kartstudio train`, the Training tab, `kartstudio bench drive` and `kartstudio dagger` all train
with DEFAULT_RECIPE unless told otherwise. The fields are written once, here: a run's
TrainConfig (kartstudio.training.config) is a Recipe with the run's own settings added, made with
``TrainConfig.from_recipe(recipe(...), seed, ...)``. Other recipes stay available by name for
comparison and for TensorKart's own models. Plain dataclasses: importing this loads no TensorFlow.

Rule: a change here ships only with a fresh `kartstudio bench drive --quick` score next to
bench/baselines/drive.json (see DEVELOPERS.md). Measurements behind each choice: docs/practice.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from kartstudio.errors import KartStudioError


@dataclass(frozen=True)
class Recipe:
    model: str = "kartstudio"  # the network (kartstudio.model.MODEL_BUILDERS)
    loss: str = "driving"  # kartstudio.model.LOSSES
    stick_weight: float = 2.0  # the driving loss: squared stick error against the buttons' cross-entropy
    augment: bool = True  # mirror (steering negated) + brightness/contrast jitter
    turn_oversample: float = 1.0  # times each turning frame is served per epoch
    learning_rate: float = 1e-3  # Adam
    batch_size: int = 50
    epochs: int = 60  # most epochs; `bench drive` stops at its time budget first
    # Held out to pick the best epoch and the button thresholds (kartstudio.training.validation):
    # this share of the sessions, whole, when there are 5 or more, else the end of each session
    # ("sessions"); or always the end of each session ("end").
    val_fraction: float = 0.1
    val_holdout: str = "sessions"
    history: int = 1  # frames the network sees at once
    pace_gas: bool = True  # the pilot presses the gas on the share of frames its probability gives, not at a threshold
    # A player's pad reading answers the screen of about a reaction time before; 0 labels each
    # frame with the reading taken with it (right for the scripted expert, see docs/practice.md).
    reaction_s: float = 0.0


RECIPES: dict[str, Recipe] = {
    "default": Recipe(),
    # The seed fork's network with MSE (the previous default of bench drive and dagger).
    "seed-mse": Recipe(model="seed", loss="mse", augment=False, val_fraction=0.0),
    # TensorKart's train.py: its network, euclidean loss, no augmentation, its last 10% held out.
    "tensorkart": Recipe(model="tensorkart", loss="euclidean", augment=False, val_fraction=0.1, val_holdout="end"),
}
DEFAULT_RECIPE = RECIPES["default"]


def recipe(name: str, **changes) -> Recipe:
    """The named recipe, with some fields changed (an ablation); an unknown field is one line."""
    if name not in RECIPES:
        raise KartStudioError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    unknown = set(changes) - {f.name for f in fields(Recipe)}
    if unknown:
        raise KartStudioError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
    return replace(RECIPES[name], **changes)


__all__ = ["DEFAULT_RECIPE", "RECIPES", "Recipe", "recipe"]
