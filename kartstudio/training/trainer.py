"""The Trainer: one class behind `kartstudio train`, the GUI's training worker and DAgger.

    from kartstudio.training import Trainer, TrainConfig   # TrainConfig: kartstudio.training.config

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
import math
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
    SessionDataset,
    epoch_length,
    session_frames,
    share_sessions,
)
from kartstudio.training.config import LIMITS, TrainConfig
from kartstudio.training.distribute import cluster_task, placement
from kartstudio.training.run_state import STATE_FILE, RunState
from kartstudio.training.thresholds import calibrate_thresholds
from kartstudio.training.validation import ValidationSplit, choose_validation, held_out_start


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
    validation: str = ""  # what is held out (ValidationSplit.describe)


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
    validation: str = ""  # what was held out, e.g. "validation: the last 10% of each of 3 sessions, 1,234 frames"

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


@dataclass
class _Share:
    """The training sessions this worker reads: all of them, or its share when several machines train."""

    paths: list[Path]
    labels: list[np.ndarray] | None = None  # several workers: the labels of every worker's share
    all_labels: np.ndarray | None = None  # several workers: every training label (the loss's button weights)


@dataclass
class _Steps:
    """A run's compiled steps (tf.functions over its model, optimizer and strategy)."""

    train: Callable  # (x, y, stop) -> (mean loss, stops asked on any worker)
    evaluate: Callable  # (x, y) -> summed loss
    agree: Callable  # value -> the chief's value on every worker
    scales: bool  # a mixed-precision run: the optimizer scales the loss


@dataclass
class _Epoch:
    """One epoch's pass over the training batches."""

    loss: float = 0.0  # mean over the samples seen
    seen: int = 0
    waited: float = 0.0  # seconds spent waiting for input batches
    elapsed: float = 0.0
    stopped: bool = False  # cancelled or failed within the epoch: it is dropped
    stopped_because: str | None = None  # a loss that is not a number


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
        self.validation = ""  # what is held out, for people (ValidationSplit.describe)
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
        paths = find_sessions(data)
        if not paths:
            raise KartStudioError("no session files to train on in " + ", ".join(map(str, data)))
        layout = sessions_layout(paths)  # before anything is built: a mix is refused at once
        split, state = self._split_sessions(paths, ckpt)
        keras.utils.set_random_seed(cfg.seed)  # the new network's weights
        share = self._share_sessions(split)
        # Each replica trains on batch_size / replicas samples, so a step still sees batch_size.
        per_replica = max(1, cfg.batch_size // place.replicas) if place.distributed else cfg.batch_size
        model, train = self._build_model(split, layout, share, state, ckpt, per_replica)
        self.model = model
        steps = self._steps_per_epoch(train, share, per_replica)
        val = self._validation_data(split, input_size(model), input_spec(model).history)
        self.train_frames = train.frames if share.labels is None else sum(len(lab) for lab in share.labels)
        self.val_frames = val.frames if val is not None else 0
        self.sessions = (len(split.train_paths), len(split.val_paths))
        self.validation = split.describe(self.val_frames if place.chief else None)  # only the chief counts them

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

    def _split_sessions(self, paths: list[Path], ckpt: Path) -> tuple[ValidationSplit, RunState]:
        """What is held out for validation: chosen now (with the seed), or, on resume, the run's own."""
        cfg = self.config
        split = choose_validation(paths, cfg.val_sessions, cfg.val_fraction, cfg.val_holdout, cfg.seed)
        if cfg.resume:
            if not (ckpt / STATE_FILE).is_file() or not (ckpt / "last.keras").is_file():
                raise KartStudioError(f"nothing to resume in {ckpt}: no last.keras/state.json from an earlier run")
            state = RunState.read(ckpt)
            held = set(state.val_paths)
            split = ValidationSplit([p for p in paths if str(p) not in held], [Path(p) for p in state.val_paths],
                                    state.val_end_share)
        else:
            state = RunState()
        if split.end_share and not _holds_out_frames(split):  # sessions of a frame or two: nothing to hold out
            split = ValidationSplit(split.train_paths, [])
        state.val_paths = [str(p) for p in split.val_paths]
        state.val_end_share = split.end_share
        state.config = {**asdict(cfg), "loss": state.config.get("loss", cfg.loss)}  # a resumed run keeps its loss
        if not split.train_paths:
            raise KartStudioError("no session files left to train on after holding out the validation sessions")
        return split, state

    def _share_sessions(self, split: ValidationSplit) -> _Share:
        """Several machines: every worker reads only its own share of the sessions, chosen the same
        way on each; one: all of them."""
        place = self.placement
        train_paths = split.train_paths
        if place.workers == 1:
            return _Share(train_paths)
        labels = session_frames(train_paths, split.training)
        shares = share_sessions(train_paths, [len(lab) for lab in labels], place.workers)
        if not all(shares):  # every worker sees this, so none waits for another that gave up
            raise KartStudioError(f"{len(train_paths)} training session file(s) cannot be shared among "
                                  f"{place.workers} workers: each needs at least one")
        by_path = dict(zip(map(str, train_paths), labels))
        share_labels = [np.concatenate([by_path[str(p)] for p in share]) for share in shares]
        return _Share(shares[place.worker_index], share_labels, np.concatenate(labels))

    def _build_model(self, split: ValidationSplit, layout: str, share: _Share, state: RunState, ckpt: Path,
                     per_replica: int):
        """In the strategy's scope: the model (new, fine-tuned or resumed, checked against the
        sessions), this worker's training data, and the optimizer and loss. -> (model, train)"""
        cfg, place = self.config, self.placement
        mixed = cfg.mixed_precision if cfg.mixed_precision is not None else place.mixed_precision_helps
        with place.strategy.scope():
            model, mixed = self._new_or_saved_model(ckpt, mixed)
            history = input_spec(model).history
            self._check_model(model, layout, ckpt, state.config["loss"])
            _record_input_spec(model, split.train_paths)
            train = SessionDataset(share.paths, per_replica, augment=cfg.augment, seed=cfg.seed + 7919 * place.worker_index,
                                   turn_oversample=cfg.turn_oversample, size=input_size(model), cache_mb=cfg.cache_mb,
                                   reaction_s=cfg.reaction_s, history=history, stretch=split.training)
            if not cfg.resume:  # the driving loss weighs presses by their rarity in these labels
                optimizer = keras.optimizers.Adam(cfg.learning_rate)
                if mixed:  # scales the loss so float16 gradients do not underflow
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
                labels = train.actions if share.all_labels is None else share.all_labels
                model.compile(optimizer=optimizer,
                              loss=make_loss(state.config["loss"], labels, stick_weight=cfg.stick_weight))
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        return model, train

    def _new_or_saved_model(self, ckpt: Path, mixed: bool):
        """The run's model: the resumed checkpoint, the model to fine-tune, or a new network. -> (model, mixed)"""
        cfg = self.config
        if cfg.resume:
            return load_model(ckpt / "last.keras", compile=True), mixed  # a mixed run's checkpoint stays mixed
        if cfg.init_model:
            return load_model(cfg.init_model), False  # a model file is float32; fine-tuning keeps it so
        if mixed:  # layers compute in float16, variables stay float32
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            return build_model(cfg.model, cfg.history), mixed
        finally:
            keras.mixed_precision.set_global_policy("float32")

    def _check_model(self, model, layout: str, ckpt: Path, loss: str) -> None:
        """A model file fits these sessions and this run: its layout, its frame history, the loss's outputs."""
        cfg = self.config
        source = ckpt / "last.keras" if cfg.resume else cfg.init_model
        spec = input_spec(model)
        if (cfg.resume or cfg.init_model) and spec.layout != layout:
            # fine-tuning never changes what a model looks at (a TensorKart model stays whole-screen)
            raise KartStudioError(
                f"{source} was trained on {_LAYOUT_WORDS[spec.layout]} but these sessions hold "
                f"{_LAYOUT_WORDS[layout]}: fine-tune it on sessions of its own kind, or train a new model")
        if spec.history != cfg.history:  # a model file's network takes the frames it was built for
            raise KartStudioError(
                f"{source} sees {spec.history} frame(s) at once but this training is set to {cfg.history}: "
                f"train it with --history {spec.history}, or a new model with --history {cfg.history}")
        if loss == "driving" and button_thresholds(model) is None:
            raise KartStudioError(
                f"the driving loss needs a network with button probabilities ({model.name!r} has softsign outputs); "
                "use --loss mse or euclidean with it"
            )

    def _steps_per_epoch(self, train: SessionDataset, share: _Share, per_replica: int) -> int:
        cfg, place = self.config, self.placement
        if not place.distributed:
            return train.steps_per_epoch
        # Whole steps only, the same number on every worker (a collective step needs all of them).
        local = place.replicas // place.workers
        lengths = [len(train)] if share.labels is None else [epoch_length(lab, cfg.turn_oversample) for lab in share.labels]
        steps = min(n // (per_replica * local) for n in lengths)
        if steps < 1:
            raise KartStudioError(
                f"batch size {cfg.batch_size} is larger than the {min(lengths) * place.replicas // local} training "
                f"frames a step can share among {place.replicas} replicas; use a smaller --batch-size")
        return steps

    def _validation_data(self, split: ValidationSplit, size: tuple[int, int], history: int) -> SessionDataset | None:
        """The held-out frames, read by the chief only (the others learn its figure)."""
        cfg = self.config
        if not (split.validation_paths and self.placement.chief):
            return None
        # one forward pass an epoch: its frames stream, the RAM budget goes to training frames
        return SessionDataset(split.validation_paths, cfg.batch_size, shuffle=False, size=size, cache_mb=0,
                              reaction_s=cfg.reaction_s, history=history, stretch=split.validation)

    def _loop(self, model, train, val, steps: int, ckpt: Path, state: RunState, output: Path, writer) -> TrainResult:
        """The epochs from the last saved one: train, validate, checkpoint, report; then publish the best model."""
        cfg, place = self.config, self.placement
        compiled = self._compile_steps(model)
        first = state.epochs_done
        batch_iter = self._training_batches(train, steps, first)
        val_iter = iter(val.pipeline(0)) if val is not None else None
        run_start = time.monotonic()
        stopped_early = False
        stopped_because = None
        result_epoch = first
        devices = place.describe()

        for epoch in range(first, cfg.epochs):
            if self._cancel.is_set():
                break
            run = self._run_epoch(epoch, steps, compiled, batch_iter, state, devices)
            stopped_because = run.stopped_because
            if run.stopped or run.seen == 0:
                break  # the cancelled epoch is dropped; last.keras stays the last whole epoch
            val_loss = self._validate(compiled, val, val_iter, state)
            if self._cancel.is_set() and place.workers == 1:
                break
            if val_loss is not None and not math.isfinite(val_loss):
                best = state.best_epoch
                stopped_because = (f"the validation loss became {val_loss} in epoch {epoch + 1}; the best finite model"
                                   f" (epoch {best}) is kept" if best else
                                   f"the validation loss became {val_loss} in epoch {epoch + 1}; no model was written")
                break
            improved = self._checkpoint_epoch(model, epoch, run, val_loss, compiled.scales, ckpt, state)
            result_epoch = epoch + 1
            if writer is not None:
                scalars = {"loss": run.loss, "val_loss": val_loss, "samples_per_s": run.seen / run.elapsed,
                           "input_wait": run.waited / run.elapsed}
                _write_scalars(writer, epoch + 1, {k: v for k, v in scalars.items() if v is not None})
            if self.on_epoch is not None:
                epoch_s = (time.monotonic() - run_start) / (epoch + 1 - first)
                self.on_epoch(
                    EpochProgress(epoch + 1, cfg.epochs, run.loss, val_loss, run.seen / run.elapsed,
                                  epoch_s * (cfg.epochs - epoch - 1), time.monotonic() - run_start, improved,
                                  str(ckpt / "last.keras"), run.waited / run.elapsed)
                )
            if cfg.patience and state.wait >= cfg.patience:
                stopped_early = True
                break
        del batch_iter, val_iter  # stop reading ahead before the files close

        return TrainResult(
            model_path=self._publish_best(ckpt, output, state, stopped_because),
            checkpoint_dir=ckpt,
            epochs_done=result_epoch,
            best_epoch=state.best_epoch,
            best_loss=state.best_loss,
            cancelled=self._cancel.is_set(),
            stopped_early=stopped_early,
            train_frames=self.train_frames,
            val_frames=self.val_frames,
            history=list(state.history),
            stopped_because=stopped_because,
            devices=devices,
            validation=self.validation,
        )

    def _compile_steps(self, model) -> _Steps:
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

        return _Steps(train_step, eval_step, agree, scales)

    def _training_batches(self, train: SessionDataset, steps: int, first: int):
        """One iterator over the batches of every epoch from `first` on (one pipeline for the whole run)."""
        place = self.placement
        if place.distributed:
            batches = steps * (place.replicas // place.workers)  # per input pipeline and epoch: whole steps only
            return iter(place.strategy.distribute_datasets_from_function(
                lambda context: train.pipeline(first, batches_per_epoch=batches)))
        if place.devices[0].startswith("GPU"):  # copies the next batch to the GPU while this one trains
            return iter(place.strategy.experimental_distribute_dataset(train.pipeline(first)))
        return iter(train.pipeline(first))

    def _run_epoch(self, epoch: int, steps: int, compiled: _Steps, batch_iter, state: RunState, devices: str) -> _Epoch:
        """One epoch's training steps; stops within a batch of cancel(), or at a loss that is not a number."""
        cfg, place = self.config, self.placement
        run = _Epoch()
        start = time.monotonic()
        total = 0.0
        for step in range(steps):
            if self._cancel.is_set() and place.workers == 1:
                run.stopped = True
                break
            t0 = time.monotonic()
            x, y = next(batch_iter)
            run.waited += time.monotonic() - t0
            loss, stop = compiled.train(x, y, tf.constant(1.0 if self._cancel.is_set() else 0.0))
            loss = float(loss)
            if float(stop) > 0:
                self._cancel.set()
                run.stopped = True
                break
            if not math.isfinite(loss):
                last = state.best_epoch
                run.stopped_because = (
                    f"the training loss became {loss} in epoch {epoch + 1}, batch {step + 1} (learning rate too "
                    "high, or labels out of range); " + (f"the best finite model (epoch {last}) is kept"
                                                         if last else "no epoch finished, so no model was written"))
                run.stopped = True
                break
            n = _batch_samples(y, place)
            total += loss * n
            run.seen += n
            if self.on_batch is not None:
                rate = run.seen / max(1e-9, time.monotonic() - start)
                left = (steps - step - 1) + (cfg.epochs - epoch - 1) * steps
                self.on_batch(BatchProgress(epoch + 1, cfg.epochs, step + 1, steps, total / run.seen, rate,
                                            left * run.seen / (step + 1) / rate, devices, self.validation))
        run.elapsed = time.monotonic() - start
        run.loss = total / run.seen if run.seen else 0.0
        return run

    def _validate(self, compiled: _Steps, val: SessionDataset | None, val_iter, state: RunState) -> float | None:
        val_loss = self._evaluate(compiled.evaluate, val, val_iter) if val is not None else None
        if self.placement.workers > 1 and (state.val_paths or state.val_end_share):  # the chief's figure everywhere
            val_loss = float(compiled.agree(tf.constant(val_loss if val_loss is not None else 0.0)))
        return val_loss

    def _checkpoint_epoch(self, model, epoch: int, run: _Epoch, val_loss: float | None, scales: bool, ckpt: Path,
                          state: RunState) -> bool:
        """Save the epoch (last.keras, best.keras when it is the best, state.json); -> whether it is the best."""
        monitored = val_loss if val_loss is not None else run.loss
        improved = state.judge(monitored, epoch + 1, self.config.min_delta)
        if improved and self.placement.chief:  # a float32 model: what the pilot runs, on any machine
            save_model(_float32(model) if scales else model, ckpt / "best.keras")
        save_model(model, ckpt / "last.keras")
        state.add_epoch({"epoch": epoch + 1, "loss": run.loss, "val_loss": val_loss,
                         "samples_per_s": run.seen / run.elapsed, "input_wait": run.waited / run.elapsed})
        state.write(ckpt)
        return improved

    def _publish_best(self, ckpt: Path, output: Path, state: RunState, stopped_because: str | None) -> Path | None:
        """Copy best.keras to the output (the chief, once an epoch finished) and record whether the run
        went to its end: the app never preselects a cancelled run's model. -> the output, or None."""
        if not (self.placement.chief and (ckpt / "best.keras").is_file() and state.epochs_done > 0):
            return None
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
        state.finished = not self._cancel.is_set() and stopped_because is None
        state.write(ckpt)
        return output

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


def _holds_out_frames(split: ValidationSplit) -> bool:
    """Whether the end-of-session split holds out any frame (a session needs two included frames)."""
    for path in split.train_paths:
        with open_session(path) as s:
            count = len(s.included_indices())
        if held_out_start(count, split.end_share) < count:
            return True
    return False


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


__all__ = ["BatchProgress", "EpochProgress", "LIMITS", "TrainConfig", "TrainResult", "Trainer", "output_lock"]
