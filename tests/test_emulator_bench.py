"""`kartstudio bench emulator` runs against the real emulator and reports what it measured.

No timing is asserted (the figures depend on the machine); only that each was measured.
"""

import json

import pytest

from kartstudio.cli import main
from kartstudio.emulator.launcher import OUR_PLUGIN
from emulator_support import needs_emulator, xdisplay  # noqa: F401 - fixtures

pytestmark = [pytest.mark.emulator, needs_emulator,
              pytest.mark.skipif(not OUR_PLUGIN.is_file(), reason="the input plugin is not built (make -C plugin)")]


def test_bench_emulator_json(capsys, xdisplay):
    # 1.5 s: with the suite on two workers, half a second right after the start once saw no new frame
    assert main(["bench", "emulator", "--json", "--seconds", "1.5", "--display", xdisplay]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["window"] == {"x": 0, "y": 0, "width": 640, "height": 480}
    assert result["startup_s"] > 0 and result["capture_fps"] > 0
    assert result["game_frames_seen_per_s"] > 0 and result["polls_per_s"] > 0
    assert result["input_to_screen_ms"]["n"] > 0
    assert result["lockstep_steps_per_s"] > 0 and result["lockstep_steps_per_s_no_speed_limit"] > 0
