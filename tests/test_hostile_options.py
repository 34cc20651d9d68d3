"""Issue 18 items 3, 4, 5, 12, 13, 14, 15: hostile options, settings and file kinds, each refused in
one line (exit 2 at the command line), never a hang, a crash or a silent change.

Real parts: the real CLI (`kartstudio.cli.main`, or a subprocess where the process itself is what
is tested), real TensorFlow training, real FIFOs, real sockets and signals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kartstudio.bench.training import write_synthetic_session
from kartstudio.cli import main
from kartstudio.errors import KartStudioError

ROOT = Path(__file__).resolve().parents[1]
SMALL = (60, 160)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("option-sessions")
    for i in range(2):
        write_synthetic_session(folder / f"s{i}.h5", 40, seed=i, size=SMALL, distinct=8)
    return folder


def _status(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusal
        return exc.code


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("kartstudio")]
    assert len(lines) == 1 and "Traceback" not in err and "unexpected" not in err, err[-2000:]
    return lines[0]


def _unblock(fifo: Path) -> None:
    """Open the FIFO's writing end, so a reader stuck on it (the old bug) returns and the test can fail."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def _within(seconds: float, fifo: Path, call):
    """call() in a thread; a hang on `fifo` is a failure, not a stuck test run."""
    box = {}

    def run():
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        _unblock(fifo)
        t.join(5)
        pytest.fail(f"blocked on the FIFO {fifo.name} for {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- item 3: ~nosuchuser paths ---------------------------------------------------------------------


def test_a_home_folder_of_an_unknown_user_is_refused_on_save_and_left_out_at_start():
    from kartstudio.emulator.launcher import find_emulator
    from kartstudio.emulator.rom import RomError, check_rom
    from kartstudio.errors import SessionFileError
    from kartstudio.session import named_session_path
    from kartstudio.settings import Settings, SettingsError, load_settings, save_settings, settings_path

    for field in ("data_folder", "rom_path", "emulator"):
        with pytest.raises(SettingsError, match="~nosuchuser"):
            save_settings(Settings(**{field: "~nosuchuser/x"}))
    assert not settings_path().exists()  # nothing saved

    # a settings.json written by an older version (or by hand): the app still starts
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text(json.dumps({"data_folder": "~nosuchuser/x", "rom_path": "~nosuchuser/r.z64",
                                           "practice_seed": 11}))
    s = load_settings()
    assert s.practice_seed == 11  # the good values stay
    assert s.data_folder == Settings().data_folder and s.rom_path == ""  # the bad ones: defaults
    assert "~nosuchuser" in s.problem and "data folder" in s.problem and "ROM path" in s.problem
    assert s.sessions_folder.is_absolute() and not s.has_rom

    with pytest.raises(RomError, match="no home folder"):
        check_rom("~nosuchuser/mk64.z64")
    with pytest.raises(KartStudioError, match="no home folder"):
        find_emulator("~nosuchuser/mupen64plus")
    with pytest.raises(SessionFileError, match="no home folder"):
        named_session_path("/tmp", "~nosuchuser/run")


# -- item 12: FIFOs ---------------------------------------------------------------------------------


def test_a_fifo_settings_or_pairing_file_is_set_aside_without_waiting(tmp_path):
    from kartstudio.configfile import read_json_config
    from kartstudio.pads.pairing import _checked_pairing
    from kartstudio.paths import config_dir
    from kartstudio.settings import load_settings, settings_path

    config_dir().mkdir(parents=True)
    os.mkfifo(settings_path())
    s = _within(10, settings_path(), load_settings)
    assert "FIFO" in s.problem and "defaults are used" in s.problem
    assert Path(str(settings_path()) + ".bad").exists() and not settings_path().exists()

    pairing = config_dir() / "pairing.json"
    os.mkfifo(pairing)
    problems = []
    assert _within(10, pairing, lambda: read_json_config(pairing, _checked_pairing, "the pad pairing file",
                                                         problems.append)) is None
    assert "FIFO" in problems[0]


@pytest.mark.parametrize("which", ["X", "y"])
def test_import_npy_refuses_a_fifo_in_one_line(tmp_path, capsys, which):
    import numpy as np

    x, y = tmp_path / "X.npy", tmp_path / "y.npy"
    np.save(x, np.zeros((4, 66, 200, 3), np.uint8))
    np.save(y, np.zeros((4, 5), np.float32))
    fifo = x if which == "X" else y
    fifo.unlink()
    os.mkfifo(fifo)
    status = _within(20, fifo, lambda: _status(["import", "npy", str(x), str(y), "-o", str(tmp_path / "out.h5")]))
    assert status == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{which}.npy is a FIFO" in line
    assert not (tmp_path / "out.h5").exists()


def test_a_fifo_rom_is_refused(tmp_path):
    from kartstudio.emulator.rom import RomError, check_rom

    fifo = tmp_path / "mk64.z64"
    os.mkfifo(fifo)
    with pytest.raises(RomError, match="FIFO"):
        _within(10, fifo, lambda: check_rom(fifo))


# -- items 4, 13: frame history and recipe values -------------------------------------------------------


@pytest.mark.parametrize("change, field", [
    ("history=1000000", "frame history"), ("history=17", "frame history"),
    ("turn_oversample=inf", "turn_oversample"), ("turn_oversample=1e12", "turn_oversample"),
    ("turn_oversample=nan", "turn_oversample"), ("turn_oversample=-5", "turn_oversample"),
    ("val_fraction=nan", "val_fraction"), ("val_fraction=-1", "val_fraction"),
    ("learning_rate=inf", "learning_rate"), ("batch_size=1000000000", "batch_size"), ("epochs=0", "epochs"),
    ("reaction_s=1e300", "reaction_s"), ("stick_weight=-1", "stick_weight"),
])
def test_bench_drive_refuses_recipe_values_out_of_range_before_recording(tmp_path, capsys, change, field):
    started = time.monotonic()
    assert _status(["bench", "drive", "--quick", "--set", change, "--folder", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert field in line and (" to " in line or "above" in line), line  # the field and its range
    assert time.monotonic() - started < 10  # refused before any demonstration is recorded
    assert not list(tmp_path.rglob("*.h5"))


def test_train_refuses_a_history_beyond_the_bound(sessions, tmp_path, capsys):
    assert _status(["train", str(sessions), "-o", str(tmp_path / "m.keras"), "--history", "5000"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--history" in line and "1 to 16" in line


def test_every_numeric_train_config_field_is_checked():
    from kartstudio.training.trainer import LIMITS, TrainConfig

    TrainConfig().check()  # the defaults pass
    for name in LIMITS:
        for bad in (float("nan"), float("inf"), -1e9, 1e12):
            with pytest.raises(KartStudioError, match=r"must be .*got"):
                TrainConfig(**{name: bad}).check()


# -- item 14: garbage TF_CONFIG and --devices ------------------------------------------------------------

CLUSTER = ["127.0.0.1:23901", "127.0.0.1:23902"]


@pytest.mark.parametrize("config, words", [
    ({"cluster": {"worker": CLUSTER}, "task": {"type": "worker", "index": -1}}, "task index -1"),
    ({"cluster": {"worker": [23901, 23902]}, "task": {"type": "worker", "index": 0}}, "not host:port"),
    ('{"cluster": {"worker": ["127.0.0.1:23901", "127.0.0.1:23902"]}, "task": {"type": "worker", "index": 1e400}}',
     "task index inf"),
    ({"cluster": {"worker": CLUSTER}, "task": {"type": "worker", "index": 0.5}}, "task index 0.5"),
    ({"cluster": {"worker": ["127.0.0.1:23901", "127.0.0.1:99999"]}, "task": {"type": "worker", "index": 0}},
     "port 99999"),
    ({"cluster": {"worker": [CLUSTER[0], CLUSTER[0]]}, "task": {"type": "worker", "index": 0}}, "twice"),
    ({"cluster": {"ps": CLUSTER}, "task": {"type": "ps", "index": 0}}, "not 'ps'"),
    ("[]", "cluster"), ("{not json", "not JSON"),
])
def test_garbage_tf_config_is_one_line_and_exit_2(sessions, tmp_path, capsys, monkeypatch, config, words):
    monkeypatch.setenv("TF_CONFIG", config if isinstance(config, str) else json.dumps(config))
    assert _status(["train", str(sessions), "-o", str(tmp_path / "m.keras")]) == 2
    assert words in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("hosts, index, words", [
    ("127.0.0.1:23901,127.0.0.1:23901", "0", "twice"),
    ("127.0.0.1:23901,127.0.0.1:99999", "0", "port 99999"),
    ("127.0.0.1:23901,127.0.0.1:23902", "0.5", "not a whole number"),
])
def test_bad_worker_options_are_refused_up_front(sessions, tmp_path, capsys, hosts, index, words):
    assert _status(["train", str(sessions), "-o", str(tmp_path / "m.keras"), "--worker-hosts", hosts,
                    "--worker-index", index]) == 2
    assert words in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("spec", [",,,", "²", "CPU:99999999", "GPU:x"])
def test_garbage_devices_are_one_line_and_exit_2(sessions, tmp_path, capsys, spec):
    assert _status(["train", str(sessions), "-o", str(tmp_path / "m.keras"), "--devices", spec, "--epochs", "1"]) == 2
    assert "--devices" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "m.keras").exists() and not list(tmp_path.glob(".*lock"))


# -- item 5: waiting for the other workers ----------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_a_worker_without_peers_says_what_it_waits_for_and_answers_sigterm_ctrl_c_and_its_timeout(sessions, tmp_path):
    """Lone chiefs at once (a start costs seconds of TensorFlow import): SIGTERM, SIGINT and the
    timeout while waiting; and Ctrl-C while TensorFlow joins a "peer" that answers but never joins."""
    ports = _free_ports(8)
    fake_peer = socket.create_server(("127.0.0.1", ports[7]))  # accepts connections, never joins
    runs = {}
    for k, how in enumerate(("SIGTERM", "SIGINT", "timeout", "join")):
        hosts = f"127.0.0.1:{ports[2 * k]},127.0.0.1:{ports[2 * k + 1]}"
        cmd = [sys.executable, "-m", "kartstudio", "train", str(sessions), "-o", str(tmp_path / f"{how}.keras"),
               "--worker-hosts", hosts, "--worker-index", "0", "--quiet"]
        if how == "timeout":
            cmd += ["--peer-timeout", "3"]
        runs[how] = (subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT), ports[2 * k + 1])
    try:
        for how, (proc, peer) in runs.items():
            waiting = "joining the training cluster" if how == "join" else f"waiting for worker 1 at 127.0.0.1:{peer}"
            seen = ""
            deadline = time.monotonic() + 60
            while waiting not in seen and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                seen += line
            assert waiting in seen and "Ctrl-C to stop" in seen, seen[-2000:]
            if how in ("SIGTERM", "SIGINT"):
                proc.send_signal(getattr(signal, how))
            elif how == "join":
                time.sleep(1)  # inside TensorFlow's join now
                proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            err = seen + proc.communicate(timeout=20)[1]
            line = _one_line(err)
            if how == "join":
                assert proc.returncode == -signal.SIGINT, err[-2000:]  # the interpreter is held: SIGINT ends it (130 in a shell)
                assert "stopped (Ctrl-C or a signal) while joining the training cluster" in line
            else:
                assert proc.returncode == 2, err[-2000:]
            if how == "timeout":
                assert "gave up after 3 s waiting for worker 1" in line
            elif how != "join":
                assert f"stopped by {how} while waiting for worker 1" in line
            assert how == "timeout" or time.monotonic() - t0 < 5  # promptly
            assert not (tmp_path / f"{how}.keras").exists()
            if how == "join":  # a killed run leaves its lock file, but not its lock
                from kartstudio.training.trainer import output_lock

                with output_lock(tmp_path / "join.keras"), output_lock(tmp_path / "join.checkpoints"):
                    pass
            assert not list(tmp_path.glob(f".{how}.*lock"))
    finally:
        fake_peer.close()
        for proc, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# -- item 15: one run per output, no silent overwrite -------------------------------------------------------


def test_a_second_run_to_the_same_output_is_refused_and_an_existing_model_needs_force(sessions, tmp_path, capsys):
    from kartstudio.training.trainer import output_lock

    out = tmp_path / "m.keras"
    # another run holds the output (its lock is released whenever that process ends)
    with output_lock(out):
        assert _status(["train", str(sessions), "-o", str(out), "--epochs", "1", "--quiet"]) == 2
        assert "another training" in _one_line(capsys.readouterr().err)
    with output_lock(out.with_suffix(".checkpoints")):  # or its checkpoint folder
        assert _status(["train", str(sessions), "-o", str(out), "--epochs", "1", "--quiet"]) == 2
        assert "another training" in _one_line(capsys.readouterr().err)

    out.write_bytes(b"someone's model")
    assert _status(["train", str(sessions), "-o", str(out), "--epochs", "1", "--quiet"]) == 2
    assert "--force" in _one_line(capsys.readouterr().err)
    assert out.read_bytes() == b"someone's model"

    # --force replaces it; a lock file a killed run left behind does not stop it, and the old
    # shared temporary names (taken here by folders) are no longer used
    (tmp_path / ".m.keras.lock").write_text("99999")
    ckpt = out.with_suffix(".checkpoints")
    (ckpt / ".last.tmp.keras").mkdir(parents=True)
    (tmp_path / ".m.tmp.keras").mkdir()
    assert _status(["train", str(sessions), "-o", str(out), "--epochs", "1", "--batch-size", "16", "--quiet",
                    "--force"]) == 0, capsys.readouterr().err
    assert out.read_bytes()[:2] == b"PK" and (ckpt / "last.keras").is_file()
    assert not list(tmp_path.glob(".*lock")) and not list(tmp_path.glob(".*[0-9].tmp.keras"))

    # --resume continues the run into the same output without --force
    capsys.readouterr()
    assert _status(["train", str(sessions), "-o", str(out), "--epochs", "2", "--batch-size", "16", "--quiet",
                    "--resume"]) == 0, capsys.readouterr().err
    assert json.loads((ckpt / "state.json").read_text())["epochs_done"] == 2


def test_dagger_never_replaces_an_existing_model_without_force(tmp_path, capsys):
    model = tmp_path / "m.keras"
    model.write_bytes(b"the model")
    earlier = tmp_path / "m-dagger.keras"  # the default output
    earlier.write_bytes(b"last week's retrained model")
    assert main(["dagger", "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert "m-dagger.keras already exists" in err and "--force" in err and "\n" not in err
    assert earlier.read_bytes() == b"last week's retrained model"
