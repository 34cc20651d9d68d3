"""`kartstudio bench import`: TensorKart recording folders into a session, frames per second.

The folder is made of generated 800x600 PNG screenshots of a pseudo-3D road scene (textured
grass, striped road and kerbs, a kart: the synthetic game of `bench record`, named as such),
the size real public TensorKart recordings hold, with record.py's data.csv; or a real
recording given with --images. What is timed is the real importer, end to end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from kartstudio.bench import machine
from kartstudio.errors import KartStudioError


def make_recording(folder: Path, frames: int, size: tuple[int, int] = (600, 800)) -> float:
    """A record.py folder of `frames` PNG screenshots (height, width = size); returns KB per PNG."""
    from PIL import Image

    from kartstudio.bench.record import synthetic_view

    folder.mkdir(parents=True, exist_ok=True)
    lines, total = [], 0
    for t in range(frames):
        path = folder / f"img_{t}.png"
        Image.fromarray(synthetic_view(3 * t, 1 + t % 2, *size)).save(path)
        total += path.stat().st_size
        lines.append(f"samples/bench/img_{t}.png,{np.sin(0.1 * t):.5f},0.0,1,0,{int(t % 30 == 0)}")
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    return total / frames / 1024


def bench_import(frames: int = 400, images: Path | None = None, codec: str = "lossless", folder: Path | None = None) -> dict:
    from kartstudio.images import image_size
    from kartstudio.importers import _workers, import_tensorkart_folder

    own = folder is None
    work = Path(tempfile.mkdtemp(prefix="kartstudio-bench-import-")) if own else folder
    if not own:
        try:
            work.mkdir(parents=True, exist_ok=True)  # --folder NEW: made, as `bench record` does
        except OSError as exc:
            raise KartStudioError(f"--folder {work}: cannot create it ({exc.strerror or exc}); choose another") from None
    try:
        if images is None:
            recording = work / "recording"
            kb_per_png = make_recording(recording, frames)
            source = f"{frames} generated 800x600 PNG screenshots (synthetic road scene)"
        else:
            recording = images
            pngs = sorted(recording.glob("*.png"))
            kb_per_png = float(np.mean([p.stat().st_size for p in pngs])) / 1024 if pngs else 0.0
            source = f"{recording} ({len(pngs)} PNGs)"
        first = sorted(recording.glob("*.png"))[:1]
        width, height = image_size(first[0]) if first else (0, 0)
        out = work / "imported.h5"
        out.unlink(missing_ok=True)
        start = time.perf_counter()
        cpu0 = time.process_time()
        report = import_tensorkart_folder(recording, out, skip_bad=True, codec=codec)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        return {
            "source": source,
            "screenshot": [width, height],
            "kb_per_png": round(kb_per_png, 1),
            "frames": report.frames,
            "skipped": report.skipped_rows,
            "seconds": round(elapsed, 3),
            "frames_per_s": round(report.frames / elapsed, 1),
            "cpu_seconds_per_frame_ms": round(1000 * cpu / max(1, report.frames), 2),
            "workers": _workers(),
            "layout": report.layout,
            "codec": codec,
            "kb_per_frame": round(out.stat().st_size / max(1, report.frames) / 1024, 1),
            "target_frames_per_s": 100,
            "machine": machine(),
        }
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
