"""The practice track: a no-ROM, two-seat game backend on Gymnasium's CarRacing-v3 (Box2D).

Each seat drives its own CarRacing car on the same generated track (both environments are reset
with the same seed, so the track is identical and the run is deterministic for a seed). Every
game frame both cars advance by PHYSICS_STEPS_PER_FRAME physics steps (CarRacing runs its
physics at 50 Hz, so the game runs at 25 frames per second), then each seat's view is drawn and
the two are stacked into one 640x480 split screen: seat 1 on the top half, seat 2 on the bottom,
like Mario Kart 64's 2-player mode. Recording, training and versus mode work on it unchanged.

The seat view is our own top-down chase view (CarRacing's 96x96 observation is square and tiny;
a seat half is 8:3): the car sits at the bottom centre facing up, the track ahead fills the view,
and a speed bar across the bottom centre tells a single frame how fast the car goes. The view
is left-right symmetric, so a mirrored frame is a valid frame with the steering negated.

Controller to CarRacing action: stick x / 80 -> steering (-1..1), A -> full gas, B -> brake.

    with PracticeBackend(seed=7, realtime=False) as game:
        game.set_controller(1, ControllerState(a=True))
        frame = game.next_frame()        # Frame: (480, 640, 3) image, inputs per seat
        game.stats(1).episode_return
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from kartstudio.controller import NEUTRAL, STICK_MAX, ControllerState
from kartstudio.errors import KartStudioError
from kartstudio.game import SCREEN_HEIGHT, SCREEN_WIDTH, Frame, GameBackend, SeatLayout

PHYSICS_HZ = 50  # CarRacing's FPS
PHYSICS_STEPS_PER_FRAME = 2
FPS = PHYSICS_HZ / PHYSICS_STEPS_PER_FRAME  # 25 game frames per second
MAX_EPISODE_STEPS = 1000  # CarRacing-v3's registered time limit, in physics steps (20 s)
BRAKE = 0.8  # below CarRacing's 0.9 wheel-lock threshold

VIEW_SIZE = (120, 320)  # (height, width) a seat view is drawn at; shown 2x on the 640x240 half
VIEW_SCALE = 1.6  # pixels per world unit in the drawn view (track: 13.3 units wide -> 21 px)
CAR_ROW = 108  # the car's row in the drawn view: 108 rows (67 units) of track ahead are visible
# players=1: one car on the whole screen (a 1-player game, TensorKart's layout): drawn at 240x320,
# shown 2x on 640x480, same scale, the car as far from the bottom edge (220 rows = 137 units ahead)
WHOLE_VIEW_SIZE = (240, 320)
WHOLE_CAR_ROW = WHOLE_VIEW_SIZE[0] - (VIEW_SIZE[0] - CAR_ROW)
GRASS = (102, 204, 102)
CAR_COLORS = {1: (204, 0, 0), 2: (0, 60, 220)}  # seat 1 red, seat 2 blue
WHEEL_COLOR = (0, 0, 0)
SPEED_BAR_COLOR = (255, 255, 255)
SPEED_BAR_FULL = 100.0  # world units per second that fill the speed bar
HUD_HEIGHT = 6  # rows at the bottom of the view for the speed bar


def controller_to_action(state: ControllerState) -> np.ndarray:
    """CarRacing's continuous action (steer -1..1, gas 0..1, brake 0..1) for a controller state."""
    return np.array(
        [max(-1.0, min(1.0, state.x / STICK_MAX)), 1.0 if state.a else 0.0, BRAKE if state.b else 0.0],
        dtype=np.float64,
    )


@dataclass
class EpisodeResult:
    """One finished run of one seat around the track."""

    seed: int
    episode_return: float  # CarRacing's return: +1000/N per new tile, -0.1 per physics step, -100 off the map
    tiles_visited: int
    tiles_total: int
    off_track_s: float  # seconds with no wheel on the road
    steps: int  # physics steps
    lap_finished: bool
    reason: str  # "lap", "time", "out" (left the playfield)

    @property
    def tiles_fraction(self) -> float:
        return self.tiles_visited / self.tiles_total if self.tiles_total else 0.0

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "return": round(self.episode_return, 2),
            "tiles_visited": self.tiles_visited,
            "tiles_total": self.tiles_total,
            "tiles_fraction": round(self.tiles_fraction, 4),
            "off_track_s": round(self.off_track_s, 2),
            "steps": self.steps,
            "lap_finished": self.lap_finished,
            "reason": self.reason,
        }


@dataclass
class SeatStats:
    """How one seat's current episode is going, plus the episodes it finished."""

    episode_return: float = 0.0
    steps: int = 0
    off_track_steps: int = 0
    done: bool = False
    finished: list[EpisodeResult] = field(default_factory=list)

    @property
    def off_track_s(self) -> float:
        return self.off_track_steps / PHYSICS_HZ


def _make_env():
    """A CarRacing env that skips drawing its own 96x96 observation (we draw the seat view)."""
    try:
        from gymnasium.envs.box2d.car_racing import CarRacing
    except Exception as exc:  # gymnasium or Box2D missing / broken
        raise KartStudioError(
            f"the practice track needs gymnasium with Box2D ({exc}); install it with: pip install 'gymnasium[box2d]'"
        ) from None

    class _SeatCarRacing(CarRacing):
        def _render(self, mode: str):
            if mode == "state_pixels":
                return None  # not used: drawing it costs most of a step
            return super()._render(mode)

    return _SeatCarRacing(render_mode=None, continuous=True, domain_randomize=False)


class _Seat:
    """One seat's CarRacing world, its controller and its statistics."""

    def __init__(self, seat: int, seed: int) -> None:
        self.seat = seat
        self.seed = seed
        self.env = _make_env()
        self.state: ControllerState = NEUTRAL
        self.stats = SeatStats()
        self.road: np.ndarray | None = None  # (P, 4, 2) road polygons, world units
        self.road_colors: list[tuple[int, int, int]] = []
        self.reset()

    def reset(self) -> None:
        self.env.reset(seed=self.seed)
        polys = self.env.unwrapped.road_poly
        self.road = np.array([p for p, _ in polys], dtype=np.float64)
        self.road_colors = [tuple(int(c) for c in color) for _, color in polys]
        finished = self.stats.finished
        self.stats = SeatStats(finished=finished)

    @property
    def car(self):
        return self.env.unwrapped.car

    @property
    def tiles_total(self) -> int:
        return len(self.env.unwrapped.track)

    @property
    def tiles_visited(self) -> int:
        return int(self.env.unwrapped.tile_visited_count)

    def on_road(self) -> bool:
        return any(len(w.tiles) > 0 for w in self.car.wheels)

    def advance(self, steps: int) -> EpisodeResult | None:
        """Run `steps` physics steps with the current controller; the result if the episode ended."""
        if self.stats.done:
            return None
        action = controller_to_action(self.state)
        for _ in range(steps):
            _, reward, terminated, _, info = self.env.step(action)
            s = self.stats
            s.episode_return += float(reward)
            s.steps += 1
            if not self.on_road():
                s.off_track_steps += 1
            reason = ""
            if terminated:
                reason = "lap" if info.get("lap_finished") else "out"
            elif s.steps >= MAX_EPISODE_STEPS:
                reason = "time"
            if reason:
                s.done = True
                result = EpisodeResult(
                    seed=self.seed,
                    episode_return=s.episode_return,
                    tiles_visited=self.tiles_visited,
                    tiles_total=self.tiles_total,
                    off_track_s=s.off_track_s,
                    steps=s.steps,
                    lap_finished=reason == "lap",
                    reason=reason,
                )
                s.finished.append(result)
                return result
        return None

    def speed(self) -> float:
        v = self.car.hull.linearVelocity
        return math.hypot(v[0], v[1])

    def close(self) -> None:
        self.env.close()


class SeatView:
    """Draws one seat's top-down chase view with pygame (no display needed)."""

    def __init__(self, size: tuple[int, int] = VIEW_SIZE, scale: float = VIEW_SCALE, car_row: int = CAR_ROW) -> None:
        import os

        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pygame = pygame
        self.height, self.width = size
        self.scale = scale
        self.car_row = car_row
        self.surface = pygame.Surface((self.width, self.height))

    def _to_view(self, points: np.ndarray, origin, angle: float) -> np.ndarray:
        """World points (..., 2) to view pixels: the car at (width/2, car_row), its nose up."""
        c, s = math.cos(angle), math.sin(angle)
        d = points - np.asarray(origin, dtype=np.float64)
        right = d[..., 0] * c + d[..., 1] * s  # along the car's local +x
        ahead = -d[..., 0] * s + d[..., 1] * c  # along the car's local +y (its nose)
        return np.stack([self.width / 2 + right * self.scale, self.car_row - ahead * self.scale], axis=-1)

    def draw(self, seat: _Seat) -> np.ndarray:
        pg = self.pygame
        surf = self.surface
        surf.fill(GRASS)
        car = seat.car
        origin = tuple(car.hull.position)
        angle = float(car.hull.angle)
        polys = self._to_view(seat.road, origin, angle)
        margin = 20
        visible = (
            (polys[..., 0].max(axis=1) > -margin)
            & (polys[..., 0].min(axis=1) < self.width + margin)
            & (polys[..., 1].max(axis=1) > -margin)
            & (polys[..., 1].min(axis=1) < self.height + margin)
        )
        for i in np.flatnonzero(visible):
            pg.draw.polygon(surf, seat.road_colors[i], polys[i].tolist())
        for body, color in [(w, WHEEL_COLOR) for w in car.wheels] + [(car.hull, CAR_COLORS[seat.seat])]:
            for fixture in body.fixtures:
                pts = np.array([body.transform * v for v in fixture.shape.vertices], dtype=np.float64)
                pg.draw.polygon(surf, color, self._to_view(pts, origin, angle).tolist())
        # Speed bar, centred so the view stays mirror-symmetric.
        hud_top = self.height - HUD_HEIGHT
        pg.draw.rect(surf, (0, 0, 0), (0, hud_top, self.width, HUD_HEIGHT))
        half = min(1.0, seat.speed() / SPEED_BAR_FULL) * (self.width / 2 - 4)
        if half >= 1:
            pg.draw.rect(surf, SPEED_BAR_COLOR, (self.width / 2 - half, hud_top + 1, 2 * half, HUD_HEIGHT - 2))
        return pg.surfarray.array3d(surf).transpose(1, 0, 2)


class PracticeBackend(GameBackend):
    """Two CarRacing cars on the same track, shown as Mario Kart's 2-player split screen.

    seed: the track (both seats get the same one). seats: (1, 2), or (1,) for one car (the
    bottom half then stays black). players=1: a 1-player game: one car (seat 1) on the whole
    screen (layout SeatLayout.whole_screen(), a 240x320 view shown 2x), as a whole-screen model
    (TensorKart's layout) was trained to see it. realtime: pace frames at 25 fps on the wall clock (the app);
    False runs as fast as the CPU allows (evaluation, benchmarks). restart: when a seat's
    episode ends (lap done, 1000 physics steps, or off the map) it starts a new run on the same
    track; with restart=False the seat's car stops there and next_frame() returns None once every
    seat is done (evaluation). draw: False skips drawing the frames (Frame.image is then a
    black screen): for the expert, which reads the track geometry and needs no pixels.
    """

    name = "practice"
    fps = FPS
    layout = SeatLayout.split_screen()

    def __init__(
        self,
        seed: int = 7,
        seats: tuple[int, ...] = (1, 2),
        realtime: bool = True,
        restart: bool = True,
        draw: bool = True,
        players: int = 2,
    ) -> None:
        if players not in (1, 2):
            raise KartStudioError(f"the practice track has 1 or 2 players, not {players}")
        seats = (1,) if players == 1 else tuple(seats)
        if not seats or any(s not in (1, 2) for s in seats) or len(set(seats)) != len(seats):
            raise KartStudioError(f"the practice track has seats 1 and 2; got seats {seats}")
        self.players = players
        self.layout = SeatLayout.whole_screen() if players == 1 else SeatLayout.split_screen()
        self.seed = int(seed)
        self.seats = seats
        self.realtime = realtime
        self.restart = restart
        self.draw = draw
        self._seats: dict[int, _Seat] = {}
        self._view: SeatView | None = None
        self._lock = threading.Lock()
        self._running = False
        self._frame_number = 0
        self._next_due = 0.0
        self._blank = np.zeros((SCREEN_HEIGHT, SCREEN_WIDTH, 3), dtype=np.uint8)

    # -- GameBackend -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._running:
            return
        self._seats = {seat: _Seat(seat, self.seed) for seat in self.seats}
        if self.draw:
            self._view = self._new_view()
        self._frame_number = 0
        self._next_due = time.monotonic()
        self._running = True

    def stop(self) -> None:
        self._running = False
        for seat in self._seats.values():
            seat.close()

    @property
    def running(self) -> bool:
        return self._running

    def set_controller(self, seat: int, state: ControllerState) -> None:
        if seat not in self.seats:
            raise KartStudioError(f"the practice track has no seat {seat} in this game (seats: {self.seats})")
        with self._lock:
            if seat in self._seats:
                self._seats[seat].state = state

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        """Advance both cars by one game frame and show it; None once the game is over."""
        if not self._running:
            return None
        if self.realtime:
            wait = self._next_due - time.monotonic()
            if timeout is not None and wait > timeout:
                time.sleep(timeout)
                return None
            if wait > 0:
                time.sleep(wait)
        live = [s for s in self._seats.values() if not s.stats.done]
        if not live and not self.restart:
            return None
        with self._lock:
            inputs = {seat: s.state for seat, s in self._seats.items()}
        for s in self._seats.values():
            if s.stats.done and self.restart:
                s.reset()
            s.advance(PHYSICS_STEPS_PER_FRAME)
        self._frame_number += 1
        now = time.monotonic()
        # Pace from the schedule, but never try to catch up more than one frame after a stall.
        self._next_due = max(self._next_due + 1.0 / self.fps, now - 1.0 / self.fps)
        return Frame(number=self._frame_number, timestamp=now, image=self.screen(), inputs=inputs)

    # -- what else the practice track offers ----------------------------------------------------
    def screen(self) -> np.ndarray:
        """The 640x480 screen as it is now: the split screen (seat 1 top, seat 2 bottom), or seat 1
        on all of it (players=1)."""
        if not self.draw or self._view is None:
            return self._blank
        image = np.zeros((SCREEN_HEIGHT, SCREEN_WIDTH, 3), dtype=np.uint8)
        for seat_no, seat in self._seats.items():
            left, top, width, height = self.layout.regions[seat_no]
            view = self._view.draw(seat)
            fy, fx = height // view.shape[0], width // view.shape[1]
            image[top : top + height, left : left + width] = view.repeat(fy, axis=0).repeat(fx, axis=1)
        return image

    def first_picture(self) -> np.ndarray:
        """The screen before the first frame (a pilot drives from it): screen()."""
        return self.screen()

    def seat_view(self, seat: int) -> np.ndarray:
        """One seat's view as drawn (120x320; 240x320 with players=1), without the 2x upscale."""
        if self._view is None:
            self._view = self._new_view()
        return self._view.draw(self._seat(seat))

    def _new_view(self) -> SeatView:
        return SeatView(WHOLE_VIEW_SIZE, car_row=WHOLE_CAR_ROW) if self.players == 1 else SeatView()

    def _seat(self, seat: int) -> _Seat:
        if seat not in self._seats:
            raise KartStudioError(f"seat {seat} is not driving on this practice track (start the game first)")
        return self._seats[seat]

    def env(self, seat: int):
        """The seat's CarRacing environment (unwrapped): track geometry and car for the expert."""
        return self._seat(seat).env.unwrapped

    def stats(self, seat: int) -> SeatStats:
        return self._seat(seat).stats

    def results(self, seat: int) -> list[EpisodeResult]:
        """The episodes this seat finished, oldest first."""
        return list(self._seat(seat).stats.finished)

    def tiles(self, seat: int) -> tuple[int, int]:
        """(tiles visited, tiles on the track) in the seat's current episode."""
        s = self._seat(seat)
        return s.tiles_visited, s.tiles_total

    def done(self, seat: int) -> bool:
        return self._seat(seat).stats.done

    def speed(self, seat: int) -> float:
        return self._seat(seat).speed()
