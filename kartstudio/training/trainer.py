"""The Trainer: one class behind `kartstudio train`, the GUI's training worker and DAgger.

    from kartstudio.training import Trainer, TrainConfig

    trainer = Trainer(TrainConfig(epochs=20, augment=True, val_sessions=1),
                      on_batch=lambda p: print(p.batch, p.loss),
                      on_epoch=lambda p: print(p.epoch, p.loss, p.val_loss, p.eta_s))
    result = trainer.fit(["sessions/"], "driver.keras")   # blocks; call from a worker thread
    trainer.cancel()                                      # from any thread: stops within one batch

It knows nothing of Qt. The callbacks are plain callables run on the training thread, with
small dataclasses (BatchProgress, EpochProgress); a GUI should hand them to its own thread.

Checkpoints (default folder ``<output>.checkpoints/``): ``last.keras`` after every epoch (with
the optimizer state, for resume), ``best.keras`` whenever the monitored loss improves (val loss,
or train loss without validation sessions), ``state.json``, and TensorBoard logs in ``logs/``.
When training ends (all epochs, early stop or cancel), the best checkpoint is copied to the
output path. A cancelled epoch is not saved: the last checkpoint stays the last whole epoch, and
resume re-runs the cancelled epoch with the same batches (the order depends on seed and epoch).
"""

from __future__ import annotations

import fcntl
import json
import math
import numbers
import os
import shutil
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kartstudio.errors import KartStudioError
from kartstudio.model import (
    LOSSES,
    MODEL_KINDS,
    button_thresholds,
    build_model,
    input_size,
    input_spec,
    keras,
    load_model,
    make_loss,
    save_model,
    set_input_spec,
    tf,
)
from kartstudio.paths import checkpoint_dir
from kartstudio.session import find_sessions, open_session
from kartstudio.training.dataset import (
    CACHE_MB,
    MAX_HISTORY,
    SessionDataset,
    check_history,
    epoch_length,
    session_frames,
    share_sessions,
    split_by_session,
)
from kartstudio.training.distribute import PEER_TIMEOUT_S, cluster_task, placement
from kartstudio.training.recipe import DEFAULT_RECIPE, validation_sessions
from kartstudio.training.thresholds import calibrate_thresholds


@dataclass
class TrainConfig:
    """How to train. Defaults are the default recipe's (kartstudio.training.recipe)."""

    epochs: int = DEFAULT_RECIPE.epochs
    batch_size: int = DEFAULT_RECIPE.batch_size
    learning_rate: float = DEFAULT_RECIPE.learning_rate
    loss: str = DEFAULT_RECIPE.loss  # see kartstudio.model.LOSSES
    stick_weight: float = DEFAULT_RECIPE.stick_weight  # the driving loss's weight on the stick
    pace_gas: bool = DEFAULT_RECIPE.pace_gas  # the pilot presses the gas on the share of frames its probability gives
    seed: int = 0
    augment: bool = DEFAULT_RECIPE.augment  # mirror (steering flipped) + brightness/contrast jitter
    val_sessions: int | None = None  # whole session files held out for validation (None: the recipe's share)
    val_fraction: float = DEFAULT_RECIPE.val_fraction  # used when val_sessions is None
    patience: int = 0  # early stopping: epochs without improvement before stopping (0 = off)
    min_delta: float = 0.0  # a loss must drop by more than this to count as an improvement
    turn_oversample: float = DEFAULT_RECIPE.turn_oversample  # times each turning frame is served per epoch
    model: str = DEFAULT_RECIPE.model  # network for a new model (kartstudio.model.MODEL_KINDS)
    history: int = DEFAULT_RECIPE.history  # frames the network sees at once (a model file from init/resume must match)
    init_model: str | None = None  # start from this .keras model instead (fine-tuning, DAgger)
    checkpoint_dir: str | None = None  # default: <output>.checkpoints next to the output
    resume: bool = False  # continue the run saved in checkpoint_dir
    tensorboard: bool = True
    devices: str | None = None  # None/"auto": all GPUs, else the CPU; "cpu", a GPU count, "GPU:0,GPU:1" (distribute.py)
    mixed_precision: bool | None = None  # float16 compute for a new model; None: on GPUs with tensor cores only
    cache_mb: float = CACHE_MB  # RAM for resized training frames, so later epochs skip decoding them; 0: none
    reaction_s: float = DEFAULT_RECIPE.reaction_s  # label each frame with the pad reading this much later

    peer_timeout_s: float = PEER_TIMEOUT_S  # several machines: how long to wait for the other workers

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


@dataclass
class BatchProgress:
    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based, within the epoch
    batches: int
    loss: float  # mean training loss of the epoch so far
    samples_per_s: float
    eta_s: float  # whole run, at the current pace
    devices: str = ""  # what it trains on, e.g. "CPU:0", "2 x GPU (mirrored)"


@dataclass
class EpochProgress:
    epoch: int  # 1-based
    epochs: int
    loss: float
    val_loss: float | None
    samples_per_s: float
    eta_s: float
    elapsed_s: float
    improved: bool  # this epoch is the new best.keras
    checkpoint: str
    input_wait: float = 0.0  # share of the epoch's time spent waiting for input batches


@dataclass
class TrainResult:
    model_path: Path | None  # the best model, copied to the output (None if no epoch finished)
    checkpoint_dir: Path
    epochs_done: int
    best_epoch: int | None
    best_loss: float | None  # of the monitored loss (val loss with validation sessions)
    cancelled: bool = False
    stopped_early: bool = False
    train_frames: int = 0
    val_frames: int = 0
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, val_loss, samples_per_s, input_wait
    thresholds: tuple[float, ...] | None = None  # button press thresholds stored in the model (if it has them)
    stopped_because: str | None = None  # why the run stopped before its end, other than cancel/patience (a NaN loss)
    devices: str = ""  # what it trained on (Placement.describe)

    def figures(self) -> dict:
        """What a benchmark records of the run (JSON-ready)."""
        return {
            "epochs_done": self.epochs_done,
            "best_epoch": self.best_epoch,
            "best_loss": None if self.best_loss is None else round(float(self.best_loss), 5),
            "train_frames": self.train_frames,
            "val_frames": self.val_frames,
            "thresholds": self.thresholds,
        }


class Trainer:
    """Trains a driving model on session files; see the module docstring."""

    def __init__(
        self,
        config: TrainConfig | None = None,
        on_batch: Callable[[BatchProgress], None] | None = None,
        on_epoch: Callable[[EpochProgress], None] | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        self.on_batch = on_batch
        self.on_epoch = on_epoch
        self._cancel = threading.Event()
        # Known once fit() has indexed the data (before the first batch): for a header line.
        self.train_frames = 0
        self.val_frames = 0
        self.sessions = (0, 0)  # (training, validation) session files
        self.placement = None  # distribute.Placement, once fit() has chosen the devices
        self.model = None  # the model being trained, once fit() has built or loaded it

    def cancel(self) -> None:
        """Ask fit() to stop after the batch in progress (safe from any thread).

        A Trainer runs once: cancel() before fit() makes fit() return without training.
        """
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- the run -----------------------------------------------------------------------------

    def fit(self, data: Sequence[str | os.PathLike], output: str | os.PathLike) -> TrainResult:
        """Train on session files (or folders of them) and write the best model to `output`.

        The run holds a lock on its output and checkpoint folder while it runs: a second run to
        either is refused in one line (the lock goes with the process, so a killed run leaves none)."""
        cfg = self.config
        cfg.check()
        output = Path(output)
        if output.suffix != ".keras":
            raise KartStudioError(f"{output}: the model file must end in .keras")
        if output.exists() and not output.is_file():
            raise KartStudioError(f"{output} exists and is not a model file; choose another output name")
        ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else checkpoint_dir(output)
        task = cluster_task()  # checked before anything waits or trains
        with ExitStack() as locks:
            if task is None or task.chief:
                locks.enter_context(output_lock(output))
                locks.enter_context(output_lock(ckpt))
            else:  # a worker writes only its own checkpoint copy
                locks.enter_context(output_lock(ckpt / f"worker-{task.position}",
                                                ckpt.with_name(f".{ckpt.name}.worker-{task.position}.lock")))
            return self._fit(data, output, ckpt)

    def _fit(self, data, output: Path, ckpt: Path) -> TrainResult:
        cfg = self.config
        place = self.placement = placement(cfg.devices, cfg.peer_timeout_s, self._cancel.is_set)
        if not place.chief:  # a worker keeps its own copy for resume (TensorFlow's BackupAndRestore way)
            ckpt = ckpt / f"worker-{place.worker_index}"
        state_file = ckpt / "state.json"

        paths = find_sessions(data)
        if not paths:
            raise KartStudioError("no session files to train on in " + ", ".join(map(str, data)))
        layout = sessions_layout(paths)  # before anything is built: a mix is refused at once
        val_count = cfg.val_sessions if cfg.val_sessions is not None else validation_sessions(len(paths), cfg.val_fraction)
        train_paths, val_paths = split_by_session(paths, val_count, cfg.seed)

        keras.utils.set_random_seed(cfg.seed)
        if cfg.resume:
            if not state_file.is_file() or not (ckpt / "last.keras").is_file():
                raise KartStudioError(f"nothing to resume in {ckpt}: no last.keras/state.json from an earlier run")
            state = json.loads(state_file.read_text())
            val_paths = [Path(p) for p in state.get("val_paths", [])]  # keep the run's split
            train_paths = [p for p in paths if str(p) not in set(map(str, val_paths))]
        else:
            state = {"epochs_done": 0, "best_loss": None, "best_epoch": None, "wait": 0, "history": []}
        state["val_paths"] = [str(p) for p in val_paths]
        state["config"] = {**asdict(cfg), "loss": state.get("config", {}).get("loss", cfg.loss)}
        if not train_paths:
            raise KartStudioError("no session files left to train on after holding out the validation sessions")

        # Each replica trains on batch_size / replicas samples, so a step still sees batch_size.
        per_replica = max(1, cfg.batch_size // place.replicas) if place.distributed else cfg.batch_size
        if place.workers > 1:
            # Every worker reads only its own share of the sessions, chosen the same way on each.
            labels = session_frames(train_paths)
            shares = share_sessions(train_paths, [len(lab) for lab in labels], place.workers)
            by_path = dict(zip(map(str, train_paths), labels))
            share_labels = [np.concatenate([by_path[str(p)] for p in sh]) if sh else np.zeros((0, 5), np.float32)
                            for sh in shares]
            all_labels = np.concatenate(labels)
            mine = shares[place.worker_index]
            if not all(shares):  # every worker sees this, so none waits for another that gave up
                raise KartStudioError(f"{len(train_paths)} training session file(s) cannot be shared among "
                                      f"{place.workers} workers: each needs at least one")
        else:
            mine, share_labels, all_labels = train_paths, None, None

        mixed = cfg.mixed_precision if cfg.mixed_precision is not None else place.mixed_precision_helps
        with place.strategy.scope():
            if cfg.resume:
                model = load_model(ckpt / "last.keras", compile=True)  # a mixed run's checkpoint stays mixed
            elif cfg.init_model:
                model = load_model(cfg.init_model)
                mixed = False  # a model file is float32; fine-tuning keeps it so
            else:
                if mixed:  # layers compute in float16, variables stay float32
                    keras.mixed_precision.set_global_policy("mixed_float16")
                try:
                    model = build_model(cfg.model, cfg.history)
                finally:
                    keras.mixed_precision.set_global_policy("float32")
            history = input_spec(model).history
            if (cfg.resume or cfg.init_model) and input_spec(model).layout != layout:
                # fine-tuning never changes what a model looks at (a TensorKart model stays whole-screen)
                source = ckpt / "last.keras" if cfg.resume else cfg.init_model
                raise KartStudioError(
                    f"{source} was trained on {_LAYOUT_WORDS[input_spec(model).layout]} but these sessions hold "
                    f"{_LAYOUT_WORDS[layout]}: fine-tune it on sessions of its own kind, or train a new model")
            if history != cfg.history:  # a model file's network takes the frames it was built for
                source = ckpt / "last.keras" if cfg.resume else cfg.init_model
                raise KartStudioError(
                    f"{source} sees {history} frame(s) at once but this training is set to {cfg.history}: "
                    f"train it with --history {history}, or a new model with --history {cfg.history}")
            if state["config"]["loss"] == "driving" and button_thresholds(model) is None:
                raise KartStudioError(
                    f"the driving loss needs a network with button probabilities ({model.name!r} has softsign outputs); "
                    "use --loss mse or euclidean with it"
                )
            _record_input_spec(model, train_paths)
            size = input_size(model)
            train = SessionDataset(mine, per_replica, augment=cfg.augment, seed=cfg.seed + 7919 * place.worker_index,
                                   turn_oversample=cfg.turn_oversample, size=size, cache_mb=cfg.cache_mb,
                                   reaction_s=cfg.reaction_s, history=history)
            if not cfg.resume:  # the driving loss weighs presses by their rarity in these labels
                optimizer = keras.optimizers.Adam(cfg.learning_rate)
                if mixed:  # scales the loss so float16 gradients do not underflow
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
                model.compile(optimizer=optimizer,
                              loss=make_loss(state["config"]["loss"], train.actions if all_labels is None else all_labels,
                                             stick_weight=cfg.stick_weight))
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        self.model = model
        if place.distributed:
            # Whole steps only, the same number on every worker (a collective step needs all of them).
            local = place.replicas // place.workers
            lengths = [len(train)] if share_labels is None else [epoch_length(lab, cfg.turn_oversample) for lab in share_labels]
            steps = min(n // (per_replica * local) for n in lengths)
            if steps < 1:
                raise KartStudioError(
                    f"batch size {cfg.batch_size} is larger than the {min(lengths) * place.replicas // local} training "
                    f"frames a step can share among {place.replicas} replicas; use a smaller --batch-size")
        else:
            steps = train.steps_per_epoch
        val = None
        if val_paths and place.chief:  # the chief validates; the others learn its figure
            # one forward pass an epoch: its frames stream, the RAM budget goes to training frames
            val = SessionDataset(val_paths, cfg.batch_size, shuffle=False, size=size, cache_mb=0,
                                 reaction_s=cfg.reaction_s, history=history)
        self.train_frames = train.frames if share_labels is None else sum(len(lab) for lab in share_labels)
        self.val_frames = val.frames if val is not None else 0
        self.sessions = (len(train_paths), len(val_paths))

        created = not ckpt.exists()
        try:
            ckpt.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KartStudioError(f"cannot create the checkpoint folder {ckpt}: {exc.strerror or exc}") from None
        writer = tf.summary.create_file_writer(str(ckpt / "logs")) if cfg.tensorboard and place.chief else None
        finished = False
        try:
            result = self._loop(model, train, val, steps, ckpt, state, output, writer)
            finished = result.epochs_done > 0
            if result.model_path is not None and button_thresholds(model) is not None:
                result.thresholds = calibrate_thresholds(result.model_path, val if val is not None else train,
                                                         paced=(cfg.pace_gas, False, False))
            return result
        except tf.errors.OpError:
            for dataset in (train, val):  # a damaged frame: name the file, not TensorFlow's wrapper
                if dataset is not None:
                    dataset.raise_failure()
            raise
        finally:
            train.close()
            if val is not None:
                val.close()
            if writer is not None:
                writer.close()
            if created and not finished and not (ckpt / "last.keras").exists():
                shutil.rmtree(ckpt, ignore_errors=True)  # no whole epoch: leave no empty checkpoint folder

    def _loop(self, model, train, val, steps: int, ckpt: Path, state: dict, output: Path, writer) -> TrainResult:
        cfg = self.config
        place = self.placement
        strategy = place.strategy
        # compiled in fit(); a resumed run keeps the loss it started with
        loss_fn = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
        per_sample = loss_fn.call if isinstance(loss_fn, keras.losses.Loss) else loss_fn
        optimizer = model.optimizer
        scales = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        local_replicas = place.replicas // place.workers
        SUM = tf.distribute.ReduceOp.SUM

        @tf.function(reduce_retracing=True)
        def train_step(x, y, stop):
            def replica_step(x, y):
                with tf.GradientTape() as tape:
                    # the mean over the GLOBAL batch: each replica's share, summed across replicas;
                    # the loss in float32 whatever the layers compute in
                    pred = tf.cast(model(x, training=True), tf.float32)
                    loss = tf.nn.compute_average_loss(per_sample(y, pred))
                    scaled = optimizer.scale_loss(loss) if scales else loss
                grads = tape.gradient(scaled, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
                return loss

            losses = strategy.run(replica_step, args=(x, y))
            # a stop asked on any worker stops them all at the same step
            stops = strategy.run(lambda: stop / local_replicas)
            return strategy.reduce(SUM, losses, axis=None), strategy.reduce(SUM, stops, axis=None)

        @tf.function(reduce_retracing=True)
        def eval_step(x, y):
            return tf.reduce_sum(per_sample(y, tf.cast(model(x, training=False), tf.float32)))

        @tf.function
        def agree(value):
            """The chief's figure on every worker (the others give 0)."""
            return strategy.reduce(SUM, strategy.run(lambda: value / local_replicas), axis=None)

        first = state["epochs_done"]
        if place.distributed:
            batches = steps * local_replicas  # per input pipeline and epoch: whole steps only
            batch_iter = iter(strategy.distribute_datasets_from_function(
                lambda context: train.pipeline(first, batches_per_epoch=batches)))
        elif place.devices[0].startswith("GPU"):  # copies the next batch to the GPU while this one trains
            batch_iter = iter(strategy.experimental_distribute_dataset(train.pipeline(first)))
        else:
            batch_iter = iter(train.pipeline(first))  # one pipeline for the whole run
        val_iter = iter(val.pipeline(0)) if val is not None else None
        run_start = time.monotonic()
        stopped_early = False
        stopped_because = None
        result_epoch = first
        devices = place.describe()

        for epoch in range(first, cfg.epochs):
            if self._cancel.is_set():
                break
            epoch_start = time.monotonic()
            total, seen, waited = 0.0, 0, 0.0
            stopped = False
            for step in range(steps):
                if self._cancel.is_set() and place.workers == 1:
                    stopped = True
                    break
                t0 = time.monotonic()
                x, y = next(batch_iter)
                waited += time.monotonic() - t0
                loss, stop = train_step(x, y, tf.constant(1.0 if self._cancel.is_set() else 0.0))
                loss = float(loss)
                if float(stop) > 0:
                    self._cancel.set()
                    stopped = True
                    break
                if not math.isfinite(loss):
                    last = state["best_epoch"]
                    stopped_because = (
                        f"the training loss became {loss} in epoch {epoch + 1}, batch {step + 1} (learning rate too "
                        "high, or labels out of range); " + (f"the best finite model (epoch {last}) is kept"
                                                             if last else "no epoch finished, so no model was written"))
                    stopped = True
                    break
                n = _batch_samples(y, place)
                total += loss * n
                seen += n
                if self.on_batch is not None:
                    rate = seen / max(1e-9, time.monotonic() - epoch_start)
                    left = (steps - step - 1) + (cfg.epochs - epoch - 1) * steps
                    self.on_batch(BatchProgress(epoch + 1, cfg.epochs, step + 1, steps, total / seen, rate,
                                                left * seen / (step + 1) / rate, devices))
            if stopped or seen == 0:
                break  # the cancelled epoch is dropped; last.keras stays the last whole epoch
            elapsed = time.monotonic() - epoch_start
            train_loss = total / seen
            val_loss = self._evaluate(eval_step, val, val_iter) if val is not None else None
            if place.workers > 1 and state["val_paths"]:
                val_loss = float(agree(tf.constant(val_loss if val_loss is not None else 0.0)))
            if self._cancel.is_set() and place.workers == 1:
                break
            if val_loss is not None and not math.isfinite(val_loss):
                stopped_because = (f"the validation loss became {val_loss} in epoch {epoch + 1}; the best finite model"
                                   f" (epoch {state['best_epoch']}) is kept" if state["best_epoch"] else
                                   f"the validation loss became {val_loss} in epoch {epoch + 1}; no model was written")
                break
            monitored = val_loss if val_loss is not None else train_loss
            improved = state["best_loss"] is None or monitored < state["best_loss"] - cfg.min_delta
            if improved:
                state.update(best_loss=monitored, best_epoch=epoch + 1, wait=0)
                if place.chief:  # a float32 model: what the pilot runs, on any machine
                    save_model(_float32(model) if scales else model, ckpt / "best.keras")
            else:
                state["wait"] += 1
            save_model(model, ckpt / "last.keras")
            rate = seen / elapsed
            record = {"epoch": epoch + 1, "loss": train_loss, "val_loss": val_loss, "samples_per_s": rate,
                      "input_wait": waited / elapsed}
            state["history"].append(record)
            state["epochs_done"] = epoch + 1
            result_epoch = epoch + 1
            _write_json(ckpt / "state.json", state)
            if writer is not None:
                scalars = {"loss": train_loss, "val_loss": val_loss, "samples_per_s": rate, "input_wait": waited / elapsed}
                _write_scalars(writer, epoch + 1, {k: v for k, v in scalars.items() if v is not None})
            if self.on_epoch is not None:
                epoch_s = (time.monotonic() - run_start) / (epoch + 1 - first)
                self.on_epoch(
                    EpochProgress(epoch + 1, cfg.epochs, train_loss, val_loss, rate, epoch_s * (cfg.epochs - epoch - 1),
                                  time.monotonic() - run_start, improved, str(ckpt / "last.keras"), waited / elapsed)
                )
            if cfg.patience and state["wait"] >= cfg.patience:
                stopped_early = True
                break
        del batch_iter, val_iter  # stop reading ahead before the files close

        model_path = None
        if place.chief and (ckpt / "best.keras").is_file() and state["epochs_done"] > 0:
            tmp = output.with_name(f".{output.stem}.{os.getpid()}.tmp.keras")  # its own name: never another run's
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ckpt / "best.keras", tmp)
                os.replace(tmp, output)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise KartStudioError(
                    f"cannot write {output} ({exc.strerror or exc}); the best model is kept in {ckpt / 'best.keras'}"
                ) from None
            model_path = output
            # whether the run went to its end: the app never preselects a cancelled run's model
            state["finished"] = not self._cancel.is_set() and stopped_because is None
            _write_json(ckpt / "state.json", state)
        return TrainResult(
            model_path=model_path,
            checkpoint_dir=ckpt,
            epochs_done=result_epoch,
            best_epoch=state["best_epoch"],
            best_loss=state["best_loss"],
            cancelled=self._cancel.is_set(),
            stopped_early=stopped_early,
            train_frames=self.train_frames,
            val_frames=self.val_frames,
            history=list(state["history"]),
            stopped_because=stopped_because,
            devices=devices,
        )

    def _evaluate(self, eval_step, val: SessionDataset, batches) -> float:
        total, seen = 0.0, 0
        for _ in range(val.steps_per_epoch):
            x, y = next(batches)
            total += float(eval_step(x, y))
            seen += int(y.shape[0])
        return total / max(1, seen)


def _float32(model):
    """A float32 copy of a mixed-precision model (same config and weights): a model file
    computes in float32, so it runs as fast on a CPU as any other and loads everywhere."""
    twin = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": "float32"}))
    twin.set_weights(model.get_weights())
    return twin


def _batch_samples(y, place) -> int:
    """Samples in a (possibly distributed) batch, over all workers."""
    if not place.distributed:
        return int(y.shape[0])
    parts = place.strategy.experimental_local_results(y)
    return sum(int(p.shape[0]) for p in parts) * place.workers


_LAYOUT_WORDS = {"whole": "whole-screen recordings", "seat": "one seat's view of a split screen"}


def sessions_layout(paths: Sequence[Path]) -> str:
    """The one layout ("seat" or "whole") of all the sessions; a mix is refused in one line naming
    both groups, since a model learns one view and the first file would otherwise decide."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        with open_session(path) as s:
            groups.setdefault(s.meta.layout, []).append(Path(path).name)
    if len(groups) > 1:
        def few(names: list[str]) -> str:
            return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

        raise KartStudioError(
            f"these sessions mix {_LAYOUT_WORDS['whole']} ({few(groups['whole'])}) and {_LAYOUT_WORDS['seat']} "
            f"({few(groups['seat'])}); a model learns one view: train them separately")
    return next(iter(groups), "seat")


def _record_input_spec(model, paths: Sequence[Path]) -> None:
    """Write into the model what it is trained on: the layout and stored size of the sessions."""
    with open_session(paths[0]) as s:
        meta = s.meta
    layout = getattr(meta, "layout", None) or "seat"
    set_input_spec(model, "whole" if layout == "whole" else "seat", tuple(meta.storage_size))


def _write_scalars(writer, step: int, values: dict[str, float]) -> None:
    """TensorBoard scalars, written with TensorFlow's own summary op.

    tf.summary.scalar needs the tensorboard package; the raw op with the "scalars" plugin tag
    writes the same event records without it (view them with `tensorboard --logdir`).
    """
    from tensorflow.core.framework.summary_pb2 import SummaryMetadata

    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    with writer.as_default(step=step):
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata)
    writer.flush()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v)))
    os.replace(tmp, path)


class _Lock:
    """An exclusive lock on what a run writes: ``.<name>.lock`` next to it, held with flock (the
    kernel drops it when the process ends, however it ends: never stale), removed on release."""

    def __init__(self, target: Path, path: Path | None = None) -> None:
        if not Path(os.path.abspath(target)).name:
            raise KartStudioError(f"{target} cannot be a training output or checkpoint folder; choose a folder inside it")
        self.target = target
        self.path = path or target.with_name(f".{target.name}.lock")
        self.fd: int | None = None

    def __enter__(self) -> "_Lock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KartStudioError(f"cannot create the folder {self.path.parent} for {self.target}: "
                                  f"{exc.strerror or exc}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                raise KartStudioError(f"cannot write the lock {self.path} for {self.target} ({exc.strerror or exc}); "
                                      "choose an output in a folder you can write to") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_small(fd)
                os.close(fd)
                raise KartStudioError(
                    f"another training{f' (process {holder})' if holder else ''} is writing {self.target}; "
                    "wait for it to finish, or choose another output (-o) or checkpoint folder") from None
            try:  # the run that held it may have removed it just before: the lock is the file on disk
                mine = os.fstat(fd)
                now = os.stat(self.path, follow_symlinks=False)
                same = (mine.st_ino, mine.st_dev) == (now.st_ino, now.st_dev)
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()  # while still held: a run waiting on this file sees it replaced
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def output_lock(target: str | os.PathLike, path: str | os.PathLike | None = None) -> _Lock:
    """The lock a training run holds on `target` (its model file or a checkpoint folder);
    `path`: the lock file (default ``.<name>.lock`` next to the target)."""
    return _Lock(Path(target), Path(path) if path else None)


def _read_small(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


__all__ = ["BatchProgress", "EpochProgress", "TrainConfig", "TrainResult", "Trainer", "output_lock"]
