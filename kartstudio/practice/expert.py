"""A scripted expert driver for the practice track: reads the track geometry, not the pixels.

Steering is pure pursuit on CarRacing's centerline (``env.unwrapped.track``): aim at the point
a speed-dependent distance ahead. Speed follows a braking profile: every centerline point ahead
has a cornering speed limit from its curvature (v = sqrt(a_lat / curvature)); the car brakes
when it could not slow to some point's limit in the distance left before it, and takes its foot
off the gas shortly before that. It drives through the same controller the players use
(stick x, A, B), so it stands in for a human in tests, benchmarks, recordings and DAgger.

    expert = Expert(backend, seat=1)
    backend.set_controller(1, expert.act())      # once per frame
    pad = expert_pad(backend, seat=1)             # or as a PadSource (ScriptedPadSource)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kartstudio.controller import STICK_MAX, ControllerState
from kartstudio.pads.base import ScriptedPadSource


@dataclass(frozen=True)
class ExpertParams:
    """Tuned on tracks 1000-1009; scored on the evaluation tracks (10000-10019), see docs/practice.md."""

    lookahead_base: float = 10.0  # world units ahead to aim at, at standstill
    lookahead_per_speed: float = 0.22  # extra units of look-ahead per unit/s of speed
    steer_gain: float = 1.0  # stick per radian of heading error to the aim point
    lateral_accel: float = 120.0  # units/s^2 the car holds in a corner (sets corner speeds)
    braking_decel: float = 50.0  # units/s^2 the brake takes off
    coast_margin: float = 4.0  # units/s above the profile where the gas comes off
    brake_margin: float = 8.0  # units/s above the profile where the brake goes on
    max_speed: float = 100.0
    horizon: float = 65.0  # units of track checked ahead for corners: what the seat view shows
    yaw_damping: float = 0.1  # stick per rad/s of yaw rate (positive yaw = turning left)
    max_side_speed: float = 4.0  # units/s of sideways slide where the gas comes off
    side_speed_per_speed: float = 0.1
    curvature_window: int = 3  # centerline points either side used to measure curvature


class Expert:
    """Drives one seat of a PracticeBackend (or any CarRacing env) from the track geometry."""

    def __init__(self, backend=None, seat: int = 1, params: ExpertParams | None = None, env=None) -> None:
        self.backend = backend
        self.seat = seat
        self.params = params or ExpertParams()
        self._env = env
        self._track_id = None
        self._index = 0
        self._last_t = 0.0

    @property
    def env(self):
        return self._env if self._env is not None else self.backend.env(self.seat)

    def _load_track(self, env) -> None:
        track = np.asarray(env.track, dtype=np.float64)
        self.points = track[:, 2:4]
        n = len(self.points)
        seg = np.roll(self.points, -1, axis=0) - self.points
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        heading = np.arctan2(seg[:, 1], seg[:, 0])
        w = self.params.curvature_window
        ahead = np.roll(heading, -w)
        behind = np.roll(heading, w)
        turn = np.abs((ahead - behind + np.pi) % (2 * np.pi) - np.pi)
        span = np.array([self.seg_len[(np.arange(i - w, i + w)) % n].sum() for i in range(n)])
        self.curvature = turn / np.maximum(span, 1e-6)
        self.corner_speed = np.minimum(
            np.sqrt(self.params.lateral_accel / np.maximum(self.curvature, 1e-6)), self.params.max_speed
        )
        self._track_id = id(env.track)
        self._index = 0

    def _nearest(self, pos: np.ndarray) -> int:
        """The centerline point nearest the car, searched near the last one.

        Only near it: a track may pass close to itself, and a global search would then jump to
        the wrong stretch. The car cannot teleport; a new episode is noticed in act().
        """
        n = len(self.points)
        window = (self._index + np.arange(-10, 40)) % n
        d = np.hypot(*(self.points[window] - pos).T)
        self._index = int(window[int(np.argmin(d))])
        return self._index

    def act(self) -> ControllerState:
        """The controller state for the car's current situation."""
        env = self.env
        if self._track_id != id(env.track) or env.t < self._last_t:
            self._load_track(env)  # a new track, or a new episode on it
        self._last_t = env.t
        p = self.params
        car = env.car
        pos = np.array(car.hull.position, dtype=np.float64)
        angle = float(car.hull.angle)
        vel = car.hull.linearVelocity
        speed = math.hypot(vel[0], vel[1])
        c, s = math.cos(angle), math.sin(angle)
        forward_speed = -vel[0] * s + vel[1] * c
        side_speed = vel[0] * c + vel[1] * s
        yaw_rate = float(car.hull.angularVelocity)
        n = len(self.points)
        i = self._nearest(pos)

        # Steering: pure pursuit on the centerline point `lookahead` units ahead.
        lookahead = p.lookahead_base + p.lookahead_per_speed * speed
        j, travelled = i, 0.0
        while travelled < lookahead:
            travelled += self.seg_len[j]
            j = (j + 1) % n
        d = self.points[j] - pos
        right = d[0] * c + d[1] * s
        ahead = -d[0] * s + d[1] * c
        error = math.atan2(right, ahead)  # radians to the aim point, positive = to the right
        # Yaw damping: a car already turning fast toward the aim point steers less (no spin).
        x = max(-1.0, min(1.0, p.steer_gain * error + p.yaw_damping * yaw_rate))

        # Speed: the slowest the car must be at any point ahead, given the distance to it.
        limit = p.max_speed
        j, dist = i, 0.0
        while dist < p.horizon:
            allowed = math.sqrt(self.corner_speed[j] ** 2 + 2 * p.braking_decel * dist)
            limit = min(limit, allowed)
            dist += self.seg_len[j]
            j = (j + 1) % n
        # Traction control: no gas while the rear slides (a rear-wheel-drive car spins out).
        sliding = abs(side_speed) > p.max_side_speed + p.side_speed_per_speed * abs(forward_speed)
        gas = speed < limit - p.coast_margin and not sliding
        brake = speed > limit + p.brake_margin
        return ControllerState(x=round(x * STICK_MAX), a=gas and not brake, b=brake)


def expert_pad(backend, seat: int = 1, params: ExpertParams | None = None) -> ScriptedPadSource:
    """The expert as a PadSource for a seat: each ``sample()`` asks it for a state and records it."""
    expert = Expert(backend, seat, params)
    pad = ScriptedPadSource(f"expert-p{seat}", policy=expert.act)
    pad.expert = expert
    return pad
