"""Training on several devices and several workers through tf.distribute, for real on this machine.

Each run is its own process: splitting the CPU into logical devices and joining a cluster both
have to happen before TensorFlow starts its runtime, which earlier tests in this process did.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kartstudio.bench.training import write_synthetic_session

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dist-sessions")
    for k, n in enumerate((70, 50, 60, 40)):
        write_synthetic_session(folder / f"s{k}.h5", n, seed=k, size=(60, 160), distinct=8)
    return folder


def _python(code: str, timeout: float = 150, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def _weights(path: Path) -> list[np.ndarray]:
    from kartstudio.model import load_model

    return [np.asarray(w) for w in load_model(path).get_weights()]


def test_mirrored_strategy_on_two_logical_cpu_devices(sessions, tmp_path):
    out = tmp_path / "m.keras"
    done = _python(f"""
        import json, numpy as np
        from kartstudio.training import TrainConfig, Trainer
        from kartstudio.training.recipe import recipe
        trainer = Trainer(TrainConfig.from_recipe(recipe("default", epochs=2, batch_size=16), val_sessions=1, devices="CPU:0,CPU:1"))
        result = trainer.fit([{str(sessions)!r}], {str(out)!r})
        place = trainer.placement
        # the two replicas' copies of every variable stay identical
        same = all(np.array_equal(np.asarray(v.value.values[0]), np.asarray(v.value.values[1]))
                   for v in trainer.model.trainable_variables)
        print(json.dumps({{"devices": result.devices, "replicas": place.replicas, "same": same,
                          "losses": [h["loss"] for h in result.history], "epochs": result.epochs_done,
                          "model": str(result.model_path)}}))
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["replicas"] == 2 and r["devices"] == "2 x CPU (mirrored)"
    assert r["same"], "the replicas drifted apart"
    assert r["epochs"] == 2 and all(np.isfinite(r["losses"]))
    assert Path(r["model"]).is_file()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run_workers(sessions: Path, out: Path, *extra: str) -> list[subprocess.CompletedProcess]:
    hosts = ",".join(f"localhost:{p}" for p in _free_ports(2))
    cmd = [sys.executable, "-m", "kartstudio", "train", str(sessions), "-o", str(out), "--batch-size", "16",
           "--val-sessions", "1", "--quiet", "--worker-hosts", hosts, *extra]
    procs = [subprocess.Popen([*cmd, "--worker-index", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT) for i in range(2)]
    results = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return results


def test_two_workers_train_the_same_weights_and_resume(sessions, tmp_path):
    out = tmp_path / "mw.keras"
    chief, worker = _run_workers(sessions, out, "--epochs", "1")
    assert chief.returncode == 0, chief.stderr[-2000:]
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert "chief (worker 0) writes the model" in worker.stdout
    ckpt = tmp_path / "mw.checkpoints"
    assert out.is_file() and (ckpt / "best.keras").is_file()
    assert not (ckpt / "worker-1" / "best.keras").exists()  # only the chief keeps the best model
    for a, b in zip(_weights(ckpt / "last.keras"), _weights(ckpt / "worker-1" / "last.keras")):
        np.testing.assert_array_equal(a, b)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epochs_done"] == 1 and len(state["history"]) == 1

    # a restart of both workers continues from their own last checkpoints, still in step
    chief, worker = _run_workers(sessions, out, "--epochs", "2", "--resume")
    assert chief.returncode == 0 and worker.returncode == 0, (chief.stderr[-1500:], worker.stderr[-1500:])
    for a, b in zip(_weights(ckpt / "last.keras"), _weights(ckpt / "worker-1" / "last.keras")):
        np.testing.assert_array_equal(a, b)
    assert json.loads((ckpt / "state.json").read_text())["epochs_done"] == 2


def test_worker_options_are_checked(capsys):
    from kartstudio.cli import main

    assert main(["train", "x", "-o", "m.keras", "--worker-hosts", "localhost:1"]) == 2
    assert "go together" in capsys.readouterr().err
    assert main(["train", "x", "-o", "m.keras", "--worker-hosts", "localhost:1", "--worker-index", "0"]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["train", "x", "-o", "m.keras", "--worker-hosts", "a:1,b", "--worker-index", "0"]) == 2
    assert "not host:port" in capsys.readouterr().err
    assert main(["train", "x", "-o", "m.keras", "--worker-hosts", "a:1,b:2", "--worker-index", "2"]) == 2
    assert "0..1" in capsys.readouterr().err


def test_mixed_precision_trains_and_saves_a_float32_model(sessions, tmp_path):
    """Forced on the CPU here (it pays only on a GPU): float16 layers, float32 loss and variables,
    the loss scaled; the model file computes in float32, the resume checkpoint stays mixed."""
    from kartstudio.model import load_model
    from kartstudio.training import TrainConfig, Trainer
    from kartstudio.training.recipe import recipe

    out = tmp_path / "mp.keras"
    result = Trainer(TrainConfig.from_recipe(recipe("default", epochs=1, batch_size=16), val_sessions=1, mixed_precision=True)).fit(
        [sessions], out)
    assert result.model_path == out and np.isfinite(result.history[0]["loss"])
    model = load_model(out)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    last = load_model(result.checkpoint_dir / "last.keras", compile=True)
    assert last.get_layer("conv1").dtype_policy.name == "mixed_float16"
    assert type(last.optimizer).__name__ == "LossScaleOptimizer"
    for a, b in zip(model.get_weights(), last.get_weights()):  # one epoch, so best == last
        np.testing.assert_array_equal(a, b)


def test_sessions_are_shared_out_evenly_and_the_same_way_on_every_worker():
    from kartstudio.training.dataset import share_sessions

    paths = [Path(f"s{i}.h5") for i in range(7)]
    sizes = [600, 100, 550, 300, 320, 50, 580]
    shares = share_sessions(paths, sizes, 2)
    assert shares == share_sessions(list(paths), list(sizes), 2)
    assert sorted(p for share in shares for p in share) == sorted(paths)  # each file once
    loads = [sum(sizes[paths.index(p)] for p in share) for share in shares]
    assert abs(loads[0] - loads[1]) <= max(sizes) // 2, loads


def test_device_choices_are_checked(sessions, tmp_path, capsys):
    from kartstudio.cli import main
    from kartstudio.model import tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("asks for GPUs this machine would have")

    assert main(["train", str(sessions), "-o", str(tmp_path / "m.keras"), "--devices", "GPU:0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no GPU:0" in err and len(err.splitlines()) == 1
    assert main(["train", str(sessions), "-o", str(tmp_path / "m.keras"), "--devices", "TPU:0"]) == 2
    assert "is not a device" in capsys.readouterr().err
    assert main(["train", str(sessions), "-o", str(tmp_path / "m.keras"), "--devices", "3"]) == 2
    assert "GPU(s)" in capsys.readouterr().err
    assert not (tmp_path / "m.checkpoints").exists()
