"""`kartstudio bench plugin`: the real input plugin .so, driven as the core drives it, measured.

- GetKeys time: every call timed in C (CLOCK_MONOTONIC around the call) while KartStudio sends
  states at 1 kHz, 2 controllers polled 10,000 times a second each (free-run).
- delivery latency: from just before KartStudio's send() of a new state until the GetKeys call
  that first returns it; controller 1 is polled every 10 us so the poll interval hardly adds
  (poll reports are off in this phase: at that rate they would only load the 2 cores).
- polls/s: GetKeys in a tight loop, poll reports and all.
- lock-step: steps/s through client.step() with an emulator stand-in that polls as fast as it may.

The anchor is the seed's input-bot plugin, which makes an HTTP/1.0 GET to a Python server inside
every poll: 0.15 ms median, 0.25 ms p99 inside GetKeys (measured on this machine for issue 5).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from kartstudio.controller import ControllerState
from kartstudio.emulator.plugin_client import PluginClient, PluginEndpoint
from kartstudio.emulator.plugin_harness import PluginHarness, build_plugin
from kartstudio.errors import KartStudioError

ANCHOR_US = {"p50": 150.0, "p99": 250.0}  # input-bot: HTTP GET per poll, time inside GetKeys
TARGET_GETKEYS_P99_US = 5.0
TARGET_DELIVERY_P99_US = 50.0


def _state(i: int) -> ControllerState:
    """A state different from state i-1, so its arrival is visible in what GetKeys returns."""
    return ControllerState(x=(i % 161) - 80, y=(i * 7) % 161 - 80, a=bool(i & 1), b=bool(i & 2), r=bool(i & 4))


def _percentiles_us(values_ns: np.ndarray) -> dict[str, float]:
    if len(values_ns) == 0:  # nothing measured (a starved machine): say so, never NaN in the JSON
        return {"p50": None, "p99": None, "max": None, "n": 0}
    v = values_ns.astype(np.float64) / 1000.0
    return {"p50": round(float(np.percentile(v, 50)), 3), "p99": round(float(np.percentile(v, 99)), 3),
            "max": round(float(v.max()), 3), "n": int(len(v))}


def _getkeys_time(harness: PluginHarness, client: PluginClient, seconds: float) -> dict:
    stop = threading.Event()

    def sender() -> None:
        i = 0
        while not stop.wait(0.001):
            i += 1
            client.send_states({1: _state(i), 2: _state(i + 1)})

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        durations, _, _ = harness.drive(rounds=int(seconds * 10_000), interval_ns=100_000, controllers=(1, 2))
    finally:
        stop.set()
        t.join()
    return _percentiles_us(durations)


def _delivery_latency(harness: PluginHarness, client: PluginClient, seconds: float) -> dict:
    interval_ns = 10_000
    rounds = int(seconds * 1e9 / interval_ns)
    result: dict = {}

    def emulator() -> None:
        result["drive"] = harness.drive(rounds=rounds, interval_ns=interval_ns, controllers=(1,))

    # Polling every 10 us would make 100,000 poll reports a second (a game makes about 120): turn
    # them off here so that reading them does not compete with the path being measured.
    client.set_reports(False)
    t = threading.Thread(target=emulator, daemon=True)
    t.start()
    time.sleep(0.05)  # let the stand-in emulator start polling
    sent: list[tuple[int, int]] = []
    i = 0
    end = time.monotonic() + max(0.05, 0.9 * seconds - 0.05)  # stop before the stand-in does
    while time.monotonic() < end:
        i += 1
        state = _state(i)
        t_send = time.monotonic_ns()
        client.send_states({1: state})
        sent.append((t_send, state.to_buttons()))
        time.sleep(0.002)
    t.join()
    client.set_reports(True)
    _, buttons, returned = result["drive"]
    latencies, missed = [], 0
    for k, (t_send, value) in enumerate(sent):
        start = int(np.searchsorted(returned, t_send))
        stop_at = int(np.searchsorted(returned, sent[k + 1][0])) if k + 1 < len(sent) else len(returned)
        hits = np.flatnonzero(buttons[start:stop_at] == value)
        if len(hits):
            latencies.append(int(returned[start + hits[0]]) - t_send)
        else:
            missed += 1  # not read before the next state replaced it (or after the stand-in stopped)
    out = _percentiles_us(np.array(latencies, dtype=np.int64))
    out["states_sent"] = len(sent)
    out["not_seen"] = missed
    return out


def _polls_per_s(harness: PluginHarness, seconds: float) -> float:
    rounds = 200_000
    t0 = time.perf_counter()
    durations, _, _ = harness.drive(rounds=rounds, interval_ns=0, controllers=(1, 2))
    elapsed = time.perf_counter() - t0
    return round(len(durations) / elapsed)


def _lockstep(harness: PluginHarness, client: PluginClient, steps: int) -> dict:
    client.set_lockstep(True, timeout_ms=1000)
    client.polls()
    t = threading.Thread(target=lambda: harness.drive(rounds=steps + 1, interval_ns=0, controllers=(1, 2)), daemon=True)
    t.start()
    per_step = []
    exact = 0
    t0 = time.perf_counter()
    for i in range(steps):
        s0 = time.perf_counter_ns()
        reports = client.step({1: _state(i), 2: _state(i + 1)}, timeout=5.0)
        per_step.append(time.perf_counter_ns() - s0)
        exact += {r.controller: r.state for r in reports} == {1: _state(i), 2: _state(i + 1)} and len(reports) == 2
    elapsed = time.perf_counter() - t0
    client.set_lockstep(False)
    t.join(timeout=5)
    return {"steps_per_s": round(steps / elapsed), "step_us": _percentiles_us(np.array(per_step)),
            "steps_with_exact_reports": exact, "steps": steps}


def bench_plugin(seconds: float = 2.0) -> dict:
    """Runs every measurement through the built plugin; returns the figures (see module docstring)."""
    if not 0.1 <= seconds <= 600:
        raise KartStudioError(f"--seconds {seconds:g}: give 0.1 to 600 seconds per phase")
    so = build_plugin()
    endpoint = PluginEndpoint.create(controllers=(1, 2))
    harness = PluginHarness(so)
    harness.start(endpoint.env())
    try:
        with PluginClient(endpoint).connect(timeout=5.0) as client:
            getkeys = _getkeys_time(harness, client, seconds)
            delivery = _delivery_latency(harness, client, seconds)
            lockstep = _lockstep(harness, client, steps=int(500 * seconds))
            polls_per_s = _polls_per_s(harness, seconds)
            stats = client.stats()
    finally:
        harness.stop()
        endpoint.remove()
    return {
        "plugin": str(so),
        "machine": f"{os.cpu_count()} CPU cores",
        "getkeys_us": getkeys,
        "delivery_us": delivery,
        "polls_per_s": polls_per_s,
        "lockstep": lockstep,
        "plugin_stats": stats,
        "anchor_getkeys_us": ANCHOR_US,
        "speedup_vs_anchor": {
            "p50": round(ANCHOR_US["p50"] / getkeys["p50"], 1) if getkeys["p50"] else None,
            "p99": round(ANCHOR_US["p99"] / getkeys["p99"], 1) if getkeys["p99"] else None,
        },
        "targets": {
            "getkeys_p99_us<=5": getkeys["p99"] is not None and getkeys["p99"] <= TARGET_GETKEYS_P99_US,
            "delivery_p99_us<=50": delivery["p99"] is not None and delivery["p99"] <= TARGET_DELIVERY_P99_US,
        },
    }


__all__ = ["bench_plugin", "ANCHOR_US"]
