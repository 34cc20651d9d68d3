"""The streaming dataset and the Trainer, on small generated session files (real HDF5, real TF)."""

import json
import os
import shutil

import numpy as np
import pytest

from kartstudio.bench.training import write_synthetic_session
from kartstudio.cli import main
from kartstudio.errors import KartStudioError
from kartstudio.model import keras, load_model, resize_images
from kartstudio.session import open_session, set_excluded
from kartstudio.training import ArrayDataset, SessionDataset, TrainConfig, Trainer, split_by_session
from kartstudio.training.dataset import TURN_THRESHOLD

SMALL = (60, 160)  # stored seat size for fast tests; the dataset resizes to 66x200 like any other


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sessions")
    return [write_synthetic_session(folder / f"s{i}.h5", 160, seed=i, size=SMALL, distinct=24) for i in range(3)]


def _read_all(ds, epoch=0):
    xs, ys = [], []
    for x, y in ds.batches(epoch):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_streams_every_included_frame_with_its_label(sessions, tmp_path):
    path = tmp_path / "trimmed.h5"
    path.write_bytes(sessions[0].read_bytes())
    set_excluded(path, [(10, 50), (150, 400)])
    with open_session(path) as s:
        keep = s.included_indices()
        labels = s.actions[:][keep]
        frames = s.frames[:][keep]
    assert len(keep) == 160 - 40 - 10
    with SessionDataset([path], batch_size=16, shuffle=False) as ds:
        assert ds.frames == len(keep) and ds.steps_per_epoch == -(-len(keep) // 16)
        x, y = _read_all(ds)
    np.testing.assert_array_equal(y, labels)  # excluded frames never served
    assert x.shape == (len(keep), 66, 200, 3)
    # area-resized, then rounded to whole numbers: the pixels an in-memory uint8 66x200 array holds
    np.testing.assert_array_equal(x, np.floor(resize_images(frames).numpy() + 0.5))


def test_batches_are_shuffled_across_files_and_differ_per_epoch(sessions):
    with SessionDataset(sessions, batch_size=20, seed=5) as ds:
        order0, order1 = ds.epoch_order(0), ds.epoch_order(1)
        assert sorted(order0) == list(range(ds.frames))  # each frame once per epoch
        assert not np.array_equal(order0, order1)
        np.testing.assert_array_equal(order0, ds.epoch_order(0))  # the same epoch repeats exactly
        assert len(np.unique(ds.index.file_ids[order0[:20]])) > 1  # one batch mixes files
        _, y = _read_all(ds, epoch=1)
        batches = [np.sort(order1[i : i + 20]) for i in range(0, len(order1), 20)]  # read in file order
        np.testing.assert_array_equal(y, ds.actions[np.concatenate(batches)])


def test_many_files_with_few_open_at_once(sessions, monkeypatch):
    from kartstudio.training import dataset

    monkeypatch.setattr(dataset, "_MAX_OPEN_FILES", 1)  # every switch of file closes and reopens
    with SessionDataset(sessions, batch_size=25, shuffle=False) as few, SessionDataset(sessions, batch_size=25) as mixed:
        expected, _ = _read_all(few)
        x, y = _read_all(mixed)
        order = np.concatenate([np.sort(b) for b in np.array_split(mixed.epoch_order(0), range(25, mixed.frames, 25))])
        np.testing.assert_array_equal(x, expected[order])
        np.testing.assert_array_equal(y, mixed.actions[order])


def test_files_written_by_other_tools_are_read_through_h5py(sessions, tmp_path):
    """A session whose frames are not one gzip chunk each (here: contiguous) takes the h5py path."""
    import h5py

    other = tmp_path / "contiguous.h5"
    with h5py.File(sessions[1], "r") as src, h5py.File(other, "w") as dst:
        for name in src:
            if name == "frames":
                dst.create_dataset("frames", data=src["frames"][:])  # no chunks, no compression
            else:
                src.copy(name, dst)
        dst.attrs.update(src.attrs)
    with SessionDataset([other], batch_size=40, shuffle=False) as a, SessionDataset([sessions[1]], batch_size=40, shuffle=False) as b:
        assert not a.index.files[0].fast and b.index.files[0].fast
        xa, ya = _read_all(a)
        xb, yb = _read_all(b)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_turning_frames_are_oversampled(sessions):
    with SessionDataset(sessions, batch_size=32, turn_oversample=3.0) as ds:
        turning = np.abs(ds.actions[:, 0]) >= TURN_THRESHOLD
        assert 0 < turning.sum() < ds.frames
        order = ds.epoch_order(0)
        assert len(order) == ds.frames + 2 * turning.sum()
        counts = np.bincount(order, minlength=ds.frames)
        assert set(counts[turning]) == {3} and set(counts[~turning]) == {1}


def test_augmentation_mirrors_with_steering_flipped_and_jitters_light():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 200, (4, 66, 200, 3), dtype=np.uint8)
    actions = np.array([[0.5, 0.1, 1, 0, 1]] * 4, np.float32)
    ds = ArrayDataset(images, actions, batch_size=4, augment=True)
    flip = np.array([True, False, True, False])
    gain = np.array([1.0, 1.0, 1.2, 0.8], np.float32)
    shift = np.array([0.0, 0.0, 10.0, -10.0], np.float32)
    x, y = (t.numpy() for t in ds._prepare(images, actions, flip, gain, shift))
    np.testing.assert_allclose(x[0], images[0][:, ::-1], atol=1e-4)
    np.testing.assert_allclose(x[1], images[1], atol=1e-4)
    np.testing.assert_allclose(y[:, 0], [-0.5, 0.5, -0.5, 0.5])
    np.testing.assert_array_equal(y[:, 1:], actions[:, 1:])
    assert x[2].std() > images[2].std() * 1.1 and x[3].std() < images[3].std() * 0.9  # contrast
    assert x[2].mean() > images[2].mean() + 5 and x[3].mean() < images[3].mean() - 5  # brightness
    # a whole augmented epoch: about half the samples mirrored, labels flipped to match
    x, y = _read_all(ArrayDataset(images.repeat(25, 0), actions.repeat(25, 0), batch_size=20, augment=True))
    assert 20 < (y[:, 0] < 0).sum() < 80


def test_split_by_whole_sessions(sessions):
    train, val = split_by_session(sessions, 1, seed=0)
    assert len(train) == 2 and len(val) == 1 and set(train).isdisjoint(val)
    assert split_by_session(sessions, 0) == (list(sessions), [])
    with pytest.raises(KartStudioError, match="leaves nothing to train on"):
        split_by_session(sessions, 3)


def test_no_data_and_corrupt_files_are_named(tmp_path, sessions):
    with pytest.raises(KartStudioError, match="no session files"):
        SessionDataset([tmp_path])
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(KartStudioError, match="bad.h5"):
        SessionDataset([sessions[0], bad])
    empty = tmp_path / "all-excluded.h5"
    empty.write_bytes(sessions[0].read_bytes())
    set_excluded(empty, [(0, 160)])
    with pytest.raises(KartStudioError, match="no frames to train on"):
        SessionDataset([empty])


def _rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_does_not_grow_with_the_dataset(tmp_path):
    """Small-scale memory check: streaming 16x more frames costs no more memory than 1x (frame
    cache off: it holds up to its budget, checked below).

    The large set is 3,200 frames: held whole even at the model's 66x200 it would be ~120 MB in
    RSS, against a few MB of noise for streaming (up to 20 MB once on CI, hence the 16x scale).
    """
    small = [write_synthetic_session(tmp_path / "small.h5", 200, seed=1, distinct=8)]
    written = [write_synthetic_session(tmp_path / f"large{i}.h5", 200, seed=2 + i, distinct=8) for i in range(4)]
    large = []
    for copy in range(4):  # copies are separate sessions to the dataset, and cheap to make
        for path in written:
            large.append(tmp_path / f"{path.stem}-{copy}.h5")
            shutil.copy(path, large[-1])
    held_whole_mb = len(large) * 200 * 66 * 200 * 3 / 2**20

    def peak_growth(paths):
        with SessionDataset(paths, batch_size=50, cache_mb=0) as ds:
            before = _rss_mb()
            peak = before
            for _ in ds.batches(0):
                peak = max(peak, _rss_mb())
        return peak - before

    peak_growth(large)  # warm-up: TensorFlow's first-use allocations and the allocator's per-thread pools
    grow_small = peak_growth(small)
    grow_large = min(peak_growth(large), peak_growth(large))  # the allocator's pools vary run to run
    assert grow_large < grow_small + 0.25 * held_whole_mb, (grow_small, grow_large, held_whole_mb)


def test_streamed_pixels_equal_the_in_memory_array_whether_read_or_cached(sessions):
    """The network sees the same pixels whether a frame comes from its file or from the frame
    cache, and the same as TensorKart's in-memory 66x200 uint8 array of those frames (built here
    on its own, not through the dataset): every batch of 2 epochs, augmented and oversampled, the
    second epoch mixing held and read frames in its batches."""
    frames, labels = [], []
    for path in sessions:
        with open_session(path) as s:
            frames.append(s.frames[:])
            labels.append(s.actions[:])
    resized = resize_images(np.concatenate(frames)).numpy()
    array = np.floor(resized + 0.5).astype(np.uint8)
    options = dict(batch_size=32, augment=True, seed=3, turn_oversample=2.0)
    memory = ArrayDataset(array, np.concatenate(labels), **options)
    per_frame_mb = 66 * 200 * 3 / 2**20
    with SessionDataset(sessions, cache_mb=200 * per_frame_mb, **options) as stream:  # 200 of the 480 frames
        for (xa, ya), (xb, yb) in zip(stream.pipeline(epochs=2), memory.pipeline(epochs=2), strict=True):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        assert stream.cache["held"] == 200


def test_later_epochs_read_only_the_frames_the_cache_does_not_hold(sessions, monkeypatch):
    from kartstudio.training import dataset

    read = []
    original = dataset._Reader.read
    monkeypatch.setattr(dataset._Reader, "read", lambda self, positions: read.append(len(positions)) or original(self, positions))
    per_frame_mb = 66 * 200 * 3 / 2**20
    with SessionDataset(sessions, batch_size=40, cache_mb=300 * per_frame_mb) as ds:
        assert ds.cache["capacity"] == 300 and ds.cache["mb"] == 0  # nothing held (or allocated) before a read
        counts = []
        for epoch in range(3):
            read.clear()
            for _ in ds.batches(epoch):
                pass
            counts.append(sum(read))
        assert counts == [480, 180, 180] and ds.cache["held"] == 300
    with pytest.raises(KartStudioError, match="cache size"):
        SessionDataset(sessions, cache_mb=-1)


def test_training_lowers_the_loss(sessions, tmp_path):
    epochs = []
    trainer = Trainer(TrainConfig(epochs=4, batch_size=16, val_sessions=1, seed=0), on_epoch=epochs.append)
    result = trainer.fit(sessions, tmp_path / "m.keras")
    assert result.epochs_done == 4 and not result.cancelled
    assert result.train_frames == 320 and result.val_frames == 160
    assert epochs[-1].loss < 0.8 * epochs[0].loss
    assert min(e.val_loss for e in epochs[1:]) < epochs[0].val_loss
    assert result.best_loss == min(e.val_loss for e in epochs)
    assert all(e.samples_per_s > 0 and e.eta_s >= 0 for e in epochs) and epochs[-1].eta_s == 0
    # the best checkpoint became the output, loadable in safe mode, and it steers with the road
    # on the held-out session (through the Pilot, from the stored frames)
    assert result.model_path == tmp_path / "m.keras"
    load_model(result.model_path)
    from kartstudio.pilot import Pilot

    pilot = Pilot.load(result.model_path)
    assert pilot.paced == (True, False, False)  # the default recipe paces the gas (docs/practice.md)
    assert pilot.thresholds == tuple(result.thresholds)
    (val_path,) = json.loads((result.checkpoint_dir / "state.json").read_text())["val_paths"]
    with open_session(val_path) as s:
        predicted = [pilot.predict(s.frames[i], activations=False).action[0] for i in range(len(s))]
        truth = s.actions[:, 0]
    assert np.corrcoef(predicted, truth)[0, 1] > 0.8
    assert (result.checkpoint_dir / "last.keras").is_file() and (result.checkpoint_dir / "best.keras").is_file()
    # TensorBoard logs: one scalar per epoch and tag, equal to the history
    from kartstudio.model import tf

    logged = {}
    for path in (result.checkpoint_dir / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                logged.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    np.testing.assert_allclose(logged["loss"], [h["loss"] for h in result.history], rtol=1e-5)
    np.testing.assert_allclose(logged["val_loss"], [h["val_loss"] for h in result.history], rtol=1e-5)


def test_cancel_stops_within_a_batch_and_resume_continues(sessions, tmp_path):
    seen = []
    trainer = Trainer(TrainConfig(epochs=3, batch_size=32, seed=1), on_batch=seen.append)

    def cancel_in_epoch_2(p):
        seen.append(p)
        if p.epoch == 2 and p.batch == 3:
            trainer.cancel()

    trainer.on_batch = cancel_in_epoch_2
    result = trainer.fit(sessions, tmp_path / "m.keras")
    assert result.cancelled and result.epochs_done == 1
    assert (seen[-1].epoch, seen[-1].batch) == (2, 3)  # no batch ran after cancel()
    ckpt = result.checkpoint_dir
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epochs_done"] == 1  # the last checkpoint is the last whole epoch
    assert result.model_path.is_file()
    from kartstudio.paths import run_finished

    assert run_finished(result.model_path) is False  # the app never preselects it
    weights_epoch1 = [np.asarray(v) for v in load_model(ckpt / "last.keras").weights]

    resumed = Trainer(TrainConfig(epochs=3, batch_size=32, seed=1, resume=True))
    result2 = resumed.fit(sessions, tmp_path / "m.keras")
    assert result2.epochs_done == 3 and not result2.cancelled
    assert run_finished(result2.model_path) is True
    assert [h["epoch"] for h in result2.history] == [1, 2, 3]
    weights_after = [np.asarray(v) for v in load_model(ckpt / "last.keras").weights]
    assert any(not np.array_equal(a, b) for a, b in zip(weights_epoch1, weights_after))

    with pytest.raises(KartStudioError, match="nothing to resume"):
        Trainer(TrainConfig(resume=True)).fit(sessions, tmp_path / "fresh.keras")


def test_early_stopping(sessions, tmp_path):
    config = TrainConfig(epochs=6, batch_size=32, learning_rate=1e-9, patience=1, min_delta=1e-3, val_sessions=1)
    result = Trainer(config).fit(sessions, tmp_path / "m.keras")
    assert result.stopped_early and result.epochs_done == 2 and result.best_epoch == 1


def test_train_cli(sessions, tmp_path, capsys):
    out = tmp_path / "driver.keras"
    assert main(["train", *map(str, sessions), "-o", str(out), "--epochs", "1", "--batch-size", "32", "--augment",
                 "--val-sessions", "1", "--oversample-turns", "2"]) == 0
    text = capsys.readouterr()
    assert "training on 320 frames from 2 session file(s) on CPU:0; validation: 1 of 3 sessions held out whole (s" \
        in text.err and "), 160 frames" in text.err
    assert "epoch 1/1" in text.err and f"-> {out}" in text.out
    assert out.is_file()

    assert main(["train", str(tmp_path / "nowhere"), "-o", str(tmp_path / "other.keras")]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err

    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"garbage")
    assert main(["train", str(sessions[0]), str(bad), "-o", str(tmp_path / "other.keras")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt.h5" in err[0]

    inp = keras.Input((66, 200, 1))
    keras.Model(inp, keras.layers.Dense(5)(keras.layers.Flatten()(inp))).save(tmp_path / "gray.keras")
    assert main(["train", str(sessions[0]), "-o", str(tmp_path / "other.keras"), "--init", str(tmp_path / "gray.keras")]) == 2
    assert "gray.keras: its input" in capsys.readouterr().err


def test_bench_commands_report_measurements(tmp_path, capsys):
    """The benchmarks run end to end at toy sizes and print what they measured (no targets asserted)."""
    assert main(["bench", "infer", "--frames", "30", "--json"]) == 0
    infer = json.loads(capsys.readouterr().out)
    for key in ("with_activations", "without_activations"):
        assert 0 < infer[key]["p50_ms"] <= infer[key]["p99_ms"]
    assert infer["activation_shapes"] == {"conv2": [17, 50, 36], "conv4": [4, 13, 64]}

    assert main(["bench", "train", "--small-mb", "1", "--large-mb", "3", "--samples", "100", "--seconds", "10",
                 "--json", "--folder", str(tmp_path)]) == 0
    train = json.loads(capsys.readouterr().out)
    assert train["dataset_large"]["frames"] > 2 * train["dataset_small"]["frames"]
    for key in ("stream_small", "stream_large"):
        assert train[key]["samples_per_s"] > 0 and train[key]["peak_rss_mb"] > 100
    assert train["compare"]["stream_samples_per_s"] > 0 and train["compare"]["memory_samples_per_s"] > 0
    assert train["compare_short"]["stream_samples_per_s"] > 0 and train["compare_short"]["files"] == 1
    assert 0 <= train["input_wait_share"] <= 1 and train["device"] == "CPU"
    assert "practice track" in train["frames_source"] and train["kb_per_frame"] > 5  # noisy, not flat colours


def test_streaming_keeps_few_files_open(tmp_path):
    # TensorFlow reads from its own threads; a per-thread cache that Python forgets after each call
    # once leaked a descriptor per read ("Too many open files" in the 2nd epoch of bench drive).
    import os

    paths = [write_synthetic_session(tmp_path / f"f{i}.h5", 40, seed=i, size=SMALL, distinct=8) for i in range(12)]
    with SessionDataset(paths, batch_size=8) as ds:
        before = len(os.listdir("/proc/self/fd"))
        for epoch in range(3):
            for _ in ds.batches(epoch):
                pass
        opened = len(os.listdir("/proc/self/fd")) - before
    assert opened <= 4 * len(paths), opened


def test_reaction_time_labels_each_frame_with_a_later_pad_reading(sessions):
    with open_session(sessions[0]) as s:
        truth = s.actions[:].astype(np.float32)
        shift = round(0.2 * s.meta.fps)
    assert shift >= 1
    with SessionDataset([sessions[0]], shuffle=False, cache_mb=0) as now, \
            SessionDataset([sessions[0]], shuffle=False, cache_mb=0, reaction_s=0.2) as later:
        np.testing.assert_array_equal(now.actions, truth)
        np.testing.assert_array_equal(later.actions[:-shift], truth[shift:])
        np.testing.assert_array_equal(later.actions[-shift:], np.repeat(truth[-1:], shift, axis=0))
    with pytest.raises(KartStudioError, match="reaction time"):
        SessionDataset([sessions[0]], reaction_s=-1)
