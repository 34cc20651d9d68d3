"""Session frame codecs: lossless (gzip) and jpeg: round trip, plain-h5py reading, old files,
crash safety, training and the storage figures of `bench record`."""

import io
import textwrap

import h5py
import numpy as np
import pytest
from kill_support import record_then_sigkill
from PIL import Image

from kartstudio.bench.record import codec_figures, synthetic_frames, synthetic_view
from kartstudio.bench.training import write_synthetic_session
from kartstudio.controller import ControllerState
from kartstudio.session import SessionMeta, SessionWriter, open_session


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255**2 / mse)


def _write(path, frames, codec, quality=90):
    meta = SessionMeta(game="synthetic", storage_size=frames[0].shape[:2], codec=codec, jpeg_quality=quality)
    with SessionWriter(path, meta) as w:
        for i, frame in enumerate(frames):
            w.append(frame, ControllerState(x=i - 40, a=i % 2 == 0), i / 30, i)
    return path


@pytest.mark.parametrize("codec", ["lossless", "jpeg"])
def test_round_trip_and_plain_h5py(tmp_path, codec):
    frames = [synthetic_view(t, 1, 120, 320) for t in range(0, 40, 4)]
    path = _write(tmp_path / "s.h5", frames, codec)
    with open_session(path) as s:
        assert s.codec == codec and len(s) == 10 and s.info()["codec"] == codec and s.info()["format_version"] == 2
        for i, frame in enumerate(frames):
            back = s.frame(i)
            assert back.shape == (120, 320, 3) and back.dtype == np.uint8
            if codec == "lossless":
                assert np.array_equal(back, frame)
            else:
                assert _psnr(back, frame) > 30
        assert s.actions[3, 0] == np.float32(-37 / 80)
    with h5py.File(path, "r") as f:  # what docs/session-format.md promises: h5py plus any JPEG decoder
        assert f.attrs["codec"] == codec and f["frames"].attrs["codec"] == codec
        if codec == "jpeg":
            raw = f["frames"][4]
            assert raw.dtype == np.uint8 and bytes(raw[:2]) == b"\xff\xd8"  # a JPEG file's bytes
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw.tobytes()))), open_session(path).frame(4))
        else:
            assert np.array_equal(f["frames"][4], frames[4])


def _frame_bytes(path):
    with h5py.File(path, "r") as f:
        frames = f["frames"]
        if f.attrs["codec"] == "jpeg":
            return sum(len(frames[i]) for i in range(len(frames)))
        return frames.id.get_storage_size()


def test_jpeg_is_smaller_and_quality_counts(tmp_path):
    frames = [synthetic_view(t, 2, 120, 320) for t in range(0, 60, 3)]
    lossless = _frame_bytes(_write(tmp_path / "l.h5", frames, "lossless"))
    q90 = _frame_bytes(_write(tmp_path / "q90.h5", frames, "jpeg", 90))
    q50 = _frame_bytes(_write(tmp_path / "q50.h5", frames, "jpeg", 50))
    assert q50 < q90 < lossless  # on real MK64 pictures about 3x (bench record --images)


def test_version_1_files_still_read(tmp_path):
    frames = [synthetic_view(t, 1, 120, 320) for t in range(3)]
    path = _write(tmp_path / "v1.h5", frames, "lossless")
    with h5py.File(path, "r+") as f:  # what KartStudio 0.1 wrote: no codec, layout or quality
        for name in ("codec", "layout", "jpeg_quality"):
            del f.attrs[name]
        del f["frames"].attrs["codec"]
        f.attrs["format_version"] = 1
    with open_session(path) as s:
        assert s.codec == "lossless" and s.layout == "seat" and s.info()["format_version"] == 1
        assert np.array_equal(s.frame(2), frames[2])


def test_jpeg_recording_killed_keeps_every_flushed_frame(tmp_path):
    script = textwrap.dedent(
        f"""
        import time, numpy as np
        from kartstudio.recorder import Recorder
        from kartstudio.session import SessionMeta
        from kartstudio.game import Frame
        from kartstudio.pads.base import ScriptedPadSource
        pads = {{1: ScriptedPadSource("a"), 2: ScriptedPadSource("b")}}
        rec = Recorder({str(tmp_path)!r}, {{s: (SessionMeta(track="kill", codec="jpeg"), p) for s, p in pads.items()}})
        paths = rec.start()
        print(paths[1], paths[2], flush=True)
        i = 0
        while True:
            rec.on_frame(Frame(i, time.monotonic(), np.full((480, 640, 3), (i * 8) % 256, np.uint8)))
            if i == 45:
                print("ready", flush=True)
            i += 1
            time.sleep(1 / 30)
        """
    )
    paths = record_then_sigkill(script)
    for path in paths:
        with h5py.File(path, "r") as f:  # plain h5py, no recovery step
            n = f["frames"].shape[0]
            assert n >= 15
            for i in (0, n - 1):
                pixels = np.asarray(Image.open(io.BytesIO(f["frames"][i].tobytes())))
                assert np.abs(pixels.astype(int) - (i * 8) % 256).max() <= 2
        with open_session(path) as s:
            assert len(s) == n and not s.complete and s.codec == "jpeg"


def test_training_streams_a_jpeg_session(tmp_path):
    from kartstudio.training import SessionDataset, TrainConfig, Trainer

    paths = []
    for k in range(2):
        source = write_synthetic_session(tmp_path / f"l{k}.h5", 96, seed=k, size=(60, 160), distinct=16)
        with open_session(source) as s:
            meta = SessionMeta(game="synthetic", storage_size=(60, 160), codec="jpeg")
            with SessionWriter(tmp_path / f"j{k}.h5", meta) as w:
                for i in range(len(s)):
                    w.append(s.frame(i), s.state(i), float(s.timestamps[i]), i, action=s.actions[i])
        paths.append(tmp_path / f"j{k}.h5")
    with SessionDataset([paths[0]], batch_size=16, shuffle=False) as ds, open_session(paths[0]) as s:
        x, y = next(iter(ds.batches(0)))
        assert x.shape == (16, 66, 200, 3)
        np.testing.assert_array_equal(y.numpy(), s.actions[:16])
    epochs = []
    result = Trainer(TrainConfig(epochs=3, batch_size=16, seed=0, model="tensorkart", loss="mse"), on_epoch=epochs.append).fit(
        paths, tmp_path / "m.keras")
    # two sessions: the last 10% of each is held out for validation (issue 21), the rest trains
    assert result.epochs_done == 3 and result.train_frames + result.val_frames == 192 and 0 < result.val_frames <= 24
    assert epochs[-1].loss < epochs[0].loss


def test_bench_record_codec_figures():
    figures = codec_figures(synthetic_frames(3), tensorkart_kb=120.0)
    lossless, jpeg = figures["lossless"], figures["jpeg"]
    assert lossless["psnr_db"] is None and 28 < jpeg["psnr_db"] < 60 and jpeg["quality"] == 90
    assert jpeg["kb_per_frame"] < lossless["kb_per_frame"] and jpeg["ratio_vs_tensorkart"] > lossless["ratio_vs_tensorkart"] > 1
    assert lossless["ratio_vs_tensorkart"] == pytest.approx(120.0 / lossless["kb_per_frame"], rel=0.01)


@pytest.mark.parametrize("shape,size", [((240, 640, 3), (120, 320)), ((480, 640, 3), (120, 320)),
                                        ((480, 640, 3), (240, 320)), ((480, 640, 3), (60, 80))])
def test_the_fast_shrink_stores_the_same_pixels_as_the_block_mean(shape, size):
    # The recorder shrinks every seat frame through Pillow's reduce; a session's pixels must not
    # depend on it: equal, bit for bit, to the exact block mean on noise (every rounding case).
    from kartstudio.images import block_mean, resize

    image = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    expected = block_mean(image, shape[0] // size[0], shape[1] // size[1])
    assert np.array_equal(resize(image, size), expected)
    assert np.array_equal(resize(image[:, :, ::-1], size), expected[:, :, ::-1])  # a strided view too
