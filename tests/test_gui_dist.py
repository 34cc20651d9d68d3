"""The PyInstaller one-folder build starts and renders the window (slow: minutes; `pytest -m slow`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pyinstaller_build_starts(tmp_path):
    pyinstaller = shutil.which("pyinstaller", path=str(Path(sys.executable).parent))
    if pyinstaller is None:
        pytest.skip("pyinstaller is not installed (pip install -e '.[dist]')")
    build = subprocess.run(
        [pyinstaller, str(ROOT / "kartstudio.spec"), "--noconfirm", "--distpath", str(tmp_path / "dist"),
         "--workpath", str(tmp_path / "build")],
        cwd=ROOT, capture_output=True, text=True, timeout=1700,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    binary = tmp_path / "dist" / "kartstudio" / "kartstudio"
    assert binary.is_file()
    from kartstudio.gui.bench import check_binary

    result = check_binary(str(binary))
    assert result["ok"], result
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert version.stdout.startswith("kartstudio ")
