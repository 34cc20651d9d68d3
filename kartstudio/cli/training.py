"""Training commands: train, import-model, bench train, bench infer."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from kartstudio.cli.args import COUNT, POSITIVE, SEED, number, whole


def register(commands, bench) -> None:
    train = commands.add_parser("train", help="train a driving model on session files")
    train.add_argument("data", nargs="+", metavar="DATA", help="session files or folders of them")
    train.add_argument("-o", "--output", required=True, metavar="MODEL.keras")
    train.add_argument("--recipe", default="default", metavar="NAME",
                       help="network, loss, augmentation and schedule: default (measured best), seed-mse, tensorkart; "
                            "the options below change single parts of it")
    train.add_argument("--epochs", type=COUNT, default=None, help="default: the recipe's")
    train.add_argument("--batch-size", type=COUNT, default=None)
    train.add_argument("--lr", type=number(above=0, high=10), default=None, help="learning rate (Adam)")
    train.add_argument("--loss", default=None, metavar="NAME",
                       help="driving (the default recipe's: stick regression + class-weighted button cross-entropy), "
                            "mse, euclidean (TensorKart's), press-weighted")
    train.add_argument("--model", default=None, metavar="KIND", help="network for a new model: kartstudio, seed, tensorkart")
    train.add_argument("--history", type=COUNT, default=None, metavar="N",
                       help="frames the network sees at once, the current one and N-1 before it "
                            "(default: the recipe's, 1; more needs the kartstudio network)")
    train.add_argument("--init", metavar="MODEL.keras", help="start from this model instead of a new one")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="mirror (steering flipped) and brightness/contrast jitter")
    train.add_argument("--val-sessions", type=whole(0), default=None, metavar="K",
                       help="hold out K whole sessions for validation (default: the recipe's 10%% of them when there "
                            "are 5 or more, else the last 10%% of each session; --recipe tensorkart: always the last 10%%)")
    train.add_argument("--patience", type=whole(0), default=0, metavar="N", help="stop after N epochs without improvement")
    train.add_argument("--oversample-turns", type=number(1, 100), default=None, metavar="F", help="serve turning frames F times per epoch")
    train.add_argument("--seed", type=SEED, default=0)
    train.add_argument("--checkpoint-dir", metavar="DIR", help="default: MODEL.checkpoints next to the output")
    train.add_argument("--resume", action="store_true", help="continue the run saved in the checkpoint folder")
    train.add_argument("--devices", metavar="SPEC",
                       help="auto (default: every GPU, else the CPU), cpu, gpu, a number of GPUs, or a list such as "
                            "GPU:0,GPU:1; several devices train in step (tf.distribute MirroredStrategy)")
    train.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                       help="float16 compute for a new model (default: on GPUs with tensor cores, off on a CPU); "
                            "the saved model is float32")
    train.add_argument("--worker-hosts", metavar="HOST:PORT,...",
                       help="train on several machines (MultiWorkerMirroredStrategy): every machine's host:port, "
                            "the same list on each, worker 0 (the chief, which writes the model) first")
    train.add_argument("--worker-index", type=whole(0), metavar="I", help="this machine's place in --worker-hosts (0 = chief)")
    train.add_argument("--peer-timeout", type=number(above=0, high=86400), default=None, metavar="SECONDS",
                       help="several machines: how long to wait for the other workers to start (default 300)")
    train.add_argument("--force", action="store_true", help="replace OUTPUT if it exists (--resume continues its run)")
    train.add_argument("--cache-mb", type=number(0, 1e6), default=None, metavar="MiB",
                       help="RAM for resized training frames, read instead of the files in later epochs "
                            "(default 640 MiB; 0: every epoch reads the files)")
    train.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")
    train.set_defaults(func=cmd_train)

    imp = commands.add_parser("import-model", help="turn TensorKart's model_weights.h5 into a KartStudio model")
    imp.add_argument("weights", metavar="model_weights.h5")
    imp.add_argument("-o", "--output", required=True, metavar="MODEL.keras")
    imp.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    imp.set_defaults(func=cmd_import_model)

    bt = bench.add_parser("train", help="streaming vs in-memory training speed, peak memory at two dataset sizes")
    bt.add_argument("--small-mb", type=POSITIVE, default=500, help="smaller dataset size on disk (default 500 MiB)")
    bt.add_argument("--large-mb", type=POSITIVE, default=5000,
                    help="larger dataset size on disk (default 5000 MiB; past 600 MiB the files are copies)")
    bt.add_argument("--frames", choices=("practice", "synthetic"), default="practice",
                    help="pictures: the practice track's with capture noise (default), or a drawn road (quick)")
    bt.add_argument("--workers", type=whole(1, 16), default=1, metavar="N",
                    help="also train with 1 and N local worker processes (MultiWorkerMirroredStrategy) and compare")
    bt.add_argument("--samples", type=COUNT, default=6000, help="training samples timed per measurement")
    bt.add_argument("--seconds", type=POSITIVE, default=90.0, help="time limit per measurement")
    bt.add_argument("--batch-size", type=whole(1, 10000), default=50)
    bt.add_argument("--folder", help="where to write the synthetic sessions (default: a temporary folder, removed)")
    bt.add_argument("--json", action="store_true")
    bt.set_defaults(func=cmd_bench_train)

    bi = bench.add_parser("infer", help="per-frame inference latency with and without activations")
    bi.add_argument("--model", metavar="MODEL.keras", help="a trained model (default: a new kartstudio network)")
    bi.add_argument("--kind", choices=("kartstudio", "tensorkart"), default="kartstudio")
    bi.add_argument("--frames", type=COUNT, default=2000)
    bi.add_argument("--threads", type=whole(1, 64), nargs="+", default=[2, 1], metavar="N",
                    help="LiteRT threads to measure, in turn (default: 2 then 1)")
    bi.add_argument("--engine", choices=("litert", "tensorflow"), action="append",
                    help="measure only this engine (repeatable; default: both)")
    bi.add_argument("--check", type=whole(0, 100000), default=0, metavar="FRAMES",
                    help="also compare the pilot's outputs with the Keras model's on FRAMES recorded practice-track frames")
    bi.add_argument("--json", action="store_true")
    bi.set_defaults(func=cmd_bench_infer)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class _ProgressBar:
    """One updating line per epoch on a terminal; one line per epoch otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.trainer = None
        self._header = False

    def batch(self, p) -> None:
        if not self._header and not self.quiet and self.trainer is not None:
            self._header = True
            t = self.trainer
            sys.stderr.write(f"training on {t.train_frames} frames from {t.sessions[0]} session file(s) on "
                             f"{p.devices}; {t.validation}\n")
        if self.quiet or not self.tty:
            return
        filled = int(24 * p.batch / p.batches)
        bar = "#" * filled + "." * (24 - filled)
        sys.stderr.write(
            f"\repoch {p.epoch}/{p.epochs} [{bar}] {p.batch}/{p.batches} loss {p.loss:.4f}"
            f"  {p.samples_per_s:.0f} samples/s  ETA {_duration(p.eta_s)}  "
        )
        sys.stderr.flush()

    def epoch(self, p) -> None:
        if self.quiet:
            return
        val = f"  val loss {p.val_loss:.4f}" if p.val_loss is not None else ""
        best = "  (best)" if p.improved else ""
        end = "\r" if self.tty else ""
        sys.stderr.write(
            f"{end}epoch {p.epoch}/{p.epochs}: loss {p.loss:.4f}{val}  {p.samples_per_s:.0f} samples/s"
            f"  ETA {_duration(p.eta_s)}{best}{' ' * 20}\n"
        )
        sys.stderr.flush()


def cmd_train(args) -> int:
    from kartstudio.errors import KartStudioError

    if (args.worker_hosts is None) != (args.worker_index is None):
        raise KartStudioError("--worker-hosts and --worker-index go together: give both (see docs/training.md)")
    if args.worker_hosts is not None:
        from kartstudio.training.distribute import set_worker_hosts

        set_worker_hosts(args.worker_hosts, args.worker_index)  # TF_CONFIG, before TensorFlow starts its runtime
    from kartstudio.training.distribute import cluster_task

    task = cluster_task()  # TF_CONFIG checked before anything else
    if Path(args.output).exists() and not (args.force or args.resume) and (task is None or task.chief):
        raise KartStudioError(f"{args.output} already exists; choose another name, pass --force to replace it, "
                              "or --resume to continue its run")

    from kartstudio.training import Trainer
    from kartstudio.training.config import TrainConfig
    from kartstudio.training.recipe import recipe

    changes = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr, "loss": args.loss,
               "augment": args.augment, "turn_oversample": args.oversample_turns, "model": args.model, "history": args.history}
    config = TrainConfig.from_recipe(
        recipe(args.recipe, **{k: v for k, v in changes.items() if v is not None}),
        seed=args.seed, val_sessions=args.val_sessions, patience=args.patience, init_model=args.init,
        checkpoint_dir=args.checkpoint_dir, resume=args.resume, devices=args.devices,
        mixed_precision=args.mixed_precision, **({} if args.cache_mb is None else {"cache_mb": args.cache_mb}),
        **({} if args.peer_timeout is None else {"peer_timeout_s": args.peer_timeout}),
    )
    bar = _ProgressBar(args.quiet)
    trainer = Trainer(config, on_batch=bar.batch, on_epoch=bar.epoch)
    bar.trainer = trainer

    # Ctrl-C stops after the current batch and still writes the best model; a second one kills.
    def interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.stderr.write("\nstopping after this batch (Ctrl-C again to abort)...\n")
        trainer.cancel()

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        result = trainer.fit(args.data, args.output)
    finally:
        signal.signal(signal.SIGINT, previous)
    how = ("stopped" if result.stopped_because else "cancelled" if result.cancelled
           else "stopped early" if result.stopped_early else "done")
    if result.stopped_because:
        sys.stderr.write(f"training stopped: {result.stopped_because}\n")
    print(f"{how}: {result.epochs_done} epoch(s) on {result.train_frames} frames; {result.validation}")
    if result.model_path is None:
        if trainer.placement is not None and not trainer.placement.chief:
            print(f"worker {trainer.placement.worker_index} done; the chief (worker 0) writes the model")
            return 0
        print("no epoch finished, so no model was written")
        return 2 if result.stopped_because else 1
    print(f"best model (epoch {result.best_epoch}, loss {result.best_loss:.4f}) -> {result.model_path}")
    print(f"checkpoints and TensorBoard logs: {result.checkpoint_dir}")
    return 0


def cmd_import_model(args) -> int:
    from kartstudio.errors import KartStudioError
    from kartstudio.model import import_tensorkart_weights

    if Path(args.output).exists() and not args.force:
        raise KartStudioError(f"{args.output} already exists; choose another name or pass --force to replace it")
    out = import_tensorkart_weights(args.weights, args.output)
    print(f"wrote {out} (TensorKart's network with the weights of {args.weights})")
    return 0


def cmd_bench_train(args) -> int:
    from kartstudio.bench.training import bench_train

    r = bench_train(args.small_mb, args.large_mb, args.batch_size, args.samples, args.seconds,
                    Path(args.folder) if args.folder else None, args.frames, args.workers)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"frames: {r['frames_source']}, {r['kb_per_frame']} KiB each on disk; device: {r['device']}")
    for key in ("dataset_small", "dataset_large"):
        d, run = r[key], r["stream_" + key[8:]]
        print(f"{key[8:]:>5} dataset: {d['files']} session files, {d['frames']} frames, {d['mb_on_disk']} MiB on disk;"
              f" streaming {run['samples_per_s']:.0f} samples/s (input wait {run['input_wait_share']:.0%}),"
              f" peak RSS {run['peak_rss_mb']:.0f} MiB (steady {run['steady_rss_mb']:.0f} MiB),"
              f" frame cache {run['cache']['mb']:.0f} MiB: {run['cache']['share']:.0%} of the frames")
    print(f"peak RSS large / small: {r['peak_rss_ratio_large_vs_small']:.3f} (target <= 1.10, under 2 GiB);"
          f" TensorKart's in-memory array alone would be {r['in_memory_array_mb_small']} MiB for the small set")
    for key, what in (("compare_short", "one 600-frame session (short epochs, the first included)"),
                      ("compare", "the small dataset (long epochs, after the first)"),
                      ("compare_first_epoch", "the small dataset (its first epoch, or any beyond the frame cache)")):
        c = r[key]
        if c is None or (key == "compare" and c is r["compare_short"]):  # a one-file set: its short epochs only
            continue
        print(f"{what}, alternating rounds: streaming {c['stream_samples_per_s']:.0f} samples/s,"
              f" in-memory {c['memory_samples_per_s']:.0f} samples/s; streaming / in-memory: median {c['ratio']:.1%}"
              f" over {c['pairs']} pairs (quartiles {c['ratio_quartiles'][0]:.1%}-{c['ratio_quartiles'][1]:.1%}),"
              f" totals {c['ratio_of_totals']:.1%} (target >= 100%); frame cache held {c['cache']['share']:.0%};"
              f" in-memory array loaded in {c['memory_load_s']:.0f} s (not counted)")
    for w in r.get("workers", []):
        print(f"{w['workers']} local worker(s): {w['samples_per_s']:.0f} samples/s (input wait {w['input_wait_share']:.0%};"
              f" {w['wall_s']:.0f} s for 2 epochs with start-up)")
    print(f"model: {r['model']}, batch {r['batch_size']}; machine: {r['machine']}; load average {r['load_average_at_end']}")
    return 0


def cmd_bench_infer(args) -> int:
    from kartstudio.bench.training import bench_infer

    r = bench_infer(args.model, args.kind, args.frames, threads=tuple(args.threads),
                    engines=tuple(args.engine or ("litert", "tensorflow")), check=args.check)
    failed = "check" in r and r["check"]["max_abs_diff_action"] > 1e-4  # the driving would differ
    if args.json:
        print(json.dumps(r, indent=2))
        return int(failed)
    print(f"model: {r['model']}; input: {r['input']}; {r['frames']} frames")
    for run in r["runs"]:
        print(f"engine: {run['description']} (ready in {run['ready_s']:.1f} s)")
        for key in ("with_activations", "without_activations"):
            v = run[key]
            print(f"{key.replace('_', ' '):>20}: p50 {v['p50_ms']:.2f} ms  p99 {v['p99_ms']:.2f} ms  max {v['max_ms']:.2f} ms"
                  f"  (CPU {v['cpu_ms_per_frame']:.2f} ms a frame)")
    print("targets with activations: p50 <= 0.7 ms and p99 <= 1.5 ms on 2 threads, p50 <= 1.2 ms on 1 thread;"
          f" activation maps {r['activation_shapes']}")
    if "check" in r:
        c = r["check"]
        print(f"check on {c['frames']} recorded frames ({c['engine']}): max |difference| from the Keras model:"
              f" actions {c['max_abs_diff_action']:.2g} (must be <= 1e-4), conv2 {c['max_abs_diff_conv2']:.2g},"
              f" conv4 {c['max_abs_diff_conv4']:.2g}")
    print(f"machine: {r['machine']}; load average before {r['load_average']['before']}, after {r['load_average']['after']}")
    return int(failed)