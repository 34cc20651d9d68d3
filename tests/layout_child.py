"""Run by tests/test_gui_layout.py (and by hand for screenshots) in its own process: the app on a real
X display (Xvfb + openbox, Qt's xcb platform) beside the real emulator running the test ROM.

    python tests/layout_child.py ROM [--shot FILE.png] [--tab NAME]

Starts the game, waits for the window to step aside, then prints one JSON line: where the
emulator's and the app's windows are (as the X server has them), every visible control that lies
under the emulator or off the screen, the tab pages that are wider than their room, and whether
the emulator's frames flow uncovered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("KARTSTUDIO_CONFIG_DIR", tempfile.mkdtemp(prefix="ks-layout-config-"))
os.environ.setdefault("KARTSTUDIO_DATA_DIR", tempfile.mkdtemp(prefix="ks-layout-data-"))
os.environ["QT_QPA_PLATFORM"] = "xcb"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rom")
    parser.add_argument("--shot", default="")
    parser.add_argument("--tab", default="Record")
    args = parser.parse_args()

    from PyQt6 import QtCore, QtWidgets

    from kartstudio.emulator.window import Geometry, ScreenCheck, _intersects
    from kartstudio.gui.app import make_app
    from kartstudio.gui.common import spin_events
    from kartstudio.gui.main_window import MainWindow
    from kartstudio.settings import Settings

    app = make_app()
    window = MainWindow(Settings(game_source="mk64", rom_path=args.rom))
    window.show()
    spin_events(app, 1.0)
    if not window.start_game():
        print(json.dumps({"error": window.notice.text()}))
        return 1
    started = spin_events(app, 90, lambda: window.game.loop is not None and window.game.loop.status.running)
    if not started:
        print(json.dumps({"error": f"the game did not start: {window.notice.text()}"}))
        return 1
    spin_events(app, 1.5)  # the window manager moves and resizes the window

    emulator = window.game.window_frame()
    screen = window.screen().geometry()
    # The X server's own answer for the app's frame (not Qt's idea of it).
    check = ScreenCheck(int(window.winId()), os.environ["DISPLAY"])
    app_frame = check.frame_geometry()
    emu = Geometry(*emulator)
    controls = (QtWidgets.QAbstractButton, QtWidgets.QComboBox, QtWidgets.QLineEdit, QtWidgets.QAbstractSpinBox,
                QtWidgets.QAbstractSlider, QtWidgets.QTabBar, QtWidgets.QMenuBar, QtWidgets.QAbstractItemView,
                QtWidgets.QLabel)
    under, off_screen, too_wide, seen = [], [], [], 0
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)
        spin_events(app, 0.3)
        area = window.tabs.widget(i)
        page = area.widget()
        if page.minimumSizeHint().width() > area.viewport().width():
            too_wide.append(f"{window.tabs.tabText(i)}: needs {page.minimumSizeHint().width()} px, has "
                            f"{area.viewport().width()}")
        for widget in window.findChildren(QtWidgets.QWidget):
            if not isinstance(widget, controls) or not widget.isVisible() or isinstance(widget, QtWidgets.QScrollBar):
                continue
            seen += 1
            top_left = widget.mapToGlobal(QtCore.QPoint(0, 0))
            rect = Geometry(top_left.x(), top_left.y(), widget.width(), widget.height())
            name = f"{type(widget).__name__} {getattr(widget, 'text', lambda: '')()!r}"[:80]
            if _intersects(rect, emu):
                under.append(name)
            if rect.x < 0 or rect.y < 0 or rect.x + rect.width > screen.width() or rect.y + rect.height > screen.height():
                # Off the screen is fine only inside a scroll area (scrolled out of view, reachable).
                if not any(isinstance(p, QtWidgets.QScrollArea) for p in _parents(widget)):
                    off_screen.append(name)
    window.tabs.setCurrentIndex(max(0, [window.tabs.tabText(i) for i in range(window.tabs.count())].index(args.tab)))
    before = window.game.loop.status.frames
    spin_events(app, 1.5)
    result = {
        "screen": [screen.width(), screen.height()],
        "emulator": list(emulator),
        "app": [app_frame.x, app_frame.y, app_frame.width, app_frame.height],
        "overlap": _intersects(app_frame, emu),
        "under_emulator": sorted(set(under)),
        "off_screen": sorted(set(off_screen)),
        "too_wide": too_wide,
        "controls_seen": seen,
        "capture_problem": window.game.capture_problem(),
        "frames_flowing": window.game.loop.status.frames - before,
        "status": window.status_label.text(),
    }
    if args.shot:
        import mss
        import mss.tools

        factory = getattr(mss, "MSS", None) or mss.mss
        with factory(display=os.environ["DISPLAY"]) as sct:
            raw = sct.grab(sct.monitors[0])
            mss.tools.to_png(raw.rgb, raw.size, output=args.shot)
        result["shot"] = args.shot
    check.close()
    print(json.dumps(result), flush=True)
    window.force_close = True
    window.close()
    return 0


def _parents(widget):
    p = widget.parentWidget()
    while p is not None:
        yield p
        p = p.parentWidget()


if __name__ == "__main__":
    sys.exit(main())
