"""Button press thresholds, chosen on held-out frames after training.

A model with button probabilities (kartstudio.model.Actions) presses a button when its
probability reaches the button's threshold. Class-weighted training shifts probabilities up
for rare buttons, so 0.5 is not the right cut: for each button the threshold that best finds
its rarer state (the F1 score of "pressed" for the brake, of "released" for the gas) on the
validation frames is stored in the model file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kartstudio.model import Actions, load_model, save_model

CANDIDATES = np.round(np.arange(0.05, 0.96, 0.05), 2)
MIN_EXAMPLES = 20  # fewer frames of a button's rarer state than this: keep 0.5
MAX_FRAMES = 20_000  # frames predicted for the choice (a whole epoch of a long run is not needed)


def choose_threshold(probabilities: np.ndarray, pressed: np.ndarray) -> float:
    """The cut that maximises the F1 score of the button's rarer state (pressed or released)."""
    pressed = np.asarray(pressed) >= 0.5
    rare = pressed if pressed.mean() <= 0.5 else ~pressed
    if min(rare.sum(), (~rare).sum()) < MIN_EXAMPLES:
        return 0.5
    best, best_f1 = 0.5, -1.0
    for t in CANDIDATES:
        guess = probabilities >= t
        guess_rare = guess if rare is pressed else ~guess
        tp = np.sum(guess_rare & rare)
        f1 = 2 * tp / max(1, guess_rare.sum() + rare.sum())
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(t), f1
    return best


def calibrate_thresholds(model_path: str | Path, dataset, paced=(False, False, False)) -> tuple[float, float, float]:
    """Choose each button's threshold on `dataset` (a SessionDataset, not augmented) and save
    them into the model file at `model_path`, with which buttons the pilot paces instead
    (Actions.paced; their thresholds are kept for reference)."""
    model = load_model(model_path)
    probs, labels, seen = [], [], 0
    for x, y in dataset.batches(0):
        probs.append(np.asarray(model(x, training=False))[:, 2:])
        labels.append(np.asarray(y)[:, 2:])
        seen += len(y)
        if seen >= MAX_FRAMES:
            break
    p, t = np.concatenate(probs), np.concatenate(labels)
    thresholds = tuple(choose_threshold(p[:, i], t[:, i]) for i in range(3))
    layer = model.get_layer("actions")
    assert isinstance(layer, Actions)
    layer.thresholds = list(thresholds)
    layer.paced = [bool(p) for p in paced]
    save_model(model, model_path)
    return thresholds


__all__ = ["calibrate_thresholds", "choose_threshold"]
