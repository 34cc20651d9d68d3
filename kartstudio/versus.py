"""Racing the AI: the pilot drives one seat, a human the other, and the human can take the AI's
seat over. While taken over, every frame is recorded with what the human pressed as a
correction session (kind "correction", what DAgger learns from); handing back resumes the AI.

Two modes, from the game's layout (kartstudio.game.SeatLayout.players):
- 2 players ("Race the AI"): the AI on seat 1 (top half), a person on seat 2 (bottom half).
- 1 player ("Watch the AI drive", TensorKart's play.py): the AI drives the one car on the whole
  screen; a person overrides it while holding the override button (HOLD_BUTTON, L: TensorKart's
  left bumper) on their pad, and the AI drives again once it is let go (hold_wants()).

A model is only fed the view it was trained on (drivers.check_view): a whole-screen model in a
2-player game is refused in one line.

Qt-free: the Versus tab only shows what this holds and calls take_over() / hand_back().

    race = Versus(loop, pilot, human_pad, sessions_folder, meta_for)
    race.start(); race.take_over(pad); ...; path, frames = race.hand_back(); race.stop()

    solo = Versus(loop, pilot, None, sessions_folder, meta_for)      # a 1-player game's loop
    solo.start(); want = solo.hold_wants(pad)   # True: take_over(pad, hold=True); False: hand_back()
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from kartstudio.drivers import NeutralDriver, PadDriver, PilotDriver, TakeoverDriver, check_view, view_note
from kartstudio.play import GameLoop
from kartstudio.recorder import Recorder
from kartstudio.session import SessionMeta, new_session_path

AI_SEAT, HUMAN_SEAT = 1, 2
HOLD_BUTTON = "l"  # held on the override pad in 1-player mode (TensorKart's left bumper; Q on the keyboard)


class Versus:
    """meta_for(pad) -> the SessionMeta of a correction session taken with `pad`.

    human_pad: who drives seat 2 in a 2-player game (None: nobody; a 1-player game has no seat 2).
    Raises KartStudioError where the model cannot be fed the view it was trained on."""

    def __init__(self, loop: GameLoop, pilot, human_pad, folder: Path, meta_for: Callable[[object], SessionMeta],
                 track: str = "track") -> None:
        layout = loop.backend.layout
        check_view(pilot, layout)
        self.loop = loop
        self.players = layout.players
        self.note = view_note(pilot, layout)  # what the person should know about the AI's view ("" if nothing)
        self.pilot_driver = PilotDriver(pilot, activations=True)
        self.human_pad = human_pad if self.players > 1 else None
        self.held = False  # the takeover in progress was started by holding HOLD_BUTTON (hold_wants)
        self.folder = Path(folder)
        self.meta_for = meta_for
        self.track = track
        self.takeover: TakeoverDriver | None = None
        self.recorder: Recorder | None = None
        self.path: Path | None = None
        self.saved: list[tuple[Path, int]] = []  # (correction session, frames) once written
        self.error = ""  # why the last correction session stopped early, if it did
        self._consumer: _Corrections | None = None

    def _human_driver(self):
        """Seat 2's driver outside a takeover: the person's pad (2 players), none (1 player)."""
        if self.players < 2:
            return None
        return PadDriver(self.human_pad) if self.human_pad is not None else NeutralDriver()

    def start(self) -> None:
        self.loop.set_driver(AI_SEAT, self.pilot_driver)
        self.loop.set_driver(HUMAN_SEAT, self._human_driver())

    @property
    def taken_over(self) -> bool:
        return self.takeover is not None

    def hold_wants(self, pad) -> bool | None:
        """Hold-to-override (1-player mode; works in both): one look at `pad`, the override pad. True:
        it holds HOLD_BUTTON and the AI drives: call take_over(pad, hold=True). False: a takeover the
        hold started, and the button is let go: call hand_back(). None: nothing to do. A takeover
        started otherwise (the tab's button) is not ended by the button being up. Call it often (the
        Versus tab does on each refresh, every 33 ms)."""
        held = bool(getattr(getattr(pad, "last", None), HOLD_BUTTON, False))
        if held and self.takeover is None:
            return True
        if not held and self.takeover is not None and self.held:
            return False
        return None

    def take_over(self, pad, hold: bool = False) -> Path:
        """The human drives the AI's seat with `pad` from the next frame. The correction session
        (returned: its file) starts with the first frame the game read the pad's state for
        (TakeoverDriver.took_effect): every frame in it is labelled with the human's input. In a
        1-player game it is a whole-screen session (the Recorder makes it one), so fine-tuning a
        whole-screen model on it keeps its layout. hold: started by holding HOLD_BUTTON (hold_wants): the button is not handed to the game."""
        if self.takeover is not None:
            return self.path
        path = new_session_path(self.folder, f"{self.track}-correction", AI_SEAT)
        recorder = Recorder(self.folder, {AI_SEAT: (self.meta_for(pad), pad)}, layout=self.loop.backend.layout)
        try:
            recorder.start(paths={AI_SEAT: path})
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.recorder, self.path = recorder, path
        self.takeover = TakeoverDriver(pad, self.pilot_driver, release=(HOLD_BUTTON,) if hold else ())
        self.held = hold
        drivers = {AI_SEAT: self.takeover}
        if pad is self.human_pad and self.players > 1:
            drivers[HUMAN_SEAT] = NeutralDriver()  # one pad cannot drive both cars
        self._consumer = _Corrections(recorder, self.takeover)
        self.loop.switch(drivers, add=self._consumer)
        return path

    def hand_back(self, wait: bool = True) -> threading.Thread | None:
        """The AI drives its seat again. The correction file is finished on a helper thread (its
        queue drains); wait=True joins it and adds it to `saved`. Returns that thread otherwise
        (call finish() once it has ended)."""
        if self.takeover is None:
            return None
        self.takeover = None
        self.held = False
        # one switch: the correction session ends with the last frame the human drove
        self.loop.switch({AI_SEAT: self.pilot_driver, HUMAN_SEAT: self._human_driver()}, remove=self._consumer)
        self._consumer = None
        stopping = threading.Thread(target=self.recorder.stop, name="kartstudio-stop-correction", daemon=True)
        stopping.start()
        if wait:
            stopping.join()
            self.finish()
            return None
        return stopping

    def finish(self) -> tuple[Path, int] | None:
        """Record the finished correction session in `saved` (after hand_back's thread ended)."""
        recorder, path = self.recorder, self.path
        self.recorder = self.path = None
        if recorder is None or path is None:
            return None
        self.error = recorder.seats[AI_SEAT].error or ""  # e.g. the disk filled up mid-takeover
        result = (path, recorder.counters()[AI_SEAT].written)
        self.saved.append(result)
        return result

    def stop(self) -> None:
        """End the race (a takeover in progress is saved first); the seats are left to the caller."""
        self.hand_back(wait=True)
        self.loop.set_driver(AI_SEAT, None)
        self.loop.set_driver(HUMAN_SEAT, None)


class _Corrections:
    """The game loop's consumer during a takeover: hands the recorder the frames from the one
    the takeover took effect on (frames the AI still drove would teach the AI its own outputs)."""

    def __init__(self, recorder: Recorder, takeover: TakeoverDriver) -> None:
        self.recorder = recorder
        self.takeover = takeover

    def on_frame(self, frame) -> None:
        if self.takeover.took_effect(frame, AI_SEAT):
            self.recorder.on_frame(frame)
