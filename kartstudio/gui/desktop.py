"""`kartstudio install-desktop`: a double-click launcher in the desktop's application menu.

Follows the freedesktop.org layout: the .desktop entry goes to <data>/applications, the icons to
<data>/icons/hicolor/{256x256,scalable}/apps. Exec points at this installation's own launcher, so
it works whichever virtual environment KartStudio lives in. No Qt needed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from kartstudio.errors import KartStudioError


def resources_dir() -> Path:
    """resources/ of the source tree, or of a PyInstaller bundle."""
    here = Path(__file__).resolve()
    for base in (Path(getattr(sys, "_MEIPASS", "")), here.parents[2]):
        if str(base) and (base / "resources" / "kartstudio.desktop").is_file():
            return base / "resources"
    raise KartStudioError("the KartStudio resources folder (kartstudio.desktop, icons) is missing from this "
                          "installation; reinstall from the source tree")


def launcher_command() -> str:
    """The command that opens the window from here: the bundle binary, the venv script, or python -m."""
    if getattr(sys, "frozen", False):
        return shlex.quote(sys.executable) + " gui"
    script = Path(sys.executable).with_name("kartstudio")
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script)) + " gui"
    return f"{shlex.quote(sys.executable)} -m kartstudio gui"


def install_desktop(prefix: str | os.PathLike | None = None) -> list[Path]:
    base = Path(prefix) if prefix else Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    res = resources_dir()
    entry = (res / "kartstudio.desktop").read_text()
    lines = []
    for line in entry.splitlines():
        if line.startswith("Exec="):
            line = f"Exec={launcher_command()}"
        lines.append(line)
    targets = {
        base / "applications" / "kartstudio.desktop": "\n".join(lines) + "\n",
        base / "icons" / "hicolor" / "256x256" / "apps" / "kartstudio.png": res / "kartstudio.png",
        base / "icons" / "hicolor" / "scalable" / "apps" / "kartstudio.svg": res / "kartstudio.svg",
    }
    written = []
    try:
        for target, content in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_text(content)
                target.chmod(0o755)  # some desktops only launch executable entries
            written.append(target)
    except OSError as exc:
        raise KartStudioError(f"cannot install the launcher into {base}: {exc.strerror or exc}") from None
    return written
