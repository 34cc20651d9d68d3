"""Start-up: the QApplication and the main window; `run(screenshot=PATH)` renders it to a PNG and exits."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kartstudio.errors import KartStudioError


def _qt_messages(kind, context, message) -> None:
    # The offscreen platform (screenshots, tests) warns about window hints it cannot honour.
    if "propagateSizeHints" in message:
        return
    print(message, file=sys.stderr)


def make_app(argv: list[str] | None = None):
    from PyQt6 import QtCore, QtWidgets

    QtCore.qInstallMessageHandler(_qt_messages)

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(argv if argv is not None else sys.argv[:1])
        app.setApplicationName("KartStudio")
        app.setOrganizationName("KartStudio")
        app.setDesktopFileName("kartstudio")
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True)
    return app


def grab_png(widget, path: str | os.PathLike) -> Path:
    """Render `widget` (the whole window) to a PNG file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KartStudioError(f"cannot create the folder for {path}: {exc.strerror}") from None
    if not widget.grab().save(str(path), "PNG"):
        raise KartStudioError(f"cannot write the screenshot {path}; check the folder is writable")
    return path


def _close_on_signals(app, window) -> None:
    """SIGTERM and SIGINT close the window as Quit does (recordings are finished), without asking.

    Python runs signal handlers only between bytecodes, so a timer hands it the thread now and then
    while Qt's event loop runs in C++."""
    import signal

    from PyQt6 import QtCore

    def close_now() -> None:
        window.force_close = True
        window.close()
        app.quit()

    def close(signum, _frame) -> None:
        # The handler runs between any two bytecodes, maybe inside a widget's paintEvent with its
        # QPainter open (Qt then warns about QBackingStore::endPaint): close from the event loop.
        QtCore.QTimer.singleShot(0, close_now)

    signal.signal(signal.SIGTERM, close)
    signal.signal(signal.SIGINT, close)
    timer = QtCore.QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(200)


def _unreachable_display() -> str | None:
    """Why the X display in $DISPLAY cannot be reached, or None (then Qt may try).

    Qt's xcb plugin aborts the process with several lines when it cannot connect; asking first
    gives the one line instead."""
    import socket

    display = os.environ.get("DISPLAY", "")
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not display or os.environ.get("WAYLAND_DISPLAY") or (platform and not platform.startswith("xcb")):
        return None
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return f"DISPLAY={display} is not a display name like :0; run kartstudio in a desktop session"
    try:
        if host in ("", "unix") or host.startswith("/"):
            path = display.split(":")[0] if host.startswith("/") else f"/tmp/.X11-unix/X{number}"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                try:
                    sock.connect(path)
                except OSError:  # Linux X servers also listen in the abstract namespace
                    sock.connect("\0" + f"/tmp/.X11-unix/X{number}")
        else:
            socket.create_connection((host, 6000 + int(number)), timeout=2).close()
    except OSError as exc:
        return (f"cannot reach the display DISPLAY={display} ({exc.strerror or exc}); run kartstudio in a desktop "
                "session, or use `kartstudio gui --screenshot FILE.png` headless")
    return None


def run(screenshot: str | os.PathLike | None = None, settle_ms: int = 600) -> int:
    """Open the window. With `screenshot`, save the window as a PNG after start-up and exit.

    Without a display the screenshot renders offscreen (QT_QPA_PLATFORM=offscreen is set for it).
    """
    # SDL (gamepads, pygame) would otherwise turn SIGTERM/SIGINT into an event nobody reads.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY") \
        and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM")
    if headless:
        if screenshot is None:
            raise KartStudioError("no display to open the window on (DISPLAY is not set): run kartstudio in a "
                                  "desktop session, or use `kartstudio gui --screenshot FILE.png` headless")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    problem = _unreachable_display()
    if problem:
        raise KartStudioError(problem)
    try:
        app = make_app()
    except Exception as exc:  # noqa: BLE001 - e.g. no display and no Qt platform plugin
        raise KartStudioError(f"cannot open a window ({exc}); run it in a desktop session") from None
    from PyQt6 import QtCore

    from kartstudio.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    _close_on_signals(app, window)
    result: dict = {}
    if screenshot is not None:
        def shoot() -> None:
            try:
                result["path"] = grab_png(window, screenshot)
            except KartStudioError as exc:
                result["error"] = exc
            window.close()
            app.quit()

        QtCore.QTimer.singleShot(settle_ms, shoot)
    code = app.exec()
    if "error" in result:
        raise result["error"]
    if "path" in result:
        print(f"saved {result['path']}")
    return code
