"""Bring TensorKart data into KartStudio sessions.

Two layouts exist in the wild: record.py's folders (PNG screenshots + data.csv with lines
``image_path,x,y,a,b,rb``) and utils.py's prepared arrays (X.npy (N,66,200,3), y.npy (N,5)).
"""

from __future__ import annotations

import contextlib
import csv
import math
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Callable, Iterable

import numpy as np

from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.game import SeatLayout
from kartstudio.images import resize
from kartstudio.session import DEFAULT_STORAGE_SIZE, SessionMeta, SessionWriter

Progress = Callable[[int, int], None]  # (done, total)


class TensorKartImportError(KartStudioError):
    """A TensorKart file or row that cannot be imported (named with its line)."""


@dataclass
class ImportReport:
    path: Path
    frames: int = 0
    skipped: list[str] = field(default_factory=list)  # "data.csv line 7: ..." for each skipped row


@contextlib.contextmanager
def _removed_on_error(out: Path):
    """A failed import leaves no half-written session behind (the inputs are never touched)."""
    try:
        yield
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _read_png(path: Path) -> np.ndarray:
    """An RGB uint8 image from a PNG file (pygame's SDL_image reads PNG without extra packages)."""
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    surface = pygame.image.load(str(path))
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))


def _resolve_image(folder: Path, recorded: str) -> Path | None:
    """TensorKart wrote the path as typed on the recording machine; find the file by name here."""
    candidate = Path(recorded)
    if not candidate.is_absolute() and (folder / candidate).is_file():
        return folder / candidate
    name = PureWindowsPath(recorded).name if "\\" in recorded else candidate.name
    local = folder / name
    return local if local.is_file() else None


def _parse_row(row: list[str]) -> tuple[str, tuple[float, ...]]:
    if len(row) != 6:
        raise ValueError(f"expected 6 fields image_path,x,y,a,b,rb, found {len(row)}")
    values = tuple(float(v) for v in row[1:])
    if not all(math.isfinite(v) for v in values):
        raise ValueError("a value is not a finite number")
    x, y = values[:2]
    if abs(x) > 1.0001 or abs(y) > 1.0001:
        raise ValueError(f"stick ({x}, {y}) outside TensorKart's -1..1")
    return row[0].strip(), values


def import_tensorkart_folders(
    folders: Iterable[str | Path],
    out: str | Path,
    skip_bad: bool = False,
    storage_size: tuple[int, int] = DEFAULT_STORAGE_SIZE,
    seat: int = 1,
    progress: Progress | None = None,
) -> ImportReport:
    """Import TensorKart record.py folders into one session file `out`.

    TensorKart screenshots are the full 640x480 game window; we keep the seat's half (seat 1: top)
    like the recorder does. A bad row or a missing image raises TensorKartImportError naming the file
    and line, unless skip_bad, where it is skipped and listed in the report.
    """
    folders = [Path(f) for f in folders]
    rows: list[tuple[Path, int, list[str]]] = []
    for folder in folders:
        csv_path = folder / "data.csv"
        if not csv_path.is_file():
            raise TensorKartImportError(f"{folder} is not a TensorKart recording: no data.csv in it")
        with open(csv_path, newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if row:
                    rows.append((csv_path, lineno, row))
    out = Path(out)
    if out.exists():
        raise TensorKartImportError(f"{out} already exists; choose a new output file")
    report = ImportReport(out)
    layout = SeatLayout.split_screen()
    meta = SessionMeta(
        seat=seat, game="mk64", track="tensorkart-import", source="tensorkart-record",
        storage_size=storage_size, capture_region=layout.regions[seat], fps=5.0,  # record.py: every 200 ms
        extra={"folders": [str(f) for f in folders]},
    )
    with _removed_on_error(out), SessionWriter(out, meta) as writer:
        for i, (csv_path, lineno, row) in enumerate(rows):
            where = f"{csv_path} line {lineno}"
            try:
                recorded, values = _parse_row(row)
                image_path = _resolve_image(csv_path.parent, recorded)
                if image_path is None:
                    raise ValueError(f"image {recorded} not found in {csv_path.parent}")
                try:
                    image = _read_png(image_path)
                except Exception as exc:  # pygame.error for a corrupt PNG
                    raise ValueError(f"cannot read image {image_path.name}: {exc}") from None
                if image.shape[:2] != (480, 640):
                    image = resize(image, (480, 640))
                seat_image = resize(layout.crop(image, seat), storage_size)
            except ValueError as exc:
                if not skip_bad:
                    raise TensorKartImportError(f"{where}: {exc} (use --skip-bad to skip such rows)") from None
                report.skipped.append(f"{where}: {exc}")
                continue
            state = ControllerState.from_tensorkart(values)
            writer.append(seat_image, state, timestamp=float(report.frames) / meta.fps, frame_number=report.frames)
            report.frames += 1
            if progress:
                progress(i + 1, len(rows))
    return report


def import_tensorkart_arrays(
    x_path: str | Path,
    y_path: str | Path,
    out: str | Path,
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import TensorKart's prepared X.npy (N,66,200,3) and y.npy (N,5) into a session.

    The frames are already the model's 66x200 input, so they are stored at that size. X.npy is
    memory-mapped, so a large file is not loaded whole. Float images (0..1 or 0..255) are accepted.
    """
    x_path, y_path, out = Path(x_path), Path(y_path), Path(out)
    try:
        X = np.load(x_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TensorKartImportError(f"{x_path} is not a readable .npy array ({exc})") from None
    try:
        y = np.load(y_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TensorKartImportError(f"{y_path} is not a readable .npy array ({exc})") from None
    if X.ndim != 4 or X.shape[3] != 3:
        raise TensorKartImportError(f"{x_path} has shape {X.shape}; TensorKart's X.npy is (N, 66, 200, 3)")
    if y.ndim != 2 or y.shape[1] != 5:
        raise TensorKartImportError(f"{y_path} has shape {y.shape}; TensorKart's y.npy is (N, 5)")
    if len(X) != len(y):
        raise TensorKartImportError(f"{x_path} holds {len(X)} frames but {y_path} holds {len(y)} labels")
    if out.exists():
        raise TensorKartImportError(f"{out} already exists; choose a new output file")
    scale = 255.0 if X.dtype.kind == "f" and float(np.max(X[: min(len(X), 64)])) <= 1.0 else 1.0
    h, w = X.shape[1:3]
    meta = SessionMeta(game="mk64", track="tensorkart-import", source="tensorkart-npy", storage_size=(h, w),
                       capture_region=(0, 0, 0, 0), extra={"x": str(x_path), "y": str(y_path)})
    report = ImportReport(out)
    with _removed_on_error(out), SessionWriter(out, meta) as writer:
        for i in range(len(X)):
            label = y[i]
            if not np.all(np.isfinite(label)) or np.any(np.abs(label[:2]) > 1.0001):
                problem = f"{y_path} row {i}: label {label.tolist()} is not a TensorKart tuple"
                if not skip_bad:
                    raise TensorKartImportError(problem + " (use --skip-bad to skip such rows)")
                report.skipped.append(problem)
                continue
            frame = np.clip(np.asarray(X[i], dtype=np.float32) * scale + 0.5, 0, 255).astype(np.uint8) \
                if X.dtype != np.uint8 else np.asarray(X[i])
            writer.append(frame, ControllerState.from_tensorkart(label), float(report.frames) / meta.fps, report.frames)
            report.frames += 1
            if progress:
                progress(i + 1, len(X))
    return report
