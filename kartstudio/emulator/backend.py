"""The emulator as a GameBackend: mupen64plus + our input plugin + window pinning + capture.

Each Frame carries ``inputs``: for every seat, the controller state the game read at its most
recent input poll before the screenshot (from the plugin's poll reports), so recordings are
labelled with exactly what the game read, never with a guess from pad timing. However many polls
the game made since the last frame, the label is the last of them: the input in force while this
picture is on the screen, the one a pilot's answer to it would replace.

One frame per game frame: in free-run a grab is handed on only when the game has advanced since
the last frame handed on (it polled its pads again). A game slower than the capture
rate (a loaded machine, a stalled or killed emulator) gives fewer frames, never the same game
frame twice: ``Frame.number`` (the first seat's poll count) never repeats.

A game with a state channel (KartStudio Raceway) is started with the plugin's channel on, and each
Frame's ``game_state`` is the game's report of that frame (the one whose frame counter is
``Frame.number``): metadata for scores, experts and label checks, never pixels, never model input.

Two ways to run:
- free-run (recording, versus): the game runs at its own speed; set_controller() sends a state
  at once, next_frame() captures at `fps`.
- lock-step (the AI, the Gymnasium env): next_frame() hands the current states to the game's next
  poll, waits until it has run on to the following poll, then captures; the game stands still
  in between, so the picture matches the input that produced it.
"""

from __future__ import annotations

import time
from pathlib import Path

from kartstudio.controller import NEUTRAL, ControllerState
from kartstudio.emulator.capture import WindowCapture
from kartstudio.emulator.launcher import EmulatorProcess, LaunchOptions
from kartstudio.emulator.plugin_client import PluginClient, PluginEndpoint, PollReport
from kartstudio.emulator.window import (CaptureProblem, ScreenCheck, WindowPinner, find_window, free_place,
                                        primary_monitor_origin)
from kartstudio.errors import KartStudioError
from kartstudio.game import Frame, GameBackend


# A frame waits at most this long for the window to be visible again when no timeout is given
# (play() on the caller's thread): long enough for a re-pin or a raise, short enough to say why.
HIDDEN_LIMIT_S = 30.0
# A picture all of one colour for longer than this is said (picture_problem): the video plugin
# draws nothing of this game, most likely. Boot and fades are shorter.
BLANK_LIMIT_S = 1.0


STALE_WAIT_S = 0.1  # free-run: how long a grab waits for the game's next poll
REDRAW_FRAMES = 2  # free-run: game frames let by after the window was covered, before the next grab


class EmulatorBackend(GameBackend):
    name = "mupen64plus"
    plays_menu_macros = True

    def __init__(
        self,
        rom: str | Path,
        video: str = "",
        display: str | None = None,
        seats: tuple[int, ...] = (1, 2),
        fps: float = 30.0,
        lockstep: bool = False,
        input_plugin: str | Path | None = None,
        connect_timeout: float = 15.0,
        step_timeout: float = 5.0,
        macro: bool | str | Path | None = None,
        speed_limit: bool = True,
        keep_on_top: bool = True,
        emulator: str | Path | None = None,
        resolution: tuple[int, int] = (640, 480),
    ) -> None:
        """video: the mupen64plus video plugin; "" picks the one that draws the ROM's game
        (launcher.video_for). macro: the menu macro played right after boot. None: the Mario Kart 64 VS macro when the
        ROM is Mario Kart 64 (players then pick characters and track); False: none; a path: that file; a Macro: that one
        (KartStudio Raceway: raceway.menu_macro(track) to a 2P race on that track). resolution: the window's
        size; frames are handed on at 640x480 whatever it is (a 320x240 window, the N64's own size, is
        drawn four times faster: Raceway's benchmarks record and score there)."""
        self.rom = Path(rom)
        self.video = video
        self.display = display
        self.seats = tuple(seats)
        self.fps = fps
        self.lockstep = lockstep
        self.input_plugin = input_plugin
        self.connect_timeout = connect_timeout
        self.step_timeout = step_timeout
        self.macro = macro
        self.speed_limit = speed_limit
        self.resolution = tuple(resolution)
        self.program = emulator  # the mupen64plus program; None: found on PATH or in /usr/games
        self.keep_on_top = keep_on_top  # raise the window whenever another one covers it
        self.capture_problem: CaptureProblem | None = None  # why frames are held back now (None: they flow)
        self.screen: ScreenCheck | None = None
        self.picture_problem: str | None = None  # why the picture is not the game's (None: it looks like it)
        self._blank_since: float | None = None
        self._next_raise = 0.0
        self.emulator: EmulatorProcess | None = None
        self.client: PluginClient | None = None
        self.pinner: WindowPinner | None = None
        self.capture: WindowCapture | None = None
        self.startup_s: float | None = None  # launch until the first poll was reported
        self.boot_reports: list[PollReport] = []  # what the game read while the boot macro played
        self._endpoint: PluginEndpoint | None = None
        self._states: dict[int, ControllerState] = {seat: NEUTRAL for seat in self.seats}
        self._last_read: dict[int, PollReport] = {}
        self._next_tick = 0.0
        self._poll_marks: list[tuple[float, int]] = []  # (time, poll number) per frame: game_rate()
        self._stale = False  # the last grab was not handed on: the game had not advanced
        self._handed: int | None = None  # the number of the last frame handed on
        self.stale_grabs = 0  # grabs not handed on because the game had not advanced (free-run)
        self.state_reader = None  # raceway.StateReader when the game reports its state (Raceway)
        self._seats_together = True  # every seat was at the same poll count at the last frame (_catch_up_seats)

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        from kartstudio.emulator import raceway
        from kartstudio.emulator.rom import check_rom

        t0 = time.monotonic()
        reports_state = check_rom(self.rom).is_raceway  # its state channel: the plugin forwards port 4
        self._endpoint = PluginEndpoint.create(controllers=self.seats)
        env = {**self._endpoint.env(), **(raceway.state_channel_env() if reports_state else {})}
        self.emulator = EmulatorProcess(
            LaunchOptions(self.rom, video=self.video, input_plugin=self.input_plugin, display=self.display,
                          env=env, speed_limit=self.speed_limit, emulator=self.program,
                          resolution=self.resolution)
        )
        try:
            self.emulator.start()
            self.display = self.emulator.display
            self.client = PluginClient(self._endpoint).connect(timeout=self.connect_timeout)
            self.state_reader = raceway.StateReader(self.client, keep=4096) if reports_state else None
            if self.lockstep:
                self.client.set_lockstep(True)
            else:
                self.client.send_states(self._states)
            window = find_window(self.emulator.pid, self.display, alive=lambda: self.emulator.running)
            self.screen = ScreenCheck(window, self.display)
            place = free_place(self.screen, primary_monitor_origin(self.display))
            self.pinner = WindowPinner(window, self.display, target=place).start()
            self.screen.raise_window()  # over whatever was there (the app's own window, first of all)
            self.capture = WindowCapture(lambda: self.pinner.geometry, self.display)
            if not self.lockstep:
                self.client.wait_polls(1, timeout=self.connect_timeout)
            self.startup_s = time.monotonic() - t0
            boot_macro = self._boot_macro()
            if boot_macro is not None:
                self.boot_reports = self.play_macro(boot_macro)
        except BaseException as exc:  # never leave an emulator behind
            reason = self.emulator.exit_reason() if self.emulator else None
            self.stop()
            if reason and isinstance(exc, KartStudioError):
                raise KartStudioError(f"the emulator did not start: {reason}") from None
            raise
        self._next_tick = time.monotonic()

    def _boot_macro(self):
        from kartstudio.emulator.macro import Macro, load_mk64_vs_macro

        if self.macro is False:
            return None
        if isinstance(self.macro, Macro):  # e.g. raceway.menu_macro(track)
            return self.macro
        if self.macro is None or self.macro is True:
            if self.emulator.rom is not None and self.emulator.rom.is_mario_kart_64:
                return load_mk64_vs_macro()
            return None
        return Macro.load(self.macro)

    def stop(self) -> None:
        if self.pinner is not None:
            self.pinner.stop()
            self.pinner = None
        if self.capture is not None:
            self.capture.close()
            self.capture = None
        if self.screen is not None:
            self.screen.close()
            self.screen = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.emulator is not None:
            self.emulator.stop()
        if self._endpoint is not None:
            self._endpoint.remove()
            self._endpoint = None

    @property
    def running(self) -> bool:
        return self.emulator is not None and self.emulator.running and self.client is not None

    @property
    def track(self) -> str | None:
        """The track being raced where the game reports it (Raceway: its number once a race is set
        up), for sessions' `track`; None otherwise."""
        latest = self.state_reader.latest if self.state_reader is not None else None
        if latest is None or latest.phase in ("title", "mode", "track"):
            return None
        return str(latest.track)

    @property
    def exit_reason(self) -> str | None:
        return self.emulator.exit_reason() if self.emulator else None

    # -- controllers -------------------------------------------------------------------
    def set_controller(self, seat: int, state: ControllerState) -> None:
        if seat not in self._states:
            raise KartStudioError(f"seat {seat} is not in this game (seats {self.seats})")
        self._states[seat] = state
        if not self.lockstep and self.client is not None and self.client.connected:
            self.client.send_states({seat: state})

    def set_lockstep(self, enabled: bool) -> None:
        """Switch between free-run and lock-step while running."""
        self.lockstep = bool(enabled)
        if self.client is not None:
            self.client.set_lockstep(self.lockstep)
            if not self.lockstep:
                self.client.send_states(self._states)

    def play_macro(self, macro, progress=None) -> list[PollReport]:
        """Play a menu macro (kartstudio.emulator.macro) in lock-step; returns the polls it made."""
        from kartstudio.emulator.macro import play

        was_lockstep = self.lockstep
        reports: list[PollReport] = []

        def step(states):
            read = self.client.step(states, timeout=self.step_timeout)
            self._remember(read)
            reports.extend(read)

        self.set_lockstep(True)
        try:
            play(macro, step, self.seats, progress)
        finally:
            self.set_lockstep(was_lockstep)
        return reports

    def _remember(self, reports: list[PollReport]) -> None:
        for report in reports:
            previous = self._last_read.get(report.controller)
            if previous is None or report.poll >= previous.poll:
                self._last_read[report.controller] = report

    # -- frames ------------------------------------------------------------------------
    def next_frame(self, timeout: float | None = None) -> Frame | None:
        if self.emulator is None or self.client is None:
            raise KartStudioError("the emulator is not started")
        if not self.emulator.running:
            return self._ended()
        try:
            return self._next_game_frame(timeout)
        except Exception:
            # The plugin's socket and the window go as the emulator dies, a moment before the process
            # is reaped: say how the emulator ended, not that the socket closed.
            if self.emulator.wait_exit(2.0):
                return self._ended()
            raise

    def window_place(self) -> tuple[int, int] | None:
        """Where the emulator window is pinned (x, y); None before it is pinned or while it closes."""
        pinner = self.pinner
        if pinner is None:
            return None
        try:
            g = pinner.geometry
        except Exception:  # noqa: BLE001 - the window may be closing
            return None
        return (g.x, g.y)

    def window_frame(self):
        """The emulator window's place on the screen with its decorations (a Geometry), or None."""
        screen = self.screen
        return screen.frame_geometry() if screen is not None else None

    def raise_window(self) -> None:
        """Put the emulator window on top (the app calls this after each click in its own window)."""
        if self.screen is not None:
            self.screen.raise_window()

    def _problem(self, sync: bool = True) -> CaptureProblem | None:
        problem = self.screen.problem(self.pinner.geometry, sync=sync)
        self.capture_problem = problem
        if problem is not None and problem.kind == "covered" and self.keep_on_top:
            now = time.monotonic()
            if now >= self._next_raise:  # at most once a second: a user may be dragging something over it
                self._next_raise = now + 1.0
                self.screen.raise_window()
        return problem

    def _wait_visible(self, timeout: float | None) -> bool:
        """Wait until the window's picture is on the screen, unmoved and uncovered; False once
        `timeout` has passed (None: raise after HIDDEN_LIMIT_S, saying why). In free-run, a window that
        was not visible (at the last check or now) is given time to redraw first (_await_redraw)."""
        start = time.monotonic()
        hidden = self.capture_problem is not None  # as the check after the last grab found it
        # Without a round trip: the check after the grab covers what has not been reported by now.
        while (problem := self._problem(sync=False)) is not None:
            hidden = True
            waited = time.monotonic() - start
            if timeout is not None and waited >= timeout:
                return False
            if timeout is None and waited >= HIDDEN_LIMIT_S:
                raise KartStudioError(f"{problem.message.split(';')[0]} for {HIDDEN_LIMIT_S:.0f} s; "
                                      "keep the emulator window on the screen and uncovered")
            if not self.emulator.running:
                raise KartStudioError("the emulator window is gone")
            time.sleep(0.02)
        if hidden and not self.lockstep:
            self._await_redraw()
        return True

    def _await_redraw(self) -> None:
        """A window just raised, shown or put back holds what the X server filled in until the game
        draws its next picture (the first grab after a raise showed the app's background about once
        in 60): let the game run REDRAW_FRAMES frames (polls of the first seat) before grabbing."""
        first = self.seats[0]
        seen = 0
        deadline = time.monotonic() + REDRAW_FRAMES * STALE_WAIT_S
        while seen < REDRAW_FRAMES and time.monotonic() < deadline:
            reports = self.client.wait_polls(1, timeout=max(0.0, deadline - time.monotonic()))
            self._remember(reports)
            seen += sum(r.controller == first for r in reports)

    def _grab(self):
        """The window's picture, or None when it was not wholly visible at any moment of the grab."""
        try:
            image = self.capture.grab()
        except KartStudioError:
            if self._problem() is None:
                raise
            return None
        return None if self._problem() is not None else image

    def _next_game_frame(self, timeout: float | None) -> Frame | None:
        """The next frame in which the game has advanced; None after `timeout` without one (free-run)."""
        start = time.monotonic()
        while True:
            frame = self._next_frame(timeout)
            if frame is not None or self.lockstep or not self._stale:
                return frame
            waited = time.monotonic() - start
            if timeout is not None and waited >= timeout:
                return None
            if not self.emulator.running:
                return self._ended()
            if timeout is None and waited >= HIDDEN_LIMIT_S:
                raise KartStudioError(f"the game has not advanced for {HIDDEN_LIMIT_S:.0f} s (no input poll); "
                                      "is the emulator paused or stuck?")

    def _next_frame(self, timeout: float | None) -> Frame | None:
        # Never label a picture that is not the game's: the app's own window, a dialog or another
        # emulator over the window, or a window half off the screen, would be recorded instead.
        self._stale = False
        if not self._wait_visible(timeout):
            return None
        if self.lockstep:
            self._remember(self.client.step(dict(self._states), timeout=timeout or self.step_timeout))
        else:
            now = time.monotonic()
            if self._next_tick > now:
                time.sleep(self._next_tick - now)
            self._next_tick = max(self._next_tick + 1 / self.fps, time.monotonic() - 1 / self.fps)
            if self._handed is not None:
                # Grab once the game has polled since the last frame handed on: a grab before would
                # find the same game frame and be thrown away (half of all grabs when recording as
                # fast as the game runs). A game that stops polling is grabbed anyway, after a while.
                self.client.wait_report(STALE_WAIT_S)
        timestamp = time.monotonic()
        image = self._grab()
        while image is None:
            if not self.lockstep:
                return None  # the game ran on: this moment is lost, the next frame is taken on time
            # Lock-step: the game stands still until the next step, so the same picture comes back.
            if not self._wait_visible(timeout):
                return None
            image = self._grab()
        self._watch_picture(image, timestamp)
        # Reports that arrived by now are polls the game made before this picture was taken.
        self._remember(self.client.polls(sync=True))  # every poll made before the capture
        if not self.lockstep:
            self._catch_up_seats()
        self._count_polls()
        inputs = {seat: self._last_read[seat].state for seat in self.seats if seat in self._last_read}
        first = self._last_read.get(self.seats[0])
        number = first.poll if first else 0
        game_state = None
        if self.state_reader is not None:
            self.state_reader.read(sync=False)  # the sync above covered the game's state packets too
            game_state = self.state_reader.find(number)
        if not self.lockstep and first is not None and number == self._handed:
            # The game has not advanced (no poll since the last frame): this moment is the last game
            # frame again, and recording it would count it twice. (A picture that did not change is
            # still a new game frame when the game polled: a menu, a paused race, a blank plugin.)
            self._stale = True
            self.stale_grabs += 1
            return None
        self._handed = number
        return Frame(number=number, timestamp=timestamp, image=image, inputs=inputs or None, game_state=game_state)

    def _catch_up_seats(self) -> None:
        """The game reads all pads in one go, but the plugin reports them one by one: a grab between two
        reports finds a seat one poll behind the others (about 1 frame in 1000 here), and its label would
        be the poll before. The missing report is microseconds away: wait for it (5 ms at most), where
        every seat was polled as often as the others until now (a game that polls a seat less often
        is not waited for)."""
        reads = [self._last_read.get(seat) for seat in self.seats]
        if not self._seats_together or any(r is None for r in reads):
            return
        deadline = time.monotonic() + 0.005
        while time.monotonic() < deadline:
            polls = [self._last_read[seat].poll for seat in self.seats]
            if min(polls) != max(polls) - 1:
                break
            time.sleep(0.0002)
            self._remember(self.client.polls(sync=True))
        polls = [self._last_read[seat].poll for seat in self.seats]
        self._seats_together = min(polls) == max(polls)

    def _watch_picture(self, image, now: float) -> None:
        """Say when the picture stays one colour (a black window with a green 'running' helps nobody)."""
        sample = image[::8, ::8]
        if not (sample == sample[0, 0]).all():
            self._blank_since = self.picture_problem = None
            return
        if self._blank_since is None:
            self._blank_since = now
        elif now - self._blank_since > BLANK_LIMIT_S:
            self.picture_problem = self._blank_message(now - self._blank_since)

    def _blank_message(self, seconds: float) -> str:
        from kartstudio.emulator.launcher import video_for

        rom = self.emulator.rom if self.emulator is not None else None
        plugin = self.emulator.video if self.emulator is not None else self.video
        right = video_for(rom.game) if rom is not None else plugin
        what = f"the picture has been one colour for {seconds:.0f} s"
        if plugin != right:
            return (f"{what}: {plugin.replace('mupen64plus-video-', '')} does not draw this game; set Settings -> "
                    f"Video plugin to 'automatic' ({right.replace('mupen64plus-video-', '')}) and restart the game")
        return (f"{what} with {plugin.replace('mupen64plus-video-', '')}: if it stays so, choose another video "
                "plugin in Settings and restart the game")

    def _ended(self) -> None:
        """The emulator stopped: None if it ended normally (exit_reason says how), an error that
        says why if it crashed or was killed."""
        reason = self.emulator.exit_reason() if self.emulator else None
        if reason and ("crashed" in reason or "failed" in reason):
            raise KartStudioError(f"{reason}; press ▶ Start to run it again (if it keeps failing, its log "
                                  f"says why: {self.emulator.log_path})")
        return None

    def _count_polls(self) -> None:
        first = self._last_read.get(self.seats[0])
        if first is not None:
            self._poll_marks.append((time.monotonic(), first.poll))
            del self._poll_marks[:-60]

    def game_rate(self) -> float | None:
        """The game's own speed: input polls of the first seat per second over the last frames
        (Mario Kart 64 polls once per frame, 60 a second at full speed), None until known."""
        marks = self._poll_marks
        if len(marks) < 2 or marks[-1][0] - marks[0][0] < 0.5:
            return None
        return (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])

    def polls_per_second(self, seconds: float = 1.0) -> float:
        """Measured rate of controller 1 polls (free-run)."""
        self._remember(self.client.polls())
        reports = self.client.wait_polls(10**9, timeout=seconds)
        self._remember(reports)
        return sum(1 for r in reports if r.controller == self.seats[0]) / seconds
