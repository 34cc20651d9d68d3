"""`kartstudio bench emulator`: the real mupen64plus with our plugin and the test ROM, measured.

Startup (launch until the window is pinned and the first poll is reported), capture rate, game
frames/s seen on screen (the ROM paints its frame counter), polls/s, lock-step steps/s, and
input-to-screen latency (a state sent until a capture shows the ROM read it).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from kartstudio.controller import NEUTRAL, ControllerState


def _pct(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3)}


def bench_emulator(seconds: float = 3.0, display: str | None = None, latency_samples: int = 30) -> dict:
    from kartstudio.emulator import testrom
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM
    from kartstudio.emulator.xvfb import VirtualDisplay

    xvfb = None
    if display is None:
        xvfb = VirtualDisplay()
        display = xvfb.start()
    try:
        rom = testrom.build_test_rom()
        measured = _measure_free_run(rom, display, seconds, latency_samples)
        # The same lock-step loop without the emulator's 60 Hz speed limiter (what training can use).
        measured["lockstep_steps_per_s_no_speed_limit"] = _measure_lockstep(rom, display, seconds, speed_limit=False)
    finally:
        if xvfb is not None:
            xvfb.stop()
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "display": "private Xvfb" if xvfb is not None else display,
        "video_plugin": VIDEO_FOR_TEST_ROM,
        **measured,
    }


def _lockstep_loop(backend, seconds: float) -> float:
    steps, t = 0, time.monotonic()
    while time.monotonic() - t < seconds:
        backend.set_controller(1, ControllerState(x=steps % 160 - 80))
        backend.next_frame()
        steps += 1
    return round(steps / (time.monotonic() - t), 1)


def _measure_lockstep(rom, display, seconds, speed_limit) -> float:
    from kartstudio.emulator.backend import EmulatorBackend
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM

    backend = EmulatorBackend(rom, video=VIDEO_FOR_TEST_ROM, display=display, macro=False, lockstep=True,
                              speed_limit=speed_limit)
    try:
        backend.start()
        return _lockstep_loop(backend, seconds)
    finally:
        backend.stop()


def _measure_free_run(rom, display, seconds, latency_samples) -> dict:
    from kartstudio.emulator import testrom
    from kartstudio.emulator.backend import EmulatorBackend
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM

    backend = EmulatorBackend(rom, video=VIDEO_FOR_TEST_ROM, display=display, macro=False)
    try:
        t0 = time.monotonic()
        backend.start()
        startup = time.monotonic() - t0

        # Capture rate, and how many distinct game frames those captures saw.
        grabs, counters = 0, []
        end = time.monotonic() + seconds
        t = time.monotonic()
        while time.monotonic() < end:
            counters.append(testrom.decode_frame_counter(backend.capture.grab()))
            grabs += 1
        elapsed = time.monotonic() - t
        seen = sum(1 for a, b in zip(counters, counters[1:]) if a != b)

        polls_per_s = backend.polls_per_second(min(seconds, 2.0))

        # Input-to-screen: send a state, capture until the picture shows it.
        latencies = []
        for i in range(latency_samples):
            state = ControllerState(x=(i % 2) * 60 - 30, a=i % 2 == 0)
            sent = time.monotonic()
            backend.set_controller(1, state)
            while time.monotonic() - sent < 1.0:
                if testrom.decode_screen(backend.capture.grab())[1] == state:
                    latencies.append((time.monotonic() - sent) * 1000)
                    break
        backend.set_controller(1, NEUTRAL)

        # Lock-step: one step = one poll, then a capture (what the Gymnasium env does per step).
        backend.set_lockstep(True)
        steps_per_s = _lockstep_loop(backend, seconds)
        geometry = backend.pinner.geometry
    finally:
        backend.stop()
    return {
        "startup_s": round(startup, 3),
        "window": {"x": geometry.x, "y": geometry.y, "width": geometry.width, "height": geometry.height},
        "capture_fps": round(grabs / elapsed, 1),
        "game_frames_seen_per_s": round(seen / elapsed, 1),
        "polls_per_s": round(polls_per_s, 1),
        "input_to_screen_ms": _pct(latencies),
        "lockstep_steps_per_s": steps_per_s,
    }
