"""A scripted expert for KartStudio Raceway: reads the game's state channel, never the pixels.

Each frame the game reports, per seat: the offset from the centre line, the heading error, the
speed and the curvature of the road 3000 units ahead (raceway.RacewayState). The expert keeps an
odometer (speed x cos(heading error) per frame) and remembers each curvature it was told about at
the distance it lies, so it knows the road from its kart to 3000 units ahead:

- steering: the road's own turn under the kart (its curvature x distance this frame) plus a
  heading that brings the kart back to its lane, as a yaw rate, divided by the most the grip
  allows at this speed (the game's rule: yaw <= min(7800 / v, 14 v, 400), stick 80 = the most);
- speed: every known point ahead has a corner speed (the grip limit for its curvature, with a
  margin for steering back to the lane); the kart brakes when it could not slow to one of them in
  the distance left, and lifts shortly before. Hairpins (the channel reports |curvature| 127 for
  anything that sharp or sharper) are taken at the sharpest curve's speed.

Each seat keeps its own lane (seat 1 left of the centre line, seat 2 right), as the grid puts them,
so two experts racing side by side never push each other off.

    expert = RacewayExpert(seat=1)
    state = expert.act(frame.game_state)          # a RacewayFrame (or the seat's RacewayState)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from kartstudio.controller import NEUTRAL, STICK_MAX, ControllerState
from kartstudio.drivers import ScriptedExperts

ANGLE = 65536 / (2 * math.pi)  # the game's angle units per radian
GRIP = 7800  # the game's grip: yaw (angle units per frame) x speed (units per frame) at most
LOW_SPEED_YAW = 14  # and at most 14 x speed (a kart barely moving barely turns)
MAX_YAW = 400
CURVE_AHEAD = 3000  # units: where the channel's curve_ahead is measured
CURVE_UNIT = 8  # the channel's curvature x 8 = the game's (angle units / 256 per unit of length)
CURVE_CLAMP = 127  # the channel clamps there: a hairpin of this value may be as sharp as SHARPEST
SHARPEST = 1331  # the game's sharpest curvature (a hairpin: 35 units of road per degree)
SPEED_MAX = 56.0
DECEL = 100 / 256  # units per frame per frame with B and no A


@dataclass(frozen=True)
class RacewayExpertParams:
    """Tuned on tracks 0-29 (demonstrations use 100 on); scored on tracks 500-519 (docs/raceway.md)."""

    lane: float = 0.3  # road half-widths from the centre line each seat keeps (seat 1 left, seat 2 right)
    lateral_gain: float = 2.0  # heading (angle units) wanted per unit of lateral error
    max_heading: float = 2500.0  # angle units: the most the kart points across the road to get back
    heading_gain: float = 0.5  # share of the heading error corrected per frame
    grip_margin: float = 0.8  # corner speeds use this share of the grip (the rest steers back to the lane)
    brake_share: float = 0.8  # of the full braking the plan counts on
    lift_margin: float = 0.0  # units per frame above the plan where the gas comes off
    brake_margin: float = 1.0  # units per frame above the plan where the brake goes on
    steer_deadzone: int = 6  # the game ignores |stick x| below this


def corner_speed(curvature: float, params: RacewayExpertParams) -> float:
    """The speed (units per frame) a curve of this curvature (the game's units) is taken at."""
    c = abs(curvature)
    if c < 1:
        return SPEED_MAX
    return min(SPEED_MAX, math.sqrt(params.grip_margin * GRIP * 256 / c))


def yaw_limit(speed: float) -> float:
    v = int(speed)  # the game turns with the integer speed
    if v <= 0:
        return 0.0
    return float(min(GRIP // v, LOW_SPEED_YAW * v, MAX_YAW))


class RacewayExpert:
    """Drives one seat of KartStudio Raceway from the state channel (one act() per game frame it sees)."""

    def __init__(self, seat: int = 1, params: RacewayExpertParams | None = None) -> None:
        self.seat = seat
        self.params = params or RacewayExpertParams()
        self.reset()

    def reset(self) -> None:
        self.odometer = 0.0
        self._frame: int | None = None
        self._progress: float | None = None
        self._curves: deque[tuple[float, float]] = deque()  # (odometer where it lies, curvature), in order

    def _track(self, frame: int, s) -> None:
        """Odometer and the road ahead, from one more report (frames between reports are filled in)."""
        if self._frame is not None and (frame < self._frame or (self._progress is not None and s.progress < self._progress - 0.5)):
            self.reset()  # a new race
        elapsed = 1 if self._frame is None else max(0, frame - self._frame)
        self._frame, self._progress = frame, s.progress
        self.odometer += elapsed * s.speed * math.cos(s.heading_error)
        curve = s.curve_ahead * CURVE_UNIT
        if abs(s.curve_ahead) >= CURVE_CLAMP:
            curve = math.copysign(SHARPEST, curve)
        self._curves.append((self.odometer + CURVE_AHEAD, curve))
        while len(self._curves) > 1 and self._curves[1][0] <= self.odometer:
            self._curves.popleft()  # passed: the one before the kart stays (the road under it)

    def curvature_here(self) -> float:
        return self._curves[0][1] if self._curves and self._curves[0][0] <= self.odometer else 0.0

    def speed_limit(self) -> float:
        """The fastest the kart may go now and still slow down for every known curve ahead."""
        p = self.params
        decel = DECEL * p.brake_share
        limit = corner_speed(self.curvature_here(), p)
        for at, curve in self._curves:
            if at > self.odometer:
                limit = min(limit, math.sqrt(corner_speed(curve, p) ** 2 + 2 * decel * (at - self.odometer)))
        return limit

    def act(self, state) -> ControllerState:
        """The controller state for the seat, from a RacewayFrame (or this seat's RacewayState with
        frame= its game frame). Neutral outside a race."""
        frame_no = getattr(state, "frame", None)
        if hasattr(state, "seats"):
            if state.phase != "race" or len(state.seats) < self.seat:
                return NEUTRAL
            s = state.seat(self.seat)
        else:
            s = state
        if s.finished:
            return NEUTRAL
        self._track(frame_no if frame_no is not None else (self._frame or 0) + 1, s)
        p = self.params
        v = s.speed
        # Steering: the road's turn under the kart this frame, plus the turn towards the lane.
        lane = (-p.lane if self.seat == 1 else p.lane) * 1024
        lateral = s.lateral * 1024
        want = max(-p.max_heading, min(p.max_heading, -p.lateral_gain * (lateral - lane)))
        heading = s.heading_error * ANGLE
        yaw = p.heading_gain * (want - heading) + self.curvature_here() * v / 256
        most = yaw_limit(v)
        x = 0 if most <= 0 else max(-STICK_MAX, min(STICK_MAX, round(yaw * STICK_MAX / most)))
        if 0 < abs(x) < p.steer_deadzone and abs(yaw) > 0:
            x = p.steer_deadzone if x > 0 else -p.steer_deadzone
        if most <= 0:
            x = 0
        # Speed: the braking plan.
        limit = self.speed_limit()
        brake = v > limit + p.brake_margin
        gas = not brake and v < limit - p.lift_margin
        return ControllerState(x=int(x), a=gas, b=brake)


# How the human profile drives: softer steering (a person does not correct half the heading error
# in one frame) and slower corners, so the reaction delay does not make it weave.
HUMAN_STYLE = RacewayExpertParams(heading_gain=0.25, lateral_gain=1.5, grip_margin=0.6)


def raceway_human_profile():
    """The practice track's HumanProfile (reaction 0.15 s, thumb lag, noise, late corners) with
    Raceway's human driving style."""
    from kartstudio.practice.expert import HumanProfile

    return HumanProfile(style=HUMAN_STYLE)


class RacewayHuman:
    """A RacewayExpert driven through a HumanProfile (kartstudio.practice.expert.HumanDriver does
    the delays, thumb and noise; this only feeds it the game's state)."""

    def __init__(self, expert: RacewayExpert, profile=None, fps: float = 60.0, seed: int = 0) -> None:
        from kartstudio.practice.expert import HumanDriver

        self.expert = expert
        self._state = None
        self.human = HumanDriver(self, profile or raceway_human_profile(), fps, seed)

    @property
    def params(self) -> RacewayExpertParams:
        return self.expert.params

    @params.setter
    def params(self, value: RacewayExpertParams) -> None:  # HumanDriver sets the profile's style
        self.expert.params = value

    def act(self, state=None) -> ControllerState:
        if state is not None:  # called by the driver; HumanDriver calls act() to ask the expert
            self._state = state
            return self.human.act()
        return self.expert.act(self._state)


class RacewayExpertDriver(ScriptedExperts):
    """KartStudio Raceway's scripted expert (kartstudio.raceway.expert): reads the game's state
    channel (Frame.game_state), never the picture; neutral where a frame carries no Raceway state.

    human: drive through a HumanProfile (kartstudio.raceway.expert.raceway_human_profile: reaction
    time, thumb lag, noise), seeded per seat."""

    name = "Raceway expert"

    def __init__(self, params=None, human=None, fps: float = 60.0, seed: int = 0) -> None:
        super().__init__(params, human, fps, seed)

    def _act(self, game, seat, frame) -> ControllerState:
        state = frame.game_state if frame is not None else None
        if state is None or not hasattr(state, "seats"):
            return NEUTRAL
        return self._expert(seat, lambda s: RacewayExpert(s, self.params), RacewayHuman).act(state)
