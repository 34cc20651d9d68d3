"""What a training run holds out for validation: whole sessions, or the end of each session.

The held-out frames pick the best epoch and the button thresholds, so they must be frames the
model never learned: neighbouring frames are nearly identical, so a random frame split would
measure memory, not driving. With enough sessions (MIN_SESSIONS) whole ones are held out. With
fewer (a TensorKart user's 1-3 recordings) that would leave too little to train on, so the last
stretch of each session is held out instead: contiguous, never single frames, and its frame
history starts afresh (it never stacks the training frames before it, and no training sample
reaches forward into it).

Plain numpy: importing this loads no TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kartstudio.errors import KartStudioError

MIN_SESSIONS = 5  # fewer sessions than this: the recipe holds out the end of each instead of whole ones
HOLDOUTS = {
    "sessions": "whole sessions when there are at least 5, else the end of each session",
    "end": "the end of each session",  # TensorKart's train.py held out its last 10%
}


def validation_sessions(files: int, fraction: float) -> int:
    """Whole sessions to hold out: `fraction` of them, at least 1, none when there are fewer than 5."""
    if fraction <= 0 or files < MIN_SESSIONS:
        return 0
    return max(1, round(files * fraction))


def split_by_session(paths: Sequence[str | os.PathLike], val_sessions: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold out `val_sessions` whole session files for validation (chosen with `seed`)."""
    paths = [Path(p) for p in paths]
    if val_sessions <= 0:
        return paths, []
    if val_sessions >= len(paths):
        raise KartStudioError(
            f"--val-sessions {val_sessions} leaves nothing to train on: there are {len(paths)} session files"
        )
    chosen = set(np.random.default_rng(seed).choice(len(paths), size=val_sessions, replace=False).tolist())
    return [p for i, p in enumerate(paths) if i not in chosen], [p for i, p in enumerate(paths) if i in chosen]


def held_out_start(frames: int, share: float) -> int:
    """Where the held-out end of a session of `frames` (included) frames begins: its last `share`,
    at least one frame, and never all of them (a session of one frame keeps it for training)."""
    if share <= 0 or frames < 2:
        return frames
    return frames - min(frames - 1, max(1, round(frames * share)))


@dataclass(frozen=True)
class Stretch:
    """One side of the end-of-session split: the frames before the held-out end (training), or the
    held-out end itself (`held_out`, validation). `share`: the end's part of each session."""

    share: float
    held_out: bool

    def select(self, keep: np.ndarray, length: int) -> tuple[np.ndarray, int]:
        """(the frames of `keep` this side serves, the frame number its labels stay below).

        keep: a session's included frame numbers, ascending; length: its frames in all. The
        training side's labels stop before the held-out end: with a reaction time a frame is
        labelled with a later pad reading, which must not come from the held-out stretch.
        """
        start = held_out_start(len(keep), self.share)
        if self.held_out:
            return keep[start:], length
        return keep[:start], int(keep[start]) if start < len(keep) else length


@dataclass(frozen=True)
class ValidationSplit:
    """Which frames a run trains on and which it validates on."""

    train_paths: list[Path]
    val_paths: list[Path]  # sessions held out whole
    end_share: float = 0.0  # > 0: the last share of each session (every one trained on) is held out instead

    @property
    def training(self) -> Stretch | None:
        """What the training data serves of each of train_paths (None: all of it)."""
        return Stretch(self.end_share, held_out=False) if self.end_share else None

    @property
    def validation(self) -> Stretch | None:
        return Stretch(self.end_share, held_out=True) if self.end_share else None

    @property
    def validation_paths(self) -> list[Path]:
        """The sessions the validation frames come from."""
        return list(self.train_paths) if self.end_share else list(self.val_paths)

    def describe(self, frames: int | None) -> str:
        """One line for people, e.g. 'validation: the last 10% of each of 3 sessions, 1,234 frames'
        (frames: how many are held out; None: not known here)."""
        count = "" if frames is None else f", {frames:,} frames"
        if self.end_share:
            n = len(self.train_paths)
            which = f"of each of {n} sessions" if n > 1 else "of the session"
            return f"validation: the last {self.end_share * 100:g}% {which}{count}"
        if self.val_paths:
            names = [p.name for p in self.val_paths]
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            total = len(self.train_paths) + len(self.val_paths)
            return f"validation: {len(names)} of {total} sessions held out whole ({shown}){count}"
        return "validation: nothing held out (the best epoch is picked by its training loss)"


def choose_validation(paths: Sequence[Path], val_sessions: int | None, fraction: float, holdout: str,
                      seed: int = 0) -> ValidationSplit:
    """The split of a run. val_sessions: that many whole sessions (0: none); None: as the recipe
    says, `fraction` of whole sessions when there are MIN_SESSIONS or more ("sessions"), else (or
    always, "end") the last `fraction` of each session."""
    if val_sessions is None and fraction > 0 and (holdout == "end" or len(paths) < MIN_SESSIONS):
        return ValidationSplit([Path(p) for p in paths], [], fraction)
    count = val_sessions if val_sessions is not None else validation_sessions(len(paths), fraction)
    return ValidationSplit(*split_by_session(paths, count, seed))


__all__ = ["HOLDOUTS", "MIN_SESSIONS", "Stretch", "ValidationSplit", "choose_validation", "held_out_start",
           "split_by_session", "validation_sessions"]
