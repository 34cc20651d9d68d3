import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from kartstudio.controller import ControllerState
from kartstudio.game import Frame
from kartstudio.pads.base import PadSource, ScriptedPadSource
from kartstudio.recorder import Recorder
from kartstudio.session import SessionMeta, open_session


def _image(i):
    img = np.zeros((480, 640, 3), np.uint8)
    img[:240] = (i % 256, 10, 200)  # seat 1's half
    img[240:] = (200, i % 256, 10)  # seat 2's half
    return img


def _recorder(tmp_path, pads, queue_size=400):
    # a queue longer than the test so no frame is dropped however slow the machine
    meta = SessionMeta(track="test track")
    return Recorder(tmp_path, {seat: (meta, pad) for seat, pad in pads.items()}, queue_size=queue_size)


def test_every_one_poll_tap_reaches_a_label(tmp_path):
    """A 250 Hz pad against a 30 fps game: ~8 samples per frame; taps last exactly one sample."""
    pad = ScriptedPadSource("pad")
    rec = _recorder(tmp_path, {1: pad})
    paths = rec.start()
    rng = np.random.default_rng(0)
    t = 1000.0
    tapped_frames = set()
    for frame_no in range(300):
        for k in range(8):
            t += 1 / 250
            tap = rng.random() < 0.05
            if tap:
                tapped_frames.add(frame_no)
            pad.push(ControllerState(x=int(rng.integers(-30, 30)), b=tap), timestamp=t)
        rec.on_frame(Frame(frame_no, t + 1e-4, _image(frame_no)))
    rec.stop()
    assert rec.counters()[1].written == 300
    assert len(tapped_frames) > 50
    with open_session(paths[1]) as s:
        labelled = {i for i in range(len(s)) if s.state(i).b}
        assert labelled == tapped_frames  # 100% of taps present, and none invented
        ts, raw = s.pad_samples
        assert len(ts) == 300 * 8  # every raw sample kept


def test_samples_after_a_frame_belong_to_the_next_frame(tmp_path):
    pad = ScriptedPadSource("pad")
    rec = _recorder(tmp_path, {1: pad})
    paths = rec.start()
    pad.push(ControllerState(x=10), timestamp=1.0)
    pad.push(ControllerState(x=70, a=True), timestamp=2.5)  # taken after frame 0 was shown
    rec.on_frame(Frame(0, 2.0, _image(0)))
    rec.on_frame(Frame(1, 3.0, _image(1)))
    rec.on_frame(Frame(2, 4.0, _image(2)))  # no new sample: the pad still reads x=70, a held
    rec.stop()
    with open_session(paths[1]) as s:
        assert [s.state(i).x for i in range(3)] == [10, 70, 70]
        assert [s.state(i).a for i in range(3)] == [False, True, True]


def test_two_seats_crop_their_half_into_separate_files(tmp_path):
    pads = {1: ScriptedPadSource("one"), 2: ScriptedPadSource("two")}
    rec = _recorder(tmp_path, pads)
    paths = rec.start()
    for i in range(40):
        pads[1].push(ControllerState(x=-50))
        pads[2].push(ControllerState(x=50, a=True))
        rec.on_frame(Frame(i, time.monotonic(), _image(i)))
    rec.stop()
    assert paths[1] != paths[2] and paths[1].name.endswith("-p1.h5") and paths[2].name.endswith("-p2.h5")
    with open_session(paths[1]) as s1, open_session(paths[2]) as s2:
        assert len(s1) == len(s2) == 40
        assert s1.frames.shape[1:] == (120, 320, 3)
        assert tuple(s1.frames[5][0, 0]) == (5, 10, 200) and tuple(s2.frames[5][0, 0]) == (200, 5, 10)
        assert s1.state(3).x == -50 and s2.state(3).x == 50 and s2.state(3).a
        assert s1.meta.capture_region == (0, 0, 640, 240) and s2.meta.capture_region == (0, 240, 640, 240)
    counters = rec.counters()
    assert all(c.captured == c.written == 40 and c.dropped == 0 for c in counters.values())


def test_exact_inputs_from_the_game_win_over_pad_samples(tmp_path):
    pad = ScriptedPadSource("pad")
    rec = _recorder(tmp_path, {1: pad})
    paths = rec.start()
    pad.push(ControllerState(x=10))
    rec.on_frame(Frame(0, time.monotonic(), _image(0), inputs={1: ControllerState(x=-33, z=True)}))
    rec.stop()
    with open_session(paths[1]) as s:
        assert s.state(0) == ControllerState(x=-33, z=True)


def test_per_seat_toggle_and_unplugged_pad_pauses_the_seat(tmp_path):
    pads = {1: ScriptedPadSource("one"), 2: ScriptedPadSource("two")}
    rec = _recorder(tmp_path, pads)
    paths = rec.start(seats=[2])
    assert set(paths) == {2}
    for i in range(10):
        pads[2].connected = not (3 <= i < 6)  # unplugged for 3 frames
        rec.on_frame(Frame(i, time.monotonic(), _image(i)))
    rec.stop()
    c = rec.counters()[2]
    assert (c.captured, c.written, c.paused) == (10, 7, 3)
    assert rec.counters()[1].captured == 0


def test_full_queue_drops_and_counts(tmp_path):
    pad = ScriptedPadSource("pad")
    rec = Recorder(tmp_path, {1: (SessionMeta(), pad)}, queue_size=1)
    rec.start()
    for i in range(200):  # far faster than gzip can keep up with
        rec.on_frame(Frame(i, time.monotonic(), np.random.default_rng(i).integers(0, 255, (480, 640, 3), np.uint8)))
    rec.stop()
    c = rec.counters()[1]
    assert c.dropped > 0 and c.written + c.dropped == c.captured == 200


def test_disk_full_stops_with_a_clear_message_and_a_readable_file(tmp_path):
    """RLIMIT_FSIZE makes writes past 3 MB fail with EFBIG, as a full disk does; the recorder
    stops the seat before that, with 1 MB to spare, and closes the file properly."""
    script = textwrap.dedent(
        f"""
        import resource, signal, time, json, numpy as np
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))
        from kartstudio.recorder import Recorder
        from kartstudio.session import SessionMeta
        from kartstudio.game import Frame
        from kartstudio.pads.base import ScriptedPadSource
        errors = []
        rec = Recorder({str(tmp_path)!r}, {{1: (SessionMeta(track="full"), ScriptedPadSource("p"))}},
                       on_error=lambda seat, msg: errors.append(msg), disk_reserve=1_000_000)
        paths = rec.start()
        rng = np.random.default_rng(0)
        for i in range(200):
            rec.on_frame(Frame(i, time.monotonic(), rng.integers(0, 255, (480, 640, 3), np.uint8)))
            time.sleep(0.01)
            if not rec.recording:
                break
        rec.stop()
        print(json.dumps({{"path": str(paths[1]), "errors": errors, "written": rec.counters()[1].written}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["errors"]) == 1
    message = result["errors"][0]
    assert result["path"] in message and "file size limit (ulimit -f)" in message and "kept" in message
    assert "Traceback" not in out.stderr
    with open_session(result["path"]) as s:
        assert len(s) == result["written"] > 5 and s.complete  # every frame counted as written is there
        s.frames[len(s) - 1]


def test_stop_twice_and_stop_before_start_return(tmp_path):
    pad = ScriptedPadSource("pad")
    rec = _recorder(tmp_path, {1: pad})
    assert rec.stop() == {}
    paths = rec.start()
    rec.on_frame(Frame(0, time.monotonic(), _image(0)))
    assert rec.stop() == paths
    assert rec.stop() == paths  # a second stop is harmless and does not wait forever
    with open_session(paths[1]) as s:
        assert len(s) == 1 and s.complete
