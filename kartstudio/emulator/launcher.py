"""Start mupen64plus with our input plugin, an isolated config dir, 640x480 windowed; say why it stopped.

The emulator is Debian's mupen64plus-ui-console (/usr/games/mupen64plus). Everything it writes
for this run (config, its log) goes to a private temporary folder that is removed on stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kartstudio.emulator.rom import RomInfo, check_rom
from kartstudio.errors import KartStudioError

EMULATOR_NAME = "mupen64plus"
SEARCH_DIRS = ("/usr/games", "/usr/local/games")
DATA_DIRS = ("/usr/share/games/mupen64plus", "/usr/share/mupen64plus", "/usr/local/share/mupen64plus")
PLUGIN_DIRS = (
    "/usr/lib/x86_64-linux-gnu/mupen64plus",
    "/usr/lib/aarch64-linux-gnu/mupen64plus",
    "/usr/lib/mupen64plus",
    "/usr/local/lib/mupen64plus",
)
REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_PLUGIN = REPO_ROOT / "plugin" / "mupen64plus-input-kartstudio.so"

# The video plugin that draws each game, by the ROM's identity (RomInfo.game): Mario Kart 64 draws
# with display lists, which rice renders with Mesa under Xvfb; KartStudio's own homebrew ROMs draw
# with the CPU into a framebuffer, which only glide64mk2 shows (rice leaves the window black).
# A new game is one entry; a homebrew ROM of ours ("kartstudio-...") needs none.
MK64_VIDEO = "mupen64plus-video-rice"
VIDEO_FOR_TEST_ROM = "mupen64plus-video-glide64mk2"
HOMEBREW_VIDEO = VIDEO_FOR_TEST_ROM
VIDEO_FOR_GAME = {"mk64": MK64_VIDEO, "kartstudio-test": VIDEO_FOR_TEST_ROM, "raceway": HOMEBREW_VIDEO}


def video_for(game: str) -> str:
    """The video plugin that shows `game` (RomInfo.game); Mario Kart 64's for a game not in the table."""
    if game in VIDEO_FOR_GAME:
        return VIDEO_FOR_GAME[game]
    return HOMEBREW_VIDEO if game.startswith("kartstudio-") else MK64_VIDEO


# Lines the core logs as errors on every headless run; they say nothing about why it stopped.
HARMLESS_ERRORS = ("VSync", "Failed to open video device")

KEPT_LOGS = 10  # logs of abnormal exits kept (data folder's emulator-logs/); older ones are removed


def kept_logs_folder() -> Path:
    from kartstudio.paths import data_dir

    return data_dir() / "emulator-logs"


INSTALL_HINT = "sudo apt-get install mupen64plus-ui-console mupen64plus-video-all mupen64plus-rsp-hle mupen64plus-data"


def find_emulator(program: str | Path | None = None) -> Path:
    """mupen64plus on PATH or in /usr/games; `program` (the "emulator" setting): that one instead."""
    if program and str(program) != EMULATOR_NAME:
        from kartstudio.paths import user_path

        found = shutil.which(str(user_path(program, "the emulator (the 'emulator' setting)")))
        if found is None:
            raise KartStudioError(f"the emulator {program} (the 'emulator' setting) is not an executable program; "
                                  f"set it to your mupen64plus, e.g. /usr/games/mupen64plus")
        return Path(found)
    found = shutil.which(EMULATOR_NAME)
    if found:
        return Path(found)
    for folder in SEARCH_DIRS:
        candidate = Path(folder, EMULATOR_NAME)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise KartStudioError(f"mupen64plus not found on PATH or in /usr/games: install it ({INSTALL_HINT})")


def find_data_dir() -> Path | None:
    for folder in DATA_DIRS:
        if Path(folder, "mupen64plus.ini").is_file():
            return Path(folder)
    return None


def find_plugin_dir() -> Path | None:
    for folder in PLUGIN_DIRS:
        if any(Path(folder).glob("mupen64plus-*.so")):
            return Path(folder)
    return None


def video_plugins() -> list[str]:
    """Names of the installed video plugins (mupen64plus-video-*)."""
    folder = find_plugin_dir()
    return sorted(p.stem for p in folder.glob("mupen64plus-video-*.so")) if folder else []


def find_input_plugin(path: str | Path | None = None) -> Path:
    """Our input plugin, built by `make -C plugin`."""
    plugin = Path(path) if path else Path(os.environ.get("KARTSTUDIO_PLUGIN", OUR_PLUGIN))
    if not plugin.is_file():
        raise KartStudioError(f"KartStudio's input plugin {plugin} is not built: run `make -C plugin`")
    return plugin


@dataclass
class LaunchOptions:
    rom: Path
    video: str = ""  # "": the game's own (video_for), chosen from the ROM's header
    input_plugin: str | Path | None = None  # path to our .so; "dummy" for none (tests of the launcher alone)
    resolution: tuple[int, int] = (640, 480)
    display: str | None = None  # X display; default $DISPLAY
    env: dict[str, str] = field(default_factory=dict)  # e.g. the plugin endpoint's env()
    speed_limit: bool = True  # False: run as fast as the host can (lock-step training)
    extra_args: list[str] = field(default_factory=list)
    emulator: str | Path | None = None  # the mupen64plus program (default: found on PATH or in /usr/games)


class EmulatorProcess:
    """One running mupen64plus. start() returns once the process runs; exit_reason() says why it stopped."""

    def __init__(self, options: LaunchOptions) -> None:
        self.options = options
        self.process: subprocess.Popen | None = None
        self.rom: RomInfo | None = None
        self.video = options.video  # the plugin it runs (the game's own when options.video is "")
        self.workdir: Path | None = None
        self.started_at: float | None = None
        self._stopped_by_us = False

    # -- start -----------------------------------------------------------------------
    def command(self) -> list[str]:
        o = self.options
        emulator = find_emulator(o.emulator)
        if o.input_plugin == "dummy":
            input_spec = "dummy"
        else:
            input_spec = str(find_input_plugin(o.input_plugin))
        self.video = o.video or video_for(self.rom.game if self.rom is not None else "mk64")
        available = video_plugins()
        if available and self.video not in available:
            raise KartStudioError(
                f"video plugin {self.video} is not installed (found: {', '.join(available)}); "
                "install mupen64plus-video-all or choose one of those"
            )
        cmd = [str(emulator), "--nosaveoptions", "--configdir", str(self.workdir / "config")]
        data_dir = find_data_dir()
        if data_dir is not None:
            cmd += ["--datadir", str(data_dir)]
        width, height = o.resolution
        cmd += [
            "--windowed", "--resolution", f"{width}x{height}", "--noosd",  # no OSD text in the frames
            "--gfx", self.video, "--audio", "dummy", "--input", input_spec, "--rsp", "mupen64plus-rsp-hle",
            *([] if o.speed_limit else ["--nospeedlimit"]), *o.extra_args, str(Path(o.rom).resolve()),
        ]  # fmt: skip
        return cmd

    def start(self) -> "EmulatorProcess":
        display = self.options.display or os.environ.get("DISPLAY")
        if not display:
            raise KartStudioError("no X display: run KartStudio on a desktop, or set DISPLAY (headless: start Xvfb)")
        self.rom = check_rom(self.options.rom)
        self.workdir = Path(tempfile.mkdtemp(prefix="kartstudio-m64p-"))
        (self.workdir / "config").mkdir()
        cmd = self.command()
        env = dict(os.environ, DISPLAY=display)
        env["SDL_VIDEODRIVER"] = "x11"  # we find, pin and capture an X11 window (never SDL's dummy video)
        env.update(self.options.env)
        # Saves and screenshots stay private to this run too; SDL must not grab real audio.
        env.setdefault("XDG_DATA_HOME", str(self.workdir / "data"))
        env.setdefault("XDG_CACHE_HOME", str(self.workdir / "cache"))
        env.setdefault("SDL_AUDIODRIVER", "dummy")
        self.log_path = self.workdir / "mupen64plus.log"
        with self.log_path.open("wb") as log:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self.display = display
        return self

    # -- state -----------------------------------------------------------------------
    @property
    def pid(self) -> int:
        if self.process is None:
            raise KartStudioError("the emulator has not been started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> bool:
        """True once the process has ended, waiting up to `timeout` seconds for it."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def log_tail(self, lines: int = 20) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return []
        return text.splitlines()[-lines:]

    def exit_reason(self) -> str | None:
        """None while it runs; otherwise one line saying how it ended and, if it failed, why."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        if self._stopped_by_us:
            return "stopped by KartStudio"
        if code != 0:
            self._keep_log()
        errors = [ln.strip() for ln in self.log_tail(200) if "Error" in ln and not any(h in ln for h in HARMLESS_ERRORS)]
        why = f": {errors[-1]}" if errors else ""
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return f"mupen64plus crashed ({name}){why}"
        if code == 0:
            return "mupen64plus exited (the emulator window was closed or the game stopped)"
        return f"mupen64plus failed with exit status {code}{why}"

    def _keep_log(self) -> None:
        """An abnormal exit: move the log out of the private folder (removed on stop) so the path the
        user is shown still exists; only the newest KEPT_LOGS are kept."""
        if self.workdir is None or not str(self.log_path).startswith(str(self.workdir)):
            return  # kept already, or nothing to keep
        folder = kept_logs_folder()
        target = folder / f"mupen64plus-{time.strftime('%Y%m%d-%H%M%S')}-{self.pid}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_path, target)
        except OSError:
            return  # the log stays where it is until stop; the message names that path
        self.log_path = target
        for old in sorted(folder.glob("mupen64plus-*.log"), key=lambda p: p.stat().st_mtime)[:-KEPT_LOGS]:
            old.unlink(missing_ok=True)

    def check_alive(self) -> None:
        """Raise a KartStudioError naming why, if the emulator is no longer running."""
        reason = self.exit_reason()
        if reason is not None:
            raise KartStudioError(f"{reason} (log: {self.log_path})" if not self._stopped_by_us else reason)

    # -- stop ------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        """End the emulator (SIGTERM, then SIGKILL) and remove its private folder. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self._stopped_by_us = True
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            keep = os.environ.get("KARTSTUDIO_KEEP_EMULATOR_LOG")
            if not keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
