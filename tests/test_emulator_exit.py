"""How the emulator ended reaches the user: a kill, a crash or a normal exit while frames are being
taken is reported as the emulator's own exit, never as a closed plugin socket. Also the game's speed."""

import signal
import time

import pytest

from kartstudio.errors import KartStudioError
from test_emulator_plugin import pytestmark, start_backend  # noqa: F401 - same skips
from emulator_support import testrom_path, xdisplay  # noqa: F401 - fixtures


@pytest.mark.parametrize("lockstep", [False, True], ids=["free-run", "lock-step"])
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM])
def test_the_emulators_end_is_reported_as_such(testrom_path, xdisplay, signum, lockstep):
    backend = start_backend(testrom_path, xdisplay, lockstep=lockstep, macro=False)
    try:
        assert backend.next_frame() is not None
        if not lockstep:
            end = time.monotonic() + 0.8
            while time.monotonic() < end:
                assert backend.next_frame() is not None
            assert backend.game_rate() is not None and backend.game_rate() > 1
        backend.emulator.process.send_signal(signum)  # not waited for: frames are still being taken
        try:
            for _ in range(200):
                if backend.next_frame() is None:
                    break
            ended = backend.exit_reason
        except KartStudioError as exc:
            ended = str(exc)
        assert "not connected" not in ended and "mupen64plus" in ended, ended
        assert backend.exit_reason and backend.exit_reason.split(" (")[0] in ended
    finally:
        backend.stop()
