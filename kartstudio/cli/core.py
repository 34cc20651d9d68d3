"""Core commands: import TensorKart data, inspect and check session files, benchmark the recorder."""

from __future__ import annotations

import json
from pathlib import Path

from kartstudio.cli.args import POSITIVE, number


def register(commands, bench) -> None:
    imp = commands.add_parser("import", help="import TensorKart recordings into session files")
    kinds = imp.add_subparsers(dest="kind", metavar="KIND", required=True)
    tk = kinds.add_parser("tensorkart", help="TensorKart recording folders (PNG screenshots + data.csv or joystick.csv), "
                                             "one session each")
    tk.add_argument("folders", nargs="+", metavar="DIR")
    tk.add_argument("-o", "--output", required=True, metavar="OUT.h5|FOLDER",
                    help="the session file for one recording folder; for several, a folder (made if missing) "
                         "that gets one <folder name>.h5 per recording")
    tk.add_argument("--seat", type=int, choices=(1, 2), default=None,
                    help="keep this half of a two-player split screen (default: the whole screen; "
                         "half-height frames are one seat as they are)")
    tk.add_argument("--skip-bad", action="store_true", help="skip bad rows and missing images (counted)")
    tk.add_argument("--fps", type=float, default=None,
                    help="samples per second recorded (default: the 2013 layout's 2; record.py folders: their image "
                         "files' times when plausible, else about 4, record.py's usual rate)")
    _codec_arguments(tk)
    tk.set_defaults(func=cmd_import_tensorkart)
    npy = kinds.add_parser("npy", help="TensorKart's prepared X.npy and y.npy")
    npy.add_argument("x", metavar="X.npy")
    npy.add_argument("y", metavar="Y.npy")
    npy.add_argument("-o", "--output", required=True, metavar="OUT.h5")
    npy.add_argument("--skip-bad", action="store_true", help="skip bad labels (counted)")
    npy.add_argument("--fps", type=float, default=None,
                     help="samples per second recorded (default 4: record.py's usual rate; X.npy keeps no times)")
    _codec_arguments(npy)
    npy.set_defaults(func=cmd_import_npy)

    info = commands.add_parser("info", help="show what session files hold")
    info.add_argument("files", nargs="+", metavar="FILE")
    info.add_argument("--json", action="store_true", help="one JSON object per file, in a list")
    info.set_defaults(func=cmd_info)

    check = commands.add_parser(
        "check", help="say what a model trained on these sessions will lack (steering, buttons, idle, repeats)",
        description="Check session files (and folders of them) for what a model trained on them will lack: "
                    "one-sided or dead steering, buttons never or always pressed, long stretches without gas, "
                    "repeated frames, too little data for the recipe, mixed whole-screen and seat sessions, "
                    "and files that do not open. One line per finding, with its figure and what to do.",
        epilog="exit status: 0 nothing found; 1 findings (warnings: training still runs, but the model will "
               "lack what they say); 2 a file or folder could not be read (the rest are still checked)")
    check.add_argument("paths", nargs="+", metavar="SESSION_OR_FOLDER")
    check.add_argument("--recipe", default="default", metavar="NAME",
                       help="the training recipe to judge the amount of data by (default: default)")
    check.add_argument("--json", action="store_true", help="the report as one JSON object")
    check.set_defaults(func=cmd_check)

    rec = bench.add_parser("record", help="two seats from a synthetic 30 fps source through the real recorder")
    rec.add_argument("--seconds", type=POSITIVE, default=60.0)
    rec.add_argument("--fps", type=number(above=0, high=1000), default=30.0)
    rec.add_argument("--folder", default=None, help="where to write (default: a temporary folder, removed after)")
    rec.add_argument("--images", metavar="DIR", help="use the PNG screenshots in DIR (e.g. a TensorKart recording) as the game")
    rec.add_argument("--codec", choices=("lossless", "jpeg"), default="lossless", help="the codec the recorder runs with")
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(func=cmd_bench_record)

    bim = bench.add_parser("import", help="TensorKart folder import speed (800x600 PNGs, target 100 frames/s)")
    bim.add_argument("--frames", type=int, default=400, help="generated screenshots (default 400)")
    bim.add_argument("--images", metavar="DIR", help="import this TensorKart recording instead of generated screenshots")
    bim.add_argument("--codec", choices=("lossless", "jpeg"), default="lossless")
    bim.add_argument("--folder", help="where to write (default: a temporary folder, removed after)")
    bim.add_argument("--json", action="store_true")
    bim.set_defaults(func=cmd_bench_import)


def _codec_arguments(parser) -> None:
    parser.add_argument("--codec", choices=("lossless", "jpeg"), default="lossless",
                        help="how frames are stored: lossless (default) or jpeg (about 3x smaller)")
    parser.add_argument("--quality", type=int, default=90, metavar="Q", help="JPEG quality 1..100 (default 90)")


def _check_codec(args) -> None:
    from kartstudio.errors import KartStudioError

    if not 1 <= args.quality <= 100:
        raise KartStudioError(f"--quality {args.quality} is out of range; use 1..100 (90 is the default)")


def _print_import(reports) -> int:
    from kartstudio.formatting import human_duration
    from kartstudio.session import open_session

    for report in reports if isinstance(reports, list) else [reports]:
        numbers = ""
        if report.first_number is not None and report.source is not None and report.source.is_dir():
            numbers = f" (numbered {report.first_number}..{report.last_number})"
        print(f"wrote {report.path}: {report.frames} frames{numbers}", end="")
        print(f", skipped {report.skipped_rows} bad row{'s' if report.skipped_rows > 1 else ''}" if report.skipped_rows else "",
              end="")
        print(f", {report.unused_rows} rows outside info.txt's usable range" if report.unused_rows else "", end="")
        print(f", {report.header_lines} header line skipped" if report.header_lines else "")
        with open_session(report.path) as s:
            h, w = s.meta.storage_size
            where = "whole screen" if s.layout == "whole" else f"seat {s.meta.seat}"
            print(f"  {where}, stored at {w}x{h}, {s.codec}")
        hint = "; give --fps if you know the rate" if report.timing_source == "default" else ""
        print(f"  timing: {report.timing}{hint}; {report.duration:.1f} s ({human_duration(report.duration)})")
        if report.gap_count:
            shown = ", ".join(f"{a} -> {b}" for a, b in report.gaps[:5])
            more = f" and {report.gap_count - 5} more" if report.gap_count > 5 else ""
            print(f"  {report.gap_count} gap{'s' if report.gap_count > 1 else ''} in the frame numbers ({shown}{more}): "
                  "training's frame history never stacks across one")
        if report.note:
            print(f"  {report.note}")
        for line in report.skipped[:20]:
            print(f"  skipped {line}")
        if report.skipped_rows > 20:
            print(f"  ... and {report.skipped_rows - 20} more (the session keeps the reasons: kartstudio info --json)")
    _print_check([r.path for r in (reports if isinstance(reports, list) else [reports])])  # issue 21 item 7
    return 0


def _progress():
    """A progress line on a terminal (none when the output is not one)."""
    import sys

    if not sys.stderr.isatty():
        return None
    last = [-1]

    def show(done: int, total: int) -> None:
        percent = int(100 * done / max(1, total))
        if percent != last[0]:
            last[0] = percent
            sys.stderr.write(f"\rimporting: {done}/{total} rows ({percent}%)" + ("\n" if done >= total else ""))
            sys.stderr.flush()

    return show


def cmd_import_tensorkart(args) -> int:
    from kartstudio.importers import import_tensorkart_folders

    _check_codec(args)
    return _print_import(import_tensorkart_folders(
        args.folders, args.output, skip_bad=args.skip_bad, seat=args.seat, fps=args.fps, codec=args.codec,
        jpeg_quality=args.quality, progress=_progress(),
    ))


def cmd_import_npy(args) -> int:
    from kartstudio.importers import import_tensorkart_arrays

    _check_codec(args)
    return _print_import(import_tensorkart_arrays(
        args.x, args.y, args.output, skip_bad=args.skip_bad, fps=args.fps, codec=args.codec,
        jpeg_quality=args.quality, progress=_progress(),
    ))


def cmd_info(args) -> int:
    """Every readable file is shown; each unreadable one gets one line on stderr (exit status 2)."""
    import sys

    from kartstudio.errors import KartStudioError
    from kartstudio.formatting import human_size
    from kartstudio.importers import import_notes
    from kartstudio.session import find_sessions, open_session

    infos, failed = [], []
    for name in args.files:
        try:
            paths = find_sessions([name])
        except KartStudioError as exc:
            failed.append(str(exc))
            continue
        for path in paths:
            try:
                with open_session(path) as s:
                    infos.append(s.info())
                    infos[-1]["repeated_frames"] = _repeated_frames(s)
                    infos[-1]["import"] = import_notes(s.meta.extra)
                if infos[-1].get("cut_short_note"):  # shown, and named on stderr: the exit status says it
                    failed.append(infos[-1]["cut_short_note"])
            except KartStudioError as exc:
                failed.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - e.g. a chunk that does not decompress: one line, go on
                failed.append(f"{path} cannot be read ({type(exc).__name__}: {_short(str(exc))}); re-record or delete it")
    if args.json:
        print(json.dumps(infos, indent=2, allow_nan=False))  # strict JSON: an unknown number is null
    else:
        for i in infos:
            excluded = f" ({i['excluded_frames']} excluded)" if i["excluded_frames"] else ""
            if i.get("cut_short"):
                state = (f"  [cut short: {i['frames_recovered']} of {i['frames_claimed']} frames recovered]"
                         if i["frames_recovered"] < i["frames_claimed"] else "  [cut short: every frame recovered]")
            else:
                state = "" if i["complete"] else "  [not closed cleanly: holds frames up to its last flush]"
            duration = "unknown duration" if i["duration_s"] is None else f"{i['duration_s']:.1f} s"
            fps = "? fps" if i["fps"] is None else f"{i['fps']:.1f} fps"
            view = "whole screen" if i["layout"] == "whole" else f"seat {i['seat']}"
            print(
                f"{i['path']}\n  {view}  game {_short(i['game'])}  track {_short(i['track'])}"
                f"  kind {i['kind']}  format v{i['format_version']}{state}\n"
                f"  {i['frames']} frames{excluded}  {duration}  {fps}"
                f"  stored at {i['storage_size'][1]}x{i['storage_size'][0]}"
                f"  {i['codec']}"
                f"  {human_size(i['bytes_on_disk'])} on disk  {human_size(i['bytes_per_frame'] or 0)}/frame"
            )
            notes = i["import"]
            if notes:
                if notes["timing"]:
                    print(f"  imported; timing: {notes['timing']}")
                if notes["gaps"]:
                    print(f"  {notes['gaps']} gap{'s' if notes['gaps'] > 1 else ''} in the frame numbers "
                          "(rows left out of the recording): training's frame history never stacks across one")
                if notes["skipped_rows"]:
                    print(f"  {notes['skipped_rows']} bad row{'s' if notes['skipped_rows'] > 1 else ''} skipped on import:")
                    for line in notes["skipped"][:10]:
                        print(f"    {_short(line, 200)}")
                    if notes["skipped_rows"] > min(10, len(notes["skipped"])):
                        print(f"    ... {notes['skipped_rows'] - min(10, len(notes['skipped']))} more "
                              f"({len(notes['skipped'])} reasons kept: kartstudio info --json)")
            if i["repeated_frames"]:
                print(f"  {i['repeated_frames']} frames repeat an earlier frame number: the same game frame "
                      "recorded again (emulator sessions from before one frame per game frame); training counts "
                      "each of them again")
    sys.stdout.flush()
    for line in failed:
        print(f"kartstudio: error: {line}", file=sys.stderr)
    return 2 if failed else 0


def cmd_check(args) -> int:
    """The data check: 0 nothing found, 1 findings, 2 something could not be read."""
    from kartstudio.datacheck import check_sessions
    from kartstudio.training.recipe import recipe

    report = check_sessions(args.paths, recipe=recipe(args.recipe))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, allow_nan=False))
    else:
        for finding in report.findings:
            print(finding.message)
        print(report.summary())
    return 2 if report.unreadable else 1 if report.findings else 0


def _print_check(paths) -> None:
    """After an import: the data check's findings for the sessions written (warnings: the import worked)."""
    from kartstudio.datacheck import check_sessions

    report = check_sessions(paths)
    if not report.findings:
        print("data check: nothing found")
        return
    print("data check (run `kartstudio check` on these with your other sessions to judge them together):")
    for finding in report.findings:
        print(f"  {finding.message}")


def _repeated_frames(session) -> int:
    """Frames whose frame number an earlier frame of the session has too (older emulator sessions
    recorded a game frame once per grab when the game ran slower than the capture)."""
    import numpy as np

    numbers = np.asarray(session.frame_numbers[: len(session)])
    return int(len(numbers) - len(np.unique(numbers)))


def _short(text: str, limit: int = 80) -> str:
    """One line of at most `limit` characters (file attributes can hold anything)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cmd_bench_record(args) -> int:
    from kartstudio.bench.record import bench_record

    result = bench_record(
        seconds=args.seconds, fps=args.fps, folder=Path(args.folder) if args.folder else None,
        images_from=Path(args.images) if args.images else None, codec=args.codec,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for seat, r in result["seats"].items():
        print(f"seat {seat}: {r['fps']:.2f} fps achieved, {r['written']} written, {r['dropped']} dropped")
    print(f"CPU: {result['cpu_seconds_per_second']:.2f} CPU seconds per recorded second (cores busy)")
    print(f"stored frame ({result['codec']}): {result['kb_per_frame']:.1f} KiB; TensorKart layout for the same frames:"
          f" {result['tensorkart_kb_per_frame']:.1f} KiB -> {result['disk_ratio_vs_tensorkart']:.1f}x smaller")
    for codec, c in result["codecs"].items():
        quality = f" q{c['quality']}" if "quality" in c else ""
        psnr = "exact" if c["psnr_db"] is None else f"PSNR {c['psnr_db']:.1f} dB"
        print(f"  {codec}{quality}: {c['kb_per_frame']:.1f} KiB per seat frame, {c['ratio_vs_tensorkart']:.1f}x smaller than"
              f" TensorKart's layout, {psnr}, encode {c['encode_ms']:.2f} ms, decode {c['decode_ms']:.2f} ms")
    print(f"source: {result['source']}; machine: {result['machine']}")
    return 0


def cmd_bench_import(args) -> int:
    from kartstudio.bench.importing import bench_import
    from kartstudio.errors import KartStudioError

    if args.frames < 1:
        raise KartStudioError(f"--frames {args.frames}: give at least 1 frame")
    if args.images and not Path(args.images).is_dir():
        raise KartStudioError(f"--images {args.images}: no such folder")
    r = bench_import(args.frames, Path(args.images) if args.images else None, args.codec,
                     Path(args.folder) if args.folder else None)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"source: {r['source']}, {r['screenshot'][0]}x{r['screenshot'][1]}, {r['kb_per_png']:.0f} KiB per PNG")
    print(f"imported {r['frames']} frames in {r['seconds']:.2f} s: {r['frames_per_s']:.1f} frames/s"
          f" (target >= {r['target_frames_per_s']}) with {r['workers']} worker threads;"
          f" {r['cpu_seconds_per_frame_ms']:.1f} ms CPU per frame")
    print(f"stored: {r['layout']} screen, {r['codec']}, {r['kb_per_frame']:.1f} KiB per frame; machine: {r['machine']}")
    return 0
