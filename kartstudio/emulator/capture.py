"""Screenshots of the emulator window's client area with mss, following its real geometry."""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from kartstudio.errors import KartStudioError
from kartstudio.game import SCREEN_HEIGHT, SCREEN_WIDTH


def _new_mss(display: str | None):
    import mss

    factory = getattr(mss, "MSS", None) or mss.mss  # mss 10 renamed mss.mss to mss.MSS
    try:
        return factory(display=display) if display else factory()
    except Exception as exc:  # mss raises its own ScreenShotError for a display it cannot open
        raise KartStudioError(f"cannot capture the screen of X display {display}: {exc}") from exc


def fit(image: np.ndarray, width: int = SCREEN_WIDTH, height: int = SCREEN_HEIGHT) -> np.ndarray:
    """Nearest-neighbour resize to width x height (a no-op at the usual 640x480)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if width % w == 0 and height % h == 0:
        # A whole-number enlargement (a 320x240 window): the same pixels as the indexing below,
        # twice as fast (Pillow's nearest neighbour is slower still).
        return image.repeat(height // h, axis=0).repeat(width // w, axis=1)
    rows = (np.arange(height) * h // height).clip(0, h - 1)
    cols = (np.arange(width) * w // width).clip(0, w - 1)
    return image[rows][:, cols]


class WindowCapture:
    """Grabs the region `geometry()` returns (a Geometry with as_region()), as (480, 640, 3) RGB uint8.

    mss handles are per thread (an X connection is not shared between threads).
    """

    def __init__(self, geometry: Callable[[], object], display: str | None = None,
                 size: tuple[int, int] = (SCREEN_WIDTH, SCREEN_HEIGHT)) -> None:
        self.geometry = geometry
        self.display = display
        self.size = size
        self._local = threading.local()
        self._handles: list = []  # every thread's mss handle, closed together by close()
        self._handles_lock = threading.Lock()

    def grab(self) -> np.ndarray:
        sct = getattr(self._local, "sct", None)
        if sct is None:
            sct = self._local.sct = _new_mss(self.display)
            with self._handles_lock:
                self._handles.append(sct)
        region = self.geometry().as_region()
        try:
            shot = sct.grab(region)
        except Exception as exc:  # mss.ScreenShotError: e.g. the window is partly off the screen
            raise KartStudioError(
                f"cannot capture the emulator window at {region} ({str(exc).splitlines()[0]}); "
                "keep the window fully on the screen"
            ) from exc
        # Pillow's unpacker turns BGRX into RGB in one C pass: 0.45 ms at 640x480 where numpy's
        # strided copy took 2 ms, a quarter of a frame's time when recording both seats.
        from PIL import Image

        rgb = np.array(Image.frombuffer("RGB", (shot.width, shot.height), shot.bgra, "raw", "BGRX", 0, 1))
        return fit(rgb, *self.size)

    def close(self) -> None:
        """Close every thread's X connection (call when no thread grabs any more)."""
        with self._handles_lock:
            handles, self._handles = self._handles, []
        for sct in handles:
            try:
                sct.close()
            except Exception:  # noqa: BLE001 - the display may already be gone
                pass
        self._local = threading.local()
