"""A session being recorded can be read by another program (`kartstudio info`, the Datasets tab of
a second window): readers take no HDF5 file lock, and see the frames up to the last flush."""

import subprocess
import sys

import h5py
import numpy as np

from kartstudio.controller import ControllerState
from kartstudio.session import SessionMeta, SessionWriter, open_session


def _live_session(path, frames: int) -> SessionWriter:
    """A writer still open on `path`, with `frames` frames flushed to disk."""
    writer = SessionWriter(path, SessionMeta(game="practice", track="t", storage_size=(8, 16)))
    for i in range(frames):
        writer.append(np.zeros((8, 16, 3), np.uint8), ControllerState(x=5), float(i), i)
    writer.flush()
    return writer


def test_info_reads_a_session_while_it_is_being_recorded(tmp_path):
    path = tmp_path / "live.h5"
    writer = _live_session(path, 10)
    try:
        run = subprocess.run([sys.executable, "-m", "kartstudio", "info", str(path)], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "10 frames" in run.stdout and "not closed cleanly" in run.stdout
        writer.append(np.zeros((8, 16, 3), np.uint8), ControllerState(), 10.0, 10)  # the writer goes on
    finally:
        writer.close()


def test_a_session_being_recorded_is_read_in_the_same_process_and_beside_plain_h5py(tmp_path):
    # HDF5 refuses a second open of a file in one process with other locking flags: the recorder
    # (default locking) and the reader (none) must still both work, as must plain h5py beside them.
    path = tmp_path / "live.h5"
    writer = _live_session(path, 5)
    try:
        with open_session(path) as s:
            assert len(s) == 5 and s.frame(4).shape == (8, 16, 3)
        writer.append(np.zeros((8, 16, 3), np.uint8), ControllerState(), 5.0, 5)
    finally:
        writer.close()
    with h5py.File(path, "r") as f, open_session(path) as s:
        assert len(s) == len(f["frames"]) == 6
