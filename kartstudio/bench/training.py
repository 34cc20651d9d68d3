"""`kartstudio bench train` and `kartstudio bench infer`, and the session files they use.

`bench train` writes sessions from realistic pictures: the practice track driven by the expert
(recorded through the real Recorder), each frame with fresh capture noise so it compresses like
a captured game frame, not like flat colours (`--frames synthetic`: a drawn road, for quick
runs). They are written through the real SessionWriter, so what is measured is the real
reading, decoding, resizing and training path.

Training figures run in child processes (one per measurement), so each peak RSS is that
measurement's own and not the maximum of everything before it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kartstudio.controller import ControllerState
from kartstudio.session import SessionMeta, SessionWriter

SEAT_SIZE = (120, 320)  # (height, width): one seat's stored view


def synthetic_seat_frame(steer: float, t: int, rng: np.random.Generator, size: tuple[int, int] = SEAT_SIZE) -> np.ndarray:
    """A seat view whose road bends with `steer` (-1..1), so a network can learn steer from pixels."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = int(h * 0.35)
    depth = np.clip((yy - horizon) / (h - horizon), 0.0, 1.0)
    centre = w / 2 + steer * w * 0.4 * (1 - depth) ** 2
    half = 6 + w * 0.45 * depth
    img = np.empty((h, w, 3), np.float32)
    img[:] = (70, 150, 70)  # grass
    img[:horizon] = (110, 170, 240)  # sky
    road = (yy >= horizon) & (np.abs(xx - centre) < half)
    stripes = ((6 / (depth + 0.05) + 0.5 * t) % 6) < 3
    img[road] = (110, 110, 115)
    img[road & stripes & (np.abs(xx - centre) < 0.04 * half + 1)] = (240, 240, 240)
    img += rng.normal(0, 6, (h, w, 1)).astype(np.float32)  # texture and sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def write_synthetic_session(
    path: str | os.PathLike, frames: int, seed: int = 0, size: tuple[int, int] = SEAT_SIZE, distinct: int = 0
) -> Path:
    """A session file of `frames` synthetic frames with labels matching the pictures.

    Steering follows a smooth random curve in -1..1; A is held, B and R are tapped now and then.
    distinct > 0 renders only that many pictures and cycles them with fresh noise rows (fast,
    for large benchmark files).
    """
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.normal(0, 0.15, frames))
    steer = np.sin(steps) * 0.95
    pool: list[np.ndarray] = []
    if distinct:
        pool = [synthetic_seat_frame(float(s), i, rng, size) for i, s in enumerate(np.linspace(-0.95, 0.95, distinct))]
    meta = SessionMeta(game="synthetic", track=f"bench-{seed}", storage_size=size, source="kartstudio.bench.training", fps=30.0)
    with SessionWriter(path, meta) as w:
        for i in range(frames):
            if distinct:
                k = int(round((steer[i] + 0.95) / 1.9 * (distinct - 1)))
                image = pool[k].copy()
                row = rng.integers(0, size[0])
                image[row] = rng.integers(0, 255, image[row].shape, dtype=np.uint8)  # no two frames alike
                label_x = float(np.linspace(-0.95, 0.95, distinct)[k])
            else:
                image = synthetic_seat_frame(float(steer[i]), i, rng, size)
                label_x = float(steer[i])
            state = ControllerState(x=label_x * 80, a=True, b=i % 97 == 5, r=i % 53 < 3)
            w.append(image, state, i / 30.0, i)
    return Path(path)


def _rss_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- training --------------------------------------------------------------------------------

SESSION_FRAMES = 600  # a TensorKart-sized session: the short epochs the streaming path must keep up with
NOISE = 5.0  # capture noise added to the practice track's flat-shaded pictures (std, of 255)


def practice_pool(frames: int = SESSION_FRAMES, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Seat views and labels of the expert driving the practice track (recorded by the real
    Recorder into a temporary folder): realistic pictures and realistic labels."""
    from kartstudio.practice.demos import record_track
    from kartstudio.session import open_session

    images, labels = [], []
    with tempfile.TemporaryDirectory(prefix="kartstudio-bench-pool-") as tmp:
        while sum(map(len, images)) < frames:
            for path in record_track(tmp, seed, seats=(1,), limit=frames - sum(map(len, images))).paths:
                with open_session(path) as s:
                    keep = s.included_indices()
                    images.append(np.asarray(s.frames[: len(s)])[keep])
                    labels.append(np.asarray(s.actions[: len(s)], np.float32)[keep])
            seed += 1
    return np.concatenate(images)[:frames], np.concatenate(labels)[:frames]


def write_pool_session(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, frames: int, seed: int = 0) -> Path:
    """A session of `frames` frames from a pool of pictures, each with fresh capture noise (a
    flat-shaded picture compresses to 1 KB, a captured game frame to tens of KB), labels kept."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, NOISE, (8, *images.shape[1:3], 1)).astype(np.int16)
    h, w = images.shape[1:3]
    meta = SessionMeta(game="practice", track=f"bench-{seed}", storage_size=(h, w), source="kartstudio.bench.training",
                       fps=30.0)
    start = int(rng.integers(len(images)))
    with SessionWriter(path, meta) as writer:
        for i in range(frames):
            k = (start + i) % len(images)
            shifted = np.roll(noise[i % len(noise)], int(rng.integers(h)), axis=0)
            image = np.clip(images[k].astype(np.int16) + shifted, 0, 255).astype(np.uint8)
            writer.append(image, ControllerState(), i / 30.0, i, action=labels[k])
    return Path(path)


def make_dataset(folder: Path, megabytes: float, frames_per_file: int = SESSION_FRAMES, seed: int = 0,
                 source: str = "practice", unique_mb: float = 600.0, copy_from: list[Path] | None = None) -> list[Path]:
    """Session files adding up to about `megabytes` on disk, `frames_per_file` frames each.

    source "practice": the practice track's pictures with capture noise; "synthetic": a drawn
    road (fast, for tests). Past `unique_mb` (or with `copy_from`: from the start) whole files are
    copies of those written (a 5 GB set then takes minutes, not an hour; every copy is a file
    of its own, read from disk like any other).
    """
    folder.mkdir(parents=True, exist_ok=True)
    whole = [p for p in copy_from or [] if p.stat().st_size]
    if whole:
        per_file = sum(p.stat().st_size for p in whole) / len(whole)
        paths = []
        for k in range(max(1, round(megabytes * 2**20 / per_file))):
            paths.append(folder / f"bench-{k:05d}.h5")
            shutil.copyfile(whole[k % len(whole)], paths[-1])
        return paths
    if source == "practice":  # a small set needs no full session of driving first
        images, labels = practice_pool(min(SESSION_FRAMES, 100 + int(megabytes * 2**20 / 30_000)))
        write = lambda path, n, k: write_pool_session(path, images, labels, n, seed=seed + k)  # noqa: E731
    elif source == "synthetic":
        write = lambda path, n, k: write_synthetic_session(path, n, seed=seed + k, distinct=64)  # noqa: E731
    else:
        from kartstudio.errors import KartStudioError

        raise KartStudioError(f"unknown frame source {source!r}: practice or synthetic")
    probe = write(folder / "probe.h5", 100, 0)
    per_frame = probe.stat().st_size / 100
    probe.unlink()
    total = max(1, int(megabytes * 2**20 / per_frame))
    paths: list[Path] = []
    unique: list[Path] = []  # written, not copied
    written = 0.0
    for k, start in enumerate(range(0, total, frames_per_file)):
        n = min(frames_per_file, total - start)
        path = folder / f"bench-{k:05d}.h5"
        if written < unique_mb * 2**20 or n != frames_per_file:
            write(path, n, k)
            if n == frames_per_file:
                unique.append(path)
        else:
            shutil.copyfile(unique[k % len(unique)], path)
        written += path.stat().st_size
        paths.append(path)
    return paths


def _train_step():
    """The Trainer's step on a new default network and loss (the default recipe's)."""
    from kartstudio.model import build_model, keras, make_loss, tf
    from kartstudio.training.recipe import DEFAULT_RECIPE

    keras.utils.set_random_seed(0)
    model = build_model(DEFAULT_RECIPE.model)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    loss_fn = make_loss(DEFAULT_RECIPE.loss)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return step


def _device() -> str:
    from kartstudio.training.distribute import gpu_name

    gpu = gpu_name()
    return f"GPU:0 ({gpu})" if gpu else "CPU"


def _fill_cache(data, batches) -> float:
    """Read (untimed, without training) until the frame cache is full or a whole epoch was read:
    the RAM a long run reaches, and the state of every epoch after the first. Seconds taken."""
    t0 = time.monotonic()
    for _ in range(data.steps_per_epoch):
        if data.cache["held"] >= data.cache["capacity"]:
            break
        next(batches)
    return round(time.monotonic() - t0, 1)


def measure_streaming(paths: list[str], batch_size: int, samples: int, seconds: float) -> dict:
    """Train from session files for `samples` samples (or `seconds`), the frame cache filled
    first: samples/s, the share of the time spent waiting for input, peak RSS, what the cache holds."""
    from kartstudio.training.dataset import SessionDataset

    data = SessionDataset(paths, batch_size=batch_size, seed=0)
    step = _train_step()
    batches = iter(data.pipeline())  # one pipeline, epoch after epoch, as the Trainer runs
    fill_s = _fill_cache(data, batches)
    for _ in range(5):  # tracing and warm-up, not timed
        float(step(*next(batches)))
    rss, timed, waited, start = [], 0, 0.0, time.monotonic()
    while timed < samples and time.monotonic() - start < seconds:
        t0 = time.monotonic()
        x, y = next(batches)
        waited += time.monotonic() - t0
        float(step(x, y))
        timed += int(y.shape[0])
        rss.append(_current_rss_mb())
    elapsed = time.monotonic() - start
    return {
        "frames": data.frames,
        "samples": timed,
        "samples_per_s": round(timed / elapsed, 1),
        "input_wait_share": round(waited / elapsed, 3),
        "peak_rss_mb": round(_rss_peak_mb(), 1),
        "steady_rss_mb": round(float(np.median(rss)), 1),
        "cache": {**data.cache, "share": round(data.cache["held"] / data.frames, 3), "fill_s": fill_s},
        "device": _device(),
    }


def compare_streaming_to_memory(paths: list[str], batch_size: int, samples: int, seconds: float,
                                after_first_epoch: bool = False, cache_mb: float | None = None) -> dict:
    """Samples/s from session files vs from an in-memory array of the same frames, same model.

    The in-memory side is TensorKart's way: every frame decoded and resized to 66x200 into one
    uint8 array first (`memory_load_s`, not counted in its samples/s); the streaming side serves
    the very same pixels. Both are iterated as the Trainer does (one pipeline for the run, epochs
    back to back), so with 600-frame sessions an epoch boundary comes every 12 batches. The two
    alternate in short rounds (5 batches) on one model, taking turns to go first, and the figure
    is the median of the per-pair ratios: this machine is shared, and a burst of someone else's
    work then lands on one pair instead of skewing a whole total.

    after_first_epoch: the streaming side reads its first epoch before timing (untimed, without
    training), so the figures are those of every later epoch. cache_mb: the streaming side's frame
    cache (None: the default; 0: none, so every epoch reads the files, as a first epoch does).
    """
    from kartstudio.training.dataset import CACHE_MB, ArrayDataset, SessionDataset

    stream = SessionDataset(paths, batch_size=batch_size, seed=0, cache_mb=CACHE_MB if cache_mb is None else cache_mb)
    t0 = time.monotonic()
    with SessionDataset(paths, batch_size=256, shuffle=False, cache_mb=0) as reader:
        images = np.empty((reader.frames, 66, 200, 3), np.uint8)
        for k, (x, _) in enumerate(reader.batches(0)):
            images[k * 256 : k * 256 + len(x)] = np.asarray(x, np.uint8)  # whole numbers already: exact
        memory = ArrayDataset(images, reader.actions.copy(), batch_size=batch_size, seed=0)
    load_s = time.monotonic() - t0
    step = _train_step()
    sources = {"stream": iter(stream.pipeline()), "memory": iter(memory.pipeline())}
    if after_first_epoch:
        for _ in range(stream.steps_per_epoch):
            next(sources["stream"])
    for it in sources.values():
        for _ in range(5):
            float(step(*next(it)))
    waited = {"stream": 0.0, "memory": 0.0}

    def round_rate(name: str) -> tuple[int, float]:
        n, t0 = 0, time.monotonic()
        for _ in range(5):
            t1 = time.monotonic()
            x, y = next(sources[name])
            waited[name] += time.monotonic() - t1
            float(step(x, y))
            n += int(y.shape[0])
        return n, time.monotonic() - t0

    spent = {"stream": 0.0, "memory": 0.0}
    done = {"stream": 0, "memory": 0}
    ratios = []
    start = time.monotonic()
    k = 0
    while done["stream"] < samples and time.monotonic() - start < seconds:
        rate = {}
        for name in ("stream", "memory") if k % 2 == 0 else ("memory", "stream"):
            n, dt = round_rate(name)
            done[name] += n
            spent[name] += dt
            rate[name] = n / dt
        ratios.append(rate["stream"] / rate["memory"])
        k += 1
    return {
        "frames": stream.frames,
        "files": len(paths),
        "epochs_each": round(done["stream"] / len(stream), 1),
        "samples_each": done["stream"],
        "stream_samples_per_s": round(done["stream"] / spent["stream"], 1),
        "memory_samples_per_s": round(done["memory"] / spent["memory"], 1),
        "stream_input_wait_share": round(waited["stream"] / spent["stream"], 3),
        "memory_input_wait_share": round(waited["memory"] / spent["memory"], 3),
        "ratio_of_totals": round(done["stream"] / spent["stream"] / (done["memory"] / spent["memory"]), 3),
        "ratio": round(float(np.median(ratios)), 3),
        "ratio_quartiles": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
        "pairs": len(ratios),
        "after_first_epoch": after_first_epoch,
        "cache": {**stream.cache, "share": round(stream.cache["held"] / stream.frames, 3)},
        "memory_load_s": round(load_s, 1),
        "device": _device(),
    }


def measure_workers(paths: list[str], workers: int, batch_size: int, epochs: int = 2) -> dict:
    """Samples/s of `kartstudio train` with `workers` local worker processes (MultiWorkerMirroredStrategy
    on localhost ports; 1 = a plain run), from the chief's last epoch; the same global batch."""
    import socket

    with tempfile.TemporaryDirectory(prefix="kartstudio-bench-workers-") as tmp:
        out = Path(tmp) / "m.keras"
        cmd = [sys.executable, "-m", "kartstudio", "train", *paths, "-o", str(out), "--epochs", str(epochs),
               "--batch-size", str(batch_size), "--val-sessions", "0", "--quiet"]
        if workers > 1:
            socks = [socket.socket() for _ in range(workers)]
            for sock in socks:
                sock.bind(("localhost", 0))
            hosts = ",".join(f"localhost:{sock.getsockname()[1]}" for sock in socks)
            for sock in socks:
                sock.close()
            cmds = [[*cmd, "--worker-hosts", hosts, "--worker-index", str(i)] for i in range(workers)]
        else:
            cmds = [cmd]
        t0 = time.monotonic()
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
        outputs = [p.communicate() for p in procs]
        wall = time.monotonic() - t0
        if any(p.returncode != 0 for p in procs):
            from kartstudio.errors import KartStudioError

            err = next(o[1] for p, o in zip(procs, outputs) if p.returncode != 0).strip().splitlines()
            raise KartStudioError(f"bench train --workers: a worker failed: {err[-1] if err else 'no message'}")
        history = json.loads((Path(tmp) / "m.checkpoints" / "state.json").read_text())["history"]
        return {
            "workers": workers,
            "samples_per_s": round(history[-1]["samples_per_s"], 1),
            "input_wait_share": round(history[-1].get("input_wait", 0.0), 3),
            "wall_s": round(wall, 1),
        }


def _child(function: str, *args) -> dict:
    """Run one measurement in a fresh process, so its peak RSS is its own."""
    code = (
        "import json,sys; import kartstudio.bench.training as b;"
        f" print(json.dumps(b.{function}(*json.loads(sys.argv[1]))))"
    )
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    if done.returncode != 0:
        from kartstudio.errors import KartStudioError

        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise KartStudioError(f"benchmark child ({function}) failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_train(
    small_mb: float = 500, large_mb: float = 5000, batch_size: int = 50, samples: int = 6000, seconds: float = 90.0,
    folder: Path | None = None, source: str = "practice", workers: int = 1,
) -> dict:
    """Streaming vs in-memory samples/s on the same frames (short and long epochs), peak RSS at
    two dataset sizes, and (workers > 1) samples/s with 1 vs `workers` local worker processes."""
    from kartstudio.bench import machine

    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="kartstudio-bench-train-")) if own else Path(folder)
    try:
        t0 = time.monotonic()
        small = make_dataset(folder / "small", small_mb, seed=0, source=source)
        full = [p for p in small if p.stat().st_size > 0.9 * max(q.stat().st_size for q in small)]
        large = make_dataset(folder / "large", large_mb, seed=100, source=source, copy_from=full)
        made = time.monotonic() - t0
        size = lambda ps: sum(p.stat().st_size for p in ps)  # noqa: E731
        names = lambda ps: [str(p) for p in ps]  # noqa: E731
        stream_small = _child("measure_streaming", names(small), batch_size, samples, seconds)
        stream_large = _child("measure_streaming", names(large), batch_size, samples, seconds)
        # short epochs: 10 of them at the defaults, the first (reading the files) included
        short = _child("compare_streaming_to_memory", names(small[:1]), batch_size, samples, 2 * seconds)
        # long epochs: every epoch after the first (frames from the cache as far as it holds them),
        # and the first epoch, which is also every epoch of a set far larger than the cache
        # (a set of one file is its own short-epoch case)
        compare = short if len(small) == 1 else _child("compare_streaming_to_memory", names(small), batch_size,
                                                       samples, 2 * seconds, True)
        first = None if len(small) == 1 else _child("compare_streaming_to_memory", names(small), batch_size,
                                                    samples, seconds, False, 0)
        result = {
            "frames_source": "the practice track's pictures (expert driving) with capture noise"
            if source == "practice" else "synthetic road pictures",
            "dataset_small": {"files": len(small), "frames": stream_small["frames"], "mb_on_disk": round(size(small) / 2**20, 1)},
            "dataset_large": {"files": len(large), "frames": stream_large["frames"], "mb_on_disk": round(size(large) / 2**20, 1)},
            "kb_per_frame": round(size(small) / 1024 / max(1, stream_small["frames"]), 1),
            "seconds_to_generate": round(made, 1),
            "batch_size": batch_size,
            "stream_small": stream_small,
            "stream_large": stream_large,
            "peak_rss_ratio_large_vs_small": round(stream_large["peak_rss_mb"] / stream_small["peak_rss_mb"], 3),
            "compare_short": short,
            "compare": compare,
            "compare_first_epoch": first,
            "streaming_vs_memory_short": short["ratio"],
            "streaming_vs_memory": compare["ratio"],
            "streaming_vs_memory_first_epoch": None if first is None else first["ratio"],
            "samples_per_s": stream_small["samples_per_s"],
            "input_wait_share": stream_small["input_wait_share"],
            "device": stream_small["device"],
            "in_memory_array_mb_small": round(stream_small["frames"] * 66 * 200 * 3 / 2**20, 1),
            "model": "kartstudio",
            "machine": machine(),
        }
        if workers > 1:
            result["workers"] = [measure_workers(names(small), n, batch_size) for n in (1, workers)]
        result["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        return result
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


# -- inference -------------------------------------------------------------------------------


def _latency(pilot, images: list[np.ndarray], frames: int, activations: bool) -> dict:
    for i in range(50):
        pilot.predict(images[i % len(images)], activations=activations)
    times = np.empty(frames)
    cpu0 = time.process_time()
    for i in range(frames):
        t0 = time.perf_counter()
        pilot.predict(images[i % len(images)], activations=activations)
        times[i] = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    ms = times * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
        # CPU time of all its threads a frame: what the pilot takes from the emulator's cores
        "cpu_ms_per_frame": round(cpu * 1000 / frames, 3),
    }


def check_engine(pilot, model, images: np.ndarray, batch: int = 100) -> dict:
    """The largest difference between the pilot's outputs and the Keras model's own (called on
    the same uint8 images, its preprocessing included) over `images`: what bench infer --check
    prints and tests/test_pilot.py asserts (<= 1e-4)."""
    from kartstudio.model import keras

    names = ("conv2", "conv4")
    reference = keras.Model(model.inputs[0], [model.outputs[0], *(model.get_layer(n).output for n in names)])
    history = pilot.spec.history  # after reset() a frame is its own history: the same image stacked
    worst = {"action": 0.0, "conv2": 0.0, "conv4": 0.0}
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        stacked = np.concatenate([chunk] * history, axis=-1).astype(np.float32)
        expected = [np.asarray(t) for t in reference(stacked, training=False)]
        for i, image in enumerate(chunk):
            pilot.reset()
            out = pilot.predict(image)
            worst["action"] = max(worst["action"], float(np.abs(out.action - expected[0][i]).max()))
            for n, e in zip(names, expected[1:]):
                worst[n] = max(worst[n], float(np.abs(out.activations[n] - e[i]).max()))
    pilot.reset()
    return {"frames": len(images), **{f"max_abs_diff_{k}": v for k, v in worst.items()}}


def bench_infer(model_path: str | None = None, kind: str = "kartstudio", frames: int = 2000,
                size: tuple[int, int] = SEAT_SIZE, threads: tuple[int, ...] = (2, 1),
                engines: tuple[str, ...] = ("litert", "tensorflow"), check: int = 0) -> dict:
    """Per-frame latency of Pilot.predict on seat images, with and without activations, for each
    engine (LiteRT at each of `threads`; TensorFlow with its own thread pool, once).

    check > 0: also compare the first engine's outputs with the Keras model's on that many frames
    of the practice track recorded through the real Recorder (check_engine)."""
    from kartstudio.bench import machine
    from kartstudio.model import build_model, load_model
    from kartstudio.pilot import Pilot
    from kartstudio.pilot_engine import file_sha256

    load_before = [round(v, 2) for v in os.getloadavg()]
    model = load_model(model_path) if model_path else build_model(kind)
    cache = {"model_path": model_path, "model_sha256": file_sha256(model_path)} if model_path else {}
    rng = np.random.default_rng(0)
    images = [synthetic_seat_frame(float(s), i, rng, size) for i, s in enumerate(np.linspace(-1, 1, 64))]
    runs, first = [], None
    for engine in engines:
        for n in (threads if engine == "litert" else threads[:1]):
            t0 = time.perf_counter()
            pilot = Pilot(model, name=model_path or kind, threads=n, engine=engine, **cache)
            ready_s = time.perf_counter() - t0
            pilot.warm_up(size)
            first = first or pilot
            runs.append({
                "engine": engine,
                "description": pilot.engine,
                "threads": n if engine == "litert" else None,
                "ready_s": round(ready_s, 2),
                "with_activations": _latency(pilot, images, frames, True),
                "without_activations": _latency(pilot, images, frames, False),
            })
    result = {
        "model": model_path or kind,
        "input": f"{size[1]}x{size[0]} uint8 seat image (resized in the pilot)",
        "frames": frames,
        # the first run's figures, as before there were several engines
        "with_activations": runs[0]["with_activations"],
        "without_activations": runs[0]["without_activations"],
        "runs": runs,
        "activation_shapes": {k: list(v.shape) for k, v in first.predict(images[0]).activations.items()},
    }
    if check:
        recorded, _ = practice_pool(check)
        if recorded.shape[1:3] != tuple(size):
            from kartstudio.images import resize

            recorded = np.stack([resize(f, size) for f in recorded])
        result["check"] = {"engine": runs[0]["description"], "frames_source": "practice track, recorded",
                           **check_engine(first, model, recorded)}
    result["machine"] = machine()
    result["load_average"] = {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]}
    return result


__all__ = [
    "bench_infer",
    "check_engine",
    "bench_train",
    "compare_streaming_to_memory",
    "make_dataset",
    "measure_streaming",
    "measure_workers",
    "practice_pool",
    "write_pool_session",
    "synthetic_seat_frame",
    "write_synthetic_session",
]
