"""`kartstudio bench drive`: behaviour cloning on the practice track, end to end, timed.

1. record: demonstrations (kartstudio.practice.demos; the expert, or its human-like profile)
   through the real Recorder;
2. train: the real Trainer with the default recipe (or an ablation of it), stopped at a time budget;
3. score: the model and the expert on the same unseen tracks (kartstudio.practice.evaluate);
4. optionally DAgger rounds (kartstudio.practice.dagger), scored again.

Every stage's wall-clock time is reported; nothing is asserted. `--quick` is the guard run
(5 min demos, 5 min training, 10 tracks) compared with bench/baselines/drive.json.
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
from kartstudio.practice.demos import DEMO_PROFILES, DEMO_SEED_START, record_demonstrations
from kartstudio.practice.evaluate import EVAL_SEED_START, evaluate_expert, evaluate_model
from kartstudio.session import find_sessions
from kartstudio.training.budget import budget_seconds, budgeted, check_training_budget, samples_per_s, train_with_budget
from kartstudio.training.recipe import RECIPES, Recipe, recipe

# Training is budgeted in epochs, so the guard compares the same amount of training on any machine
# (a 5-minute budget gave 20-23 epochs on a quiet host and 7 on a loaded one); the baselines' runs
# finished 20-22 epochs (quick) and 12 (full) in their time budgets. --train-minutes budgets by time.
QUICK = {"minutes": 5.0, "train_epochs": 20, "episodes": 10}
FULL = {"minutes": 15.0, "train_epochs": 12, "episodes": 20}


@dataclass
class BenchDriveConfig:
    minutes: float = 15.0  # demonstrations, game time, all seats together
    train_epochs: int | None = FULL["train_epochs"]  # epochs trained (None: train_minutes decides)
    train_minutes: float | None = None  # a time budget instead (the epoch in progress at the limit is dropped)
    episodes: int = 20
    eval_seed_start: int = EVAL_SEED_START
    demo_seed_start: int = DEMO_SEED_START
    demos: str = "expert"  # the demonstrations' driver: "expert" or "human" (kartstudio.practice.demos)
    sessions: str | None = None  # train on these recorded sessions instead of recording (same demos for an ablation)
    recipe: str = "default"  # kartstudio.training.recipe.RECIPES
    changes: dict | None = None  # fields of the recipe changed for this run (an ablation)
    train_seed: int = 0
    dagger_rounds: int = 0

    def check(self) -> None:
        check_training_budget(self.minutes, self.train_epochs, self.train_minutes)
        if self.episodes < 1:
            raise KartStudioError("--episodes must be at least 1")
        if self.eval_seed_start < 0 or self.train_seed < 0 or self.dagger_rounds < 0:
            raise KartStudioError("--eval-seed-start, --train-seed and --dagger-rounds cannot be negative")
        if self.demos not in DEMO_PROFILES:
            raise KartStudioError(f"unknown demonstrations {self.demos!r}: choose one of {', '.join(DEMO_PROFILES)}")
        # the recipe's values too, before minutes of demonstrations are recorded for nothing
        from kartstudio.training.config import TrainConfig

        # the recipe as asked (--set epochs=0 is refused even though the budget sets the epochs), then as run
        TrainConfig.from_recipe(self.training_recipe(), self.train_seed, tensorboard=False).check()
        self.training_config().check()

    def training_recipe(self) -> Recipe:
        return recipe(self.recipe, **(self.changes or {}))

    def training_config(self):
        """The recipe's TrainConfig with the bench's training seed (imports TensorFlow)."""
        from kartstudio.training.config import TrainConfig

        return TrainConfig.from_recipe(budgeted(self.training_recipe(), self.train_epochs), self.train_seed,
                                       tensorboard=False)


def bench_drive(config: BenchDriveConfig, folder: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    config.check()
    r = config.training_recipe()
    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="kartstudio-bench-drive-")
        folder = tmp.name
    root = Path(folder)
    try:
        t0 = time.monotonic()
        if config.sessions:
            paths = find_sessions([config.sessions])
            if not paths:
                raise KartStudioError(f"no session files in {config.sessions}")
            demo = {"demo_frames": None, "demo_files": len(paths), "demo_tracks": None, "demo_minutes": None}
            sessions = Path(config.sessions)
        else:
            sessions = root / "sessions"
            demos = record_demonstrations(sessions, config.minutes, config.demo_seed_start, profile=config.demos, log=log)
            paths = demos.paths
            demo = {"demo_frames": demos.frames, "demo_files": len(paths), "demo_tracks": demos.tracks,
                    "demo_minutes": round(demos.minutes, 2)}
            if log:
                log(f"recorded {demos.frames} frames ({demos.minutes:.1f} min) on {demos.tracks} tracks")
        record_s = time.monotonic() - t0

        model_path = root / "bc.keras"
        train, train_s = train_with_budget(paths, model_path, config.training_config(),
                                           budget_seconds(config.train_minutes), log)
        if log:
            log(f"trained {train.epochs_done} epochs in {train_s / 60:.1f} min ({samples_per_s(train, train_s)} samples/s); "
                f"thresholds {train.thresholds}")

        t0 = time.monotonic()
        report = evaluate_model(model_path, config.episodes, config.eval_seed_start)
        eval_s = time.monotonic() - t0
        expert = evaluate_expert(config.episodes, config.eval_seed_start)
        if log:
            log(report.summary())
        result = {
            "machine_cpus": os.cpu_count(),
            "config": asdict(config),
            "recipe": asdict(r),
            **demo,
            "record_s": round(record_s, 1),
            "train_s": round(train_s, 1),
            "train_samples_per_s": samples_per_s(train, train_s),
            **train.figures(),
            "eval_s": round(eval_s, 1),
            "episodes": len(report.episodes),
            "mean_return": round(report.mean_return, 2),
            "min_return": round(report.min_return, 2),
            "laps_finished": report.laps_finished,
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
                                eval_seed_start=config.eval_seed_start, score_before=False, recipe=r)
            d = run_dagger(model_path, [sessions], root / "dagger.keras", root / "corrections", dcfg, log=log)
            result["dagger"] = [x.as_dict() for x in d.rounds]
            result["dagger_s"] = round(d.seconds, 1)
        if tmp is None:
            (root / "bench-drive.json").write_text(json.dumps(result, indent=1))
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def summary_line(result: dict) -> dict:
    """The guard's JSON line: what --quick compares with bench/baselines/drive.json."""
    out = {k: result.get(k) for k in ("mean_return", "min_return", "laps_finished", "episodes", "epochs_done", "train_s",
                                      "train_samples_per_s")}
    if result.get("dagger"):
        out["dagger"] = [{k: d[k] for k in ("round", "mean_return", "min_return", "laps_finished")} for d in result["dagger"]]
    return out


# The guard's reference: the default recipe's measured quick runs (kept in the repository).
BASELINE = Path(__file__).resolve().parents[2] / "bench" / "baselines" / "drive.json"


def compare_with_baseline(line: dict, path: Path = BASELINE) -> str | None:
    """One line saying how a --quick result compares with the baseline's runs, or None without one.

    The rule (DEVELOPERS.md): a change whose quick mean falls below the lowest baseline run by
    more than the baseline's own spread (highest - lowest mean over its training seeds) does not ship.
    """
    try:
        quick = json.loads(Path(path).read_text())["quick"]
        means = [float(r["mean_return"]) for r in quick["runs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    spread = max(means) - min(means)
    floor = min(means) - spread
    verdict = "within the baseline's spread" if line["mean_return"] >= floor else "WORSE than the baseline: do not ship"
    return (f"baseline ({path.name}, {len(means)} runs): mean {sum(means) / len(means):.1f}, runs "
            f"{min(means):.1f}-{max(means):.1f} (spread {spread:.1f}); this run {line['mean_return']:.1f} -> {verdict}")


__all__ = ["BASELINE", "BenchDriveConfig", "QUICK", "RECIPES", "bench_drive", "compare_with_baseline", "summary_line"]
