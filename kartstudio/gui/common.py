"""Small helpers shared by the tabs: images to pixmaps, number formats, banners."""

from __future__ import annotations

import time

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from kartstudio.errors import describe_error  # noqa: F401 - re-exported
from kartstudio.formatting import human_duration, human_size  # noqa: F401 - re-exported


def to_qimage(image: np.ndarray) -> QtGui.QImage:
    """An (H, W, 3) RGB, (H, W, 4) RGBA, (H, W, 1) or (H, W) grey array as a QImage (copied, safe
    to keep). ValueError for any other shape: Qt reads past the buffer (SIGSEGV) if the layout is wrong."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or 0 in image.shape:
        raise ValueError(f"cannot show an image of shape {image.shape}")
    if image.dtype != np.uint8:  # floats in 0..1 (model views) or wider integers
        scale = 255.0 if image.dtype.kind == "f" and np.nanmax(image, initial=0) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if image.ndim == 2:
        return QtGui.QImage(image.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
    return QtGui.QImage(image.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()


def to_pixmap(image: np.ndarray) -> QtGui.QPixmap:
    return QtGui.QPixmap.fromImage(to_qimage(image))


def spin_events(app, seconds: float, until=None, step: float = 0.001) -> bool:
    """Run Qt's event loop for up to `seconds` (scripts and benchmarks, not the app).

    With `until`, stop as soon as it returns True and return True; False if it never did.
    """
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(step)
    return until is None


def missing_module(name: str) -> str | None:
    """Why `name` is not part of this build, without importing it (TensorFlow takes seconds)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        found = False
    return None if found else f"{name} is not installed in this build"


class Notice(QtWidgets.QLabel):
    """A coloured one-line banner: info (blue), warning (amber), error (red). Hidden when empty."""

    STYLES = {
        "info": "background:#e3f0ff;color:#123;border:1px solid #9cc3ee;",
        "warning": "background:#fff4d6;color:#4a3500;border:1px solid #e5c46b;",
        "error": "background:#fde2e2;color:#5c0000;border:1px solid #e69a9a;",
    }

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setOpenExternalLinks(False)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        self.level = level if text else ""
        self.setText(text)
        self.setStyleSheet(self.STYLES.get(level, "") + "padding:6px;border-radius:4px;")
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.show_message("")


class ImageView(QtWidgets.QLabel):
    """Shows a numpy image scaled to fit, keeping its aspect ratio."""

    def __init__(self, placeholder: str = "", min_size: tuple[int, int] = (160, 60), parent=None) -> None:
        super().__init__(parent)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)  # click the game's picture to drive with the keys
        self.setMinimumSize(*min_size)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background:#1d1f24;color:#9aa0aa;border-radius:4px;")
        self._pixmap: QtGui.QPixmap | None = None
        self.setText(placeholder)

    def set_image(self, image: np.ndarray | None) -> None:
        if image is None:
            self._pixmap = None
            self.setPixmap(QtGui.QPixmap())
            return
        self._pixmap = to_pixmap(image)
        self._rescale()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is not None:
            self.setPixmap(
                self._pixmap.scaled(
                    self.size(),
                    QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                    QtCore.Qt.TransformationMode.FastTransformation,
                )
            )


# File names end in what tells them apart (date, time, seat), so a name too long for its place is
# cut in the middle, never at the end, and the whole name is always one hover away.
MIDDLE = QtCore.Qt.TextElideMode.ElideMiddle
TIP = QtCore.Qt.ItemDataRole.ToolTipRole


def name_view(view: QtWidgets.QAbstractItemView) -> QtWidgets.QAbstractItemView:
    """A list or table of file names: long ones lose their middle, not their end."""
    view.setTextElideMode(MIDDLE)
    if isinstance(view, QtWidgets.QTableView):
        view.setWordWrap(False)  # a wrapped name is cut at the row's bottom instead
    return view


def name_box(box: QtWidgets.QComboBox) -> QtWidgets.QComboBox:
    """A combo box of file names: the popup elides in the middle, the box's tooltip is the whole name."""
    box.view().setTextElideMode(MIDDLE)

    def tip(*_args) -> None:
        i = box.currentIndex()
        box.setToolTip(str(box.itemData(i, TIP) or box.itemText(i)))

    box.currentIndexChanged.connect(tip)
    box.model().dataChanged.connect(tip)  # an item's tooltip is often set just after it is added
    return box


class NameLabel(QtWidgets.QLabel):
    """A one-line label holding a file name or path: cut in the middle to fit its width, the full
    text as its tooltip. text() stays the whole text; shown() is what fits."""

    elide = MIDDLE

    def __init__(self, text: str = "", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(60)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(text)

    def shown(self) -> str:
        return self.fontMetrics().elidedText(self.text(), self.elide, self.contentsRect().width())

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        return QtCore.QSize(self.minimumWidth(), super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QtGui.QPainter(self)
        self.style().drawItemText(painter, self.contentsRect(), int(self.alignment()), self.palette(),
                                  self.isEnabled(), self.shown(), self.foregroundRole())


class StatusLabel(NameLabel):
    """A one-line status: cut at the end to fit (what matters comes first), the whole text and
    the reason for its colour in the tooltip (set_status)."""

    elide = QtCore.Qt.TextElideMode.ElideRight

    def set_status(self, text: str, why: str = "") -> None:
        super().setText(text)
        self.setToolTip("\n".join(filter(None, [text, why])))


def scroll_page(page: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    """`page` in a frameless scroll area: on a screen shared with the emulator the window may be
    narrower or shorter than the page wants, and every control must still be reachable."""
    area = QtWidgets.QScrollArea()
    if page.layout() is not None:
        page.layout().setContentsMargins(4, 6, 4, 4)  # the tab's frame is margin enough
    area.setWidget(page)
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    area.setFocusProxy(page)
    return area


def narrow(box: QtWidgets.QComboBox, letters: int) -> QtWidgets.QComboBox:
    """A combo box as wide as `letters` characters at least, not as its longest item: a long pad or
    model name must not widen the window past the room beside the emulator."""
    box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(letters)
    return box
