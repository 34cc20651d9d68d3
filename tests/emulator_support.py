"""Shared set-up for the real-emulator tests: why they would be skipped, a private Xvfb, the test ROM."""

from __future__ import annotations

import shutil

import pytest

from kartstudio.emulator import testrom
from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM, find_emulator, video_plugins
from kartstudio.errors import KartStudioError


def missing_for_emulator() -> str | None:
    """Why the real-emulator tests cannot run here, or None."""
    try:
        find_emulator()
    except KartStudioError:
        return "mupen64plus is not installed (apt-get install mupen64plus-ui-console)"
    if VIDEO_FOR_TEST_ROM not in video_plugins():
        return f"{VIDEO_FOR_TEST_ROM} is not installed (apt-get install mupen64plus-video-all)"
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed (apt-get install xvfb)"
    if shutil.which("xdotool") is None:
        return "xdotool is not installed (apt-get install xdotool)"
    if testrom.toolchain_missing():
        return "the MIPS assembler is not installed (apt-get install binutils-mips-linux-gnu)"
    return None


needs_emulator = pytest.mark.skipif(missing_for_emulator() is not None, reason=str(missing_for_emulator()))


def plugin_missing() -> str | None:
    """Why our input plugin cannot be loaded here (not built: `make -C plugin`), or None."""
    from kartstudio.emulator.launcher import find_input_plugin

    try:
        find_input_plugin()
    except KartStudioError as exc:
        return str(exc)
    return None


needs_plugin = pytest.mark.skipif(plugin_missing() is not None, reason=str(plugin_missing()))


@pytest.fixture(scope="module")
def xdisplay():
    from kartstudio.emulator.xvfb import VirtualDisplay

    with VirtualDisplay() as display:
        yield display.display


@pytest.fixture(scope="module")
def testrom_path(tmp_path_factory):
    return testrom.build_test_rom(tmp_path_factory.mktemp("rom"))
