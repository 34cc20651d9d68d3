"""Argument types that refuse nonsense at the command line: one line, exit status 2.

argparse turns the ArgumentTypeError these raise into ``kartstudio: error: argument --x: ...``.
"""

from __future__ import annotations

import argparse
import math


def whole(low: int | None = None, high: int | None = None):
    """A whole number from low to high (either end open when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        _check_range(text, value, low, high)
        return value

    parse.__name__ = "whole number"  # what argparse names in its own messages
    return parse


def number(low: float | None = None, high: float | None = None, above: float | None = None):
    """A finite number from low to high; `above`: strictly greater than this."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"{text} must be more than {above:g}")
        _check_range(text, value, low, high)
        return value

    parse.__name__ = "number"
    return parse


def _check_range(text: str, value: float, low, high) -> None:
    if low is not None and value < low:
        raise argparse.ArgumentTypeError(f"{text} must be at least {low:g}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"{text} must be at most {high:g}")


SEED = whole(0, 2**32 - 1)  # numpy's and TensorFlow's seeds are unsigned 32-bit
POSITIVE = number(above=0)
COUNT = whole(1)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the usage is one --help away)."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")
