"""Small image operations the recorder and the importers need, in numpy and Pillow."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from kartstudio.errors import KartStudioError

MAX_IMAGE_SIDE = 4096  # pixels; a screenshot is at most a few thousand wide, a bigger image is a mistake


class ImageFileError(KartStudioError):
    """An image file that cannot be used (unreadable, empty, or too large); the message names it."""


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) uint8 image to size=(height, width).

    Whole-number shrink factors (640x240 -> 320x120, the common case) average each block,
    which is exact and fast; other RGB sizes (800x600 -> 320x240) average the covered area with
    Pillow's box filter (antialiased, ~1 ms); anything else uses bilinear interpolation.
    """
    h, w = image.shape[:2]
    th, tw = size
    if (h, w) == (th, tw):
        return np.ascontiguousarray(image)
    if h % th == 0 and w % tw == 0:
        fy, fx = h // th, w // tw
        n = fy * fx
        if n & (n - 1) == 0 and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            # Pillow's reduce averages blocks in C, 15x faster (0.35 vs 5.7 ms for 640x240 -> 320x120,
            # the recorder's every seat frame); for blocks of a power-of-two area it rounds as
            # block_mean does, bit for bit (tests/test_codecs.py), so stored frames do not change.
            from PIL import Image

            return np.array(Image.fromarray(np.ascontiguousarray(image)).reduce((fx, fy)))
        return block_mean(image, fy, fx)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        from PIL import Image

        resized = Image.fromarray(np.ascontiguousarray(image)).resize((tw, th), Image.Resampling.BOX)
        return np.asarray(resized)
    return _bilinear(image, th, tw)


def block_mean(image: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """The mean of each fy x fx block, rounded half up (exact: the shrink of a whole-number factor)."""
    h, w = image.shape[:2]
    th, tw = h // fy, w // fx
    n = fy * fx
    blocks = image.reshape(th, fy, tw, fx, -1).astype(np.uint16)
    summed = blocks.sum(axis=(1, 3), dtype=np.uint16) if n <= 256 else blocks.sum(axis=(1, 3))
    return ((summed + n // 2) // n).astype(np.uint8)


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


def image_size(path: str | Path, max_side: int = MAX_IMAGE_SIDE) -> tuple[int, int]:
    """(width, height) of an image file from its header alone; ImageFileError if unusable."""
    with _opened(Path(path), max_side) as image:
        return image.size


def read_image(
    path: str | Path,
    max_side: int = MAX_IMAGE_SIDE,
    crop: tuple[float, float, float, float] | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image from a PNG (or any format Pillow reads).

    crop: (left, top, right, bottom) as fractions of the image (a split screen's top half is
    (0, 0, 1, 0.5)); size: (height, width) to resize the (cropped) image to, by area averaging
    as resize() does. The size is checked from the file's header before any pixel is decoded,
    so a small file claiming a huge picture (a 420 KB PNG of 12000x12000) is refused without
    using memory. Raises ImageFileError naming the file. Pillow releases the GIL while it
    decodes and resizes, so several threads read images in parallel.
    """
    from PIL import Image

    path = Path(path)
    with _opened(path, max_side) as image:
        try:
            if image.mode != "RGB":
                image = image.convert("RGB")
            if crop is not None:
                w, h = image.size
                left, top, right, bottom = crop
                image = image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BOX)
            pixels = np.asarray(image)
        except OSError as exc:  # truncated or damaged pixel data
            raise ImageFileError(f"cannot read image {path.name}: {_reason(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises ValueError/SyntaxError/... for damaged files
            raise ImageFileError(f"cannot read image {path.name}: {type(exc).__name__}") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise ImageFileError(f"image {path.name} has no pixels left after cropping ({pixels.shape})")
    return pixels


def _reason(exc: OSError) -> str:
    if getattr(exc, "strerror", None):
        return exc.strerror
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:120] or "not a readable image"


@contextlib.contextmanager
def _opened(path: Path, max_side: int):
    """The image opened lazily (header read, no pixels yet) after its size was checked."""
    from PIL import Image

    from kartstudio.paths import NotRegularFileError, require_regular

    try:
        require_regular(path, "the image")  # a FIFO would block Pillow forever
    except NotRegularFileError as exc:
        raise ImageFileError(str(exc)) from None
    try:
        with warnings.catch_warnings():  # Pillow warns of > 89 megapixels; such images are refused below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageFileError(f"{path.name} is far larger than {max_side}x{max_side} pixels, the most KartStudio reads") from None
    except OSError as exc:  # missing, unreadable, not an image (Pillow's UnidentifiedImageError is one)
        raise ImageFileError(f"cannot read image {path.name}: {_reason(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        raise ImageFileError(f"cannot read image {path.name}: {type(exc).__name__}") from None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageFileError(f"{path.name} is an empty image ({width}x{height} pixels)")
        if width > max_side or height > max_side:
            raise ImageFileError(
                f"{path.name} is {width}x{height} pixels; KartStudio reads images up to {max_side}x{max_side}"
            )
        yield image
