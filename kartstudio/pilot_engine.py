"""What runs a driving network for the Pilot: LiteRT (TensorFlow Lite with XNNPACK), or TensorFlow.

The network after its Preprocess layer (the convolutions and the head) is converted once per model
file into a LiteRT flatbuffer whose one invoke returns the 5 outputs and the conv2/conv4 maps. The
Preprocess layer's area resize (and its 1/255 scale) runs here in numpy as two small matrix
products, so the flatbuffer sees exactly the (66, 200, 3 x history) floats Keras would. On the
2-core development machine (`kartstudio bench infer`, docs/training.md) it takes about a third of
the tf.function's time a frame (1.3 vs 3.7 ms of CPU with the maps, both measured under load; the
issue's idle invoke: 0.55 ms on 2 threads, 1.04 ms on 1).

The compiled flatbuffer is cached next to the model file (`bc.keras` -> `.bc.keras.litert`). The
Keras file stays the source of truth: the cache holds the SHA-256 of the model file it was compiled
from and an HMAC-SHA256 under a key that only this user's KartStudio holds (in its config folder),
so a changed model is recompiled and a cache file that did not come from here (copied in next to
a downloaded model, edited) is never handed to the interpreter; it is compiled again instead. Where
the folder is not writable the flatbuffer stays in memory.

Where LiteRT (`ai-edge-litert`) is missing or the conversion fails, the tf.function path runs
instead and `Engine.description` says so (the Pilot logs it, `bench infer` prints it).

Thread use: an engine is called from one thread at a time (the Pilot's contract).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import threading
from pathlib import Path

import numpy as np

from kartstudio.errors import KartStudioError
from kartstudio.model import ACTIVATION_LAYERS, keras, tf

log = logging.getLogger(__name__)

ENGINES = ("auto", "litert", "tensorflow")
CACHE_SUFFIX = ".litert"
CACHE_MAGIC = b"KSLITERT1\n"
CACHE_FORMAT = 1  # bump when what is converted changes (inputs, outputs, their order)
KEY_FILE = "compile-cache.key"
MAX_CACHE_BYTES = 256 << 20  # a driving network's flatbuffer is a few MB
OUTPUT_NAMES = ("actions", *ACTIVATION_LAYERS)
CHECK_ATOL = 1e-4  # a fresh conversion must give the Keras network's actions within this


class EngineError(KartStudioError):
    """LiteRT was asked for by name and cannot run this model."""


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- the resize --------------------------------------------------------------------------------


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of TensorFlow's area resize along one axis (tf.image.resize(method="area"),
    no corner alignment): each output pixel averages the input span it covers, by overlap."""
    w = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for y in range(n_out):
        a, b = y * scale, (y + 1) * scale
        for i in range(math.floor(a), math.ceil(b)):
            w[y, min(i, n_in - 1)] += min(i + 1, b) - max(i, a)
    return w / scale


def _period(w: np.ndarray) -> tuple[int, np.ndarray]:
    """(g, block) where w is g copies of block down its diagonal (an area resize repeats every
    n_in/gcd input pixels); (1, w) where it does not."""
    n_out, n_in = w.shape
    g = math.gcd(n_in, n_out)
    block = w[: n_out // g, : n_in // g]
    if g > 1 and np.allclose(np.kron(np.eye(g), block), w, atol=1e-12):
        return g, block
    return 1, w


class AreaResize:
    """(H, W, C) uint8 -> (h, w, C) float32 as the model's Preprocess layer computes it (area resize
    times scale): rows, then columns, each a matrix product over one repeating block (120 -> 66
    rows: 6 blocks of 20 -> 11; 320 -> 200 columns: 40 blocks of 8 -> 5), ~60 us for a 320x120 seat."""

    def __init__(self, shape: tuple[int, int, int], size: tuple[int, int], scale: float) -> None:
        (h, w, c), (oh, ow) = shape, size
        self.shape, self.size = (h, w, c), (oh, ow)
        self.gy, by = _period(area_weights(h, oh))
        self.rows = (by * scale).astype(np.float32)  # (oh/gy, h/gy)
        self.gx, bx = _period(area_weights(w, ow))
        # columns with the channels inside: block (w/gx * c) -> (ow/gx * c), so one matrix product
        # writes the (oh, ow, c) result in place; a large block (no short period) goes per channel
        self.per_channel = bx.shape[1] * c > 96
        if self.per_channel:
            self.cols = np.ascontiguousarray(bx.T, np.float32)
        else:
            self.cols = np.kron(bx.T, np.eye(c)).astype(np.float32)

    def __call__(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        (h, w, c), (oh, ow) = self.shape, self.size
        x = image.astype(np.float32).reshape(self.gy, h // self.gy, w * c)
        r = np.matmul(self.rows, x)  # (gy, oh/gy, w*c)
        if out is None:
            out = np.empty((oh, ow, c), np.float32)
        if self.per_channel:
            r = r.reshape(oh, w, c).transpose(0, 2, 1)  # (oh, c, w)
            out[...] = np.matmul(r, self.cols).transpose(0, 2, 1)
        else:
            np.matmul(r.reshape(oh * self.gx, (w // self.gx) * c), self.cols,
                      out=out.reshape(oh * self.gx, (ow // self.gx) * c))
        return out


# -- the engines -------------------------------------------------------------------------------


class TensorFlowEngine:
    """The network with its own preprocessing traced into two concrete tf.functions (with and
    without the maps). Traced once here (about a second each); the concrete functions are then
    called directly, which skips tf.function's per-call argument matching (~0.3 ms a frame)."""

    name = "tensorflow"

    def __init__(self, model: keras.Model, channels: int, why: str = "") -> None:
        self.description = "TensorFlow tf.function" + (f" (LiteRT not used: {why})" if why else "")
        self.threads = None
        self.model = model
        self._inference = keras.Model(
            model.inputs[0], [model.outputs[0], *(model.get_layer(n).output for n in ACTIVATION_LAYERS)]
        )
        signature = [tf.TensorSpec((None, None, channels), tf.uint8, name="image")]
        self._with_maps = tf.function(self._run_with_maps, input_signature=signature).get_concrete_function()
        self._without_maps = tf.function(self._run_without_maps, input_signature=signature).get_concrete_function()

    def _run_with_maps(self, image):
        return [t[0] for t in self._inference(image[None], training=False)]

    def _run_without_maps(self, image):
        return self.model(image[None], training=False)[0]

    def run(self, image: np.ndarray, maps: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """(action (5,), [conv2, conv4] or []) for one stacked uint8 image of any size."""
        if maps:
            action, *rest = self._with_maps(image)
            return action.numpy(), [m.numpy() for m in rest]
        return self._without_maps(image).numpy(), []


class LiteRTEngine:
    """One LiteRT interpreter (XNNPACK) over the converted network; the resize runs in numpy."""

    name = "litert"

    def __init__(self, flatbuffer: bytes, model: keras.Model, threads: int, source: str) -> None:
        from ai_edge_litert import __version__ as litert_version
        from ai_edge_litert.interpreter import Interpreter

        pre = model.get_layer("preprocess")
        self.size, self.scale, self.threads = tuple(pre.size), float(pre.scale), int(threads)
        self.description = f"LiteRT {litert_version} (XNNPACK), {self.threads} thread{'s' * (self.threads != 1)}, {source}"
        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=self.threads)
        runner = self._interpreter.get_signature_runner()
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        if set(outputs) != set(OUTPUT_NAMES) or len(inputs) != 1:
            raise EngineError(f"the compiled network has outputs {sorted(outputs)}, expected {list(OUTPUT_NAMES)}")
        (self._input_shape,) = (tuple(int(d) for d in v["shape"][1:]) for v in inputs.values())
        (self._input,) = (v["index"] for v in inputs.values())
        self._outputs = [outputs[n]["index"] for n in OUTPUT_NAMES]
        del runner, inputs, outputs  # the runner holds tensor references that would block allocation
        self._interpreter.allocate_tensors()
        self._resizers: dict[tuple, AreaResize] = {}

    def run(self, image: np.ndarray, maps: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """(action (5,), [conv2, conv4] or []) for one stacked uint8 image of any size: resized into
        the interpreter's own input buffer, one invoke, the outputs copied out (the next invoke
        overwrites them)."""
        resize = self._resizers.get(image.shape)
        if resize is None:
            if len(self._resizers) > 8:  # a stream of odd sizes must not grow this for ever
                self._resizers.clear()
            resize = self._resizers[image.shape] = AreaResize(image.shape, self.size, self.scale)
        resize(image, out=self._interpreter.tensor(self._input)()[0])
        self._interpreter.invoke()
        get = self._interpreter.get_tensor
        action = get(self._outputs[0])[0]
        return action, ([get(i)[0] for i in self._outputs[1:]] if maps else [])


# -- conversion and the cache ------------------------------------------------------------------


def convert(model: keras.Model) -> bytes:
    """The network after its Preprocess layer as a LiteRT flatbuffer: input the preprocessed
    (1, 66, 200, 3 x history) floats, outputs actions, conv2, conv4 (float32, no quantization:
    the outputs must equal the Keras model's)."""
    pre = model.get_layer("preprocess")
    body = keras.Model(pre.output, [model.outputs[0], *(model.get_layer(n).output for n in ACTIVATION_LAYERS)])
    channels = int(model.inputs[0].shape[-1])

    @tf.function(input_signature=[tf.TensorSpec((1, *pre.size, channels), tf.float32, name="image")])
    def network(x):
        return dict(zip(OUTPUT_NAMES, body(x, training=False)))

    holder = tf.Module()  # the converter freezes the variables it can find through this
    holder.variables_ = [w.value for w in body.weights]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([network.get_concrete_function()], holder)
    return converter.convert()


def _own_suffix() -> str:
    """A temporary name's part that no other writer shares: two processes, or two seats' pilots
    loading the same model in two threads of one process."""
    return f"{os.getpid()}-{threading.get_ident()}"


def _user_key() -> bytes | None:
    """This user's cache key (32 random bytes in the config folder, made on first use, owner-only);
    None where it cannot be read or made (then nothing is cached)."""
    from kartstudio.paths import config_dir

    try:
        path = config_dir() / KEY_FILE
        try:
            with open(path, "rb") as f:
                key = f.read(64)
            if len(key) == 32:
                return key
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        tmp = path.with_name(f".{KEY_FILE}.{_own_suffix()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        with open(path, "rb") as f:
            key = f.read(64)
        return key if len(key) == 32 else None
    except (OSError, KartStudioError):
        return None


def cache_path(model_path: str | os.PathLike) -> Path:
    p = Path(model_path)
    return p.with_name(f".{p.name}{CACHE_SUFFIX}")


def _header(model_sha256: str) -> dict:
    from ai_edge_litert import __version__ as litert_version

    return {"format": CACHE_FORMAT, "model_sha256": model_sha256, "tensorflow": tf.__version__, "litert": litert_version}


def read_cache(model_path: str | os.PathLike, model_sha256: str) -> bytes | None:
    """The flatbuffer cached for this exact model file, or None: no cache, one for another model
    file or version, or one this user's KartStudio did not write (its HMAC does not match)."""
    key = _user_key()
    path = cache_path(model_path)
    if key is None or not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CACHE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_CACHE_BYTES or not data.startswith(CACHE_MAGIC):
        return None
    body = data[len(CACHE_MAGIC):]
    if len(body) < 36:
        return None
    mac, n = body[:32], int.from_bytes(body[32:36], "little")
    if not hmac.compare_digest(mac, hmac.new(key, body[32:], hashlib.sha256).digest()):
        return None
    try:
        header = json.loads(body[36:36 + n])
    except ValueError:
        return None
    if header != _header(model_sha256):
        return None
    return body[36 + n:]


def write_cache(model_path: str | os.PathLike, model_sha256: str, flatbuffer: bytes) -> Path | None:
    """Write the cache atomically next to the model; None where that folder (or the key) is not writable."""
    key = _user_key()
    if key is None:
        return None
    header = json.dumps(_header(model_sha256), sort_keys=True).encode()
    signed = len(header).to_bytes(4, "little") + header + flatbuffer
    data = CACHE_MAGIC + hmac.new(key, signed, hashlib.sha256).digest() + signed
    path = cache_path(model_path)
    tmp = path.with_name(f"{path.name}.{_own_suffix()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        return None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def _check(engine: LiteRTEngine, model: keras.Model) -> None:
    """A fresh conversion gives the Keras model's actions (within CHECK_ATOL) on two test images."""
    rng = np.random.default_rng(0)
    channels = int(model.inputs[0].shape[-1])
    for image in (rng.integers(0, 256, (*engine.size, channels), dtype=np.uint8),
                  np.full((*engine.size, channels), 128, np.uint8)):
        expected = np.asarray(model(image[None].astype(np.float32), training=False))[0]
        got, _ = engine.run(image, maps=False)
        if not np.allclose(got, expected, atol=CHECK_ATOL):
            raise EngineError(f"the converted network differs from the Keras model by {np.abs(got - expected).max():.2g}")


def make_engine(model: keras.Model, *, engine: str = "auto", threads: int = 1,
                model_path: str | os.PathLike | None = None, model_sha256: str | None = None):
    """The engine that runs `model`: LiteRT where it can (compiled from the model file's cache when
    that is valid, else converted and checked against Keras, then cached), else TensorFlow.
    engine="litert" raises EngineError instead of falling back; "tensorflow" never tries LiteRT."""
    if engine not in ENGINES:
        raise KartStudioError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if not isinstance(threads, int) or not 1 <= threads <= 64:
        raise KartStudioError(f"the pilot's threads must be 1 to 64, got {threads!r}")
    channels = int(model.inputs[0].shape[-1])
    if engine == "tensorflow":
        return TensorFlowEngine(model, channels)
    try:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            raise EngineError("the ai-edge-litert package is not installed (pip install ai-edge-litert)") from None
        cacheable = model_path is not None and model_sha256 is not None
        flatbuffer = read_cache(model_path, model_sha256) if cacheable else None
        if flatbuffer is not None:
            try:
                return LiteRTEngine(flatbuffer, model, threads, "compiled earlier (cache)")
            except (ValueError, RuntimeError, EngineError):
                flatbuffer = None  # ours but unusable (another interpreter build): compile afresh
        try:
            flatbuffer = convert(model)
            lite = LiteRTEngine(flatbuffer, model, threads, "compiled now")
        except EngineError:
            raise
        except Exception as exc:  # the converter raises many kinds (ConverterError, ValueError, ...)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EngineError(f"conversion failed ({first[:160]})") from None
        _check(lite, model)
        if cacheable and write_cache(model_path, model_sha256, flatbuffer):
            lite.description = lite.description.replace("compiled now", "compiled now and cached")
        return lite
    except EngineError as exc:
        if engine == "litert":
            raise
        fallback = TensorFlowEngine(model, channels, why=str(exc))
        log.warning("pilot: %s", fallback.description)
        return fallback


__all__ = ["AreaResize", "ENGINES", "EngineError", "LiteRTEngine", "TensorFlowEngine", "area_weights",
           "cache_path", "convert", "file_sha256", "make_engine", "read_cache", "write_cache"]
