"""Run a recording script in a subprocess and SIGKILL it mid-recording (crash-safety tests)."""

import os
import signal
import subprocess
import sys
from pathlib import Path


def record_then_sigkill(script: str) -> list[Path]:
    """The script prints its session paths on one line, then "ready" once a flush has happened;
    it is killed there. Returns the paths (the process is reaped and was really killed)."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        paths = [Path(p) for p in proc.stdout.readline().split()]
        assert proc.stdout.readline().strip() == "ready"  # 1.5 s in: at least one flush happened
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return paths
