"""The app's recording without Qt: one Recorder for both seats of a running game (the practice
track as fast as it runs, so the loop never waits between frames)."""

import json
import subprocess
import sys
import textwrap
import time

from pathlib import Path

import pytest

pytest.importorskip("gymnasium")

from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.drivers import PadDriver  # noqa: E402
from kartstudio.pads.base import ScriptedPadSource  # noqa: E402
from kartstudio.play import GameLoop  # noqa: E402
from kartstudio.practice.backend import PracticeBackend  # noqa: E402
from kartstudio.recording_desk import RecordingDesk, SeatPlan  # noqa: E402
from kartstudio.session import SessionMeta, open_session  # noqa: E402


def _wait(condition, seconds=30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not condition():
        time.sleep(0.01)
    assert condition()


@pytest.fixture
def loop():
    loop = GameLoop(PracticeBackend(seed=3, seats=(1, 2), realtime=False, draw=False))
    loop.start()
    _wait(lambda: loop.status.running and loop.status.frames > 2)
    yield loop
    loop.stop()
    assert loop.wait(10) and not loop.status.error


def _plan(pad, name=None, codec="lossless"):
    return SeatPlan(SessionMeta(track="desk", storage_size=(60, 80), codec=codec), pad, name)


def _finish(desk, seats):
    desk.wait()
    done = {seat: desk.poll(seat).finished for seat in seats}
    assert all(done.values()) and not desk.recording() and not desk.busy()
    return done


def _frame_numbers(path):
    with open_session(path) as s:
        assert s.complete
        return list(s.frame_numbers[:])


def test_armed_seats_start_and_stop_on_the_same_frame(loop, tmp_path):
    desk = RecordingDesk()
    pads = {1: ScriptedPadSource("left"), 2: ScriptedPadSource("right")}
    started, refused = desk.start(loop, tmp_path, {s: _plan(p, codec=c) for (s, p), c in
                                                  zip(pads.items(), ("lossless", "jpeg"))})
    assert not refused and set(started) == {1, 2} and started[1] != started[2]
    assert loop._consumers == [desk.recorder]  # one recorder fed by the loop, for both seats
    _wait(lambda: min(desk.counters(s).written for s in (1, 2)) >= 40)
    desk.stop()
    done = _finish(desk, (1, 2))
    assert loop._consumers == []  # released once both files are done
    n1, n2 = _frame_numbers(started[1]), _frame_numbers(started[2])
    # the loop never waits between frames, so a seat started or stopped a moment later would differ
    # (and frames the writer had no room for are dropped for both seats alike)
    assert n1 == n2 and len(n1) == done[1].frames == done[2].frames >= 40
    with open_session(started[1]) as s1, open_session(started[2]) as s2:
        assert (s1.meta.seat, s2.meta.seat, s1.codec, s2.codec) == (1, 2, "lossless", "jpeg")


def test_a_seat_records_alone_and_stops_while_the_other_records(loop, tmp_path):
    desk = RecordingDesk()
    right = ScriptedPadSource("right", policy=lambda: ControllerState(x=50))
    loop.set_driver(2, PadDriver(right))  # as the Record tab's driver box does
    path1 = desk.start(loop, tmp_path, {1: _plan(ScriptedPadSource("left"))})[0][1]
    _wait(lambda: desk.counters(1).written >= 20)
    assert not desk.recording(2)
    path2 = desk.start(loop, tmp_path, {2: _plan(right, name="mine")})[0][2]
    assert path2 == tmp_path / "mine.h5"
    _wait(lambda: desk.counters(2).written >= 20)
    desk.stop([1])  # the writer queue never empties while seat 2 records: this must not wait for it
    desk.wait()
    assert desk.poll(1).finished.path == path1 and desk.recording(2) and not desk.recording(1)
    seen = desk.counters(2).written
    _wait(lambda: desk.counters(2).written >= seen + 20)  # seat 2 carries on
    desk.stop([2])
    _finish(desk, (2,))
    n1, n2 = _frame_numbers(path1), _frame_numbers(path2)
    assert n1[0] < n2[0] < n1[-1] < n2[-1]
    with open_session(path2) as s:
        assert all(s.state(i).x == 50 for i in range(len(s) // 2, len(s)))


def test_a_seat_that_cannot_start_is_refused_alone(loop, tmp_path):
    desk = RecordingDesk()
    pad = ScriptedPadSource("shared")
    taken = tmp_path / "old.h5"
    taken.write_bytes(b"an earlier recording")
    started, refused = desk.start(loop, tmp_path, {1: _plan(pad), 2: _plan(pad)})
    assert set(started) == {1} and "one pad cannot record both seats" in refused[2]
    assert "seat 1 is already recording" in desk.start(loop, tmp_path, {1: _plan(ScriptedPadSource("x"))})[1][1]
    desk.stop()
    _finish(desk, (1,))
    started, refused = desk.start(loop, tmp_path, {1: _plan(ScriptedPadSource("a"), name="race"),
                                                   2: _plan(ScriptedPadSource("b"), name="race.h5")})
    assert set(started) == {1} and "seat 1's file too" in refused[2]
    started2, refused2 = desk.start(loop, tmp_path, {2: _plan(ScriptedPadSource("b"), name="old")})
    assert not started2 and "already exists" in refused2[2] and taken.read_bytes() == b"an earlier recording"
    desk.stop()
    _finish(desk, (1,))
    assert sorted(p.name for p in tmp_path.iterdir())[-2:] == ["old.h5", "race.h5"]  # no stray empty files
    assert all(p.stat().st_size > 0 for p in tmp_path.iterdir())


def test_a_full_disk_stops_only_its_seat_with_one_message(tmp_path):
    """RLIMIT_FSIZE (per file, failing writes as a full disk does): seat 1, started first, reaches
    it first and stops with one message; seat 2 records on."""
    script = textwrap.dedent(
        f"""
        import json, resource, signal, sys, time
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (460_000, 460_000))
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_recording_desk import GameLoop, PracticeBackend, RecordingDesk, ScriptedPadSource, _plan, _wait
        loop = GameLoop(PracticeBackend(seed=3, seats=(1, 2), realtime=False, draw=False))
        loop.start()
        _wait(lambda: loop.status.running)
        desk = RecordingDesk(disk_reserve=400_000)  # a seat stops when its file reaches 60 KB
        paths = desk.start(loop, {str(tmp_path)!r}, {{1: _plan(ScriptedPadSource("a"))}})[0]
        _wait(lambda: desk.counters(1).written >= 60)
        paths.update(desk.start(loop, {str(tmp_path)!r}, {{2: _plan(ScriptedPadSource("b"))}})[0])
        errors, frames = {{1: [], 2: []}}, {{}}
        end = time.monotonic() + 60
        while 1 not in frames and time.monotonic() < end:
            for seat in (1, 2):
                update = desk.poll(seat)
                errors[seat] += [update.error] if update.error else []
                if update.finished:
                    frames[seat] = update.finished.frames
            time.sleep(0.02)
        still = desk.recording(2)
        desk.stop(wait=True)
        frames[2] = desk.poll(2).finished.frames
        loop.stop()
        loop.wait(10)
        print(json.dumps({{"paths": {{s: str(p) for s, p in paths.items()}}, "errors": errors, "still": still,
                          "frames": frames}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    errors, frames, paths = result["errors"], result["frames"], result["paths"]
    assert len(errors["1"]) == 1 and not errors["2"] and result["still"]  # seat 2 went on recording
    assert paths["1"] in errors["1"][0] and "file size limit (ulimit -f)" in errors["1"][0]
    assert frames["1"] > 60 and frames["2"] > 5
    for seat in ("1", "2"):
        with open_session(paths[seat]) as s:
            assert s.complete and len(s) == frames[seat]
