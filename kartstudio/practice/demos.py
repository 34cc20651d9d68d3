"""Expert demonstrations on the practice track, recorded through the real Recorder.

Both seats drive the same track at once, as two players would: seat 1 is the expert as is;
seat 2 is the expert with its steering nudged now and then (it drifts off the ideal line and the
expert brings it back). Both are labelled with what the expert decided on seeing the frame, so
the recordings also show how to recover from a mistake (DART-style noise injection), which a
perfect driver alone never shows.

A frame's label is the decision taken on seeing it: the expert acts on the state the frame
shows, and that state is what the frame is labelled with when it is handed to the recorder.
(The backend's own Frame.inputs are the states that produced the frame, one frame earlier.)

    paths = record_demonstrations("sessions/", minutes=15)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kartstudio.drivers import NudgedDriver, Nudges  # noqa: F401 - Nudges re-exported
from kartstudio.practice.expert import ExpertDriver
from kartstudio.game import Frame
from kartstudio.play import labelled, play
from kartstudio.practice.backend import FPS, PracticeBackend
from kartstudio.practice.expert import HumanProfile
from kartstudio.recorder import Recorder
from kartstudio.session import DEFAULT_STORAGE_SIZE, SessionMeta

DEMO_SEED_START = 1000  # demonstration tracks; evaluation uses 10000 on (EVAL_SEED_START)
# Who drives the demonstrations: the expert (seat 2 nudged, labelled with the expert's decision),
# or the expert through a HumanProfile on both seats (labelled with what the "person" pressed).
DEMO_PROFILES = ("expert", "human")


@dataclass
class DemoResult:
    paths: list[Path]
    frames: int  # frames written, all seats together
    tracks: int

    @property
    def minutes(self) -> float:
        return self.frames / FPS / 60


def record_demonstrations(
    folder: str | Path,
    minutes: float,
    seed_start: int = DEMO_SEED_START,
    storage_size: tuple[int, int] = DEFAULT_STORAGE_SIZE,
    nudged_seat: bool = True,
    log: Callable[[str], None] | None = None,
    profile: str = "expert",
) -> DemoResult:
    """Record `minutes` of expert driving (game time, both seats counted) into `folder`.

    One session file per seat per track; tracks seed_start, seed_start+1, ... until enough.
    """
    target = int(minutes * 60 * FPS)
    seats = (1, 2) if nudged_seat else (1,)
    paths: list[Path] = []
    frames = tracks = 0
    seed = seed_start
    while frames < target:
        result = record_track(folder, seed, seats, storage_size, limit=target - frames, profile=profile)
        paths.extend(result.paths)
        frames += result.frames
        tracks += 1
        if log is not None:
            log(f"  demonstrations: track {seed}, {frames}/{target} frames")
        seed += 1
    return DemoResult(paths, frames, tracks)


def record_track(
    folder: str | Path,
    seed: int,
    seats: tuple[int, ...] = (1, 2),
    storage_size: tuple[int, int] = DEFAULT_STORAGE_SIZE,
    limit: int | None = None,
    profile: str = "expert",
) -> DemoResult:
    """One run on track `seed` recorded by the real Recorder: the expert (seat 2 nudged), or
    (profile "human") the expert through a HumanProfile on every seat."""
    human = profile == "human"
    metas = {
        seat: (
            SessionMeta(
                seat=seat,
                game="practice",
                track=f"seed-{seed}",
                pad_name="human-like expert" if human else "expert" if seat == 1 else "expert (nudged)",
                pad_guid=f"script:expert-p{seat}",
                storage_size=tuple(storage_size),
                kind="play",
                source="kartstudio.practice.demos",
                fps=FPS,
                extra={"seed": seed, "driver": profile, "nudged": seat == 2 and not human},
            ),
            None,
        )
        for seat in seats
    }
    recorder = Recorder(folder, metas, layout=PracticeBackend.layout, queue_size=1000)
    human_profile = HumanProfile() if human else None
    # HumanDriver acts like the expert: its labels are what the "person" pressed
    experts = {seat: ExpertDriver(human=human_profile, fps=FPS, seed=seed) for seat in seats}
    nudges = Nudges(rng=random.Random(seed))
    drivers = {seat: NudgedDriver(experts[seat], nudges) if seat == 2 and not human else experts[seat] for seat in seats}
    written = 0

    def on_frame(frame: Frame, labels: dict) -> bool:
        nonlocal written
        live = [s for s in seats if not game.done(s)]
        # Frames after a seat's run ended are not recorded for it: its file ends with its run.
        ended = [s for s in seats if s not in live and recorder.seats[s].active]
        if ended:
            recorder.stop(ended)
        if live:
            recorder.on_frame(labelled(frame, {s: labels[s] for s in live}))
            written += len(live)
        return limit is None or written < limit

    with PracticeBackend(seed=seed, seats=seats, realtime=False, restart=False, draw=True) as game:
        recorder.start()
        try:
            play(game, drivers, on_frame)
        finally:
            # Recorder.stop() waits on its writer thread, which is gone once no seat records.
            still = [seat for seat, rec in recorder.seats.items() if rec.active]
            if still:
                recorder.stop(still)
        recorder.raise_errors()
    paths = [rec.path for rec in recorder.seats.values() if rec.path is not None]
    return DemoResult(paths, written, 1)
