"""The real emulator driven through our input plugin: what KartStudio sends comes back out of the ROM.

The test ROM paints the 32 bits it read from controllers 1 and 2 (top and bottom half), so the
captured picture shows what the game read; the plugin's poll reports say the same from inside.
"""

import time

import pytest

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.emulator import testrom
from kartstudio.emulator.backend import EmulatorBackend
from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM
from kartstudio.errors import KartStudioError
from emulator_support import needs_emulator, needs_plugin, testrom_path, xdisplay  # noqa: F401 - fixtures


pytestmark = [pytest.mark.emulator, needs_emulator, needs_plugin]

P1 = ControllerState(x=40, y=-20, a=True, z=True, c_left=True)
P2 = ControllerState(x=-80, y=80, b=True, r=True, start=True, dpad_up=True)


def start_backend(rom, display, **kwargs) -> EmulatorBackend:
    backend = EmulatorBackend(rom, video=VIDEO_FOR_TEST_ROM, display=display, **kwargs)
    backend.start()
    return backend


@pytest.fixture(scope="module")
def backend(testrom_path, xdisplay):
    backend = start_backend(testrom_path, xdisplay)
    yield backend
    backend.stop()


def wait_for_screen(backend, expected, timeout=3.0):
    """The first frame whose picture shows `expected` (seat -> state), or the last frame."""
    deadline = time.monotonic() + timeout
    while True:
        frame = backend.next_frame()
        if testrom.decode_screen(frame.image) == expected or time.monotonic() > deadline:
            return frame


def test_both_controllers_are_polled(backend):
    backend.client.polls()
    reports = backend.client.wait_polls(40, timeout=3)
    for controller in (1, 2):
        polls = [r.poll for r in reports if r.controller == controller]
        assert len(polls) >= 10, f"controller {controller} polled {len(polls)} times"
        assert polls == sorted(polls) and len(set(polls)) == len(polls)


def test_states_sent_come_back_out_of_the_rom_for_both_seats(backend):
    backend.set_controller(1, P1)
    backend.set_controller(2, P2)
    frame = wait_for_screen(backend, {1: P1, 2: P2})
    assert testrom.decode_screen(frame.image) == {1: P1, 2: P2}  # what the ROM read, from its picture
    assert frame.inputs == {1: P1, 2: P2}  # what the plugin reports the game read
    # And back to neutral: nothing is stuck.
    backend.set_controller(1, NEUTRAL)
    backend.set_controller(2, NEUTRAL)
    frame = wait_for_screen(backend, {1: NEUTRAL, 2: NEUTRAL})
    assert testrom.decode_screen(frame.image) == {1: NEUTRAL, 2: NEUTRAL}


def test_lockstep_each_frame_shows_the_state_of_its_step(backend):
    backend.set_lockstep(True)
    try:
        for i in range(8):
            states = {1: ControllerState(x=10 * i - 40, a=i % 2 == 0), 2: ControllerState(y=40 - 10 * i, b=i % 3 == 0)}
            for seat, state in states.items():
                backend.set_controller(seat, state)
            frame = backend.next_frame()
            # The game stands still after the poll, so the picture is exactly this step's.
            assert testrom.decode_screen(frame.image) == states
            assert frame.inputs == states
            # The ROM counts one frame per poll: its painted counter pairs the picture with the poll.
            assert testrom.decode_frame_counter(frame.image) == frame.number & 0xFF
    finally:
        backend.set_lockstep(False)


def test_frames_in_free_run(backend):
    frames = [backend.next_frame() for _ in range(10)]
    numbers = [f.number for f in frames]
    assert numbers == sorted(numbers) and numbers[-1] > numbers[0]
    assert all(f.image.shape == (480, 640, 3) for f in frames)
    assert all(testrom.looks_like_test_screen(f.image) for f in frames)


def test_silence_makes_the_controllers_neutral(testrom_path, xdisplay):
    backend = start_backend(testrom_path, xdisplay)
    try:
        backend.set_controller(1, P1)
        backend.set_controller(2, P2)
        assert testrom.decode_screen(wait_for_screen(backend, {1: P1, 2: P2}).image) == {1: P1, 2: P2}
        backend.client.close()  # KartStudio goes away: no accelerator may stay pressed
        time.sleep(0.3)
        shown = testrom.decode_screen(backend.capture.grab())
        assert shown == {1: NEUTRAL, 2: NEUTRAL}
    finally:
        backend.stop()


def test_emulator_exit_ends_the_frames(testrom_path, xdisplay):
    backend = start_backend(testrom_path, xdisplay)
    try:
        backend.emulator.process.terminate()
        backend.emulator.process.wait(5)
        assert backend.next_frame() is None
        assert backend.exit_reason
    finally:
        backend.stop()


def test_a_macro_reaches_the_game_poll_by_poll(backend):
    from kartstudio.emulator.macro import Macro

    macro = Macro.from_dict({"steps": [
        {"wait": 3},
        {"press": ["a"], "frames": 2},
        {"stick": [80, 0], "frames": 1},
        {"press": ["start"], "frames": 2, "seat": 2},
    ]})
    reports = backend.play_macro(macro)
    read = {seat: [r.state for r in reports if r.controller == seat] for seat in (1, 2)}
    expected = list(macro.frames())
    assert read[1] == [states[1] for states in expected]
    assert read[2] == [states[2] for states in expected]
    assert backend.lockstep is False  # back to free-run afterwards


def test_a_mario_kart_rom_gets_the_vs_boot_macro(tmp_path, xdisplay):
    """A stand-in ROM with Mario Kart 64's game code (our test ROM, nothing of the game) makes the
    backend play the VS boot macro; the game read every poll of it, in order, for both seats."""
    from kartstudio.emulator.macro import load_mk64_vs_macro

    rom = testrom.build_test_rom(tmp_path, game_code="NKTE")
    backend = EmulatorBackend(rom, video=VIDEO_FOR_TEST_ROM, display=xdisplay, speed_limit=False)
    try:
        backend.start()
        macro = load_mk64_vs_macro()
        expected = list(macro.frames())
        for seat in (1, 2):
            read = [r.state for r in backend.boot_reports if r.controller == seat]
            assert read == [states[seat] for states in expected]
        assert backend.lockstep is False  # free-run for the players afterwards
        backend.set_controller(2, P2)
        assert testrom.decode_screen(wait_for_screen(backend, {1: NEUTRAL, 2: P2}).image)[2] == P2
    finally:
        backend.stop()


def test_a_failed_start_leaves_no_emulator_behind(testrom_path, xdisplay):
    # Without our plugin (--input dummy) nobody listens on the socket: connecting times out.
    backend = EmulatorBackend(testrom_path, video=VIDEO_FOR_TEST_ROM, display=xdisplay, input_plugin="dummy",
                              connect_timeout=1.0)
    with pytest.raises(KartStudioError, match="not listening"):
        backend.start()
    process = backend.emulator.process
    assert process.poll() is not None  # stopped, not orphaned


def test_a_crash_while_running_is_reported(testrom_path, xdisplay):
    import signal

    backend = start_backend(testrom_path, xdisplay)
    try:
        backend.emulator.process.send_signal(signal.SIGSEGV)
        backend.emulator.process.wait(5)
        with pytest.raises(KartStudioError, match=r"crashed \(SIGSEGV\)"):
            backend.next_frame()
    finally:
        backend.stop()


def test_the_games_video_plugin_runs_too(testrom_path, xdisplay):
    """rice (the default for Mario Kart 64) draws display lists only, so the test ROM's CPU-drawn
    picture stays blank there; the emulator still runs with it, window pinned, polls flowing, and
    the backend says the picture is blank and what fixes it."""
    from kartstudio.emulator.launcher import MK64_VIDEO

    backend = EmulatorBackend(testrom_path, video=MK64_VIDEO, display=xdisplay, macro=False)
    try:
        backend.start()
        # pinned at (0,0), or beside this module's other emulator when that one holds (0,0)
        assert (backend.pinner.geometry.x, backend.pinner.geometry.y) in ((0, 0), (640, 0))
        backend.client.polls()
        reports = backend.client.wait_polls(20, timeout=3)
        assert {r.controller for r in reports} == {1, 2}
        # the test drained the reports above, so the backend pairs inputs from the next polls on
        frames = [backend.next_frame() for _ in range(10)]
        assert all(f.image.shape == (480, 640, 3) for f in frames)
        assert any(f.inputs is not None for f in frames)
        end = time.monotonic() + 10
        while backend.picture_problem is None and time.monotonic() < end:
            backend.next_frame()
        assert "one colour" in backend.picture_problem and "'automatic' (glide64mk2)" in backend.picture_problem
    finally:
        backend.stop()


def test_one_frame_per_game_frame_when_the_game_runs_slower_than_the_capture(backend):
    """Under load (the emulator stopped 150 ms of every 200 by SIGSTOP: longer than a grab waits for
    the game's next poll, so grabs find the game stood still) no game frame is handed on twice, and
    each frame's label is what the game read at its poll: the test ROM paints what it read with its
    frame counter, so a later picture shows the input of poll k, which must equal the label of the
    frame numbered k."""
    import os
    import signal
    import threading

    stop = threading.Event()

    def feed():  # a new stick position every few ms: each poll reads another state
        i = 0
        while not stop.is_set():
            i = (i + 1) % 120
            backend.set_controller(1, ControllerState(x=i - 60))
            time.sleep(0.003)

    def choke():
        pid = backend.emulator.pid
        try:
            while not stop.is_set():
                os.kill(pid, signal.SIGSTOP)
                time.sleep(0.15)
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.05)
        finally:
            os.kill(pid, signal.SIGCONT)

    threads = [threading.Thread(target=feed), threading.Thread(target=choke)]
    for t in threads:
        t.start()
    frames, stale = [], backend.stale_grabs
    try:
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            frame = backend.next_frame(timeout=0.5)
            if frame is not None and frame.inputs and 1 in frame.inputs:
                frames.append((frame.number, frame.inputs[1], testrom.decode_screen(frame.image)[1],
                               testrom.decode_frame_counter(frame.image)))
    finally:
        stop.set()
        for t in threads:
            t.join()
    numbers = [n for n, *_ in frames]
    assert numbers == sorted(set(numbers)), numbers  # never the same game frame twice
    # the game stood still while grabs were made (it was stopped longer than a grab waits for a poll),
    # and those grabs were left out
    assert backend.stale_grabs > stale
    label = {n & 0xFF: state for n, state, _, _ in frames}
    checked = [(label[counter], shown) for _, _, shown, counter in frames if counter in label]
    assert len(checked) > len(frames) // 2
    assert all(a == b for a, b in checked), checked
