"""The `kartstudio` command. Thin: each area's module adds its subcommands; the engine does the work.

Every command module exposes ``register(commands, bench)``: ``commands`` is the top-level
subparsers object, ``bench`` the subparsers of ``kartstudio bench``. A command sets
``func=callable(args) -> int`` via ``set_defaults``. Engine modules are imported inside the
command functions so that ``kartstudio info`` does not pay for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from kartstudio import __version__
from kartstudio.cli.args import OneLineParser
from kartstudio.errors import KartStudioError

# One module per area; a module that is missing or fails to import must not break the others.
COMMAND_MODULES = [
    "kartstudio.cli.core",  # import, info, bench record
    "kartstudio.cli.training",  # train, import-model, bench train, bench infer
    "kartstudio.cli.practice",  # eval, dagger, bench drive
    "kartstudio.cli.emulator",  # doctor, bench plugin
    "kartstudio.cli.app",  # gui, install-desktop
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="kartstudio",
        description="Teach a neural network to drive Mario Kart 64 from your own play, then race it.",
    )
    parser.add_argument("--version", action="version", version=f"kartstudio {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = commands.add_parser("bench", help="measure recording, training, inference, driving, the plugin")
    bench = bench_parser.add_subparsers(dest="bench", metavar="WHAT", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that area is not part of this build
            raise
        module.register(commands, bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # No command: the double-click / plain `kartstudio` case opens the window.
        args = parser.parse_args([*(argv or []), "gui"])
    try:
        return int(args.func(args) or 0)
    except KartStudioError as exc:
        print(f"kartstudio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kartstudio: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`kartstudio info --json | head`): not an error worth a word.
        _silence_stdout()
        return 141
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if args.debug:
            traceback.print_exc()
        text = " ".join(str(exc).split())
        text = text if len(text) <= 200 else text[:197] + "..."
        print(f"kartstudio: unexpected error: {type(exc).__name__}: {text} -- this is a bug in KartStudio; "
              f"please report it with the output of the same command run with --debug", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's flush at exit does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
