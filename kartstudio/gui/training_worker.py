"""The training job behind the Training tab.

Training runs in a child process (`python -m kartstudio.gui.training_process`), so TensorFlow
never competes with the window for Python's GIL, a crash in it cannot take the window down,
and its memory is returned when it ends. The child prints one JSON event per line ("batch",
"epoch", "checkpoint", then "done" or "error"); a reader thread here turns them into the
BackgroundTask events the tab polls. Cancel is a line "cancel" on the child's stdin, which
calls Trainer.cancel() there (it stops within one batch and keeps the last checkpoint).

A frozen (PyInstaller) build cannot start `python -m`, so there the Trainer runs on the
worker thread instead, with the same events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from kartstudio.errors import KartStudioError
from kartstudio.training.recipe import Recipe  # a plain dataclass: no TensorFlow in the window
from kartstudio.training.run_state import RunState  # json only


@dataclass(frozen=True)
class TrainingJob:
    """What the Training tab asks for; the child process gets it as one JSON line."""

    sessions: tuple[str, ...]
    output: str  # the model file
    recipe: Recipe  # the chosen recipe with the tab's values (epochs, batch size, learning rate, loss, augment)
    val_sessions: int | None = None  # whole sessions held out; None: as the recipe says
    init_model: str | None = None  # fine-tune this model instead of training a new one

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> "TrainingJob":
        data = json.loads(line)
        return cls(**{**data, "sessions": tuple(data["sessions"]), "recipe": Recipe(**data["recipe"])})


def batch_event(p) -> dict:
    return {
        "epoch": p.epoch - 1,
        "batch": p.batch - 1,
        "batches": p.batches,
        "fraction": p.batch / max(1, p.batches),
        "loss": p.loss,
        "samples_per_s": p.samples_per_s,
        "eta_s": p.eta_s,
        "total_batches": p.epochs * p.batches,
        "done_batches": (p.epoch - 1) * p.batches + p.batch,
        "devices": getattr(p, "devices", ""),
        "validation": getattr(p, "validation", ""),
    }


def epoch_events(p) -> list[tuple[str, object]]:
    ckpt = Path(p.checkpoint)
    saved = f"{ckpt.name} + best.keras (best so far)" if p.improved else ckpt.name
    line = (f"epoch {p.epoch}: loss {p.loss:.4f}" + (f"  val {p.val_loss:.4f}" if p.val_loss is not None else "")
            + f"  ->  {ckpt.parent.name}/{saved}")
    return [
        ("epoch", {"epoch": p.epoch - 1, "loss": p.loss, "val_loss": p.val_loss,
                   "samples_per_s": p.samples_per_s, "eta_s": p.eta_s}),
        ("checkpoint", line),
    ]


def result_summary(result) -> dict:
    return {
        "model_path": str(result.model_path) if result.model_path else None,
        "epochs_done": result.epochs_done,
        "best_epoch": result.best_epoch,
        "best_loss": result.best_loss,
        "cancelled": result.cancelled,
        "train_frames": result.train_frames,
        "val_frames": result.val_frames,
        "val_sessions": held_out(result.checkpoint_dir),
        "validation": result.validation,
    }


def held_out(checkpoint_dir) -> list[str]:
    """The session files the run held out for validation, as its state.json records them."""
    try:
        return [Path(p).name for p in RunState.read(checkpoint_dir).val_paths]
    except (KartStudioError, TypeError):
        return []  # no epoch finished (nothing recorded), or a state file of another shape


def make_trainer(job: TrainingJob, on_batch, on_epoch):
    from kartstudio.training.config import TrainConfig
    from kartstudio.training.trainer import Trainer  # TensorFlow loads here

    history = {}
    if job.init_model:  # fine-tuning keeps the frames the model sees at once, whatever the recipe's default
        from kartstudio.model import input_spec, load_model

        history = {"history": input_spec(load_model(job.init_model)).history}
    config = TrainConfig.from_recipe(job.recipe, val_sessions=job.val_sessions, init_model=job.init_model, **history)
    return Trainer(config, on_batch=on_batch, on_epoch=on_epoch)


class _Cancel:
    """What the tab's Cancel reaches: the child's stdin, or the in-process Trainer."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.trainer = None

    def cancel(self) -> None:
        if self.trainer is not None:
            self.trainer.cancel()
        process = self.process
        if process is not None and process.poll() is None:
            try:
                process.stdin.write("cancel\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass


def make_training_job(job: TrainingJob):
    """(run, holder): run(report, cancelled) trains; holder["trainer"].cancel() stops it."""
    canceller = _Cancel()
    holder = {"trainer": canceller}

    def in_process(report, cancelled):
        def on_epoch(p) -> None:
            for kind, payload in epoch_events(p):
                report(kind, payload)

        trainer = make_trainer(job, lambda p: report("batch", batch_event(p)), on_epoch)
        canceller.trainer = trainer
        if cancelled.is_set():
            trainer.cancel()
        return result_summary(trainer.fit(list(job.sessions), job.output))

    def in_child(report, cancelled):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [sys.executable, "-m", "kartstudio.gui.training_process"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        canceller.process = process
        process.stdin.write(job.to_json() + "\n")
        process.stdin.flush()
        if cancelled.is_set():
            canceller.cancel()
        stderr: list[str] = []
        drain = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
        drain.start()
        outcome: tuple[str, object] | None = None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a stray print from a library
            kind, payload = event.get("kind"), event.get("payload")
            if kind in ("done", "error"):
                outcome = (kind, payload)
            elif kind:
                report(kind, payload)
        process.wait()
        drain.join(5)
        if outcome is None:
            tail = "".join(stderr).strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
            raise KartStudioError(f"the training process stopped unexpectedly ({tail[0][:300]})")
        if outcome[0] == "error":
            raise KartStudioError(str(outcome[1]))
        return outcome[1]

    return (in_process if getattr(sys, "frozen", False) else in_child), holder
