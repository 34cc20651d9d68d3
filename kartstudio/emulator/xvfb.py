"""A private X display (Xvfb) for headless runs: tests, CI, the Gymnasium env without a desktop."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from kartstudio.errors import KartStudioError


class VirtualDisplay:
    """Xvfb on a free display number (Xvfb picks it itself with -displayfd)."""

    def __init__(self, width: int = 1280, height: int = 1024, depth: int = 24) -> None:
        self.size = (width, height, depth)
        self.process: subprocess.Popen | None = None
        self.display: str | None = None

    def start(self, timeout: float = 10.0) -> str:
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise KartStudioError("Xvfb not found: install it (sudo apt-get install xvfb)")
        read_fd, write_fd = os.pipe()
        width, height, depth = self.size
        self.process = subprocess.Popen(
            [xvfb, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x{depth}", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        number = b""
        deadline = time.monotonic() + timeout
        try:
            os.set_blocking(read_fd, False)
            while not number.endswith(b"\n") and time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    number += os.read(read_fd, 16)
                except BlockingIOError:
                    time.sleep(0.02)
        finally:
            os.close(read_fd)
        if not number.strip().isdigit():
            self.stop()
            raise KartStudioError("Xvfb did not start (no display number within 10 s); run `Xvfb -displayfd 1` to see why")
        self.display = f":{int(number)}"
        return self.display

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "VirtualDisplay":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
