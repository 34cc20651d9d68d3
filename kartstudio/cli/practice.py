"""Practice track commands: eval, dagger, bench drive."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kartstudio.cli.args import COUNT, POSITIVE, SEED, whole
from kartstudio.errors import KartStudioError


def register(commands, bench) -> None:
    ev = commands.add_parser("eval", help="drive unseen practice tracks with a model or the expert; print the score")
    who = ev.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", metavar="MODEL.keras", help="a trained driving model")
    who.add_argument("--expert", action="store_true", help="the scripted expert driver")
    ev.add_argument("--episodes", type=COUNT, default=20, metavar="N", help="tracks to drive (default 20)")
    ev.add_argument("--seed-start", type=SEED, default=None, metavar="S",
                    help="first track seed (default 10000; tracks S, S+1, ...)")
    ev.add_argument("--gas", choices=("model", "paced", "threshold"), default="model",
                    help="how the model presses the gas: as its file says (default), paced (on the share of frames "
                         "its probability gives) or at its threshold: compares the two on the same weights")
    ev.add_argument("--players", type=int, choices=(1, 2), default=None,
                    help="the game the model drives in: 2 (its seat of the split screen) or 1 (one car on the whole "
                         "screen); default: 1 for a whole-screen model, 2 for a seat model. A whole-screen model is "
                         "never fed a 2-player screen")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_eval)

    dg = commands.add_parser("dagger", help="the model drives, the expert labels, the model is retrained (DAgger)")
    dg.add_argument("--model", required=True, metavar="MODEL.keras", help="the model to improve")
    dg.add_argument("--data", nargs="*", default=[], metavar="DATA",
                    help="session files or folders the model was trained on (kept in the retraining)")
    dg.add_argument("-o", "--output", metavar="MODEL.keras", help="the retrained model (default: MODEL-dagger.keras)")
    dg.add_argument("--force", action="store_true", help="replace the output model if it exists")
    dg.add_argument("--folder", metavar="DIR", help="where the correction sessions go (default: next to the output)")
    dg.add_argument("--rounds", type=COUNT, default=1, help="drive-label-retrain rounds (default 1)")
    dg.add_argument("--tracks", type=COUNT, default=4, help="tracks the model drives per round (default 4)")
    dg.add_argument("--minutes", type=POSITIVE, default=2.0, help="driving per round, minutes of game time (default 2)")
    dg.add_argument("--epochs", type=COUNT, default=4, help="epochs of retraining per round (default 4)")
    dg.add_argument("--episodes", type=COUNT, default=20, help="tracks for the score before and after (default 20)")
    dg.add_argument("--recipe", default="default", metavar="NAME",
                    help="loss, augmentation and batches for retraining: default, seed-mse, tensorkart")
    dg.add_argument("--seed-start", type=SEED, default=None, metavar="S", help="first evaluation seed (default 10000)")
    dg.add_argument("--json", action="store_true")
    dg.set_defaults(func=cmd_dagger)

    bd = bench.add_parser("drive", help="demonstrations -> real recorder -> real trainer (the default recipe) -> "
                                         "score on unseen tracks")
    bd.add_argument("--game", choices=("practice", "raceway"), default="practice",
                    help="practice: the practice track (default); raceway: KartStudio Raceway in the real emulator "
                         "(demos recorded through the window capture and the plugin, both seats; scored on tracks 500 on)")
    bd.add_argument("--quick", action="store_true",
                    help="the guard run: 5 min demos, 20 epochs of training, 10 tracks (Raceway: 3 min, 8 epochs, "
                         "5 tracks); prints one JSON line (compare with bench/baselines/drive.json)")
    bd.add_argument("--minutes", type=POSITIVE, default=None, help="demonstrations, minutes of game time (default 15)")
    bd.add_argument("--train-epochs", type=whole(1), default=None,
                    help="epochs of training (default 12, --quick 20; Raceway 5, --quick 8): the same training on any machine")
    bd.add_argument("--train-minutes", type=POSITIVE, default=None,
                    help="a training time budget instead of --train-epochs (what a machine manages in that time)")
    bd.add_argument("--episodes", type=COUNT, default=None, help="unseen tracks to score on (default 20)")
    bd.add_argument("--eval-seed-start", type=SEED, default=None, metavar="S", help="first evaluation track (default 10000)")
    bd.add_argument("--demos", choices=("expert", "human"), default="expert",
                    help="who drives the demonstrations: the expert, or the expert with a person's reaction time, "
                         "stick noise and late corners")
    bd.add_argument("--sessions", metavar="DIR", help="train on these sessions instead of recording demonstrations")
    bd.add_argument("--recipe", default="default", metavar="NAME", help="default, seed-mse, tensorkart")
    bd.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="change one field of the recipe (an ablation), e.g. --set loss=mse --set augment=false")
    bd.add_argument("--train-seed", type=SEED, default=0, help="seed of the training run (weights, batch order)")
    bd.add_argument("--folder", metavar="DIR", help="keep sessions and model here (default: a temporary folder)")
    bd.add_argument("--dagger-rounds", type=whole(0), default=0, help="DAgger rounds after behaviour cloning (default 0)")
    bd.add_argument("--json", action="store_true")
    bd.set_defaults(func=cmd_bench_drive)


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
        model = args.model
        if args.gas != "model":
            from kartstudio.drivers import load_pilot

            model = load_pilot(args.model)
            if model.thresholds is None:
                raise KartStudioError(f"{args.model} has no button probabilities (a TensorKart-style model): --gas does not apply")
            model.paced = (args.gas == "paced", *model.paced[1:])
            model.name = f"{os.path.basename(args.model)} (gas {args.gas})"
        report = evaluate_model(model, args.episodes, seed_start, on_episode=on_episode, players=args.players)
    print(json.dumps(report.as_dict()) if args.json else report.summary())
    return 0


def cmd_dagger(args) -> int:
    from kartstudio.practice.dagger import DaggerConfig, run_dagger
    from kartstudio.practice.evaluate import EVAL_SEED_START
    from kartstudio.training.recipe import recipe

    output = Path(args.output) if args.output else Path(args.model).with_name(Path(args.model).stem + "-dagger.keras")
    if output.exists() and not args.force:  # as train -o and import-model: a model is never replaced silently
        raise KartStudioError(f"{output} already exists; choose another name with -o or pass --force to replace it")

    config = DaggerConfig(
        rounds=args.rounds,
        tracks=args.tracks,
        minutes=args.minutes,
        epochs=args.epochs,
        eval_episodes=args.episodes,
        recipe=recipe(args.recipe),
        eval_seed_start=EVAL_SEED_START if args.seed_start is None else args.seed_start,
    )
    result = run_dagger(args.model, args.data, args.output, args.folder, config, log=None if args.json else _log)
    print(json.dumps(result.as_dict()) if args.json else result.summary())
    return 0


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _recipe_changes(items: list[str]) -> dict:
    """--set FIELD=VALUE pairs as recipe changes, each value parsed as the field's type."""
    from dataclasses import fields

    from kartstudio.training.recipe import Recipe

    types = {f.name: type(getattr(Recipe(), f.name)) for f in fields(Recipe)}
    changes = {}
    for item in items:
        name, _, text = item.partition("=")
        if name not in types or not text:
            raise KartStudioError(f"--set {item!r}: give FIELD=VALUE with FIELD one of {', '.join(types)}")
        kind = types[name]
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("true", "1", "yes")
            else:
                value = kind(text)
        except ValueError:
            raise KartStudioError(f"--set {item!r}: {name} takes a {kind.__name__}") from None
        changes[name] = value
    return changes


def _compares_with_baseline(config) -> bool:
    """The baselines are the default recipe on expert demonstrations: a run of anything else (an
    ablation, another recipe, human-like demos) is not judged against them."""
    return config.recipe == "default" and not config.changes and config.demos == "expert"


def _training_budget(sizes: dict, args) -> dict:
    """The bench's sizes with the training budget asked for: --train-epochs, or --train-minutes (a time
    budget, no epoch count), never both."""
    if args.train_epochs is not None and args.train_minutes is not None:
        raise KartStudioError("give --train-epochs or --train-minutes, not both")
    if args.train_minutes is not None:
        return {**sizes, "train_epochs": None, "train_minutes": args.train_minutes}
    if args.train_epochs is not None:
        return {**sizes, "train_epochs": args.train_epochs}
    return sizes


def cmd_bench_drive_raceway(args) -> int:
    from kartstudio.raceway import bench

    sizes = _training_budget({**bench.FULL, **(bench.QUICK if args.quick else {})}, args)
    for name, arg in (("minutes", "minutes"), ("tracks", "episodes")):
        if getattr(args, arg) is not None:
            sizes[name] = getattr(args, arg)
    config = bench.RacewayBenchConfig(
        **sizes, demos=args.demos, sessions=args.sessions, recipe=args.recipe, changes=_recipe_changes(args.set),
        train_seed=args.train_seed, dagger_rounds=args.dagger_rounds,
        **({} if args.eval_seed_start is None else {"eval_track_start": args.eval_seed_start}),
    )
    result = bench.bench_drive_raceway(config, args.folder, log=None if args.json else _log)
    if args.quick:
        line = bench.summary_line(result)
        print(json.dumps(line))
        verdict = bench.compare_with_baseline(line) if _compares_with_baseline(config) else None
        if verdict:
            print(verdict, file=sys.stderr)
    else:
        print(json.dumps(result) if args.json else bench.bench_text(result))
    return 0


def cmd_bench_drive(args) -> int:
    if args.game == "raceway":
        return cmd_bench_drive_raceway(args)
    from kartstudio.practice.bench import FULL, QUICK, BenchDriveConfig, bench_drive, compare_with_baseline, summary_line

    sizes = _training_budget({**FULL, **(QUICK if args.quick else {})}, args)
    for name in ("minutes", "episodes"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    config = BenchDriveConfig(
        **sizes,
        demos=args.demos,
        sessions=args.sessions,
        recipe=args.recipe,
        changes=_recipe_changes(args.set),
        train_seed=args.train_seed,
        dagger_rounds=args.dagger_rounds,
        **({} if args.eval_seed_start is None else {"eval_seed_start": args.eval_seed_start}),
    )
    result = bench_drive(config, args.folder, log=None if args.json else _log)
    if args.quick:
        line = summary_line(result)
        print(json.dumps(line))
        verdict = compare_with_baseline(line) if _compares_with_baseline(config) else None
        if verdict:
            print(verdict, file=sys.stderr)
    else:
        print(json.dumps(result) if args.json else _bench_text(result))
    return 0


def _bench_text(r: dict) -> str:
    lines = [
        "bench drive (practice track, behaviour cloning from the expert):",
        f"  demonstrations ({r['config']['demos']}): {r['demo_minutes']} min of game time, {r['demo_frames']} frames in "
        f"{r['demo_files']} session files, recorded in {r['record_s']:.0f} s",
        f"  training: {r['epochs_done']} epochs in {r['train_s'] / 60:.1f} min (CPU, {r.get('train_samples_per_s')} "
        f"samples/s on this host), best loss {r['best_loss']}, "
        f"button thresholds {r['thresholds']}",
        f"  score: mean return {r['mean_return']:.1f}, min {r['min_return']:.1f}, {r['laps_finished']} laps on "
        f"{r['episodes']} unseen tracks "
        f"(expert on the same tracks: {r['expert_mean_return']:.1f}) in {r['eval_s']:.0f} s",
    ]
    if r.get("dagger"):
        for d in r["dagger"]:
            lines.append(f"  DAgger round {d['round']}: mean {d['mean_return']:.1f}, min {d['min_return']:.1f}, "
                         f"{d['laps_finished']} laps")
    met = r["mean_return"] >= 900 and r["min_return"] >= 700 and r["laps_finished"] >= 0.9 * r["episodes"]
    lines.append(f"  target: mean >= 900, min >= 700, 90% of laps -> {'met' if met else 'NOT met'}")
    return "\n".join(lines)
