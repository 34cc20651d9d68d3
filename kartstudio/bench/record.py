"""`kartstudio bench record`: two seats at 30 fps from a synthetic split-screen game.

The source is synthetic (named as such): a pseudo-3D road scene per seat with moving stripes,
textured grass and a kart, so compression sees game-like pictures rather than noise or flat
colour. Frames are rendered before the clock starts; what is measured is the real recorder.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from kartstudio.bench import machine
from kartstudio.controller import ControllerState
from kartstudio.pads.base import ScriptedPadSource
from kartstudio.recorder import Recorder
from kartstudio.game import Frame, SeatLayout
from kartstudio.session import CODECS, DEFAULT_STORAGE_SIZE, SessionMeta

TENSORKART_X_BYTES = 66 * 200 * 3  # one X.npy row, counted as uint8 (TensorKart's float arrays are bigger)


def synthetic_view(t: int, seat: int, height: int = 240, width: int = 640) -> np.ndarray:
    rng = np.random.default_rng(seat)
    yy, xx = np.mgrid[0:height, 0:width]
    horizon = height * 2 // 5
    img = np.zeros((height, width, 3), np.float32)
    sky = (yy < horizon)[..., None]
    img += sky * np.stack([90 + 60 * yy / horizon, 140 + 60 * yy / horizon, 235 + 0 * yy], -1)
    depth = np.clip((yy - horizon) / (height - horizon), 1e-3, 1)
    centre = width / 2 + 120 * np.sin(0.02 * t + seat) * (1 - depth) + 40 * np.sin(0.05 * t)
    half = 30 + 260 * depth
    road = (~sky[..., 0]) & (np.abs(xx - centre) < half)
    grass = (~sky[..., 0]) & ~road
    texture = rng.integers(-12, 12, (height, width))
    img[grass] = np.stack([60 + texture[grass], 150 + texture[grass], 60 + 0 * texture[grass]], -1)
    stripes = ((1 / depth + 0.6 * t) % 8) < 4
    img[road] = np.where(stripes[road, None], [120, 120, 125], [105, 105, 110])
    kerb = (~sky[..., 0]) & (np.abs(np.abs(xx - centre) - half) < 6 * depth + 1)
    img[kerb] = np.where(stripes[kerb, None], [220, 30, 30], [240, 240, 240])
    kart = (np.abs(xx - width / 2) < 28) & (np.abs(yy - height * 0.82) < 18)
    img[kart] = [230, 40, 40] if seat == 1 else [40, 200, 40]
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_frames(count: int) -> list[np.ndarray]:
    return [np.concatenate([synthetic_view(t, 1), synthetic_view(t, 2)], axis=0) for t in range(count)]


def _png_bytes(image: np.ndarray) -> int:
    """Size of the screenshot as a PNG, the smaller of libpng (adaptive filters) and mss's
    encoder (zlib level 6), so the comparison never flatters us."""
    import io
    import os

    import mss.tools

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    surface = pygame.surfarray.make_surface(np.ascontiguousarray(image.transpose(1, 0, 2)))
    buffer = io.BytesIO()
    pygame.image.save(surface, buffer, "shot.png")
    plain = len(mss.tools.to_png(image.tobytes(), (image.shape[1], image.shape[0]), level=6))
    return min(buffer.tell(), plain)


def screenshot_frames(folder: Path, count: int) -> list[np.ndarray]:
    """Real game screenshots (e.g. a TensorKart recording folder), scaled to 640x480."""
    from kartstudio.errors import KartStudioError
    from kartstudio.images import read_image

    files = sorted(Path(folder).glob("*.png"))[:count]
    if not files:
        raise KartStudioError(f"no PNG screenshots in {folder}")
    return [read_image(f, size=(480, 640)) for f in files]


def codec_figures(images: list[np.ndarray], tensorkart_kb: float, quality: int = 90) -> dict:
    """Per seat frame (both halves of each screen, at 320x120): stored KB, the ratio to TensorKart's
    layout, encode and decode ms (one core), and PSNR for each frame codec."""
    import zlib

    from kartstudio.images import resize
    from kartstudio.session import decode_jpeg, encode_frame
    from kartstudio.session.codecs import _GZIP_LEVEL

    layout = SeatLayout.split_screen()
    seats = [resize(layout.crop(img, seat), DEFAULT_STORAGE_SIZE) for img in images for seat in (1, 2)]
    figures = {}
    for codec in CODECS:
        sizes, encode_s, decode_s, errors = [], 0.0, 0.0, []
        for frame in seats:
            t0 = time.perf_counter()
            if codec == "lossless":  # what the recorder's HDF5 gzip filter does per frame
                data = zlib.compress(frame.tobytes(), _GZIP_LEVEL)
            else:
                data = encode_frame(frame, codec, quality)
            t1 = time.perf_counter()
            back = np.frombuffer(zlib.decompress(data), np.uint8).reshape(frame.shape) if codec == "lossless" \
                else decode_jpeg(data, frame.shape)
            decode_s += time.perf_counter() - t1
            encode_s += t1 - t0
            sizes.append(len(data))
            errors.append(np.mean((back.astype(np.float64) - frame) ** 2))
        kb = float(np.mean(sizes)) / 1024
        mse = float(np.mean(errors))
        figures[codec] = {
            "kb_per_frame": round(kb, 2),
            "ratio_vs_tensorkart": round(tensorkart_kb / kb, 2),
            "encode_ms": round(1000 * encode_s / len(seats), 3),
            "decode_ms": round(1000 * decode_s / len(seats), 3),
            "psnr_db": None if mse == 0 else round(10 * np.log10(255**2 / mse), 2),
        }
        if codec == "jpeg":
            figures[codec]["quality"] = quality
    return figures


def bench_record(
    seconds: float = 60.0, fps: float = 30.0, folder: Path | None = None, distinct: int = 90, images_from: Path | None = None,
    codec: str = "lossless",
) -> dict:
    images = screenshot_frames(images_from, distinct) if images_from else synthetic_frames(distinct)
    distinct = len(images)
    own_folder = folder is None
    folder = Path(tempfile.mkdtemp(prefix="kartstudio-bench-")) if own_folder else folder
    pads = {seat: ScriptedPadSource(f"bench-{seat}") for seat in (1, 2)}
    meta = {seat: (SessionMeta(game="synthetic", track="bench", codec=codec), pad) for seat, pad in pads.items()}
    recorder = Recorder(folder, meta)
    try:
        paths = recorder.start()
        period = 1.0 / fps
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        n = 0
        while (now := time.monotonic()) - start < seconds:
            # the pad is sampled 8 times per frame, like a 250 Hz poller against a 30 fps game
            for k in range(8):
                for seat, pad in pads.items():
                    pad.push(ControllerState(x=int(70 * np.sin(0.1 * n + k / 8 + seat)), a=True, b=(n % 45 == 0 and k == 3)))
            recorder.on_frame(Frame(n, now, images[n % distinct]))
            n += 1
            if not recorder.recording:
                break  # every seat stopped (disk full): raise_errors below says why
            time.sleep(max(0.0, start + n * period - time.monotonic()))
        recorder.stop()
        elapsed = time.monotonic() - start
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        recorder.raise_errors()
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        counters = recorder.counters()
        stored = sum(p.stat().st_size for p in paths.values())
        written = sum(c.written for c in counters.values())
        tensorkart = np.mean([_png_bytes(img) for img in images[:: max(1, distinct // 15)]]) + TENSORKART_X_BYTES
        kb_per_frame = stored / max(1, written) / 1024
        return {
            "source": f"screenshots from {images_from}" if images_from else "synthetic 640x480 split-screen road scene",
            "seconds": round(elapsed, 2),
            "target_fps": fps,
            "seats": {
                str(seat): {
                    "fps": round(c.written / elapsed, 2),
                    "captured": c.captured,
                    "written": c.written,
                    "dropped": c.dropped,
                }
                for seat, c in counters.items()
            },
            "cpu_seconds_per_second": round(cpu / elapsed, 3),
            "kb_per_frame": round(kb_per_frame, 2),
            "tensorkart_kb_per_frame": round(tensorkart / 1024, 2),
            "disk_ratio_vs_tensorkart": round(tensorkart / 1024 / kb_per_frame, 2),
            "codec": codec,
            "codecs": codec_figures(images, tensorkart / 1024),
            "storage_size": [120, 320],
            "machine": machine(),
        }
    finally:
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)
