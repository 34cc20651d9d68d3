"""App commands: `gui` (the window, or a screenshot of it), `install-desktop`, `bench gui`."""

from __future__ import annotations

import json

from kartstudio.cli.args import POSITIVE


def register(commands, bench) -> None:
    gui = commands.add_parser("gui", help="open the KartStudio window (the default command)")
    gui.add_argument("--screenshot", metavar="PATH", help="render the window after start-up to a PNG and exit")
    gui.set_defaults(func=cmd_gui)

    desk = commands.add_parser("install-desktop", help="add KartStudio to your desktop's application menu")
    desk.add_argument("--prefix", metavar="DIR", help="instead of ~/.local/share (for packaging and tests)")
    desk.set_defaults(func=cmd_install_desktop)

    b = bench.add_parser("gui", help="event-loop stalls of the window while recording and while training")
    b.add_argument("--seconds", type=POSITIVE, default=10.0, help="length of each phase (default 10)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--rom", metavar="ROM", help="record from mupen64plus with this ROM instead of the practice track")
    b.add_argument("--video", default=None, metavar="PLUGIN", help="video plugin for --rom (default: the settings')")
    b.add_argument("--binary", metavar="PATH", help="also check that a PyInstaller-built kartstudio binary starts")
    b.set_defaults(func=cmd_bench_gui)


def cmd_gui(args) -> int:
    from kartstudio.gui.app import run

    return run(screenshot=args.screenshot)


def cmd_install_desktop(args) -> int:
    from kartstudio.gui.desktop import install_desktop

    for path in install_desktop(args.prefix):
        print(f"installed {path}")
    return 0


def cmd_bench_gui(args) -> int:
    from kartstudio.gui.bench import bench_gui

    result = bench_gui(seconds=args.seconds, binary=args.binary, rom=args.rom, video=args.video)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, phase in result["phases"].items():
        if "skipped" in phase:
            print(f"{name}: skipped ({phase['skipped']})")
            continue
        verdict = "meets" if phase["stall_p99_ms"] <= result["target_p99_ms"] else "MISSES"
        print(f"{name}: event-loop stall p50 {phase['stall_p50_ms']:.1f} ms, p99 {phase['stall_p99_ms']:.1f} ms,"
              f" max {phase['stall_max_ms']:.1f} ms over {phase['ticks']} ticks ({verdict} the"
              f" {result['target_p99_ms']} ms p99 target); {phase['detail']}")
    if "binary" in result:
        print(f"binary: {result['binary']}")
    print(f"machine: {result['machine']}")
    return 0
