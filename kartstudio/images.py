"""Small image operations the recorder needs on its hot path, in plain numpy."""

from __future__ import annotations

import numpy as np


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) uint8 image to size=(height, width).

    Whole-number shrink factors (640x240 -> 320x120, the common case) average each block,
    which is exact and fast; anything else uses bilinear interpolation.
    """
    h, w = image.shape[:2]
    th, tw = size
    if (h, w) == (th, tw):
        return np.ascontiguousarray(image)
    if h % th == 0 and w % tw == 0:
        fy, fx = h // th, w // tw
        blocks = image.reshape(th, fy, tw, fx, -1).astype(np.uint16)
        summed = blocks.sum(axis=(1, 3), dtype=np.uint16) if fy * fx <= 256 else blocks.sum(axis=(1, 3))
        n = fy * fx
        return ((summed + n // 2) // n).astype(np.uint8)
    return _bilinear(image, th, tw)


def _bilinear(image: np.ndarray, th: int, tw: int) -> np.ndarray:
    h, w = image.shape[:2]
    ys = (np.arange(th) + 0.5) * h / th - 0.5
    xs = (np.arange(tw) + 0.5) * w / tw - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1 = np.clip(y0 + 1, 0, h - 1)
    x1 = np.clip(x0 + 1, 0, w - 1)
    wy = np.clip(ys - y0, 0, 1)[:, None, None]
    wx = np.clip(xs - x0, 0, 1)[None, :, None]
    img = image.astype(np.float32)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    out = top * (1 - wy) + bottom * wy
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
