"""Numbers as people read them, shared by the CLI and the GUI. Sizes are binary and say so (KiB, MiB, GiB)."""

MAX_DURATION_S = 366 * 24 * 3600.0  # longer than any recording: a duration beyond it is damage, shown as unknown


def human_size(n: float) -> str:
    """Bytes in binary units, labelled as such (1 KiB = 1024 bytes): every size KartStudio shows people."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(seconds: float | None) -> str:
    """h:mm:ss or m:ss; "unknown" for None or anything that is not a plausible number of seconds
    (NaN, infinite, negative, over a year), so a damaged file's duration never stops a listing."""
    try:
        seconds = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return "unknown"
    if -1 < seconds < 0:  # a countdown a moment past zero
        seconds = 0.0
    if not (0 <= seconds <= MAX_DURATION_S):  # also False for NaN
        return "unknown"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
