"""KartStudio Raceway, our own N64 kart game: built from source with the MIPS cross compiler, run in
the real mupen64plus under Xvfb with our input plugin, driven through the plugin, and read back
through its state channel (a joybus command to port 4 that the plugin forwards; never on screen)."""

import struct

import numpy as np
import pytest

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.emulator import raceway, testrom
from kartstudio.emulator.rom import check_rom
from kartstudio.errors import KartStudioError
from emulator_support import missing_for_emulator, needs_plugin, xdisplay  # noqa: F401 - fixture

needs_compiler = pytest.mark.skipif(
    bool(raceway.toolchain_missing()),
    reason=f"{', '.join(raceway.toolchain_missing())} missing (apt-get install gcc-mips-linux-gnu binutils-mips-linux-gnu)",
)


needs_game = [
    pytest.mark.emulator,
    needs_compiler,
    pytest.mark.skipif(missing_for_emulator() is not None, reason=str(missing_for_emulator())),
    needs_plugin,
]


def needs_emulator_game(test):
    for mark in reversed(needs_game):
        test = mark(test)
    return test


def packet(**kw) -> bytes:
    """A state packet laid out as game.c's send_state writes it."""
    head = struct.pack(">BBBBIHBB", 0x4B, 1, kw.get("phase", 4), 2, kw.get("frame", 1234), kw.get("track", 427), 3, 0)
    seats = b""
    for i in range(2):
        seats += struct.pack(">HBBhhHIHb", 16384 * (i + 1), i, 1 | 4 if i == 0 else 2, (-512 if i == 0 else 1024) * 16,
                             4096 * (1 if i == 0 else -1), 40 * 16, 0x80001A00 if i == 0 else 0, 600 + i, -20 * i)
    return head + seats


# -- without the emulator ----------------------------------------------------------------------

def test_state_packet_decodes():
    frame = raceway.decode_state(packet())
    assert (frame.phase, frame.players, frame.track, frame.laps, frame.frame) == ("race", 2, 427, 3, 1234)
    one, two = frame.seats
    assert one.progress == pytest.approx(0.25) and two.progress == pytest.approx(1.5)
    assert one.lateral == pytest.approx(-0.5) and two.lateral == pytest.approx(1.0)
    assert one.heading_error == pytest.approx(np.pi / 8) and two.heading_error == pytest.approx(-np.pi / 8)
    assert one.speed == 40 and one.off_road and one.leading and not one.finished
    assert two.finished and not two.off_road and not two.leading
    assert one.race_time == pytest.approx(10.0) and two.race_frames == 601 and two.curve_ahead == -20
    # the pad bytes as the game read them (A pressed, stick x = 26) in mupen64plus's BUTTONS layout
    assert one.controller == ControllerState(a=True, x=26) and two.controller == NEUTRAL
    with pytest.raises(ValueError):
        raceway.decode_state(packet()[:-1])
    with pytest.raises(ValueError):
        raceway.decode_state(b"\x01" + packet()[1:])


def test_menu_macro_presses_each_digit_of_the_track_number():
    macro = raceway.menu_macro(427, players=2, laps=5)
    presses = [step for step in macro.steps if step.state != NEUTRAL]
    names = [next(n for n in ("start", "a", "r", "c_right", "dpad_right", "dpad_down", "dpad_up")
                  if getattr(step.state, n)) for step in presses]
    assert names == ["start", "dpad_down", "a"] + ["r"] * 4 + ["c_right"] * 2 + ["dpad_right"] * 7 + ["dpad_up"] * 2 + ["a"]
    assert all(step.frames == 1 for step in presses)
    one_player = raceway.menu_macro(0, players=1)
    assert [s.state for s in one_player.steps if s.state != NEUTRAL] == [ControllerState(start=True), ControllerState(a=True),
                                                                          ControllerState(a=True)]
    with pytest.raises(ValueError):
        raceway.menu_macro(1000)


@needs_compiler
def test_rom_builds_from_source(tmp_path):
    path = raceway.build_rom(tmp_path)
    info = check_rom(path)
    assert (info.name, info.game_code, info.size, info.byte_order) == ("KARTSTUDIO RACEWAY", "NKRE", 1 << 20, "z64")
    rom = path.read_bytes()
    assert struct.unpack_from(">II", rom, 0x10) == testrom.cic6102_checksum(rom)
    assert rom[0x40:0x44] != b"\0\0\0\0" and rom[0x1000:0x1004] != b"\0\0\0\0"  # boot stub, program
    assert raceway.build_rom(tmp_path) == path  # named by the source's hash: not rebuilt
    assert raceway.build_rom(tmp_path / "game.z64").read_bytes() == rom  # reproducible


# -- in the real emulator ------------------------------------------------------------------------

TRACK = 123


@pytest.fixture(scope="module")
def game(xdisplay, tmp_path_factory):
    from kartstudio.emulator.backend import EmulatorBackend
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM

    rom = raceway.build_rom(tmp_path_factory.mktemp("raceway"))
    # the backend knows the ROM by its header and starts the plugin's state channel on port 4 itself
    backend = EmulatorBackend(rom, video=VIDEO_FOR_TEST_ROM, display=xdisplay, macro=False)
    backend.start()
    try:
        yield backend, raceway.StateReader(backend.client)
    finally:
        backend.stop()


def step(backend, reader, frames, one=NEUTRAL, two=NEUTRAL):
    """`frames` game frames in lock-step with these pads; returns the states the game reported."""
    backend.set_lockstep(True)
    for _ in range(frames):
        backend.client.step({1: one, 2: two})
    return reader.read()


@needs_emulator_game
def test_boots_to_the_title_screen_and_draws(game):
    backend, reader = game
    first = reader.wait(lambda f: f.phase == "title", timeout=10)
    for _ in range(60):  # the window may show the video plugin's black for the first frames after boot
        image = backend.next_frame(timeout=5).image.astype(int)
        if image.std() > 20:
            break
    assert image.std() > 20, "the picture is blank"
    sky = np.all(np.abs(image - [60, 120, 220]) < 24, axis=2).mean()
    assert sky > 0.15, f"the title's sky covers {sky:.0%} of the picture"
    later = reader.wait(lambda f: f.frame > first.frame + 10, timeout=5)
    assert later.phase == "title" and later.seats[0].controller == NEUTRAL


@needs_emulator_game
def test_menu_macro_reaches_a_2p_race_on_the_chosen_track(game):
    backend, reader = game
    backend.play_macro(raceway.menu_macro(TRACK))
    state = reader.wait(lambda f: f.phase == "countdown", timeout=5)
    assert (state.players, state.track, state.laps) == (2, TRACK, 3)
    assert [s.progress for s in state.seats] == [state.seats[0].progress] * 2  # on the grid, side by side
    assert state.seats[0].lateral < 0 < state.seats[1].lateral
    states = step(backend, reader, raceway.COUNTDOWN_FRAMES + 2)
    assert states[-1].phase == "race" and all(s.speed == 0 for s in states[-1].seats)


@needs_emulator_game
def test_split_screen_shows_two_roads(game):
    backend, _ = game
    image = backend.next_frame(timeout=5).image.astype(int)
    h = image.shape[0] // 2
    top, bottom = image[:h], image[h:]
    assert np.abs(top - bottom).mean() > 2, "the two seats' views are the same picture"

    def share(img, rgb, tol=16):
        return np.all(np.abs(img - rgb) < tol, axis=2).mean()

    for half in (top, bottom):
        assert share(half, [104, 104, 110]) + share(half, [94, 94, 100]) > 0.08, "no road"
        assert share(half, [48, 160, 48]) + share(half, [36, 132, 36]) > 0.05, "no grass"
        assert share(half, [220, 30, 30], 30) > 0.003, "no rumble strip"


@needs_emulator_game
def test_speed_rises_with_a_and_labels_equal_what_the_game_read(game):
    backend, reader = game
    gas = ControllerState(a=True)
    states = step(backend, reader, 60, one=gas)
    last = states[-1]
    assert last.seat(1).speed > 15 and last.seat(2).speed == 0
    assert last.seat(1).progress > states[0].seat(1).progress
    assert all(s.seat(1).controller == gas and s.seat(2).controller == NEUTRAL for s in states[2:])
    coast = step(backend, reader, 30)
    assert coast[-1].seat(1).speed < last.seat(1).speed
    assert coast[-1].seat(1).controller == NEUTRAL


@needs_emulator_game
def test_steering_changes_the_lateral_offset(game):
    backend, reader = game
    before = reader.latest
    # outwards from the grid (seat 1 starts left of the centre line, seat 2 right), so they never touch
    states = step(backend, reader, 60, one=ControllerState(a=True, x=-60), two=ControllerState(a=True, x=60))
    after = states[-1]
    assert after.seat(1).heading_error < 0 < after.seat(2).heading_error
    assert after.seat(1).lateral < before.seat(1).lateral - 0.05
    assert after.seat(2).lateral > before.seat(2).lateral + 0.05


@needs_emulator_game
def test_start_pauses_the_race(game):
    backend, reader = game
    states = step(backend, reader, 2, one=ControllerState(start=True))
    assert states[-1].phase == "paused"
    frozen = states[-1].seat(1).race_frames
    states = step(backend, reader, 10)
    assert states[-1].phase == "paused" and states[-1].seat(1).race_frames == frozen
    states = step(backend, reader, 2, one=ControllerState(start=True))
    states += step(backend, reader, 5)
    assert states[-1].phase == "race" and states[-1].seat(1).race_frames > frozen


def test_scoring_starts_an_emulator_that_did_not_come_up_once_more_then_says_why(capsys):
    """A fake backend (the failure is the point: a real emulator cannot be made to fail once on cue)."""
    from kartstudio.raceway.evaluate import START_TRIES, _started

    class Backend:
        made = 0

        def __init__(self, fails: int) -> None:
            Backend.made += 1
            self.fails_left = fails

        def start(self) -> None:
            if Backend.made <= self.fails_left:
                raise KartStudioError("the emulator's input plugin is not listening after 15 s")

    backend = _started(lambda: Backend(fails=1))
    assert Backend.made == 2 and isinstance(backend, Backend)
    assert "trying once more" in capsys.readouterr().err
    Backend.made = 0
    with pytest.raises(KartStudioError, match="not listening"):
        _started(lambda: Backend(fails=START_TRIES))
    assert Backend.made == START_TRIES


def test_the_bench_judges_the_target_on_behaviour_cloning_and_on_the_last_dagger_round():
    from kartstudio.raceway.bench import bench_text, target_line

    result = {"config": {"demos": "human", "eval_track_start": 500, "laps": 1}, "tracks": 20, "score_ratio": 0.8623,
              "finished": 18, "dagger": [{"round": 1, "score_ratio": 0.9936, "finished": 20, "correction_frames": 17026,
                                          "epochs_done": 2, "train_s": 599.2, "mean_score": 780.1, "min_score": 664.8}]}
    assert target_line(result) == ("target: mean score >= 90% of the demonstrator's and >= 90% of races finished -> "
                                   "NOT met (86.2%, 18/20 finished); after DAgger round 1: met (99.4%, 20/20 finished)")
    result.update(demo_minutes=15.0, demo_frames=54001, demo_files=34, record_s=470.0, record_fps_per_seat=125.8,
                  epochs_done=5, train_s=594.0, train_samples_per_s=403.4, best_loss=1.1184, thresholds=(0.55, 0.6, 0.5),
                  mean_score=676.9, min_score=-312.3, demonstrator_mean_score=785.1, demonstrator_finished=20, eval_s=704.0)
    assert "DAgger round 1: 17026 correction frames, 2 epochs in 10.0 min -> mean 780.1, min 664.8, 20 finished (99.4%" \
        in bench_text(result)
    del result["dagger"]
    assert "after DAgger" not in target_line(result)
