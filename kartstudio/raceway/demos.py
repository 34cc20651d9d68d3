"""Demonstrations on KartStudio Raceway, recorded through the real path: mupen64plus, the window
capture, our input plugin and the Recorder, both seats at once (two karts, two files per race).

The expert (or its human-like profile) drives both seats in free-run with the speed limiter off;
each frame's labels are what the game read for that seat (Frame.inputs, from the plugin's poll
reports), never the driver's intention. The game's state channel only steers the expert and ends
the race; it is never stored.

    result = record_demonstrations("sessions/", minutes=5)
    result.paths, result.frames, result.fps_per_seat
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from kartstudio.drivers import NudgedDriver, Nudges
from kartstudio.raceway.expert import RacewayExpertDriver
from kartstudio.emulator.raceway import FPS, NATIVE_RESOLUTION
from kartstudio.game import Frame
from kartstudio.raceway.evaluate import LAP_LIMIT_S
from kartstudio.raceway.game import display_for_game, race_meta, raceway_backend
from kartstudio.recorder import Recorder
from kartstudio.session import DEFAULT_STORAGE_SIZE, SessionMeta

DEMO_TRACK_START = 100  # demonstration tracks; scoring uses 500 on (evaluate.EVAL_TRACK_START)
DEMO_PROFILES = ("expert", "human")
DEMO_LAPS = 1
CAPTURE_FPS = 240.0  # grab as often as the machine allows: the backend hands on each game frame once


@dataclass
class DemoResult:
    paths: list[Path] = field(default_factory=list)
    frames: int = 0  # frames written, all seats together
    tracks: int = 0
    seconds: float = 0.0  # wall time spent recording (races only, not booting)
    seat_frames: dict[int, int] = field(default_factory=dict)
    game_frames: int = 0  # game frames that went by while recording (the first seat's polls)

    @property
    def minutes(self) -> float:
        return self.frames / FPS / 60

    @property
    def fps_per_seat(self) -> float:
        """Frames written per second of wall time, per seat."""
        seats = max(1, len(self.seat_frames))
        return self.frames / seats / self.seconds if self.seconds else 0.0

    def add(self, other: "DemoResult") -> None:
        self.paths += other.paths
        self.frames += other.frames
        self.tracks += other.tracks
        self.seconds += other.seconds
        self.game_frames += other.game_frames
        for seat, n in other.seat_frames.items():
            self.seat_frames[seat] = self.seat_frames.get(seat, 0) + n


def demo_meta(seat: int, track: int, profile: str, storage_size=DEFAULT_STORAGE_SIZE, laps: int = DEMO_LAPS) -> SessionMeta:
    human = profile == "human"
    driver = "human-like expert" if human else "expert" if seat == 1 else "expert (nudged)"
    return replace(race_meta(seat, track, driver, storage_size, laps, "kartstudio.raceway.demos",
                             {"driver": profile, "nudged": seat == 2 and not human}),
                   pad_guid=f"script:raceway-expert-p{seat}")


def record_race(folder: str | Path, track: int, profile: str = "expert", laps: int = DEMO_LAPS,
                storage_size=DEFAULT_STORAGE_SIZE, display: str | None = None, limit: int | None = None,
                seconds: float | None = None, on_frame: Callable[[Frame, object], None] | None = None,
                speed_limit: bool = False, resolution: tuple[int, int] = NATIVE_RESOLUTION) -> DemoResult:
    """One 2-player race on `track`, both seats recorded (one file each) until both finished,
    `limit` frames (all seats) or `seconds` of wall time. on_frame(frame, game): sees every recorded
    frame (and the backend: game.state_reader holds the game's recent states)."""
    human = profile == "human"
    seats = (1, 2)
    recorder = Recorder(folder, {s: (demo_meta(s, track, profile, storage_size, laps), None) for s in seats},
                        queue_size=1000)
    if human:
        from kartstudio.raceway.expert import raceway_human_profile

        drivers = {s: RacewayExpertDriver(human=raceway_human_profile(), seed=track) for s in seats}
    else:
        # Seat 2 nudged now and then: its recording shows how to come back to the lane. The nudges
        # are in its labels (a label is what the game read); they go either way at random, so they
        # add noise, not a bias, and the recoveries after them are what the model needs.
        drivers = {1: RacewayExpertDriver(), 2: NudgedDriver(RacewayExpertDriver(), Nudges(rng=random.Random(track)))}
    result = DemoResult(tracks=1)
    with display_for_game(display) as shown, \
            raceway_backend(track, laps, display=shown, lockstep=False, speed_limit=speed_limit,
                            resolution=resolution) as game:
        game.fps = CAPTURE_FPS
        for seat in seats:  # the grid: the expert's first decisions before the first frame
            game.set_controller(seat, drivers[seat].act(game, seat, None))
        started = False
        t0 = first_poll = None
        last = None
        try:
            while True:
                frame = game.next_frame(timeout=5.0)
                if frame is None:
                    if not game.running:
                        break
                    continue
                state = frame.game_state
                for seat in seats:
                    game.set_controller(seat, drivers[seat].act(game, seat, frame))
                if state is None or state.phase not in ("race", "results"):
                    continue  # the countdown is not recorded: nothing to learn while the karts stand
                if not started:
                    recorder.start()
                    started, t0, first_poll = True, time.monotonic(), frame.number
                finished = [s for s in seats if state.seat(s).finished and recorder.seats[s].active]
                if finished:
                    recorder.stop(finished)  # a seat's file ends with its race
                if not any(rec.active for rec in recorder.seats.values()):
                    break
                recorder.on_frame(frame)  # labels: Frame.inputs, what the game read
                if on_frame is not None:
                    on_frame(frame, game)
                last = frame
                written = sum(rec.counters.captured for rec in recorder.seats.values())
                if (limit is not None and written >= limit) or (seconds is not None and time.monotonic() - t0 >= seconds) \
                        or state.seat(1).race_frames >= LAP_LIMIT_S * laps * FPS:
                    break
        finally:
            still = [seat for seat, rec in recorder.seats.items() if rec.active]
            if still:
                recorder.stop(still)
        result.seconds = time.monotonic() - t0 if t0 is not None else 0.0
        result.game_frames = last.number - first_poll if last is not None else 0
    recorder.raise_errors()
    for seat, rec in recorder.seats.items():
        if rec.path is not None:
            result.paths.append(rec.path)
        result.seat_frames[seat] = rec.counters.written
    result.frames = sum(result.seat_frames.values())
    return result


def record_demonstrations(folder: str | Path, minutes: float, track_start: int = DEMO_TRACK_START,
                          profile: str = "expert", laps: int = DEMO_LAPS, storage_size=DEFAULT_STORAGE_SIZE,
                          display: str | None = None, log: Callable[[str], None] | None = None) -> DemoResult:
    """`minutes` of demonstrations (game time, both seats counted): tracks track_start, +1, ... until enough."""
    target = int(minutes * 60 * FPS)
    total = DemoResult()
    track = track_start
    with display_for_game(display) as shown:
        while total.frames < target:
            one = record_race(folder, track, profile, laps, storage_size, shown, limit=target - total.frames)
            total.add(one)
            if log is not None:
                log(f"  demonstrations: track {track}, {total.frames}/{target} frames, {one.fps_per_seat:.0f} frames/s per seat")
            track = track + 1 if track < 999 else 0
    return total
