"""Practice track commands: eval, dagger, bench drive."""

from __future__ import annotations

import json
import sys

from kartstudio.errors import KartStudioError


def register(commands, bench) -> None:
    ev = commands.add_parser("eval", help="drive unseen practice tracks with a model or the expert; print the score")
    who = ev.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", metavar="MODEL.keras", help="a trained driving model")
    who.add_argument("--expert", action="store_true", help="the scripted expert driver")
    ev.add_argument("--episodes", type=int, default=20, metavar="N", help="tracks to drive (default 20)")
    ev.add_argument("--seed-start", type=int, default=None, metavar="S",
                    help="first track seed (default 10000; tracks S, S+1, ...)")
    ev.add_argument("--storage-size", default="120x320", metavar="HxW",
                    help="the seat image size the model was trained on (default 120x320)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_eval)

    dg = commands.add_parser("dagger", help="the model drives, the expert labels, the model is retrained (DAgger)")
    dg.add_argument("--model", required=True, metavar="MODEL.keras", help="the model to improve")
    dg.add_argument("--data", nargs="*", default=[], metavar="DATA",
                    help="session files or folders the model was trained on (kept in the retraining)")
    dg.add_argument("-o", "--output", metavar="MODEL.keras", help="the retrained model (default: MODEL-dagger.keras)")
    dg.add_argument("--folder", metavar="DIR", help="where the correction sessions go (default: next to the output)")
    dg.add_argument("--rounds", type=int, default=1, help="drive-label-retrain rounds (default 1)")
    dg.add_argument("--tracks", type=int, default=4, help="tracks the model drives per round (default 4)")
    dg.add_argument("--minutes", type=float, default=2.0, help="driving per round, minutes of game time (default 2)")
    dg.add_argument("--epochs", type=int, default=4, help="epochs of retraining per round (default 4)")
    dg.add_argument("--episodes", type=int, default=20, help="tracks for the score before and after (default 20)")
    dg.add_argument("--loss", choices=("euclidean", "mse", "press-weighted"), default="mse", help="retraining loss (default mse)")
    dg.add_argument("--seed-start", type=int, default=None, metavar="S", help="first evaluation seed (default 10000)")
    dg.add_argument("--json", action="store_true")
    dg.set_defaults(func=cmd_dagger)

    bd = bench.add_parser("drive", help="expert demonstrations -> real recorder -> real trainer -> score on 20 unseen tracks")
    bd.add_argument("--minutes", type=float, default=15.0, help="demonstrations, minutes of game time (default 15)")
    bd.add_argument("--train-minutes", type=float, default=20.0, help="training time budget (default 20)")
    bd.add_argument("--epochs", type=int, default=60, help="most epochs (training stops at the time budget)")
    bd.add_argument("--episodes", type=int, default=20, help="unseen tracks to score on (default 20)")
    bd.add_argument("--loss", choices=("euclidean", "mse", "press-weighted"), default="mse", help="training loss (default mse)")
    bd.add_argument("--model", choices=("kartstudio", "tensorkart"), default="kartstudio", help="network (default kartstudio)")
    bd.add_argument("--augment", action="store_true", help="mirror and brightness/contrast jitter in training")
    bd.add_argument("--folder", metavar="DIR", help="keep sessions and model here (default: a temporary folder)")
    bd.add_argument("--dagger-rounds", type=int, default=0, help="DAgger rounds after behaviour cloning (default 0)")
    bd.add_argument("--json", action="store_true")
    bd.set_defaults(func=cmd_bench_drive)


def _storage_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h < 8 or w < 8:
            raise ValueError
    except ValueError:
        raise KartStudioError(f"--storage-size {text!r}: give HEIGHTxWIDTH, e.g. 120x320") from None
    return h, w


def _progress(quiet: bool):
    def on_episode(k, result) -> None:
        if not quiet:
            print(
                f"  track {result.seed}: return {result.episode_return:7.1f}  tiles {result.tiles_visited}/"
                f"{result.tiles_total}  off track {result.off_track_s:4.1f} s  ({result.reason})",
                file=sys.stderr,
                flush=True,
            )

    return on_episode


def cmd_eval(args) -> int:
    from kartstudio.practice.evaluate import EVAL_SEED_START, evaluate_expert, evaluate_model

    seed_start = EVAL_SEED_START if args.seed_start is None else args.seed_start
    on_episode = _progress(args.json)
    if args.expert:
        report = evaluate_expert(args.episodes, seed_start, on_episode=on_episode)
    else:
        report = evaluate_model(args.model, args.episodes, seed_start, _storage_size(args.storage_size), on_episode)
    print(json.dumps(report.as_dict()) if args.json else report.summary())
    return 0


def cmd_dagger(args) -> int:
    from kartstudio.practice.dagger import DaggerConfig, run_dagger
    from kartstudio.practice.evaluate import EVAL_SEED_START

    config = DaggerConfig(
        rounds=args.rounds,
        tracks=args.tracks,
        minutes=args.minutes,
        epochs=args.epochs,
        eval_episodes=args.episodes,
        loss=args.loss,
        eval_seed_start=EVAL_SEED_START if args.seed_start is None else args.seed_start,
    )
    result = run_dagger(args.model, args.data, args.output, args.folder, config, log=None if args.json else _log)
    print(json.dumps(result.as_dict()) if args.json else result.summary())
    return 0


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_bench_drive(args) -> int:
    from kartstudio.practice.bench import BenchDriveConfig, bench_drive

    config = BenchDriveConfig(
        minutes=args.minutes,
        train_minutes=args.train_minutes,
        epochs=args.epochs,
        episodes=args.episodes,
        loss=args.loss,
        model=args.model,
        augment=args.augment,
        dagger_rounds=args.dagger_rounds,
    )
    result = bench_drive(config, args.folder, log=None if args.json else _log)
    print(json.dumps(result) if args.json else _bench_text(result))
    return 0


def _bench_text(r: dict) -> str:
    lines = [
        "bench drive (practice track, behaviour cloning from the expert):",
        f"  demonstrations: {r['demo_minutes']:.1f} min of game time, {r['demo_frames']} frames in {r['demo_files']} "
        f"session files, recorded in {r['record_s']:.0f} s",
        f"  training: {r['epochs_done']} epochs in {r['train_s'] / 60:.1f} min (CPU), best loss {r['best_loss']}",
        f"  score: mean return {r['mean_return']:.1f}, min {r['min_return']:.1f} on {r['episodes']} unseen tracks "
        f"(expert on the same tracks: {r['expert_mean_return']:.1f}) in {r['eval_s']:.0f} s",
    ]
    if r.get("dagger"):
        for d in r["dagger"]:
            lines.append(f"  DAgger round {d['round']}: mean {d['mean_return']:.1f}, min {d['min_return']:.1f}")
    lines.append(f"  target: mean >= 850 -> {'met' if r['mean_return'] >= 850 else 'NOT met'}")
    return "\n".join(lines)
