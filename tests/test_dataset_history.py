"""Frame history in the training datasets: each sample stacks its frame with the ones before it
in its session, oldest first, exactly as the Pilot stacks live frames (real HDF5, real TF)."""

import numpy as np
import pytest

from kartstudio.bench.training import write_synthetic_session
from kartstudio.cli import main
from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.game import SeatLayout
from kartstudio.model import resize_images
from kartstudio.pilot import Pilot
from kartstudio.session import SessionMeta, SessionWriter, open_session, set_excluded
from kartstudio.training import ArrayDataset, SessionDataset, TrainConfig, Trainer
from kartstudio.training.dataset import to_pixels
from test_training import _read_all  # the same reader as the single-frame tests

SMALL = (60, 160)  # stored seat size: the dataset resizes it to 66x200 like any other


def _numbered_session(path, frames: int, numbers=None):
    """Frame i: left half i, right half 200 - i (so a mirror shows), steering i / frames; frame
    number i (or numbers[i])."""
    meta = SessionMeta(game="synthetic", track="numbered", storage_size=SMALL, source="test", fps=30.0)
    with SessionWriter(path, meta) as w:
        for i in range(frames):
            image = np.empty((*SMALL, 3), np.uint8)
            image[:, : SMALL[1] // 2], image[:, SMALL[1] // 2 :] = i, 200 - i
            w.append(image, ControllerState(x=80 * i / frames, a=True), i / 30.0, i if numbers is None else numbers[i])
    return path


def _frame_numbers(x):
    """The number each stacked frame of each sample shows (its top-left pixel), oldest first."""
    return x[:, 0, 0, 0::3].round().astype(int)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sessions")
    return [write_synthetic_session(folder / f"s{i}.h5", 80, seed=i, size=SMALL, distinct=24) for i in range(3)]


def test_a_sample_is_its_frame_and_the_two_before_oldest_first(tmp_path):
    path = _numbered_session(tmp_path / "numbered.h5", 40)
    set_excluded(path, [(10, 13)])
    per_frame_mb = 66 * 200 * 3 / 2**20
    # 15 of the 37 frames cached: the second epoch stacks held and read frames in one batch
    with SessionDataset([path], batch_size=8, shuffle=False, history=3, cache_mb=15 * per_frame_mb) as ds:
        assert ds.frames == 37 and ds.history == 3
        for epoch in (0, 1):
            x, y = _read_all(ds, epoch)
            assert x.shape == (37, 66, 200, 9)
            shown = _frame_numbers(x)
            expected = {0: [0, 0, 0], 1: [0, 0, 1], 2: [0, 1, 2], 9: [7, 8, 9],
                        13: [13, 13, 13], 14: [13, 13, 14], 15: [13, 14, 15], 39: [37, 38, 39]}
            for frame, numbers in expected.items():
                assert shown[ds.index.frame_ids.tolist().index(frame)].tolist() == numbers, frame
            np.testing.assert_allclose(y[:, 0], ds.index.frame_ids / 40, atol=1e-6)  # the current frame's label
        assert ds.cache["held"] == 15  # frames are cached one by one, not per stack
    # history 1 is what it was: the frame alone
    with SessionDataset([path], batch_size=8, shuffle=False) as one:
        assert _frame_numbers(_read_all(one)[0]).ravel().tolist() == one.index.frame_ids.tolist()
    with pytest.raises(KartStudioError, match="frame history"):
        SessionDataset([path], history=0)


def test_history_never_stacks_across_a_gap_in_the_frame_numbers(tmp_path):
    """Rows img_30..img_35 removed from a TensorKart CSV: frame 29 -> 36 is a gap, so the frame after
    it starts its stretch as a session does (its own picture for the frames it lacks)."""
    numbers = [n for n in range(26, 46) if not 30 <= n <= 35]  # 26..29, 36..45: 14 frames
    path = _numbered_session(tmp_path / "gap.h5", len(numbers), numbers)
    with SessionDataset([path], batch_size=8, shuffle=False, history=3) as ds:
        shown = _frame_numbers(_read_all(ds)[0])  # pictures are indices: 3 is number 29, 4 is number 36
    assert shown[:6].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [4, 4, 4], [4, 4, 5]]
    assert shown[13].tolist() == [11, 12, 13]


def test_mirror_flips_every_frame_of_a_sample_and_jitter_is_drawn_once(tmp_path):
    path = _numbered_session(tmp_path / "numbered.h5", 60)
    with SessionDataset([path], batch_size=20, augment=True, seed=1, history=3) as ds:
        x, y = _read_all(ds)
        labels = ds.actions[np.concatenate([np.sort(b) for b in np.array_split(ds.epoch_order(0), 3)])]
    flipped = y[:, 0] != labels[:, 0]
    assert 10 < flipped.sum() < 50
    np.testing.assert_allclose(y[:, 0], np.where(flipped, -labels[:, 0], labels[:, 0]), atol=1e-6)
    left, right = x[:, :, :100].mean(axis=(1, 2)), x[:, :, 100:].mean(axis=(1, 2))  # (N, 9)
    mirrored = left > right  # unflipped frames are darker on the left (i < 200 - i)
    assert (mirrored == flipped[:, None]).all()  # all three frames of a sample, never some

    # the stacked augmentation is the single-frame one applied to each frame with the same draw
    images = np.random.default_rng(0).integers(0, 200, (4, 3, 66, 200, 3), dtype=np.uint8)
    actions = np.array([[0.5, 0.1, 1, 0, 1]] * 4, np.float32)
    stacked = np.concatenate([images[:, k] for k in range(3)], axis=-1)
    draw = (np.array([True, False, True, False]), np.array([1.0, 1.2, 0.8, 1.1], np.float32),
            np.array([0.0, 10.0, -10.0, 5.0], np.float32))
    many = ArrayDataset(stacked[:, :, :, :3], actions, augment=True, history=3)
    xs, ys = (t.numpy() for t in many._prepare(stacked, actions, *draw))
    one = ArrayDataset(images[:, 0], actions, augment=True)
    for k in range(3):
        xk, yk = (t.numpy() for t in one._prepare(images[:, k], actions, *draw))
        np.testing.assert_allclose(xs[..., 3 * k : 3 * k + 3], xk, atol=1e-3)
        np.testing.assert_array_equal(ys, yk)


def test_streaming_equals_the_in_memory_array_with_history(sessions):
    frames, labels = [], []
    for path in sessions:
        with open_session(path) as s:
            frames.append(s.frames[:])
            labels.append(s.actions[:])
    array = np.floor(resize_images(np.concatenate(frames)).numpy() + 0.5).astype(np.uint8)
    options = dict(batch_size=32, augment=True, seed=3, turn_oversample=2.0, history=3)
    memory = ArrayDataset(array, np.concatenate(labels), sessions=[len(f) for f in frames], **options)
    per_frame_mb = 66 * 200 * 3 / 2**20
    with SessionDataset(sessions, cache_mb=100 * per_frame_mb, **options) as stream:  # 100 of the 240 frames
        for (xa, ya), (xb, yb) in zip(stream.pipeline(epochs=2), memory.pipeline(epochs=2), strict=True):
            assert xa.shape[-1] == 9
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        assert stream.cache["held"] == 100
    # no sample reaches into the session before it
    first = ArrayDataset(array[:5], np.zeros((5, 5), np.float32), history=3, sessions=[2, 3], shuffle=False)
    np.testing.assert_array_equal(first._frames(np.arange(5))[2], np.concatenate([array[2]] * 3, axis=-1))
    with pytest.raises(KartStudioError, match="do not add up"):
        ArrayDataset(array[:5], np.zeros((5, 5), np.float32), sessions=[2, 2])


def test_train_time_stacking_is_play_time_stacking(sessions, tmp_path, capsys):
    """A model trained with history 3 (through the CLI) loads in the Pilot, and the Pilot, fed the
    session's frames on a split screen, gives the network the stacks the dataset trained it on."""
    out = tmp_path / "h3.keras"
    assert main(["train", *map(str, sessions), "-o", str(out), "--history", "3", "--epochs", "1",
                 "--batch-size", "32", "--val-sessions", "1", "--quiet"]) == 0
    pilot = Pilot.load(out)
    assert pilot.spec.history == 3 and pilot.image_size == SMALL

    fed = []  # what the network is given on each frame
    run = pilot._engine.run  # the stacked image the engine (LiteRT or TensorFlow) is given
    pilot._engine.run = lambda image, maps: fed.append(np.array(image)) or run(image, maps)
    layout = SeatLayout.split_screen(2 * SMALL[1], 4 * SMALL[0])  # each seat 120x320: twice the stored size
    with open_session(sessions[0]) as s:
        stored = s.frames[:8]
    noise = np.random.default_rng(0).integers(0, 255, (2 * SMALL[0], 2 * SMALL[1], 3), dtype=np.uint8)
    for _ in range(2):  # a second run after reset() starts afresh, as a new race does
        pilot.reset()
        for frame in stored:
            screen = np.concatenate([frame.repeat(2, 0).repeat(2, 1), noise])  # seat 1 on top
            pilot.act(pilot.view(screen, 1, layout))
    assert len(fed) == 16 and all(f.shape == (*SMALL, 9) for f in fed)
    np.testing.assert_array_equal(fed[:8], fed[8:])
    with SessionDataset([sessions[0]], batch_size=8, shuffle=False, history=3, cache_mb=0) as ds:
        trained_on = next(iter(ds.batches(0)))[0].numpy()
    played = to_pixels(resize_images(np.stack(fed[:8]))).numpy()  # the network's own resize, as uint8
    np.testing.assert_array_equal(played, trained_on)
    np.testing.assert_array_equal(played[0], np.concatenate([played[0][..., :3]] * 3, axis=-1))  # a run's first frame

    # a model file keeps the history it was built with: fine-tuning or resuming at another is refused
    capsys.readouterr()
    assert main(["train", str(sessions[0]), "-o", str(tmp_path / "h1.keras"), "--init", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "h3.keras sees 3 frame(s) at once but this training is set to 1" in err[0]
    with pytest.raises(KartStudioError, match="last.keras sees 3 frame"):
        Trainer(TrainConfig(epochs=2, resume=True, checkpoint_dir=str(out.with_suffix(".checkpoints")))).fit(
            sessions, out)
