"""The practice track: determinism, the split screen, controller mapping, the expert's score, eval CLI."""

import json
import time

import numpy as np
import pytest

pytest.importorskip("Box2D", reason="the practice track needs gymnasium[box2d]")

from kartstudio.cli import main  # noqa: E402
from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.errors import KartStudioError  # noqa: E402
from kartstudio.practice.backend import (  # noqa: E402
    CAR_COLORS,
    FPS,
    PracticeBackend,
    controller_to_action,
)
from kartstudio.practice.evaluate import EVAL_SEED_START, evaluate_expert  # noqa: E402
from kartstudio.practice.expert import Expert  # noqa: E402


def _drive(seed, steps, seats=(1, 2), script=None):
    """Run a game with a fixed input script; the frames and each seat's stats."""
    frames = []
    with PracticeBackend(seed=seed, seats=seats, realtime=False) as game:
        for k in range(steps):
            for seat in seats:
                game.set_controller(seat, script(seat, k) if script else ControllerState(a=True))
            frames.append(game.next_frame())
        stats = {seat: (game.stats(seat).episode_return, game.tiles(seat), game.stats(seat).off_track_steps) for seat in seats}
    return frames, stats


def _wiggle(seat, k):
    return ControllerState(x=60 if (k // 15) % 2 else -40, a=k % 7 != 0, b=k % 23 == 0)


def test_same_seed_same_game_different_seed_different_track():
    a_frames, a_stats = _drive(11, 60, script=_wiggle)
    b_frames, b_stats = _drive(11, 60, script=_wiggle)
    assert a_stats == b_stats
    assert all(np.array_equal(a.image, b.image) for a, b in zip(a_frames, b_frames))
    assert [f.number for f in a_frames] == list(range(1, 61))
    c_frames, _ = _drive(12, 60, script=_wiggle)
    assert not np.array_equal(a_frames[-1].image, c_frames[-1].image)


def test_split_screen_seat1_top_seat2_bottom_and_inputs_per_seat():
    def script(seat, k):
        return ControllerState(x=-80, a=True) if seat == 1 else ControllerState(x=0, b=True)

    frames, stats = _drive(5, 40, script=script)
    last = frames[-1]
    assert last.image.shape == (480, 640, 3) and last.image.dtype == np.uint8
    top, bottom = last.image[:240], last.image[240:]
    assert not np.array_equal(top, bottom)  # seat 1 turned left at full gas, seat 2 only braked
    # each half shows its own car: red on the top half (seat 1), blue on the bottom (seat 2)
    red, blue = np.array(CAR_COLORS[1]), np.array(CAR_COLORS[2])
    assert (top == red).all(axis=-1).any() and not (top == blue).all(axis=-1).any()
    assert (bottom == blue).all(axis=-1).any() and not (bottom == red).all(axis=-1).any()
    assert last.inputs == {1: ControllerState(x=-80, a=True), 2: ControllerState(b=True)}
    assert stats[1][0] != stats[2][0]  # seat 1 has moved and collected tiles, seat 2 stood still
    assert stats[2][1][0] < stats[1][1][0]


def test_one_seat_leaves_the_bottom_half_black_and_bad_seats_are_refused():
    frames, _ = _drive(5, 3, seats=(1,))
    assert frames[-1].image[240:].max() == 0 and frames[-1].image[:240].max() > 0
    with pytest.raises(KartStudioError, match="seats 1 and 2"):
        PracticeBackend(seats=(3,))
    with PracticeBackend(seats=(1,), realtime=False) as game, pytest.raises(KartStudioError, match="no seat 2"):
        game.set_controller(2, ControllerState())


def test_controller_maps_to_carracing_action():
    assert controller_to_action(ControllerState(x=80, a=True)).tolist() == [1.0, 1.0, 0.0]
    assert controller_to_action(ControllerState(x=-40, b=True)).tolist() == [-0.5, 0.0, pytest.approx(0.8)]
    assert controller_to_action(ControllerState()).tolist() == [0.0, 0.0, 0.0]


def test_realtime_paces_frames_at_the_game_rate():
    with PracticeBackend(seed=1, seats=(1,)) as game:
        t0 = time.monotonic()
        for _ in range(10):
            game.next_frame()
        elapsed = time.monotonic() - t0
    assert elapsed >= 9 / FPS - 0.01  # never faster than 25 frames a second


def test_a_finished_seat_restarts_on_the_same_track_or_ends_the_game():
    # restart=False: once the seat's run ends, next_frame() says the game is over
    with PracticeBackend(seed=3, seats=(1,), realtime=False, restart=False, draw=False) as game:
        expert = Expert(game, 1)
        n = 0
        while True:
            game.set_controller(1, expert.act())
            if game.next_frame() is None:
                break
            n += 1
        (result,) = game.results(1)
    assert result.lap_finished and result.reason == "lap" and result.tiles_visited == result.tiles_total
    assert n == -(-result.steps // 2) and result.episode_return > 850  # 2 physics steps a frame
    # restart=True (the app): the seat starts a new run on the same track and the game goes on
    with PracticeBackend(seed=3, seats=(1,), realtime=False, restart=True, draw=False) as game:
        expert = Expert(game, 1)
        for _ in range(n + 5):
            game.set_controller(1, expert.act())
            assert game.next_frame() is not None
        assert [r.as_dict() for r in game.results(1)] == [result.as_dict()]
        assert 0 < game.stats(1).steps <= 10 and game.running


def test_the_expert_drives_unseen_tracks_above_850_each():
    report = evaluate_expert(episodes=3, seed_start=EVAL_SEED_START + 50)
    assert len(report.episodes) == 3
    assert all(e.episode_return >= 850 and e.lap_finished for e in report.episodes), report.as_dict()
    assert report.mean_off_track_s < 1.0


def test_eval_cli_expert_json(capsys):
    assert main(["eval", "--expert", "--episodes", "2", "--seed-start", "77", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 2 and out["driver"] == "expert"
    assert [d["seed"] for d in out["details"]] == [77, 78]
    assert out["min_return"] <= out["mean_return"] and out["min_return"] > 0


def test_eval_cli_errors_are_one_line(capsys, tmp_path):
    assert main(["eval", "--model", str(tmp_path / "missing.keras"), "--episodes", "1"]) == 2
    assert "no such model file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--expert", "--episodes", "0"])
    assert exit_.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_quick_guard_compares_with_the_baselines_spread(tmp_path):
    from kartstudio.practice.bench import compare_with_baseline

    baseline = tmp_path / "drive.json"
    baseline.write_text(json.dumps({"quick": {"runs": [{"mean_return": 880.0}, {"mean_return": 900.0}]}}))
    assert "within" in compare_with_baseline({"mean_return": 861.0}, baseline)  # 880 - spread 20 = 860
    assert "WORSE" in compare_with_baseline({"mean_return": 859.0}, baseline)
    assert compare_with_baseline({"mean_return": 900.0}, tmp_path / "none.json") is None
