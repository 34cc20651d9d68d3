"""The data check: what a model trained on these sessions will lack, before hours go into training.

    from kartstudio.datacheck import check_sessions
    report = check_sessions(["sessions/"])          # files and folders, as `kartstudio check` takes them
    for finding in report.findings:
        print(finding.message)                       # one line: the figure and what to do

Each finding is one line with its figure and what to do: one-sided or dead steering, a button
never or always pressed, long stretches without gas, frames that repeat the one before, too little
data for the recipe, a mix of whole-screen and seat sessions (training refuses it), and every file
that does not open (the rest are still checked). It reads the labels and metadata in bulk and never
decodes every frame: repeated frames are found from the stored frames' sizes in HDF5's chunk index
(identical pixels compress to identical bytes), and a sample of the candidates is compared byte
for byte (JPEG: decoded). An hour of sessions takes well under a second (README, Measured).

Only the frames training uses are judged: excluded (trimmed) ranges are left out.
No Qt here: `kartstudio check` prints the report, the Datasets tab shows it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from kartstudio.errors import KartStudioError
from kartstudio.session import SUFFIX, Session

# -- thresholds (one place; the messages quote them) ----------------------------------------------
STRAIGHT = 0.02  # |stick x| at most this is "not steering" (the colinkirby fork zeroed x below 0.02)
RARE_SIDE = 0.01  # one steering side on fewer than 1% of the frames: the model barely learns that turn
DEAD_SHARE = 0.99  # the stick within ±STRAIGHT on 99% of the frames or more: the steering is dead
PRESSED = 0.5  # a button label at least this is a press (what the pilot's default threshold reads)
RARE_PRESS = 0.001  # a button on fewer than 0.1% of the frames is "almost never" pressed; more than 99.9% "always"
STILL_S = 5.0  # no gas for this long or longer is a stretch standing still (a race's countdown is ~4 s)
REPEAT_SHARE = 0.01  # frames repeating the one before on 1% of a session's frames or more ...
REPEAT_MIN = 10  # ... and at least this many
MIN_FRAMES = 5000  # fewer is little for a driving network: the smallest set that drove well in
#                    docs/practice.md is 5 min of expert demonstrations (7,500 frames)
VERIFY_BYTES = 32 << 20  # stored bytes read per session to compare candidate repeats (lossless)
VERIFY_PIXELS = 20_000_000  # pixels decoded per session to compare candidate repeats (JPEG: ~0.3 s)
SAMPLE_PAIRS = 60  # frame pairs decoded per session whose frames are not one per chunk

# What each label column is, and what a model that never sees it pressed will not do.
BUTTONS = {  # name: (actions column, what it does)
    "A": (2, "gas"),
    "B": (3, "brake"),
    "R": (4, "hop/drift"),
}
HELD_ALL_RACE = {"A"}  # buttons people hold on every frame of a race (gas): "always pressed" is no finding
# The games whose drivers use R (the practice track and Raceway know only gas and brake).
R_GAMES = ("mk64", "tensorkart")

KINDS = ("unreadable", "mixed-layouts", "too-little-data", "dead-steering", "one-sided-steering",
         "button-never", "button-always", "standing-still", "repeated-frames")


@dataclass
class Finding:
    """One thing a model trained on the sessions will lack: `message` is the line shown."""

    kind: str  # one of KINDS
    message: str
    session: str | None = None  # the file it is about; None: the sessions together
    figures: dict = field(default_factory=dict)  # the numbers behind the message (for --json)


@dataclass
class CheckReport:
    """What check_sessions found."""

    sessions: list[str] = field(default_factory=list)  # the files that opened and were checked
    frames: int = 0  # frames training would use (included frames of every session checked)
    seconds_of_play: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    elapsed_s: float = 0.0  # how long the check took

    @property
    def unreadable(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "unreadable"]

    def to_json(self) -> dict:
        return {
            "sessions": list(self.sessions),
            "frames": int(self.frames),
            "seconds_of_play": round(float(self.seconds_of_play), 1),
            "elapsed_s": round(float(self.elapsed_s), 3),
            "findings": [asdict(f) for f in self.findings],
        }

    def summary(self) -> str:
        """One line: what was checked and how much was found."""
        what = (f"{len(self.sessions)} session{'s' if len(self.sessions) != 1 else ''}, "
                f"{self.frames:,} frames ({_minutes(self.seconds_of_play)})")
        unread = len(self.unreadable)
        other = len(self.findings) - unread
        found = "nothing found" if not self.findings else ", ".join(
            part for part in (f"{other} finding{'s' if other != 1 else ''}" if other else "",
                              f"{unread} unreadable" if unread else "") if part)
        return f"checked {what} in {self.elapsed_s:.1f} s: {found}"


@dataclass
class _Labels:
    """What one session contributes: its included frames' labels and where they come from."""

    path: Path
    layout: str
    game: str
    actions: np.ndarray  # (k, 5) of the included frames
    keep: np.ndarray  # (k,) their indices in the file
    frames: int  # frames in the file
    seconds_per_frame: float
    seconds: float


def check_sessions(paths: Iterable[str | Path], recipe=None,
                   progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Check the session files among `paths` (files, and folders searched for *.h5).

    `recipe`: a kartstudio.training.recipe.Recipe (default: the default recipe) for what training
    needs. `progress(done, total)` is called after each file; it may raise to stop the check (the
    Datasets tab raises Cancelled). A path that does not exist and a file that does not open are
    findings of kind "unreadable", one each; the rest are still checked."""
    start = time.monotonic()
    if recipe is None:
        from kartstudio.training.recipe import DEFAULT_RECIPE

        recipe = DEFAULT_RECIPE
    report = CheckReport()
    files = _session_files(paths, report)
    sessions: list[_Labels] = []
    for done, path in enumerate(files, 1):
        try:
            with Session(path) as s:
                labels, repeated = _read(s)
            sessions.append(labels)
            report.sessions.append(str(path))
            if repeated is not None:
                report.findings.append(repeated)
        except KartStudioError as exc:
            report.findings.append(Finding("unreadable", _one_line(str(exc)), str(path)))
        except Exception as exc:  # noqa: BLE001 - damage the session checks did not foresee: one line, go on
            report.findings.append(Finding(
                "unreadable", f"{path} cannot be read ({type(exc).__name__}: {_one_line(str(exc), 80)}); "
                "re-record or delete it", str(path)))
        if progress is not None:
            progress(done, len(files))
    for labels in sessions:
        still = _standing_still(labels)
        if still is not None:
            report.findings.append(still)
    report.frames = sum(len(s.actions) for s in sessions)
    report.seconds_of_play = sum(s.seconds for s in sessions)
    if sessions:
        report.findings.extend(_together(sessions, recipe, report.frames, report.seconds_of_play))
    order = {kind: i for i, kind in enumerate(KINDS)}
    report.findings.sort(key=lambda f: order.get(f.kind, len(KINDS)))  # stable: files keep their order
    report.elapsed_s = time.monotonic() - start
    return report


def check_lines(report: CheckReport) -> list[str]:
    """The findings as the CLI prints them: one line each."""
    return [f.message for f in report.findings]


# -- reading ---------------------------------------------------------------------------------------


def _session_files(paths: Iterable[str | Path], report: CheckReport) -> list[Path]:
    """Files as given, folders searched for *.h5 (empty files there skipped: a name reserved by a
    recording that is just starting); a path that does not exist is an unreadable finding."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            try:
                found = sorted(q for q in p.rglob(f"*{SUFFIX}") if q.is_file())
            except OSError as exc:
                report.findings.append(Finding("unreadable", f"{p} cannot be searched ({exc.strerror or exc}); "
                                               "check its permissions", str(p)))
                continue
            files.extend(q for q in found if _size(q) != 0)
        elif p.exists():
            files.append(p)
        else:
            report.findings.append(Finding("unreadable", f"{p}: no such file or folder; check the path", str(p)))
    unique: dict[str, Path] = {}
    for f in files:
        unique.setdefault(str(f.resolve()), f)
    return list(unique.values())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _read(s: Session) -> tuple[_Labels, Finding | None]:
    """One session's included labels (read in bulk) and its repeated-frames finding, if any."""
    n = len(s)
    keep = s.included_indices()
    actions = np.asarray(s.actions[:n], np.float32)[keep] if n else np.zeros((0, 5), np.float32)
    # game time: frames at the session's own rate (a practice recording runs faster than real time,
    # an import's stamps are its rows' numbers over that rate)
    per_frame = 1.0 / s.meta.fps
    labels = _Labels(s.path, s.meta.layout, s.meta.game, actions, keep, n, per_frame, len(keep) * per_frame)
    return labels, _repeated_frames(s, keep)


# -- one session -------------------------------------------------------------------------------------


def _repeated_frames(s: Session, keep: np.ndarray) -> Finding | None:
    """Included frames that repeat the frame before them: the same pixels (a frozen capture, a
    paused game) or the same game frame number (the same game frame recorded again)."""
    n = len(s)
    if len(keep) < 2:
        return None
    included = np.zeros(n, bool)
    included[keep] = True
    pair = included[1:] & included[:-1]  # frame i+1 and the frame before it are both trained on
    numbers = np.asarray(s.frame_numbers[:n])
    same_number = int(np.count_nonzero((numbers[1:] == numbers[:-1]) & pair))
    same_pixels, how = _same_pixels(s, pair)
    count = max(same_number, same_pixels)
    if count < max(REPEAT_MIN, REPEAT_SHARE * len(keep)):
        return None
    share = count / len(keep)
    why = ("the same game frame number" if same_number >= same_pixels
           else "the same picture: a frozen capture or a paused game")
    about = "" if how == "exact" else "about "
    return Finding(
        "repeated-frames",
        f"{s.path.name}: {about}{count:,} of {len(keep):,} frames ({share:.0%}) repeat the frame before them "
        f"({why}): the model sees the same picture with whatever labels came with it and weighs those "
        "moments more; exclude those stretches in the Datasets tab or re-record",
        str(s.path),
        {"repeated": count, "frames": len(keep), "same_pixels": same_pixels, "same_frame_number": same_number,
         "pixels_compared": how},
    )


def _same_pixels(s: Session, pair: np.ndarray) -> tuple[int, str]:
    """How many frames i+1 (where pair[i]) hold the same pixels as frame i, and how it was found:
    "exact" (every candidate compared), "estimated" (a sample of them) or "sampled" (frames decoded)."""
    try:
        sizes = _stored_sizes(s)
    except Exception:  # noqa: BLE001 - an index that cannot be walked: decode a sample instead
        sizes = None
    if sizes is None:
        return _sampled_pairs(s, pair)
    candidates = np.flatnonzero((sizes[1:] == sizes[:-1]) & (sizes[1:] > 0) & pair)  # frame k+1 vs k
    if not len(candidates):
        return 0, "exact"
    if s.codec == "jpeg":
        limit = VERIFY_PIXELS // (2 * int(np.prod(s.frame_shape)))
    else:
        limit = VERIFY_BYTES // max(1, 2 * int(sizes[candidates].mean()))
    limit = max(limit, 50)
    picked = candidates if len(candidates) <= limit else candidates[np.linspace(0, len(candidates) - 1, limit).astype(int)]
    compare = _Comparer(s)
    same = sum(compare(int(k), int(k) + 1) for k in picked)
    if len(picked) == len(candidates):
        return same, "exact"
    return int(round(len(candidates) * same / len(picked))), "estimated"


def _stored_sizes(s: Session) -> np.ndarray | None:
    """Stored bytes of each frame, from HDF5's chunk index (lossless: one frame per chunk) or the
    JPEG descriptors (16 bytes a frame, in chunks of 64): no frame is read. None for a layout
    this does not know (a hand-made file): then frames are sampled."""
    ds, n = s.frames, len(s)
    sizes = np.zeros(n, np.int64)
    if s.codec == "jpeg":
        rows = ds.chunks[0] if ds.chunks else 0
        if not rows or ds.compression is not None:
            return None
        for start in range(0, n, rows):
            _mask, data = ds.id.read_direct_chunk((start,))
            lengths = np.frombuffer(bytes(data), np.uint8)
            count = min(rows, n - start, len(lengths) // 16)
            lengths = lengths[: count * 16].reshape(count, 16)[:, :4].copy().view("<u4")[:, 0]
            sizes[start:start + count] = lengths
        return sizes
    if ds.chunks != (1, *s.frame_shape):
        return None

    def visit(info) -> None:
        i = info.chunk_offset[0]
        if i < n:
            sizes[i] = info.size

    ds.id.chunk_iter(visit)
    return sizes


class _Comparer:
    """Whether frames i and j hold the same pixels: their stored bytes (lossless), or decoded (JPEG:
    an encoder may vary).
    The last frame read is kept, so a frozen stretch (k vs k+1, k+1 vs k+2, ...) reads each frame once."""

    def __init__(self, s: Session, decode: bool = False) -> None:
        self.s = s
        self.decode = decode or s.codec == "jpeg"  # frames decoded (any layout), or their chunks compared
        self.last: tuple[int, object] | None = None

    def _get(self, i: int):
        if self.last is not None and self.last[0] == i:
            return self.last[1]
        if self.decode:
            value = self.s.frame(i)
        else:
            mask, data = self.s.frames.id.read_direct_chunk((i, 0, 0, 0))
            value = (mask, bytes(data))
        self.last = (i, value)
        return value

    def __call__(self, i: int, j: int) -> bool:
        try:
            a = self._get(i)
            b = self._get(j)
            if self.decode:
                return bool(np.array_equal(a, b))
            return a == b  # one writer per session, and deflate is deterministic: other bytes, other pixels
        except Exception:  # noqa: BLE001 - a frame that cannot be read is not counted as a repeat
            return False


def _sampled_pairs(s: Session, pair: np.ndarray) -> tuple[int, str]:
    """Decode SAMPLE_PAIRS pairs spread over the session; the share found, scaled to every pair."""
    ks = np.flatnonzero(pair)
    if not len(ks):
        return 0, "exact"
    picked = ks if len(ks) <= SAMPLE_PAIRS else ks[np.linspace(0, len(ks) - 1, SAMPLE_PAIRS).astype(int)]
    compare = _Comparer(s, decode=True)
    same = sum(compare(int(k), int(k) + 1) for k in picked)
    return int(round(len(ks) * same / len(picked))), ("exact" if len(picked) == len(ks) else "sampled")


def _standing_still(labels: _Labels) -> Finding | None:
    """Stretches of STILL_S seconds or more without gas (A): on the grid, paused, in a menu.
    Excluded frames break a stretch (training never sees them)."""
    gas = labels.actions[:, 2] >= PRESSED
    if not len(gas) or not gas.any():
        return None  # a session never pressing the gas: the button finding says it for all of them
    idle = np.zeros(labels.frames + 2, np.int8)
    idle[labels.keep[~gas] + 1] = 1
    edges = np.flatnonzero(np.diff(idle))
    starts, stops = edges[0::2], edges[1::2]  # [start, stop) in the file's frames
    long = (stops - starts) * labels.seconds_per_frame >= STILL_S
    if not long.any():
        return None
    starts, stops = starts[long], stops[long]
    frames = int((stops - starts).sum())
    seconds = frames * labels.seconds_per_frame
    share = frames / len(gas)
    k = int(np.argmax(stops - starts))
    # frames numbered as the Datasets tab shows them (from 1)
    longest = (f"the longest {(stops[k] - starts[k]) * labels.seconds_per_frame:.0f} s, "
               f"frames {starts[k] + 1:,}-{stops[k]:,}")
    count = len(starts)
    return Finding(
        "standing-still",
        f"{labels.path.name}: {count} stretch{'es' if count != 1 else ''} of {STILL_S:g} s or more without gas "
        f"({seconds:.0f} s in all, {share:.0%} of its frames; {longest}): the model learns to stand still; "
        "exclude them in the Datasets tab",
        str(labels.path),
        {"stretches": count, "frames": frames, "seconds": round(seconds, 1), "share": round(share, 4),
         "ranges": [[int(a), int(b)] for a, b in zip(starts, stops)][:100]},
    )


# -- the sessions together -----------------------------------------------------------------------------


def _together(sessions: Sequence[_Labels], recipe, frames: int, seconds: float) -> list[Finding]:
    out: list[Finding] = []
    layouts: dict[str, list[str]] = {}
    for s in sessions:
        layouts.setdefault(s.layout, []).append(s.path.name)
    if len(layouts) > 1:
        out.append(Finding(
            "mixed-layouts",
            f"these sessions mix whole-screen recordings ({_few(layouts.get('whole', []))}) and one seat's view of "
            f"a split screen ({_few(layouts.get('seat', []))}): training refuses the mix, since a model learns "
            "one view; check and train each group on its own",
            None, {layout: len(names) for layout, names in layouts.items()}))
    out.extend(_too_little(recipe, frames, seconds))
    actions = np.concatenate([s.actions for s in sessions]) if frames else np.zeros((0, 5), np.float32)
    if not len(actions):
        return out
    out.extend(_steering(actions[:, 0], recipe))
    games = {s.game for s in sessions}
    for name, (column, job) in BUTTONS.items():
        if name == "R" and not games & set(R_GAMES):
            continue  # the practice track and Raceway have no hop
        out.extend(_button(name, job, actions[:, column] >= PRESSED))
    return out


def _too_little(recipe, frames: int, seconds: float) -> list[Finding]:
    batch = int(getattr(recipe, "batch_size", 1) or 1)
    held = float(getattr(recipe, "val_fraction", 0.0) or 0.0)
    figures = {"frames": frames, "batch_size": batch, "minimum": MIN_FRAMES}
    if frames < batch:
        return [Finding(
            "too-little-data",
            f"{frames:,} frames in all, fewer than one batch of the recipe ({batch}): training cannot take a "
            f"single step; record at least {MIN_FRAMES:,} frames", None, figures)]
    if frames < MIN_FRAMES:
        kept = f", {1 - held:.0%} of them trained on" if held > 0 else ""
        return [Finding(
            "too-little-data",
            f"{frames:,} frames in all ({_minutes(seconds)}{kept}): little for a driving network, which will "
            f"learn these laps by heart rather than to drive; record at least {MIN_FRAMES:,} frames",
            None, figures)]
    return []


def _steering(x: np.ndarray, recipe) -> list[Finding]:
    n = len(x)
    left, right = int(np.count_nonzero(x < -STRAIGHT)), int(np.count_nonzero(x > STRAIGHT))
    centre = n - left - right
    figures = {"frames": n, "left": left, "right": right, "straight": centre, "threshold": STRAIGHT}
    if centre >= DEAD_SHARE * n:
        return [Finding(
            "dead-steering",
            f"the stick never steers ({centre:,} of {n:,} frames ({centre / n:.0%}) within ±{STRAIGHT:g}): "
            "the model cannot learn to turn; check the pad's stick in the Record tab (or the recording's stick "
            "column) and record again", None, figures)]
    out = []
    mirror = (" (the recipe's mirroring shows it mirrored turns the other way, which helps only partly)"
              if getattr(recipe, "augment", False) else "")
    for side, count, sign, other in (("left", left, "below -", right), ("right", right, "above ", left)):
        if count < RARE_SIDE * n and other > count:
            how = "never" if count == 0 else "almost never"
            out.append(Finding(
                "one-sided-steering",
                f"steering {how} goes {side} ({count:,} of {n:,} frames {sign}{STRAIGHT:g}): the model cannot "
                f"learn to turn {side}{mirror}; record laps with {side} turns", None, {**figures, "side": side}))
    return out


def _button(name: str, job: str, pressed: np.ndarray) -> list[Finding]:
    n, count = len(pressed), int(np.count_nonzero(pressed))
    figures = {"button": name, "pressed": count, "frames": n}
    if count <= RARE_PRESS * n:
        how = "never" if count == 0 else "almost never"
        return [Finding(
            "button-never",
            f"{name} ({job}) is {how} pressed ({count:,} of {n:,} frames): the model will not learn to {job}; "
            f"record play that uses it, or check the pad's {name} button in the Record tab", None, figures)]
    if n - count <= RARE_PRESS * n and name not in HELD_ALL_RACE:
        how = "always" if count == n else "almost always"
        return [Finding(
            "button-always",
            f"{name} ({job}) is {how} pressed ({count:,} of {n:,} frames): the model will hold it and never learn "
            f"to let go; record play that lets go of it, or check that the pad's {name} button is not stuck",
            None, figures)]
    return []


# -- words -------------------------------------------------------------------------------------------


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["CheckReport", "Finding", "KINDS", "check_lines", "check_sessions"]
