"""Screenshots of every tab for the docs, made by driving the real window:

    .venv/bin/python -m kartstudio.gui.screenshots docs/screenshots [--source practice|mk64]

It uses a throw-away config and data folder, starts the game, records both seats, trims a range
in the dataset browser, trains a small model for a few epochs, and races it; each tab is
captured while it shows live data. With --source mk64, --rom names the ROM (and --video its plugin).

    .venv/bin/python -m kartstudio.gui.screenshots docs/screenshots --scene raceway-versus [--race-model M.keras]

Versus on KartStudio Raceway in the real emulator, the whole 1920x1080 screen (a private Xvfb with
openbox): the emulator pinned at the top-left, the app beside it, the model on seat 1 (the human-like
Raceway expert stands in for the person on seat 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kartstudio.gui.common import spin_events


def _spin(app, seconds: float, until=None) -> bool:
    return spin_events(app, seconds, until, step=0.005)  # screenshots need no fine timing


def make_screenshots(out: Path, source: str = "practice", record_s: float = 12.0, epochs: int = 3,
                     rom: str = "", video: str = "", race_model: str = "") -> list[Path]:
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="kartstudio-shots-"))
    os.environ["KARTSTUDIO_CONFIG_DIR"] = str(home / "config")
    os.environ["KARTSTUDIO_DATA_DIR"] = str(home / "data")
    from kartstudio.gui.app import grab_png, make_app
    from kartstudio.gui.main_window import MainWindow
    from kartstudio.settings import Settings

    app = make_app()
    settings = Settings(game_source=source, rom_path=rom)
    if video:
        settings.video_plugin = video
    window = MainWindow(settings)
    window.resize(1280, 860)
    window.show()
    shots: list[Path] = []

    def shot(name: str) -> None:
        _spin(app, 0.3)
        shots.append(grab_png(window, out / f"{name}.png"))
        print(f"saved {shots[-1]}")

    try:
        _spin(app, 0.5)
        shot("main")

        # Record: both seats driven (the practice track's expert if present), both recording
        rec = window.record_tab
        window.tabs.setCurrentWidget(rec)
        if not window.start_game():
            raise SystemExit(f"the game did not start: {window.notice.text()}")
        if not _spin(app, 120, lambda: window.game.loop is not None and window.game.loop.status.running):
            raise SystemExit(f"the game did not start: {window.notice.text()}")
        for seat, panel in rec.panels.items():
            if not panel.choose_driver("expert"):
                # no expert in this build: a scripted weaving pad, so the traces show something
                import math

                from kartstudio.controller import ControllerState
                from kartstudio.pads.base import ScriptedPadSource

                pad = ScriptedPadSource(f"scripted demo pad {seat}", policy=lambda seat=seat: ControllerState(
                    x=70 * math.sin(time.monotonic() * (1.3 + 0.4 * seat)), a=True,
                    b=math.sin(time.monotonic() * 0.7 + seat) > 0.8))
                window.game.add_pad(pad)
                rec.refresh_drivers()
                panel.choose_driver(f"pad:{pad.guid}")
        rec.start_all()
        _spin(app, record_s)
        shot("record")
        rec.stop_all()
        _spin(app, 30, lambda: not any(p.busy or p.recording for p in rec.panels.values()))
        # a second, shorter session so training has one to validate on
        rec.start_all()
        _spin(app, record_s / 2)
        rec.stop_all()
        _spin(app, 30, lambda: not any(p.busy or p.recording for p in rec.panels.values()))

        # Datasets: the first seat-1 session, a trimmed range, the cursor mid-way
        ds = window.datasets_tab
        window.tabs.setCurrentWidget(ds)
        ds.refresh()
        ds.table.selectRow(0)
        n = len(ds.session) if ds.session is not None else 0
        if n > 10:
            ds.slider.setValue(int(n * 0.15))
            ds.mark_start()
            ds.slider.setValue(int(n * 0.3))
            ds.mark_end()
            ds.slider.setValue(int(n * 0.55))
        shot("datasets")

        # Training: a few epochs on what was just recorded
        tr = window.training_tab
        window.tabs.setCurrentWidget(tr)
        tr.refresh_sessions()
        tr.select_all_sessions()
        tr.epochs_box.setValue(epochs)
        tr.batch_box.setValue(32)
        tr.val_box.setValue(1)
        tr.name_edit.setText("first-driver")
        if tr.start_training():
            _spin(app, 1800, lambda: not tr.running)
        shot("training")

        # Versus: the model just trained drives seat 1 (or a fully trained one, e.g. bench drive's)
        vs = window.versus_tab
        window.tabs.setCurrentWidget(vs)
        model = window.settings.models_folder / "first-driver.keras"
        if race_model:
            model = window.settings.models_folder / Path(race_model).name
            shutil.copyfile(race_model, model)
        vs.refresh_models()
        if model.exists() and vs.available:
            vs.choose_model(model)
            vs.start_versus()
            _spin(app, 120, lambda: vs.racing and vs.activation_frames > 20)
            _spin(app, 2)
        shot("versus")
        vs.stop_versus()
    finally:
        window.close()
        app.processEvents()
        shutil.rmtree(home, ignore_errors=True)
    return shots


RACEWAY_SHOT = "versus-raceway-{width}x{height}.png"


def make_raceway_versus_shot(out: Path, race_model: str = "", track: int = 3, race_s: float = 10.0,
                             size: tuple[int, int] = (1920, 1080)) -> Path:
    """The whole screen while a model races on Raceway in mupen64plus; returns the PNG's path.
    race_model: a .keras file trained on Raceway (bench drive --game raceway); else an untrained network."""
    import subprocess

    from kartstudio.emulator.xvfb import VirtualDisplay

    home = Path(tempfile.mkdtemp(prefix="kartstudio-shots-"))
    os.environ["KARTSTUDIO_CONFIG_DIR"] = str(home / "config")
    os.environ["KARTSTUDIO_DATA_DIR"] = str(home / "data")
    xvfb = VirtualDisplay(*size)
    os.environ["DISPLAY"] = xvfb.start()  # the app and the emulator share this screen, as on a desktop
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    wm = subprocess.Popen(["openbox"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # frames and stacking
    window = None
    try:
        from kartstudio.raceway.expert import RacewayExpertDriver
        from kartstudio.gui.app import make_app
        from kartstudio.gui.main_window import MainWindow
        from kartstudio.raceway.expert import raceway_human_profile
        from kartstudio.settings import Settings

        app = make_app()
        _spin(app, 1.0)
        window = MainWindow(Settings(game_source="raceway", raceway_track=track))
        window.show()
        vs = window.versus_tab
        window.tabs.setCurrentWidget(vs)
        model = window.settings.models_folder / (Path(race_model).name if race_model else "untrained.keras")
        model.parent.mkdir(parents=True, exist_ok=True)
        if race_model:
            shutil.copyfile(race_model, model)
        else:
            from kartstudio.model import build_model, save_model

            save_model(build_model("kartstudio"), model)
        vs.refresh_models()
        vs.choose_model(model)
        if not vs.start_versus() or not _spin(app, 180, lambda: vs.racing and vs.activation_frames > 5):
            raise SystemExit(f"Versus did not start: {window.notice.text() or vs.notice.text()}")
        window.game.loop.set_driver(2, RacewayExpertDriver(human=raceway_human_profile(), seed=2))
        reader = window.game.backend.state_reader
        _spin(app, 60, lambda: reader.latest is not None and reader.latest.phase == "race")
        _spin(app, race_s)  # into the race: both karts moving, the maps live
        path = out / RACEWAY_SHOT.format(width=size[0], height=size[1])
        out.mkdir(parents=True, exist_ok=True)
        if not app.primaryScreen().grabWindow(0).save(str(path), "PNG"):  # 0: the root window, the whole screen
            raise SystemExit(f"cannot write {path}")
        print(f"saved {path}")
        vs.stop_versus()
        return path
    finally:
        if window is not None:
            window.game.stop()
            window.close()
        wm.terminate()
        wm.wait(5)
        xvfb.stop()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/screenshots")
    parser.add_argument("--source", choices=("practice", "mk64"), default="practice")
    parser.add_argument("--record-seconds", type=float, default=12.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rom", default="", help="with --source mk64: the ROM to run")
    parser.add_argument("--video", default="", help="with --source mk64: the video plugin")
    parser.add_argument("--race-model", default="", metavar="FILE.keras",
                        help="race this model in the Versus shot (e.g. the one `bench drive --folder` trained)")
    parser.add_argument("--scene", choices=("tabs", "raceway-versus"), default="tabs",
                        help="tabs: every tab (default); raceway-versus: Versus on KartStudio Raceway in the "
                             "emulator, the whole 1920x1080 screen")
    parser.add_argument("--track", type=int, default=3, help="with --scene raceway-versus: the Raceway track")
    parser.add_argument("--size", default="1920x1080", metavar="WxH",
                        help="with --scene raceway-versus: the screen (1366x768: a common laptop)")
    args = parser.parse_args(argv)
    if args.scene == "raceway-versus":
        width, height = (int(v) for v in args.size.lower().split("x"))
        make_raceway_versus_shot(Path(args.out), args.race_model, args.track, size=(width, height))
        return 0
    make_screenshots(Path(args.out), args.source, args.record_seconds, args.epochs, args.rom, args.video,
                     args.race_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
