"""The play layer without Qt: the synchronous loop (eval, demos, DAgger) and the app's threaded
GameLoop drive the same way, and a takeover is recorded as a correction session."""

import time

import pytest

pytest.importorskip("gymnasium")

from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.drivers import PilotDriver  # noqa: E402
from kartstudio.practice.expert import ExpertDriver  # noqa: E402
from kartstudio.pads.base import ScriptedPadSource  # noqa: E402
from kartstudio.play import GameLoop, play  # noqa: E402
from kartstudio.practice.backend import PracticeBackend  # noqa: E402
from kartstudio.session import SessionMeta, open_session  # noqa: E402
from kartstudio.versus import AI_SEAT, Versus  # noqa: E402


class Logged:
    """A driver that keeps what another decided, frame by frame."""

    def __init__(self, driver) -> None:
        self.driver, self.name, self.states = driver, driver.name, []

    def act(self, game, seat, frame):
        state = self.driver.act(game, seat, frame)
        self.label = self.driver.label
        self.states.append(state)
        return state


def _wait(condition, seconds=30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not condition():
        time.sleep(0.01)
    assert condition()


def test_the_app_loop_drives_exactly_as_eval_does():
    with PracticeBackend(seed=10_000, seats=(1,), realtime=False, restart=False, draw=False) as game:
        sync = Logged(ExpertDriver())
        assert play(game, {1: sync}, max_frames=80) == 80
    threaded = Logged(ExpertDriver())
    loop = GameLoop(PracticeBackend(seed=10_000, seats=(1,), realtime=False, restart=False, draw=False))
    loop.set_driver(1, threaded)
    loop.start()
    _wait(lambda: len(threaded.states) > 81 or not loop.alive)
    loop.stop()
    assert loop.wait(10) and not loop.status.error
    assert threaded.states[:81] == sync.states[:81]
    assert len({s.x for s in sync.states}) > 3  # the expert steers: the comparison means something


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    from kartstudio.drivers import load_pilot
    from kartstudio.model import build_model, save_model

    return load_pilot(save_model(build_model("kartstudio"), tmp_path_factory.mktemp("m") / "fresh.keras"))


def test_a_takeover_is_recorded_as_a_correction_while_the_ai_keeps_watching(pilot, tmp_path):
    human = ScriptedPadSource("human", policy=lambda: ControllerState(x=20, a=True))
    helper = ScriptedPadSource("helper", policy=lambda: ControllerState(x=-45, b=True))
    loop = GameLoop(PracticeBackend(seed=3, realtime=False, draw=True))
    loop.start()
    _wait(lambda: loop.status.running)
    race = Versus(loop, pilot, human, tmp_path, lambda pad: SessionMeta(kind="correction", pad_name=pad.name),
                  track="seed-3")
    race.start()
    _wait(lambda: race.pilot_driver.steps > 3)
    path = race.take_over(helper)
    seen = race.pilot_driver.steps
    _wait(lambda: loop.status.frames > 0 and race.pilot_driver.steps > seen + 10)
    assert loop.status.applied[AI_SEAT] == ControllerState(x=-45, b=True)
    race.hand_back(wait=True)
    assert isinstance(loop.drivers[AI_SEAT], PilotDriver)
    race.stop()
    loop.stop()
    assert loop.wait(10) and not loop.status.error, loop.status.error
    assert race.saved[0][0] == path and race.saved[0][1] > 5 and not race.error
    with open_session(path) as s:
        assert s.meta.kind == "correction" and s.meta.seat == AI_SEAT and len(s) == race.saved[0][1]
        # from the frame the takeover took effect on to the hand-back: only the human's input
        assert all(s.state(i) == ControllerState(x=-45, b=True) for i in range(len(s)))
