"""Emulator commands: `kartstudio doctor`, `kartstudio macro`, `kartstudio testrom build`, `kartstudio bench emulator`, `kartstudio bench plugin`."""

from __future__ import annotations

import json

from kartstudio.cli.args import POSITIVE


def register(commands, bench) -> None:
    doc = commands.add_parser(
        "doctor", help="check the emulator, plugins, our input plugin, the display, your ROM and pads",
        description="Checks what playing Mario Kart 64 through KartStudio needs. Exit status: 0 when every "
                    "essential check passes, 1 when one fails (each failure prints a one-line fix).",
    )
    doc.add_argument("--rom", metavar="PATH", help="also check this ROM (default: $KARTSTUDIO_ROM)")
    doc.add_argument("--selftest", action="store_true",
                     help="also boot the test ROM through our plugin on a private Xvfb (about 2 s)")
    doc.add_argument("--json", action="store_true", help="print the checks as JSON")
    doc.set_defaults(func=cmd_doctor)

    mac = commands.add_parser(
        "macro", help="play the Mario Kart 64 boot macro step by step, saving a screenshot after each step (tuning)",
        description="Boots the ROM, plays the menu macro in lock-step and saves a PNG after every step, so you can "
                    "see where each press lands and adjust the frame counts in the JSON file. Then the game "
                    "keeps running (free-run) until you close its window or press Ctrl-C.",
    )
    mac.add_argument("--rom", required=True, metavar="PATH", help="your Mario Kart 64 ROM")
    mac.add_argument("--file", metavar="MACRO.json", help="the macro to play (default: the shipped mk64_vs_macro.json)")
    mac.add_argument("--shots", metavar="DIR", default="macro-shots", help="where to save the screenshots")
    mac.add_argument("--video", help="mupen64plus video plugin (default: the game's own, rice for Mario Kart 64)")
    mac.add_argument("--exit", action="store_true", help="stop the emulator when the macro is done")
    mac.set_defaults(func=cmd_macro)

    rom = commands.add_parser("testrom", help="KartStudio's own homebrew test ROM (to try the emulator path)")
    rom_commands = rom.add_subparsers(dest="testrom_command", required=True)
    build = rom_commands.add_parser(
        "build", help="build the test ROM into a file",
        description="Assembles KartStudio's homebrew test ROM (it shows what it reads from both controllers) "
                    "into FILE; choose it in the app with 'Choose ROM…' to try the emulator path without a "
                    "Mario Kart 64 cartridge dump. Needs binutils-mips-linux-gnu.")
    build.add_argument("-o", "--output", required=True, metavar="FILE", help="the ROM file to write (.z64)")
    build.set_defaults(func=cmd_testrom_build)

    emu = bench.add_parser("emulator", help="real mupen64plus + our plugin + the test ROM: startup, capture fps, "
                                            "input-to-screen latency, lock-step steps/s")
    emu.add_argument("--seconds", type=POSITIVE, default=3.0, help="length of each timed phase")
    emu.add_argument("--display", help="X display to use (default: a private Xvfb)")
    emu.add_argument("--json", action="store_true")
    emu.set_defaults(func=cmd_bench_emulator)

    plug = bench.add_parser("plugin", help="the real input plugin .so: GetKeys time, delivery latency, polls/s")
    plug.add_argument("--seconds", type=POSITIVE, default=2.0, help="length of each timed phase")
    plug.add_argument("--json", action="store_true")
    plug.set_defaults(func=cmd_bench_plugin)


def cmd_testrom_build(args) -> int:
    from kartstudio.emulator.rom import check_rom
    from kartstudio.emulator.testrom import write_test_rom

    path = write_test_rom(args.output)
    print(f"built {check_rom(path).describe()}")
    return 0


def cmd_doctor(args) -> int:
    from kartstudio.doctor import essential_ok, report, run_checks

    checks = run_checks(rom=args.rom, selftest=args.selftest)
    if args.json:
        print(json.dumps(report(checks), indent=2))
    else:
        for check in checks:
            print(check.line())
        failed = [c.name for c in checks if c.essential and not c.ok]
        print("ready to play" if not failed else f"not ready: fix {', '.join(failed)}")
    return 0 if essential_ok(checks) else 1


def cmd_macro(args) -> int:
    import time

    from kartstudio.emulator.backend import EmulatorBackend
    from kartstudio.emulator.macro import load_mk64_vs_macro, play_with_screenshots
    from kartstudio.emulator.rom import check_rom

    info = check_rom(args.rom)
    print(info.describe())
    macro = load_mk64_vs_macro(args.file)
    print(f"macro: {macro.name} ({len(macro.steps)} steps, {macro.length} polls)"
          + ("" if macro.verified else "  [not verified against the game]"))
    backend = EmulatorBackend(args.rom, video=args.video or "", macro=False)
    backend.start()
    try:
        saved = play_with_screenshots(backend, macro, args.shots)
        print(f"saved {len(saved)} screenshots in {args.shots}/")
        if args.exit:
            return 0
        print("the game is yours now: close the emulator window or press Ctrl-C to stop")
        while backend.running:
            time.sleep(0.5)
        reason = backend.exit_reason
        print(reason or "stopped")
        return 0
    finally:
        backend.stop()


def cmd_bench_emulator(args) -> int:
    from kartstudio.emulator.bench import bench_emulator

    r = bench_emulator(seconds=args.seconds, display=args.display)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    lat, w = r["input_to_screen_ms"], r["window"]
    print(f"mupen64plus + KartStudio input plugin + test ROM ({r['video_plugin']}, {r['display']}) on {r['machine']}")
    print(f"  startup (launch -> window pinned, first poll)  {r['startup_s']:.2f} s; window at "
          f"({w['x']},{w['y']}) {w['width']}x{w['height']}")
    print(f"  capture  {r['capture_fps']:.0f} grabs/s; game frames seen on screen {r['game_frames_seen_per_s']:.1f}/s;"
          f" polls {r['polls_per_s']:.1f}/s")
    if lat.get("n"):
        print(f"  input -> screen  p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms  ({lat['n']} states)")
    print(f"  lock-step (step + capture)  {r['lockstep_steps_per_s']:.1f} steps/s at the game's 60 Hz, "
          f"{r['lockstep_steps_per_s_no_speed_limit']:.1f} steps/s with --nospeedlimit")
    return 0


def _us(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def cmd_bench_plugin(args) -> int:
    from kartstudio.emulator.plugin_bench import bench_plugin

    r = bench_plugin(seconds=args.seconds)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    g, d, ls, a = r["getkeys_us"], r["delivery_us"], r["lockstep"], r["anchor_getkeys_us"]
    ok = {True: "met", False: "MISSED"}
    print(f"input plugin {r['plugin']} on {r['machine']}, driven in-process as mupen64plus-core drives it")
    print(f"  GetKeys (free-run)  p50 {_us(g['p50'])} us  p99 {_us(g['p99'])} us  max {_us(g['max'], 1)} us  ({g['n']} calls)"
          f"  target p99 <= 5 us: {ok[r['targets']['getkeys_p99_us<=5']]}")
    print(f"  anchor (HTTP GET per poll) p50 {a['p50']:.0f} us  p99 {a['p99']:.0f} us: "
          f"{r['speedup_vs_anchor']['p50']}x faster at p50, {r['speedup_vs_anchor']['p99']}x at p99")
    print(f"  delivery (send -> GetKeys returns it)  p50 {_us(d['p50'], 1)} us  p99 {_us(d['p99'], 1)} us  max {_us(d['max'], 0)} us"
          f"  ({d['n']} states, {d['not_seen']} not seen)  target p99 <= 50 us: {ok[r['targets']['delivery_p99_us<=50']]}")
    print(f"  polls/s (tight loop)  {r['polls_per_s']:,}")
    print(f"  lock-step  {ls['steps_per_s']:,} steps/s  step p50 {_us(ls['step_us']['p50'], 0)} us  p99 {_us(ls['step_us']['p99'], 0)} us"
          f"  exact reports {ls['steps_with_exact_reports']}/{ls['steps']}")
    s = r["plugin_stats"]
    print(f"  plugin counters: {s['polls']:,} polls, {s['messages_ok']:,} messages, {s['malformed_dropped']} malformed, "
          f"{s['unauthenticated_dropped']} unauthenticated, {s['reports_dropped']:,} poll reports dropped (reader behind)")
    return 0
