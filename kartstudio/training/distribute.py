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
from dataclasses import dataclass

from kartstudio.errors import KartStudioError
from kartstudio.model import tf

_MULTI_WORKER = None  # TensorFlow allows one MultiWorkerMirroredStrategy per process


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


def worker_tf_config(hosts: str | list[str], index: int) -> dict:
    """TF_CONFIG for worker `index` of a cluster of `hosts` ("host:port,host:port" or a list)."""
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    if len(hosts) < 2:
        raise KartStudioError("--worker-hosts needs at least two host:port entries, one per machine (worker 0 first)")
    for h in hosts:
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise KartStudioError(f"--worker-hosts: {h!r} is not host:port (e.g. 192.168.1.10:12345)")
    if not 0 <= index < len(hosts):
        raise KartStudioError(f"--worker-index must be 0..{len(hosts) - 1} for {len(hosts)} worker hosts, got {index}")
    return {"cluster": {"worker": list(hosts)}, "task": {"type": "worker", "index": index}}


def set_worker_hosts(hosts: str | list[str], index: int) -> None:
    """Write TF_CONFIG for this process (what `--worker-hosts/--worker-index` do)."""
    os.environ["TF_CONFIG"] = json.dumps(worker_tf_config(hosts, index))


def _tf_config() -> dict | None:
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = config["cluster"].get("worker", []) + config["cluster"].get("chief", [])
        task = config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise KartStudioError("TF_CONFIG is not a valid cluster description; see docs/training.md") from None
    return config if len(workers) > 1 else None  # a one-machine "cluster" is a plain run


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
    if spec.isdigit():
        n = int(spec)
        if n < 1 or n > max(1, len(gpus)):
            raise KartStudioError(f"--devices {n}: this machine has {len(gpus)} GPU(s) TensorFlow can use")
        return gpus[:n] if gpus else ["CPU:0"]
    names = [d.strip().upper() for d in spec.split(",") if d.strip()]
    for name in names:
        kind, _, number = name.partition(":")
        if kind not in ("CPU", "GPU") or not number.isdigit():
            raise KartStudioError(f"--devices: {name!r} is not a device (e.g. GPU:0,GPU:1 or CPU:0,CPU:1)")
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


def placement(devices: str | None = None) -> Placement:
    """The strategy for this process: multi-worker when TF_CONFIG describes a cluster, else
    mirrored over several local devices, else one device."""
    global _MULTI_WORKER
    config = _tf_config()
    if config is not None:
        if _MULTI_WORKER is None:
            # physical, not logical: listing logical devices starts the runtime, and the strategy must come first
            gpus = [d.name.split("device:")[-1] for d in tf.config.list_physical_devices("GPU")]
            try:  # each worker uses all its GPUs, or its CPU
                _MULTI_WORKER = (tf.distribute.MultiWorkerMirroredStrategy(), gpus or ["CPU:0"])
            except (ValueError, RuntimeError) as exc:
                raise KartStudioError(f"cannot join the training cluster in TF_CONFIG: {str(exc).splitlines()[0]}") from None
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


__all__ = ["Placement", "gpu_name", "placement", "set_worker_hosts", "worker_tf_config"]
