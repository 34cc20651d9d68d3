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
"""

from __future__ import annotations

import csv
import math
import os
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
from kartstudio.session import DEFAULT_JPEG_QUALITY, DEFAULT_STORAGE_SIZE, SessionMeta, SessionWriter, encode_frame

Progress = Callable[[int, int], None]  # (done, total)

TENSORKART_FPS = 5.0  # record.py sampled every 200 ms
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
) -> SessionWriter | None:
    """Write every good row's frame and label, in order; frames are prepared (decoded, resized,
    encoded) by `prepare` on a thread pool, at most a few per worker in flight. writer_for(row)
    gives the writer for the first good row (the session's layout may depend on it)."""
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
                n = report.frames
                writer.append_encoded(data, state, timestamp=n / fps, frame_number=n, action=row.action)
                report.frames += 1
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


def _run_import(out: Path, write: Callable[[Path], SessionWriter | None], report: ImportReport, source: str) -> ImportReport:
    """Run `write` into the claimed output; nothing is left behind when it fails or writes no frame."""
    output = _Output(out)
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
        output.commit()
    except BaseException:
        if writer is not None:
            writer.close()
        output.abandon()
        raise
    return report


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


def _folder_rows(folder: Path, report: ImportReport) -> Iterator[_Row]:
    """The rows of one recording folder, in order (record.py's data.csv or the older joystick.csv)."""
    if (folder / "data.csv").is_file():
        csv_path, older = folder / "data.csv", False
    elif (folder / "joystick.csv").is_file():
        csv_path, older = folder / "joystick.csv", True
    elif folder.is_dir():
        raise TensorKartImportError(f"{folder} is not a TensorKart recording: no data.csv (or joystick.csv) in it")
    else:
        raise TensorKartImportError(f"{folder}: no such folder")
    usable = _usable_range(folder / "info.txt") if older and (folder / "info.txt").is_file() else None
    first = True
    for lineno, fields in _csv_rows(csv_path):
        where = f"{csv_path} line {lineno}"
        if first and _is_header(fields):
            first = False
            report.header_lines += 1
            continue
        first = False
        try:
            action = _label(fields)
            if older:
                t = float(fields[0])
                if not t.is_integer():
                    raise ValueError(f"frame number {fields[0]!r} is not a whole number")
                if usable and not usable[0] <= t <= usable[1]:
                    report.unused_rows += 1
                    continue
                image = _image_in(folder, f"img_{int(t)}.png")
            else:
                image = _image_in(folder, fields[0])
        except ValueError as exc:
            yield _Row(where, error=str(exc))
            continue
        yield _Row(where, action, image)


def import_tensorkart_folders(
    folders: Iterable[str | Path],
    out: str | Path,
    skip_bad: bool = False,
    storage_size: tuple[int, int] | None = None,
    seat: int | None = None,
    progress: Progress | None = None,
    fps: float = TENSORKART_FPS,
    codec: str = "lossless",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> ImportReport:
    """Import TensorKart recording folders (record.py's, or the older joystick.csv ones) into one
    session file `out`.

    Layout: 4:3 screenshots are the whole screen (stored at 320x240 unless storage_size says
    otherwise); seat=1|2 keeps that half of a split screen; half-height frames are one seat as
    they are (stored at 320x120). A bad row or a missing image raises TensorKartImportError naming
    the file and line, unless skip_bad, where it is skipped and counted in the report. An import
    that would write no frame writes nothing and says why.
    """
    folders = [Path(f) for f in folders]
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise TensorKartImportError(f"fps {fps} is not a frame rate; TensorKart recorded at 5 (every 200 ms)")
    if not folders:
        raise TensorKartImportError("no recording folder given")
    if seat not in (None, 1, 2):
        raise TensorKartImportError(f"seat {seat} does not exist; a split screen has seats 1 and 2")
    out = Path(out)
    report = ImportReport(out)
    csvs = []
    for folder in folders:
        found = [folder / name for name in ("data.csv", "joystick.csv") if (folder / name).is_file()]
        if not found:
            what = "no data.csv (or joystick.csv) in it" if folder.is_dir() else "no such folder"
            raise TensorKartImportError(f"{folder} is not a TensorKart recording: {what}")
        csvs.append(found[0])
    total = _count_lines(csvs)
    plan: _FolderPlan | None = None

    def rows() -> Iterator[_Row]:
        for folder in folders:
            yield from _folder_rows(folder, report)

    def prepare(path: Path) -> bytes:
        frame = read_image(path, crop=plan.crop, size=plan.storage_size)
        return encode_frame(frame, codec, jpeg_quality)

    def write(tmp: Path) -> SessionWriter | None:
        def writer_for(row: _Row) -> SessionWriter:
            nonlocal plan
            plan = _plan(*image_size(row.job), seat, storage_size)
            report.layout = plan.layout
            older = row.where.split(" line ")[0].endswith("joystick.csv")
            meta = SessionMeta(
                seat=plan.seat, game="mk64", track="tensorkart-import",
                source="tensorkart-joystick" if older else "tensorkart-record",
                storage_size=plan.storage_size, capture_region=plan.capture_region, layout=plan.layout, fps=fps,
                codec=codec, jpeg_quality=jpeg_quality, extra={"folders": [str(f) for f in folders]},
            )
            return SessionWriter(tmp, meta)

        return _write_rows(rows(), prepare, writer_for, report, skip_bad, fps, progress, total)

    return _run_import(out, write, report, ", ".join(str(c) for c in csvs))


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
    fps: float = TENSORKART_FPS,
    codec: str = "lossless",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> ImportReport:
    """Import TensorKart's prepared X.npy (N,66,200,3) and y.npy (N,5) into a session.

    The frames are already the model's 66x200 input, made from the whole screen, so they are
    stored at that size with layout "whole". Both arrays are memory-mapped, so a large file is
    not loaded whole. X may hold uint8 0..255 or floats 0..1 (what prepare wrote in 2017-2021) or
    0..255; the report's note says which was found. fps: TensorKart sampled every 200 ms (5).
    """
    x_path, y_path, out = Path(x_path), Path(y_path), Path(out)
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise TensorKartImportError(f"--fps {fps} is not a frame rate; TensorKart recorded at 5 (every 200 ms)")
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
    report = ImportReport(out, layout="whole")
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
                yield _Row(where, _checked(np.asarray(y[i], dtype=np.float64)), i)
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
        return _write_rows(rows(), prepare, lambda row: SessionWriter(tmp, meta), report, skip_bad, fps, progress, len(y))

    return _run_import(out, write, report, str(y_path))
