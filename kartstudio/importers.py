"""Bring TensorKart data into KartStudio sessions.

Three layouts exist in the wild:

- record.py's folders: PNG screenshots + ``data.csv`` with lines ``image_path,x,y,a,b,rb``;
- the older (2013) folders: ``img_<t>.png`` + ``joystick.csv`` with lines ``t,x,y,a,b,rb`` and an
  ``info.txt`` (a description, then the first and the last usable frame number);
- utils.py's prepared arrays: ``X.npy`` (N,66,200,3) and ``y.npy`` (N,5).

TensorKart recorded one player on the whole screen, so a 4:3 screenshot is imported whole
(layout "whole", stored at 320x240 by default); ``seat=1|2`` keeps that half of a split screen,
and half-height frames (the two-joystick fork's 640x240) are one seat as they are. Labels are
kept exactly as the files hold them (``actions``, float32); only ``states`` (the N64
controller) are quantized. Images are decoded, resized and compressed on a thread pool while
the CSV is streamed, so memory stays bounded whatever the number of rows.

Time and boundaries are kept: each recording folder becomes its own session, frames are numbered
by their images' own indices (img_22..img_269 stays 22..269; rows removed from a CSV leave a gap,
which training's frame history never stacks across), and timestamps are the recording's: the 2013
recorder's fixed 2 samples per second, or a record.py folder's image file times when they are
plausible, else record.py's usual rate of about 4 per second (its 200 ms is a wait after each
save, not a period). What an import skipped, and why, is kept in the session (extra["import"]).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Callable, Iterable, Iterator

import numpy as np

from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.game import SCREEN_HEIGHT, SCREEN_WIDTH, SeatLayout
from kartstudio.images import MAX_IMAGE_SIDE, ImageFileError, image_size, read_image
from kartstudio.session import (DEFAULT_JPEG_QUALITY, DEFAULT_STORAGE_SIZE, SUFFIX, SessionMeta, SessionWriter,
                                encode_frame, frame_gaps)

Progress = Callable[[int, int], None]  # (done, total)

RECORD_PY_FPS = 4.0  # record.py waits 200 ms *after* each save, so it takes about 4 samples a second, not 5
TENSORKART_2013_FPS = 2.0  # the 2013 recorder (joystick.csv) sampled every 500 ms
TENSORKART_FPS = RECORD_PY_FPS  # X.npy keeps no times: record.py's usual rate
# The image files' modification times are the recording's when they are plausible: forward, each
# sample 20 ms to 2 s after the one before, a usual spacing of a TensorKart recorder (1 to 10 per
# second) and steady (most steps within half to twice the usual one). Copied, unpacked or checked-out
# files fail these (same times, a few ms apart, or out of order) and get a default rate instead.
FILE_TIME_STEP = (0.02, 2.0)  # seconds per sample, every step
FILE_TIME_USUAL = (0.1, 1.0)  # seconds per sample, the median step
FILE_TIME_STEADY = 0.9  # share of steps within half to twice the median
MAX_KEPT_LINE = 300  # characters of each skip reason stored in the session
MAX_KEPT_REASONS = 32 * 1024  # characters of skip reasons stored in the session (the attribute limit is 64K)
WHOLE_STORAGE_SIZE = (240, 320)  # (height, width): the whole 4:3 screen at N64 native resolution
MAX_LINE = 64 * 1024  # characters; a TensorKart line is well under 300
MAX_REPORTED = 100  # skipped rows listed by name in a report (all are counted)
HALF_HEIGHT_ASPECT = 2.2  # width / height above this: a frame that is already one seat (640x240 is 2.67)


class TensorKartImportError(KartStudioError):
    """A TensorKart file or row that cannot be imported (named with its line)."""


@dataclass
class ImportReport:
    path: Path
    frames: int = 0
    skipped: list[str] = field(default_factory=list)  # "data.csv line 7: ..." for the first skipped rows
    skipped_rows: int = 0  # all skipped rows (skipped lists at most MAX_REPORTED)
    header_lines: int = 0  # header lines recognised and skipped
    unused_rows: int = 0  # rows outside info.txt's usable range (older layout)
    layout: str = ""  # "whole" or "seat"
    note: str = ""  # what the importer found worth saying (e.g. the value range of X.npy)
    source: Path | None = None  # the recording folder (or y.npy) this session came from
    fps: float = 0.0  # the sample rate stored (meta.fps)
    timing: str = ""  # where the timestamps came from, for people ("the image files' times: 4.13 per second")
    timing_source: str = ""  # "fixed" (the 2013 recorder), "files" (image files' times), "default", "given" (--fps)
    duration: float = 0.0  # seconds from the first frame to the last
    first_number: int | None = None  # frame numbers: the images' own indices
    last_number: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (before, after) frame numbers, the first ones
    gap_count: int = 0
    numbers: list[int] = field(default_factory=list, repr=False)  # every frame number written

    def find_gaps(self) -> None:
        """gaps and gap_count from the frame numbers written, by the rule training uses (session.frame_gaps)."""
        numbers = np.asarray(self.numbers, np.int64)
        after = np.flatnonzero(frame_gaps(numbers))
        self.gap_count = len(after)
        self.gaps = [(int(numbers[i - 1]), int(numbers[i])) for i in after[:MAX_REPORTED]]

    def skip(self, line: str) -> None:
        self.skipped_rows += 1
        if len(self.skipped) < MAX_REPORTED:
            self.skipped.append(line)


# -- the output file -------------------------------------------------------------------------------


class _Output:
    """The output session: its name is claimed at once with O_CREAT|O_EXCL (a second import to
    the same name fails instead of sharing it), the session is written under a hidden temporary
    name next to it and renamed over the claim when complete. On failure both go, and only ours:
    never a file another process created."""

    def __init__(self, out: Path) -> None:
        self.path = out
        try:
            fd = os.open(out, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise TensorKartImportError(f"{out} already exists; choose a new output file") from None
        except OSError as exc:
            raise TensorKartImportError(f"cannot create {out}: {exc.strerror}") from None
        self._claim = os.fstat(fd).st_ino
        os.close(fd)
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}.importing")

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def abandon(self) -> None:
        self.tmp.unlink(missing_ok=True)
        try:
            st = self.path.stat()
            if st.st_ino == self._claim and st.st_size == 0:
                self.path.unlink()
        except OSError:
            pass


# -- the pipeline: rows in order, images on worker threads ------------------------------------------


@dataclass
class _Row:
    where: str  # "file line N", for messages
    action: tuple[float, ...] | None = None  # the exact label
    job: object = None  # what the worker prepares the frame from
    error: str | None = None  # why the row is bad (known before any image is read)
    number: int = 0  # the frame number: the image's own index (gaps stay gaps)


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _write_rows(
    rows: Iterable[_Row],
    prepare: Callable[[object], bytes],
    writer_for: Callable[[_Row], SessionWriter],
    report: ImportReport,
    skip_bad: bool,
    fps: float,
    progress: Progress | None,
    total: int,
    written: Callable[[_Row], None] | None = None,
) -> SessionWriter | None:
    """Write every good row's frame and label, in order; frames are prepared (decoded, resized,
    encoded) by `prepare` on a thread pool, at most a few per worker in flight. writer_for(row)
    gives the writer for the first good row (the session's layout may depend on it). Each frame is
    stamped (number - first number) / fps; written(row) is told of each frame written."""
    writer: SessionWriter | None = None
    workers = _workers()
    pending: deque[tuple[_Row, Future | None]] = deque()
    done = 0

    def bad(row: _Row, why: str) -> None:
        if not skip_bad:
            raise TensorKartImportError(f"{row.where}: {why} (use --skip-bad to skip such rows)")
        report.skip(f"{row.where}: {why}")

    def finish_oldest() -> None:
        nonlocal done
        row, future = pending.popleft()
        if future is None:
            bad(row, row.error or "bad row")
        else:
            try:
                data = future.result()
            except (ValueError, ImageFileError) as exc:
                bad(row, str(exc))
            else:
                state = ControllerState.from_tensorkart(row.action)
                if report.first_number is None:
                    report.first_number = row.number
                report.last_number = row.number
                report.numbers.append(row.number)
                writer.append_encoded(data, state, timestamp=(row.number - report.first_number) / fps,
                                      frame_number=row.number, action=row.action)
                report.frames += 1
                if written:
                    written(row)
        done += 1
        if progress:
            progress(done, max(total, done))

    pool = ThreadPoolExecutor(workers, thread_name_prefix="import")
    try:
        for row in rows:
            future = None
            if row.error is None:
                if writer is None:
                    try:
                        writer = writer_for(row)
                    except ImageFileError as exc:
                        row.error = str(exc)
                if row.error is None:
                    future = pool.submit(prepare, row.job)
            pending.append((row, future))
            if len(pending) >= 3 * workers:
                finish_oldest()
        while pending:
            finish_oldest()
        if progress:
            progress(max(total, done), max(total, done))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        if writer is not None:
            writer.close()
        raise
    pool.shutdown()
    return writer


def _write_into(output: _Output, write: Callable[[Path], SessionWriter | None], report: ImportReport,
                source: str) -> None:
    """Run `write` into the claimed output's temporary file and close it; raises when it fails or
    writes no frame (the caller abandons the output)."""
    writer = None
    try:
        writer = write(output.tmp)  # closes its writer itself when it fails
        if writer is None or report.frames == 0:
            if report.skipped_rows:
                why = f"all {report.skipped_rows} rows were bad (first: {report.skipped[0]})"
            else:
                why = f"{source} holds no rows"
            raise TensorKartImportError(f"nothing imported, so no file written: {why}")
        writer.close()
    except BaseException:
        if writer is not None:
            writer.close()
        raise


def _run_import(out: Path, write: Callable[[Path], SessionWriter | None], report: ImportReport, source: str) -> ImportReport:
    """Run `write` into the claimed output; nothing is left behind when it fails or writes no frame."""
    output = _Output(out)
    try:
        _write_into(output, write, report, source)
        output.commit()
    except BaseException:
        output.abandon()
        raise
    return report


def _import_notes(report: ImportReport) -> dict:
    """What the session keeps of its import (extra["import"]): the timing rule, the gaps, and why rows
    were skipped (each reason cut to MAX_KEPT_LINE characters, MAX_KEPT_REASONS in all)."""
    kept, size = [], 0
    for line in report.skipped:
        line = line if len(line) <= MAX_KEPT_LINE else line[: MAX_KEPT_LINE - 3] + "..."
        size += len(line) + 4
        if size > MAX_KEPT_REASONS:
            break
        kept.append(line)
    return {
        "timing": report.timing, "timing_source": report.timing_source, "gaps": report.gap_count,
        "skipped_rows": report.skipped_rows, "skipped": kept, "unused_rows": report.unused_rows,
        "header_lines": report.header_lines,
    }


def import_notes(extra) -> dict | None:
    """A session's import notes (extra["import"]) with every field checked, for `info`: None when the
    session was not imported or says nothing readable (the file may have been edited by hand)."""
    notes = extra.get("import") if isinstance(extra, dict) else None
    if not isinstance(notes, dict):
        return None

    def count(name: str) -> int:
        value = notes.get(name, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    def text(value) -> str:
        return " ".join(value.split())[:MAX_KEPT_LINE] if isinstance(value, str) else ""

    skipped = notes.get("skipped")
    return {
        "timing": text(notes.get("timing")),
        "timing_source": text(notes.get("timing_source")),
        "gaps": count("gaps"),
        "skipped_rows": count("skipped_rows"),
        "skipped": [text(line) for line in skipped if isinstance(line, str)] if isinstance(skipped, list) else [],
        "unused_rows": count("unused_rows"),
        "header_lines": count("header_lines"),
    }


# -- CSV files ------------------------------------------------------------------------------------


def _open_regular(path: Path, what: str):
    """The file opened for reading if it is a regular file; a FIFO or device: one line, no wait."""
    from kartstudio.paths import NotRegularFileError, open_regular

    try:
        return open_regular(path, what)
    except NotRegularFileError as exc:
        raise TensorKartImportError(str(exc)) from None


def _require_regular(path: Path, what: str) -> None:
    from kartstudio.paths import NotRegularFileError, require_regular

    try:
        require_regular(path, what)
    except NotRegularFileError as exc:
        raise TensorKartImportError(str(exc)) from None


def _count_lines(paths: Iterable[Path]) -> int:
    """Lines in the files, for the progress bar (streamed: a huge file costs no memory)."""
    total = 0
    for path in paths:
        with _open_regular(path, "the CSV file") as fh:
            while chunk := fh.read(1 << 20):
                total += chunk.count(b"\n")
    return total


def _text_lines(fh, where: Path) -> Iterator[str]:
    """The lines of a binary file as text, each checked: at most MAX_LINE long, UTF-8."""
    n = 0
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            raise TensorKartImportError(f"{where} line {n} is longer than {MAX_LINE} characters; it is not a TensorKart CSV line")
        try:
            yield line.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError:
            raise TensorKartImportError(f"{where} line {n} is not UTF-8 text; is it a TensorKart CSV file?") from None


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty line, streamed; damaged files get one-line errors."""
    try:
        fh = _open_regular(path, "the CSV file")
    except OSError as exc:
        raise TensorKartImportError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        reader = csv.reader(_text_lines(fh, path))
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise TensorKartImportError(f"{path} line {reader.line_num}: {exc}; it is not a TensorKart CSV file") from None
            if any(f.strip() for f in fields):
                yield reader.line_num, fields


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_header(fields: list[str]) -> bool:
    """A first line of names (``image,x,y,a,b,rb``) rather than values."""
    return len(fields) >= 2 and not any(_is_number(f) for f in fields[1:])


def _label(fields: list[str]) -> tuple[float, ...]:
    """The five values (x, y, a, b, rb) after the first field; ValueError saying what is wrong."""
    if len(fields) != 6:
        raise ValueError(f"expected 6 fields, found {len(fields)}")
    try:
        values = tuple(float(v) for v in fields[1:])
    except ValueError:
        raise ValueError("a value is not a number") from None
    return _checked(values)


def _checked(values: Iterable[float]) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("a value is not a finite number")
    x, y = values[:2]
    if abs(x) > 1.0001 or abs(y) > 1.0001:
        raise ValueError(f"stick ({x:g}, {y:g}) outside TensorKart's -1..1")
    if not all(-0.0001 <= v <= 1.0001 for v in values[2:]):
        raise ValueError(f"buttons {values[2:]} are not 0/1")
    return values


def _image_in(folder: Path, recorded: str) -> Path:
    """The image a row names, looked up by file name inside the recording folder only.

    TensorKart wrote the path as typed on the recording machine (relative to where record.py
    ran, or absolute, maybe a Windows path); only its last part is used, so a path with ``..``
    or from another machine never leads outside the folder.
    """
    name = PureWindowsPath(recorded.strip()).name  # splits on both / and \
    if name in ("", ".", ".."):
        raise ValueError(f"{recorded!r} names no image file")
    path = folder / name
    if not path.is_file():
        raise ValueError(f"image {name} not found in {folder}")
    return path


# -- record.py folders (and the older joystick.csv folders) ---------------------------------------


@dataclass(frozen=True)
class _FolderPlan:
    """How each screenshot becomes a stored frame."""

    layout: str  # "whole" or "seat"
    seat: int
    crop: tuple[float, float, float, float] | None  # fractions of the image, for a split screen's half
    storage_size: tuple[int, int]
    capture_region: tuple[int, int, int, int]


def _plan(width: int, height: int, seat: int | None, storage_size: tuple[int, int] | None) -> _FolderPlan:
    split = SeatLayout.split_screen()
    if width / height > HALF_HEIGHT_ASPECT:  # already one seat (the two-joystick fork's 640x240)
        seat = seat or 1
        return _FolderPlan("seat", seat, None, storage_size or DEFAULT_STORAGE_SIZE, split.regions[seat])
    if seat is not None:  # the top or bottom half of a two-player split screen
        crop = (0.0, 0.0, 1.0, 0.5) if seat == 1 else (0.0, 0.5, 1.0, 1.0)
        return _FolderPlan("seat", seat, crop, storage_size or DEFAULT_STORAGE_SIZE, split.regions[seat])
    return _FolderPlan("whole", 1, None, storage_size or WHOLE_STORAGE_SIZE, (0, 0, SCREEN_WIDTH, SCREEN_HEIGHT))


def _usable_range(info: Path) -> tuple[int, int]:
    """info.txt of the older layout: a description line, then the first and last usable frame."""
    try:
        with _open_regular(info, "the info file") as fh:
            lines = [fh.readline(MAX_LINE).decode("utf-8", "replace") for _ in range(3)]
        first, last = int(lines[1].strip()), int(lines[2].strip())
    except OSError as exc:
        raise TensorKartImportError(f"cannot read {info}: {exc.strerror}") from None
    except ValueError:
        raise TensorKartImportError(
            f"{info} should hold a description line, then the first and the last usable frame number"
        ) from None
    return first, last


_TRAILING_DIGITS = re.compile(r"(\d+)$")
MAX_INDEX_DIGITS = 15  # an image index beyond this is not a frame count


def _image_index(recorded: str) -> int | None:
    """The frame index in an image's name (record.py's ``img_<t>.png``: t); None without one."""
    match = _TRAILING_DIGITS.search(PureWindowsPath(recorded.strip()).stem)
    if match is None:
        return None
    if len(match.group(1)) > MAX_INDEX_DIGITS:
        raise ValueError(f"{recorded.strip()!r} has a frame index of {len(match.group(1))} digits")
    return int(match.group(1))


def _recording_csv(folder: Path) -> Path:
    """data.csv (record.py) or joystick.csv (the 2013 layout) of a recording folder; one line if neither."""
    for name in ("data.csv", "joystick.csv"):
        if (folder / name).is_file():
            return folder / name
    what = "no data.csv (or joystick.csv) in it" if folder.is_dir() else "no such folder"
    raise TensorKartImportError(f"{folder} is not a TensorKart recording: {what}")


def _folder_rows(folder: Path, csv_path: Path, report: ImportReport) -> Iterator[_Row]:
    """The rows of one recording folder, in order (record.py's data.csv or the older joystick.csv),
    each numbered by its image's own index (img_<t>.png: t), so rows removed from the CSV leave a gap;
    a data.csv whose first image name holds no index is numbered by row. A number that does not run
    forward makes that row bad (rows out of order, or a second recording appended)."""
    older = csv_path.name == "joystick.csv"
    usable = _usable_range(folder / "info.txt") if older and (folder / "info.txt").is_file() else None
    first = True
    by_index: bool | None = None  # record.py rows: numbered by their images' indices (else by row)
    row = -1
    last: int | None = None
    for lineno, fields in _csv_rows(csv_path):
        where = f"{csv_path} line {lineno}"
        if first and _is_header(fields):
            first = False
            report.header_lines += 1
            continue
        first = False
        row += 1
        try:
            if older:
                t = float(fields[0])
                if not (t.is_integer() and 0 <= t < 2**53):
                    raise ValueError(f"frame number {fields[0]!r} is not a whole number")
                number = int(t)
            else:
                index = _image_index(fields[0])
                if by_index is None:
                    by_index = index is not None
                if by_index and index is None:
                    raise ValueError(f"{fields[0].strip()!r} has no frame index (img_<n>.png) as the rows before it have")
                number = index if by_index else row
            if last is not None and number <= last:
                raise ValueError(f"frame {number} comes after frame {last}: rows out of order, or a second "
                                 "recording appended to the same CSV")
            last = number
            action = _label(fields)
            if older:
                if usable and not usable[0] <= number <= usable[1]:
                    report.unused_rows += 1
                    continue
                image = _image_in(folder, f"img_{number}.png")
            else:
                image = _image_in(folder, fields[0])
        except ValueError as exc:
            yield _Row(where, error=str(exc))
            continue
        yield _Row(where, action, image, number=number)


def _file_times(numbers: list[int], mtimes_ns: list[int]) -> tuple[np.ndarray | None, str]:
    """Seconds from the first frame of each frame, from its image file's modification time, when
    those times are plausibly the recording's (FILE_TIME_*); else None and why not."""
    if len(numbers) < 3:
        return None, "too few frames to judge them"
    m = np.asarray(mtimes_ns, np.int64)
    n = np.asarray(numbers, np.int64)
    if (m <= 0).any():
        return None, "an image file could not be read for its time"
    steps = np.diff(m) / 1e9
    back = np.flatnonzero(steps <= 0)
    if len(back):
        i = back[0]
        return None, (f"they do not run forward (frame {n[i + 1]}'s image is not newer than frame {n[i]}'s): "
                      "files copied, unpacked or checked out")
    per_sample = steps / np.diff(n)  # a gap of k frames spans k samples
    low, high = FILE_TIME_STEP
    odd = np.flatnonzero((per_sample < low) | (per_sample > high))
    if len(odd):
        i = odd[0]
        return None, (f"frames {n[i]} and {n[i + 1]} are {per_sample[i]:.3g} s a sample apart, where a TensorKart "
                      f"recorder takes {low:g} to {high:g} s")
    usual = float(np.median(per_sample))
    if not FILE_TIME_USUAL[0] <= usual <= FILE_TIME_USUAL[1]:
        return None, (f"they give {1 / usual:.3g} samples per second, where a TensorKart recorder takes "
                      f"{1 / FILE_TIME_USUAL[1]:g} to {1 / FILE_TIME_USUAL[0]:g}")
    steady = float(np.mean((per_sample >= usual / 2) & (per_sample <= usual * 2)))
    if steady < FILE_TIME_STEADY:
        return None, f"they are irregular (only {steady:.0%} of the steps within half to twice the usual {usual:.3g} s)"
    return (m - m[0]) / 1e9, ""


def _rate_text(rate: float) -> str:
    return f"{rate:.3g} samples per second"


def _folder_name(folder: Path) -> str:
    """A session file name for a recording folder: its own name, made safe."""
    name = Path(os.path.abspath(folder)).name
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return cleaned or "recording"


def tensorkart_outputs(folders: list[Path], out: str | Path | Iterable[str | Path]) -> list[Path]:
    """Where each recording folder's session goes, one session per folder. `out`: a list (one path a
    folder); or one path: the session file itself for a single folder (unless it is an existing
    folder), otherwise a folder (made if missing) holding ``<folder name>.h5`` for each (``-2``,
    ``-3``... when two folders share a name)."""
    if not isinstance(out, (str, os.PathLike)):
        outs = [Path(o) for o in out]
        if len(outs) != len(folders):
            raise TensorKartImportError(f"{len(folders)} recording folders but {len(outs)} output files")
        return outs
    out = Path(out)
    if len(folders) == 1 and not out.is_dir():
        return [out]
    if out.exists() and not out.is_dir():
        raise TensorKartImportError(f"{out} is a file; {len(folders)} recording folders make one session each: "
                                    "give -o a folder for them")
    if not out.exists() and out.suffix.lower() == SUFFIX:
        raise TensorKartImportError(f"{len(folders)} recording folders make one session each, so -o names a folder "
                                    f"(one {SUFFIX} file per recording in it), not {out.name}: e.g. -o {out.with_suffix('')}")
    names: list[str] = []
    for folder in folders:
        base = name = _folder_name(folder)
        k = 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return [out / (name + SUFFIX) for name in names]


def _make_output_folder(outs: list[Path]) -> None:
    for parent in {o.parent for o in outs}:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TensorKartImportError(f"cannot create the folder {parent}: {exc.strerror or exc}; choose another") from None


def import_tensorkart_folder(folder: str | Path, out: str | Path, **options) -> ImportReport:
    """One TensorKart recording folder into one session file `out` (see import_tensorkart_folders)."""
    return import_tensorkart_folders([folder], [out], **options)[0]


def import_tensorkart_folders(
    folders: Iterable[str | Path],
    out: str | Path | Iterable[str | Path],
    skip_bad: bool = False,
    storage_size: tuple[int, int] | None = None,
    seat: int | None = None,
    progress: Progress | None = None,
    fps: float | None = None,
    codec: str = "lossless",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> list[ImportReport]:
    """Import TensorKart recording folders (record.py's, or the older joystick.csv ones), one session
    per folder (where: tensorkart_outputs); one report per session, in the folders' order.

    Frame numbers are the images' own indices (gaps stay gaps). Time: the 2013 layout at its
    recorder's fixed 2 samples per second; record.py folders from the image files' modification
    times when they are plausible (_file_times), otherwise record.py's usual rate (RECORD_PY_FPS);
    `fps` given: that rate for every folder. The report's timing says which.

    Layout: 4:3 screenshots are the whole screen (stored at 320x240 unless storage_size says
    otherwise); seat=1|2 keeps that half of a split screen; half-height frames are one seat as
    they are (stored at 320x120). A bad row or a missing image raises TensorKartImportError naming
    the file and line, unless skip_bad, where it is skipped, counted in the report and kept in the
    session (extra["import"]). An import that fails, or would write no frame from some folder,
    writes nothing at all and says why.
    """
    folders = [Path(f) for f in folders]
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
        raise TensorKartImportError(f"--fps {fps} is not a frame rate; give samples per second, e.g. 4 "
                                    "(record.py's usual rate)")
    if not folders:
        raise TensorKartImportError("no recording folder given")
    if seat not in (None, 1, 2):
        raise TensorKartImportError(f"seat {seat} does not exist; a split screen has seats 1 and 2")
    csvs = [_recording_csv(folder) for folder in folders]
    seen: dict[Path, Path] = {}
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            raise TensorKartImportError(f"{folder} is given twice (also as {seen[key]}); give each recording once")
        seen[key] = folder
    outs = tensorkart_outputs(folders, out)
    _make_output_folder(outs)
    counts = [_count_lines([c]) for c in csvs]
    total = sum(counts)
    outputs: list[_Output] = []
    reports: list[ImportReport] = []
    try:
        for o in outs:
            outputs.append(_Output(o))
        done = 0
        for folder, csv_path, output, count in zip(folders, csvs, outputs, counts):
            def step(d: int, _t: int, before: int = done) -> None:
                progress(before + min(d, count), total)

            report = ImportReport(output.path, source=folder)
            write = _folder_writer(folder, csv_path, report, skip_bad, storage_size, seat, fps, codec,
                                   jpeg_quality, step if progress else None, count)
            _write_into(output, write, report, str(csv_path))
            reports.append(report)
            done += count
        for output in outputs:
            output.commit()
    except BaseException:
        for output in outputs:
            output.abandon()
        raise
    return reports


def _folder_writer(folder: Path, csv_path: Path, report: ImportReport, skip_bad: bool,
                   storage_size: tuple[int, int] | None, seat: int | None, fps: float | None, codec: str,
                   jpeg_quality: int, progress: Progress | None, total: int) -> Callable[[Path], SessionWriter | None]:
    """What writes one recording folder's session into a temporary file (for _write_into)."""
    older = csv_path.name == "joystick.csv"
    if fps is not None:
        rate, report.timing_source = float(fps), "given"
    elif older:
        rate, report.timing_source = TENSORKART_2013_FPS, "fixed"
    else:
        rate, report.timing_source = RECORD_PY_FPS, "default"
    plan: _FolderPlan | None = None
    mtimes: list[int] = []  # ns, of each frame's image file (record.py folders timed by them)

    def prepare(path: Path) -> bytes:
        frame = read_image(path, crop=plan.crop, size=plan.storage_size)
        return encode_frame(frame, codec, jpeg_quality)

    def written(row: _Row) -> None:
        if report.timing_source == "default":
            try:
                mtimes.append(os.stat(row.job).st_mtime_ns)
            except OSError:
                mtimes.append(0)

    def write(tmp: Path) -> SessionWriter | None:
        nonlocal rate

        def writer_for(row: _Row) -> SessionWriter:
            nonlocal plan
            plan = _plan(*image_size(row.job), seat, storage_size)
            report.layout = plan.layout
            meta = SessionMeta(
                seat=plan.seat, game="mk64", track="tensorkart-import",
                source="tensorkart-joystick" if older else "tensorkart-record",
                storage_size=plan.storage_size, capture_region=plan.capture_region, layout=plan.layout, fps=rate,
                codec=codec, jpeg_quality=jpeg_quality, extra={"folders": [str(folder)]},
            )
            return SessionWriter(tmp, meta)

        writer = _write_rows(_folder_rows(folder, csv_path, report), prepare, writer_for, report, skip_bad, rate,
                             progress, total, written)
        if writer is None or report.frames == 0:
            return writer
        try:
            clock_offset = None
            report.duration = (report.last_number - report.first_number) / rate
            if report.timing_source == "fixed":
                report.timing = f"the 2013 recorder's fixed {_rate_text(rate)} (every {1000 / rate:.0f} ms)"
            elif report.timing_source == "given":
                report.timing = f"{_rate_text(rate)}, as given"
            else:
                stamps, why = _file_times(report.numbers, mtimes)
                if stamps is None:
                    report.timing = (f"record.py's usual {_rate_text(rate)} (it waits 200 ms after each save); the "
                                     f"image files' times were not used: {why}")
                else:
                    writer.timestamps[: len(stamps)] = stamps
                    report.duration = float(stamps[-1])
                    rate = (report.last_number - report.first_number) / report.duration
                    report.timing_source = "files"
                    report.timing = f"the image files' times: {_rate_text(rate)}"
                    clock_offset = mtimes[0] / 1e9  # timestamps + clock_offset: the frames' Unix times
            report.fps = round(rate, 3)
            report.find_gaps()
            writer.update_meta(fps=report.fps, extra={"folders": [str(folder)], "import": _import_notes(report)},
                               clock_offset=clock_offset)
        except BaseException:
            writer.close()
            raise
        return writer

    return write


# -- prepared arrays ----------------------------------------------------------------------------------


def _load_npy(path: Path, what: str) -> np.ndarray:
    _require_regular(path, "the array")  # a FIFO would block np.load forever
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise TensorKartImportError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise TensorKartImportError(f"{path} is not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):
        raise TensorKartImportError(f"{path} is not a single .npy array")
    if array.dtype.kind not in "uif" or array.dtype.fields is not None:
        raise TensorKartImportError(f"{path} holds {array.dtype} values; TensorKart's {what} holds numbers")
    return array


def import_tensorkart_arrays(
    x_path: str | Path,
    y_path: str | Path,
    out: str | Path,
    skip_bad: bool = False,
    progress: Progress | None = None,
    fps: float | None = None,
    codec: str = "lossless",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> ImportReport:
    """Import TensorKart's prepared X.npy (N,66,200,3) and y.npy (N,5) into a session.

    The frames are already the model's 66x200 input, made from the whole screen, so they are
    stored at that size with layout "whole". Both arrays are memory-mapped, so a large file is
    not loaded whole. X may hold uint8 0..255 or floats 0..1 (what prepare wrote in 2017-2021) or
    0..255; the report's note says which was found. Row i is frame number i (a skipped row leaves a
    gap). fps: X.npy keeps no times, so record.py's usual rate (RECORD_PY_FPS) unless given.
    """
    x_path, y_path, out = Path(x_path), Path(y_path), Path(out)
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
        raise TensorKartImportError(f"--fps {fps} is not a frame rate; give samples per second, e.g. 4 "
                                    "(record.py's usual rate)")
    X = _load_npy(x_path, "X.npy")
    y = _load_npy(y_path, "y.npy")
    if X.ndim != 4 or X.shape[3] != 3:
        raise TensorKartImportError(f"{x_path} has shape {X.shape}; TensorKart's X.npy is (N, 66, 200, 3)")
    if 0 in X.shape[1:3] or max(X.shape[1:3]) > MAX_IMAGE_SIDE:
        raise TensorKartImportError(f"{x_path} holds frames of {X.shape[2]}x{X.shape[1]} pixels; TensorKart's are 200x66")
    if y.ndim != 2 or y.shape[1] != 5:
        raise TensorKartImportError(f"{y_path} has shape {y.shape}; TensorKart's y.npy is (N, 5)")
    if len(X) != len(y):
        raise TensorKartImportError(f"{x_path} holds {len(X)} frames but {y_path} holds {len(y)} labels")
    report = ImportReport(out, layout="whole", source=y_path)
    if fps is None:
        fps, report.timing_source = RECORD_PY_FPS, "default"
        report.timing = f"record.py's usual {_rate_text(fps)} (X.npy keeps no times)"
    else:
        report.timing_source, report.timing = "given", f"{_rate_text(fps)}, as given"
    report.fps = fps
    if X.dtype == np.uint8:
        scale, report.note = 1.0, f"{x_path.name} holds uint8 values 0..255"
    else:
        sample = np.asarray(X[: min(len(X), 64)], dtype=np.float64)
        top = float(np.nanmax(sample)) if sample.size and not np.all(np.isnan(sample)) else 0.0
        scale = 255.0 if top <= 1.0 else 1.0
        report.note = f"{x_path.name} holds {X.dtype} values {'0..1' if scale > 1 else '0..255'}; stored as 0..255"
    h, w = X.shape[1:3]

    def rows() -> Iterator[_Row]:
        for i in range(len(y)):
            where = f"{y_path} row {i}"
            try:
                yield _Row(where, _checked(np.asarray(y[i], dtype=np.float64)), i, number=i)
            except ValueError as exc:
                yield _Row(where, error=f"label {np.asarray(y[i]).tolist()} is not a TensorKart tuple ({exc})")

    def prepare(i: int) -> bytes:
        frame = np.asarray(X[i])
        if frame.dtype != np.uint8:
            frame = np.clip(np.nan_to_num(frame.astype(np.float32) * scale) + 0.5, 0, 255).astype(np.uint8)
        return encode_frame(frame, codec, jpeg_quality)

    def write(tmp: Path) -> SessionWriter | None:
        meta = SessionMeta(
            game="mk64", track="tensorkart-import", source="tensorkart-npy", storage_size=(h, w), layout="whole",
            capture_region=(0, 0, SCREEN_WIDTH, SCREEN_HEIGHT), fps=fps, codec=codec, jpeg_quality=jpeg_quality,
            extra={"x": str(x_path), "y": str(y_path)},
        )
        writer = _write_rows(rows(), prepare, lambda row: SessionWriter(tmp, meta), report, skip_bad, fps, progress,
                             len(y))
        if writer is not None and report.frames:
            try:
                report.duration = (report.last_number - report.first_number) / fps
                report.find_gaps()
                writer.update_meta(extra={**meta.extra, "import": _import_notes(report)})
            except BaseException:
                writer.close()
                raise
        return writer

    return _run_import(out, write, report, str(y_path))
