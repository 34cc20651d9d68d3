"""How a session stores its frames: the ``lossless`` codec (a zlib stream of the raw pixels, one
frame per HDF5 gzip chunk) and the ``jpeg`` codec (one JPEG file per frame), with the size checks
that keep a damaged or hostile frame from costing more than one frame's memory."""

from __future__ import annotations

import warnings

import numpy as np

# gzip is the lossless filter every h5py has. Level 6 costs ~1.2 ms per 320x120 frame here and
# saves 5-10% over level 1; szip (also built in) does worse on interleaved RGB.
_COMPRESSION = {"compression": "gzip", "compression_opts": 6}
_GZIP_LEVEL = 6
CODECS = ("lossless", "jpeg")  # how frames are stored: gzip of the raw pixels, or one JPEG per frame
DEFAULT_JPEG_QUALITY = 90  # ~10.5 KB per 320x120 seat frame of real MK64 pictures, PSNR ~33 dB


def encode_frame(frame: np.ndarray, codec: str = "lossless", quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """One (H, W, 3) uint8 frame as stored in a session: a zlib stream of the raw pixels (what
    HDF5's gzip filter writes for a one-frame chunk) or a JPEG file. Releases the GIL while it
    compresses, so importers encode on several threads."""
    if codec == "lossless":
        # ISA-L's deflate at level 3 matches zlib's level 6 in size on game frames (within 1%) in
        # a tenth of the time (0.5 vs 5.7 ms for 320x240); any inflate reads it, HDF5's gzip too.
        from isal import isal_zlib

        return isal_zlib.compress(np.ascontiguousarray(frame).tobytes(), 3)
    if codec == "jpeg":
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame)).save(buffer, "JPEG", quality=int(quality))
        return buffer.getvalue()
    raise ValueError(f"unknown frame codec {codec!r}: choose one of {', '.join(CODECS)}")


def inflate_frame(data: bytes, shape: tuple[int, int, int], raw: bool = False) -> np.ndarray:
    """A lossless frame's stored bytes (a zlib stream, or raw) back to (H, W, 3) pixels. Inflates
    at most one frame's bytes (plus one, to see a longer stream), so a chunk of the wrong size or a
    zip bomb is a ValueError, never gigabytes of RAM."""
    size = int(np.prod(shape))
    if not raw:
        from isal.isal_zlib import decompressobj, error

        try:
            data = decompressobj().decompress(data, size + 1)
        except error:
            raise ValueError("does not decompress") from None
    if len(data) != size:
        got = f"more than {size}" if len(data) > size else str(len(data))
        raise ValueError(f"holds {got} bytes; a {shape[1]}x{shape[0]} frame is {size}")
    return np.frombuffer(data, np.uint8).reshape(shape)


def decode_jpeg(data: bytes | np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A stored JPEG frame back to (H, W, 3) uint8 RGB; ValueError if it is not one of that shape."""
    import io

    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow warns of > 89 megapixels: refused below by size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(bytes(data)))
        with opened as image:
            # the header's size first: a 12000x12000 picture is refused before it is decoded
            if image.size != (shape[1], shape[0]):
                raise _WrongSize(image.size)
            pixels = np.asarray(image.convert("RGB"))
    except _WrongSize as exc:
        width, height = exc.args[0]
        raise ValueError(f"a JPEG of {width}x{height}, expected {shape[1]}x{shape[0]}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises several kinds for damaged data
        raise ValueError(f"not a readable JPEG ({type(exc).__name__})") from None
    if pixels.shape != tuple(shape):
        raise ValueError(f"a JPEG of {pixels.shape[1]}x{pixels.shape[0]}, expected {shape[1]}x{shape[0]}")
    return pixels


class _WrongSize(Exception):
    """decode_jpeg's header check: the picture's (width, height) is not the session's."""
