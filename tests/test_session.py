import textwrap
import threading

import h5py
import numpy as np
import pytest
from kill_support import record_then_sigkill

from kartstudio.controller import ControllerState
from kartstudio.errors import SessionFileError
from kartstudio.pads.base import PadSample
from kartstudio.session import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SessionMeta,
    SessionWriter,
    claim_session_path,
    find_sessions,
    new_session_path,
    session_name,
    open_session,
    set_excluded,
)


def _frame(i, size=(120, 320)):
    rng = np.random.default_rng(i)
    return rng.integers(0, 255, (*size, 3), dtype=np.uint8)


def test_round_trip(tmp_path):
    path = new_session_path(tmp_path, "Luigi Raceway", seat=2)
    meta = SessionMeta(seat=2, track="Luigi Raceway", character="yoshi", pad_name="Xbox pad", pad_guid="0300abcd")
    states = [ControllerState(x=i - 40, a=i % 2 == 0, z=i == 3) for i in range(20)]
    with SessionWriter(path, meta) as w:
        for i, st in enumerate(states):
            w.append(_frame(i), st, 100.0 + i / 30, 1000 + i)
        w.append_pad_samples([PadSample(100.0 + k / 250, states[k]) for k in range(7)])
    with open_session(path) as s:
        assert len(s) == 20 and s.complete
        assert s.meta.seat == 2 and s.meta.character == "yoshi" and s.meta.pad_guid == "0300abcd"
        assert np.array_equal(s.frames[7], _frame(7))
        assert [s.state(i) for i in range(20)] == states
        assert np.allclose(s.actions[5], states[5].to_tensorkart())
        assert list(s.frame_numbers[:3]) == [1000, 1001, 1002]
        assert s.fps == pytest.approx(30, rel=1e-3)
        ts, pad_states = s.pad_samples
        assert len(ts) == 7 and ControllerState.from_row(pad_states[6]) == states[6]
    # and plain h5py reads it as documented
    with h5py.File(path) as f:
        assert f.attrs["format"] == FORMAT_NAME and f.attrs["format_version"] == FORMAT_VERSION
        assert f["frames"].shape == (20, 120, 320, 3) and f["frames"].chunks == (1, 120, 320, 3)
        assert f["frames"].compression == "gzip"
        assert f["actions"].dtype == np.float32 and f["actions"].shape == (20, 5)


def test_names_never_collide_under_a_burst(tmp_path):
    paths = []
    lock = threading.Lock()

    def claim():
        p = new_session_path(tmp_path, "mario raceway", 1, when=1_700_000_000)
        with lock:
            paths.append(p)

    threads = [threading.Thread(target=claim) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 40
    assert all(p.name.startswith(paths[0].name[:15]) and "-mario-raceway-p1" in p.name for p in paths)


def test_writer_refuses_to_overwrite(tmp_path):
    path = new_session_path(tmp_path, "t", 1)
    with SessionWriter(path, SessionMeta()) as w:
        w.append(_frame(0), ControllerState(), 0.0, 0)
    with pytest.raises(SessionFileError, match="never overwrites"):
        SessionWriter(path, SessionMeta())
    with open_session(path) as s:
        assert len(s) == 1


def test_excluded_ranges(tmp_path):
    path = new_session_path(tmp_path, "t", 1)
    with SessionWriter(path, SessionMeta()) as w:
        for i in range(10):
            w.append(_frame(i), ControllerState(), i, i)
    set_excluded(path, [(2, 5), (8, 20)])
    with open_session(path) as s:
        assert s.excluded == [(2, 5), (8, 20)]
        assert list(s.included_indices()) == [0, 1, 5, 6, 7]


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "not a readable KartStudio session"),
        (b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "not a readable KartStudio session"),
        (b"hello, not hdf5 at all" * 50, "not a readable KartStudio session"),
    ],
)
def test_corrupt_files_give_clear_errors(tmp_path, content, match):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    with pytest.raises(SessionFileError, match=match):
        open_session(bad)


def test_truncated_session_is_refused_clearly(tmp_path):
    path = new_session_path(tmp_path, "t", 1)
    with SessionWriter(path, SessionMeta()) as w:
        for i in range(30):
            w.append(_frame(i), ControllerState(), i, i)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 3])
    with open_session(truncated) as s:  # the header survived: only rows whose bytes are left are kept
        assert s.cut_short and len(s) < 30  # (here none: the labels were written last, at close)
        for i in range(len(s)):
            assert np.array_equal(s.frame(i), _frame(i))
    truncated.write_bytes(data[:1000])  # not even HDF5's metadata is left
    with pytest.raises(SessionFileError, match=str(truncated.name)) as exc:
        open_session(truncated)
    assert "\n" not in str(exc.value)


def test_hdf5_that_is_not_a_session(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(SessionFileError, match="not a KartStudio session"):
        open_session(other)


def test_find_sessions(tmp_path):
    (tmp_path / "a").mkdir()
    p1 = new_session_path(tmp_path / "a", "t", 1)
    p2 = new_session_path(tmp_path, "t", 2)
    assert set(find_sessions([tmp_path])) == {p1, p2}
    with pytest.raises(SessionFileError, match="no such file"):
        find_sessions([tmp_path / "missing"])


def test_sigkill_during_recording_keeps_every_flushed_frame(tmp_path):
    """A recording subprocess is SIGKILLed; plain h5py opens its files with every flushed frame."""
    script = textwrap.dedent(
        f"""
        import sys, time, numpy as np
        from kartstudio.recorder import Recorder
        from kartstudio.session import SessionMeta
        from kartstudio.game import Frame
        from kartstudio.pads.base import ScriptedPadSource
        from kartstudio.controller import ControllerState
        pads = {{1: ScriptedPadSource("a"), 2: ScriptedPadSource("b")}}
        rec = Recorder({str(tmp_path)!r}, {{s: (SessionMeta(track="kill"), p) for s, p in pads.items()}})
        paths = rec.start()
        print(paths[1], paths[2], flush=True)
        i = 0
        while True:
            img = np.full((480, 640, 3), i % 256, np.uint8)
            pads[1].push(ControllerState(x=(i % 160) - 80))
            rec.on_frame(Frame(i, time.monotonic(), img))
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
            frames = f["frames"][:]
            assert all((frames[i] == i % 256).all() for i in range(n))
            assert f["actions"].shape[0] >= n
        with open_session(path) as s:
            assert len(s) == n and not s.complete


def test_one_naming_rule_for_shown_automatic_and_typed_names(tmp_path):
    when = 1_700_000_000
    shown = session_name("Luigi's Raceway!", 2, when)  # what the Record tab shows before recording
    assert shown.endswith("-Luigi-s-Raceway-p2.h5") and shown[:15].replace("-", "").isdigit()
    assert new_session_path(tmp_path, "Luigi's Raceway!", 2, when).name == shown
    assert new_session_path(tmp_path, "Luigi's Raceway!", 2, when).name == shown.replace("-p2.h5", "-p2-2.h5")
    typed = claim_session_path(tmp_path, " my run ")
    assert typed == tmp_path / "my run.h5" and typed.exists() and typed.stat().st_size == 0
    assert claim_session_path(tmp_path, "sub/deeper.h5") == tmp_path / "sub" / "deeper.h5"
    for name, why in (("my run", "already exists"), ("  ", "name is empty")):
        with pytest.raises(SessionFileError, match=why) as exc:
            claim_session_path(tmp_path, name)
        assert "\n" not in str(exc.value)
    (tmp_path / "file").write_text("")
    with pytest.raises(SessionFileError, match="cannot create the folder"):
        claim_session_path(tmp_path, "file/under-a-file")
