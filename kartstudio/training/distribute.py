"""Where a training run runs: one device, several on one machine, or several machines.

All of it is TensorFlow's own tf.distribute, chosen here and used by the Trainer:

- one device (the default): the GPU when there is one, else the CPU;
- several GPUs on one machine: ``MirroredStrategy`` (automatic, or ``devices="GPU:0,GPU:1"`` / ``"2"``);
- several machines: ``MultiWorkerMirroredStrategy``, configured the standard way with the
  ``TF_CONFIG`` environment variable, which ``set_worker_hosts(hosts, index)`` (``kartstudio train
  --worker-hosts h1:port,h2:port --worker-index i``) writes. Worker 0 is the chief: it writes the
  checkpoints and the model.

``devices="CPU:0,CPU:1"`` splits the processor into logical devices (before TensorFlow starts its
runtime): it runs the multi-device path on any machine, which is how the tests exercise it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from kartstudio.errors import KartStudioError
from kartstudio.model import tf

_MULTI_WORKER = None  # TensorFlow allows one MultiWorkerMirroredStrategy per process
PEER_TIMEOUT_S = 300.0  # how long a worker waits for the others before it gives up (train --peer-timeout)
MAX_CPU_DEVICES = 64  # --devices CPU:N splits the processor into at most this many logical devices
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")
_JOBS = ("chief", "worker")  # the tasks a KartStudio cluster has (no parameter servers, no evaluator)


@dataclass
class Placement:
    """The strategy of a run and what it runs on."""

    strategy: "tf.distribute.Strategy"
    devices: tuple[str, ...]  # this worker's devices, e.g. ("CPU:0",) or ("GPU:0", "GPU:1")
    workers: int = 1
    worker_index: int = 0
    chief: bool = True  # writes checkpoints, logs and the model

    @property
    def replicas(self) -> int:
        """Model copies training in step, over all workers."""
        return self.strategy.num_replicas_in_sync

    @property
    def distributed(self) -> bool:
        return self.replicas > 1 or self.workers > 1

    @property
    def mixed_precision_helps(self) -> bool:
        """float16 compute pays on GPUs with tensor cores (compute capability 7.0 and up), not on a CPU."""
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus or any(not d.startswith("GPU") for d in self.devices):
            return False
        try:
            return all(tuple(tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0))) >= (7, 0)
                       for g in gpus)
        except (ValueError, RuntimeError):
            return False

    def describe(self) -> str:
        """For people: "CPU", "GPU:0", "2 x GPU (mirrored)", "2 workers x CPU (worker 0, chief)"."""
        kinds = sorted({d.split(":")[0] for d in self.devices})
        local = (f"{len(self.devices)} x {'+'.join(kinds)}" if len(self.devices) > 1 else self.devices[0])
        if self.workers > 1:
            role = "chief" if self.chief else "worker"
            return f"{self.workers} workers x {local} (worker {self.worker_index}, {role})"
        return f"{local} (mirrored)" if len(self.devices) > 1 else local


def _address(entry, where: str) -> tuple[str, int]:
    """(host, port) of a "host:port" entry, or one line saying what is wrong with it."""
    match = _HOST_PORT.fullmatch(entry.strip()) if isinstance(entry, str) else None
    if match is None:
        raise KartStudioError(f"{where}: {entry!r} is not host:port (e.g. 192.168.1.10:12345)")
    port = int(match.group(2))
    if not 0 < port < 65536:
        raise KartStudioError(f"{where}: {entry!r} has port {port}; a port is 1..65535")
    return match.group(1).strip("[]").lower(), port


def _no_duplicates(entries: list[str], where: str) -> None:
    seen: dict[tuple[str, int], str] = {}
    for entry in entries:
        key = _address(entry, where)
        if key in seen:
            raise KartStudioError(f"{where} lists {seen[key]} twice; every worker needs its own host:port")
        seen[key] = entry


def worker_tf_config(hosts: str | list[str], index: int) -> dict:
    """TF_CONFIG for worker `index` of a cluster of `hosts` ("host:port,host:port" or a list)."""
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    if len(hosts) < 2:
        raise KartStudioError("--worker-hosts needs at least two host:port entries, one per machine (worker 0 first)")
    _no_duplicates(hosts, "--worker-hosts")
    if type(index) is not int or not 0 <= index < len(hosts):
        raise KartStudioError(f"--worker-index must be 0..{len(hosts) - 1} for {len(hosts)} worker hosts, got {index}")
    return {"cluster": {"worker": [h.strip() for h in hosts]}, "task": {"type": "worker", "index": index}}


def set_worker_hosts(hosts: str | list[str], index: int) -> None:
    """Write TF_CONFIG for this process (what `--worker-hosts/--worker-index` do)."""
    os.environ["TF_CONFIG"] = json.dumps(worker_tf_config(hosts, index))


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in the TF_CONFIG cluster, read without starting TensorFlow."""

    kind: str  # "chief" or "worker"
    index: int  # within its kind
    addresses: tuple[tuple[str, str], ...]  # (name, "host:port") of every task, the chief first
    position: int  # this task's place in `addresses`

    @property
    def chief(self) -> bool:
        return self.kind == "chief" or (self.kind == "worker" and self.index == 0
                                        and not any(n == "the chief" for n, _ in self.addresses))

    @property
    def workers(self) -> int:
        return len(self.addresses)


def cluster_task() -> ClusterTask | None:
    """The TF_CONFIG cluster's task for this process, every field checked (one line for anything
    wrong); None without TF_CONFIG or for a one-machine "cluster" (a plain run)."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        raise KartStudioError("TF_CONFIG is not JSON; see docs/training.md (or use --worker-hosts)") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not isinstance(config.get("task"), dict):
        raise KartStudioError('TF_CONFIG needs a "cluster" and a "task" object; see docs/training.md')
    cluster, task = config["cluster"], config["task"]
    for job, entries in cluster.items():
        if job not in _JOBS:
            raise KartStudioError(f"TF_CONFIG: KartStudio trains with chief and worker tasks, not {str(job)[:40]!r}")
        if not isinstance(entries, list) or not entries:
            raise KartStudioError(f'TF_CONFIG: cluster "{job}" must be a list of "host:port" texts')
        for entry in entries:
            _address(entry, f'TF_CONFIG cluster "{job}"')
    if len(cluster.get("chief", [])) > 1:
        raise KartStudioError("TF_CONFIG: a cluster has one chief; list the others as workers")
    addresses = [("the chief", a) for a in cluster.get("chief", [])]
    addresses += [(f"worker {i}", a) for i, a in enumerate(cluster.get("worker", []))]
    _no_duplicates([a for _, a in addresses], "TF_CONFIG's cluster")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise KartStudioError(f"TF_CONFIG: task type {str(kind)[:40]!r} is not in the cluster ({', '.join(cluster)})")
    count = len(cluster[kind])
    if type(index) is not int or not 0 <= index < count:
        shown = str(index)[:40]
        raise KartStudioError(f"TF_CONFIG: task index {shown} is not a whole number 0..{count - 1} "
                              f"(the cluster has {count} {kind} task(s))")
    if len(addresses) < 2:
        return None  # a one-machine "cluster" is a plain run
    position = index + (1 if kind == "worker" and "chief" in cluster else 0)
    return ClusterTask(kind, index, tuple(addresses), position)


# -- waiting for the other workers -----------------------------------------------------------------


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _hold_port(task: ClusterTask) -> socket.socket:
    """Listen on this task's own port while waiting, so the others see it is up (TensorFlow's
    server takes the port over once every task answered)."""
    name, entry = task.addresses[task.position]
    host, port = _address(entry, "TF_CONFIG")
    try:
        if socket.has_dualstack_ipv6():
            server = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            server = socket.create_server(("", port))
    except OSError as exc:
        raise KartStudioError(f"cannot listen on port {port} ({name}, {entry}): {exc.strerror or exc}; stop what uses "
                              f"it or give this worker another port in --worker-hosts") from None
    server.setblocking(False)
    return server


def _answers(entry: str, timeout: float) -> bool:
    host, port = _address(entry, "TF_CONFIG")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _drain(server: socket.socket) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.close()


def wait_for_peers(task: ClusterTask, timeout_s: float = PEER_TIMEOUT_S, cancelled: Callable[[], bool] | None = None,
                   say: Callable[[str], None] | None = None) -> None:
    """Block until every other task's port answers, saying what it waits for; Ctrl-C, SIGTERM,
    `cancelled()` and the timeout end the wait with one line (KartStudioError)."""
    say = say or (lambda line: (sys.stderr.write(line + "\n"), sys.stderr.flush()))
    missing = {name: entry for k, (name, entry) in enumerate(task.addresses) if k != task.position}
    server = _hold_port(task)
    main = threading.current_thread() is threading.main_thread()
    previous = {}

    def stop(signum, frame):
        raise _Stop(signum)

    if main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop)
    start = time.monotonic()
    told = None
    try:
        while True:
            for name, entry in list(missing.items()):
                if _answers(entry, 0.5):
                    del missing[name]
            _drain(server)
            if not missing:
                return
            what = ", ".join(f"{n} at {e}" for n, e in missing.items())
            waited = time.monotonic() - start
            if waited >= timeout_s:
                raise KartStudioError(f"gave up after {timeout_s:.0f} s waiting for {what}: start it with the same "
                                      f"--worker-hosts and its own --worker-index (or wait longer: --peer-timeout)")
            if told is None or waited - told >= 30:
                told = waited
                say(f"waiting for {what} ... (Ctrl-C to stop; giving up in {timeout_s - waited:.0f} s)")
            for _ in range(5):  # small steps: a cancel is seen within 0.1 s
                if cancelled is not None and cancelled():
                    raise KartStudioError(f"cancelled while waiting for {what}; nothing was trained")
                time.sleep(0.1)
    except _Stop as stopped:
        what = ", ".join(f"{n} at {e}" for n, e in missing.items())
        raise KartStudioError(f"stopped by {signal.Signals(stopped.signum).name} while waiting for {what}; "
                              "nothing was trained") from None
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# The watchdog of the cluster join: a small separate process, because TensorFlow's join holds the
# interpreter (no Python thread runs until it returns). It ends when the join reports back ("J") or
# the trainer's process ends; it stops a join that outlives its time, and names a Ctrl-C.
_WATCHDOG = r"""
import os, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches this process too
ppid, timeout, done = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
ready = select.select([done], [], [], timeout)[0]
if ready:
    if os.read(done, 1):
        sys.exit(0)  # the join returned (joined, or an error the trainer reports itself)
    why = "stopped (Ctrl-C or a signal) while joining the training cluster"
else:
    why = "the other workers did not all join the training cluster within %.0f s" % timeout
    try:
        os.kill(ppid, signal.SIGINT)  # its default action during the join: the process ends
    except OSError:
        pass
sys.stderr.write("kartstudio: error: %s; nothing was trained\n" % why)
sys.stderr.flush()
"""


def _join_cluster(timeout_s: float, say: Callable[[str], None] | None = None):
    """MultiWorkerMirroredStrategy(), whose set-up blocks inside TensorFlow (holding the interpreter,
    with no timeout of its own) until every task has joined. Meanwhile Ctrl-C ends the process at
    once (SIGINT's default action), and a watchdog process ends it after `timeout_s`; either way
    one line says so and nothing was trained. (TensorFlow's set-up takes SIGTERM for its preemption
    notices, which KartStudio does not use: SIGTERM's disposition is put back afterwards.)"""
    import subprocess

    say = say or (lambda line: (sys.stderr.write(line + "\n"), sys.stderr.flush()))
    main = threading.current_thread() is threading.main_thread()
    done_r, done_w = os.pipe()
    try:
        watchdog = subprocess.Popen([sys.executable, "-S", "-c", _WATCHDOG, str(os.getpid()), str(timeout_s), str(done_r)],
                                    pass_fds=(done_r,), stdin=subprocess.DEVNULL)
    except OSError:
        watchdog = None
    os.close(done_r)
    term = intr = None
    if main:
        term = signal.getsignal(signal.SIGTERM)
        intr = signal.signal(signal.SIGINT, signal.SIG_DFL)
    say(f"every worker answers; joining the training cluster (at most {timeout_s:.0f} s; Ctrl-C to stop)")
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        os.write(done_w, b"J")
        os.close(done_w)
        if watchdog is not None:
            watchdog.wait()
        if main:
            signal.signal(signal.SIGINT, intr if intr is not None else signal.default_int_handler)
            signal.signal(signal.SIGTERM, term if term is not None else signal.SIG_DFL)


def _split_cpu(count: int) -> None:
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise KartStudioError(
            f"cannot split the CPU into {count} devices once TensorFlow has started; "
            "choose the devices before anything else runs (a new process)"
        ) from None


def _local_devices(devices: str | None) -> list[str]:
    """The device names a spec means: None/"auto" (all GPUs, else the CPU), "cpu", "gpu", a count
    of GPUs, or a list like "GPU:0,GPU:1" / "CPU:0,CPU:1"."""
    spec = (devices or "auto").strip().lower()
    # physical devices: listing logical ones would start the runtime before a CPU split
    gpus = [d.name.split("device:")[-1] for d in tf.config.list_physical_devices("GPU")]
    if spec in ("auto", ""):
        return gpus or ["CPU:0"]
    if spec == "cpu":
        return ["CPU:0"]
    if spec == "gpu":
        if not gpus:
            raise KartStudioError("--devices gpu: TensorFlow sees no GPU here (pip install -e '.[gpu]'; see docs/training.md)")
        return gpus
    if spec.isascii() and spec.isdigit():
        n = int(spec)
        if n < 1 or n > max(1, len(gpus)):
            raise KartStudioError(f"--devices {n}: this machine has {len(gpus)} GPU(s) TensorFlow can use")
        return gpus[:n] if gpus else ["CPU:0"]
    names = [d.strip().upper() for d in spec.split(",") if d.strip()]
    if not names:
        raise KartStudioError(f"--devices {devices!r} names no device; use auto, cpu, gpu, a GPU count or GPU:0,GPU:1")
    for name in names:
        kind, _, number = name.partition(":")
        if kind not in ("CPU", "GPU") or not re.fullmatch(r"[0-9]{1,6}", number):
            raise KartStudioError(f"--devices: {name[:40]!r} is not a device (e.g. GPU:0,GPU:1 or CPU:0,CPU:1)")
        if kind == "CPU" and int(number) >= MAX_CPU_DEVICES:
            raise KartStudioError(f"--devices: {name}: the processor splits into at most {MAX_CPU_DEVICES} devices "
                                  f"(CPU:0..CPU:{MAX_CPU_DEVICES - 1})")
    if len(set(names)) != len(names):
        raise KartStudioError(f"--devices lists a device twice: {devices}")
    cpus = [n for n in names if n.startswith("CPU")]
    if cpus:
        wanted = max(int(n.split(":")[1]) for n in cpus) + 1
        split = tf.config.get_logical_device_configuration(tf.config.list_physical_devices("CPU")[0])
        if wanted > len(split or [None]):
            _split_cpu(wanted)
    known = {d.name.split("device:")[-1] for d in tf.config.list_logical_devices()}
    for name in names:
        if name not in known:
            raise KartStudioError(f"--devices: this machine has no {name} (it has {', '.join(sorted(known))})")
    return names


def placement(devices: str | None = None, peer_timeout: float = PEER_TIMEOUT_S,
              cancelled: Callable[[], bool] | None = None) -> Placement:
    """The strategy for this process: multi-worker when TF_CONFIG describes a cluster, else
    mirrored over several local devices, else one device.

    Joining a cluster first waits (interruptibly, saying for whom) until every other task's port
    answers, at most `peer_timeout` seconds; `cancelled()` ends that wait too."""
    global _MULTI_WORKER
    task = cluster_task()
    if task is not None:
        if _MULTI_WORKER is None:
            wait_for_peers(task, peer_timeout, cancelled)
            # physical, not logical: listing logical devices starts the runtime, and the strategy must come first
            gpus = [d.name.split("device:")[-1] for d in tf.config.list_physical_devices("GPU")]
            try:  # each worker uses all its GPUs, or its CPU
                _MULTI_WORKER = (_join_cluster(max(10.0, peer_timeout)), gpus or ["CPU:0"])
            except (ValueError, RuntimeError, tf.errors.OpError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise KartStudioError(f"cannot join the training cluster in TF_CONFIG: {first}") from None
        strategy, local = _MULTI_WORKER
        resolver = strategy.cluster_resolver
        spec = resolver.cluster_spec().as_dict()
        workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
        kind, index = resolver.task_type, int(resolver.task_id or 0)
        chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in spec)
        position = index + (1 if kind == "worker" and "chief" in spec else 0)
        return Placement(strategy, tuple(local), workers, position, chief)
    local = _local_devices(devices)
    if len(local) > 1:
        return Placement(tf.distribute.MirroredStrategy([f"/{d.lower()}" for d in local]), tuple(local))
    return Placement(tf.distribute.OneDeviceStrategy(f"/{local[0].lower()}"), tuple(local))


def gpu_name() -> str | None:
    """The first GPU's model name, for benchmark reports (None without a GPU)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    try:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name") or "GPU"
    except (ValueError, RuntimeError):
        return "GPU"


__all__ = ["PEER_TIMEOUT_S", "ClusterTask", "Placement", "cluster_task", "gpu_name", "placement",
           "set_worker_hosts", "wait_for_peers", "worker_tf_config"]
