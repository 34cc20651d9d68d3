"""Widgets used by more than one tab: the pad meter and the activation-map grid."""

from __future__ import annotations

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from kartstudio.controller import NEUTRAL, STICK_MAX, ControllerState

METER_BUTTONS = (("a", "A"), ("b", "B"), ("z", "Z"), ("r", "R"), ("l", "L"), ("start", "S"))


class PadMeter(QtWidgets.QWidget):
    """A live view of one controller: the stick as a dot in its circle, the main buttons as lamps."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state: ControllerState = NEUTRAL
        # the stick's circle and the six button lamps (see paintEvent) always fit; the text may be cut short
        self.setMinimumSize(64 + 16 + 28 * len(METER_BUTTONS) + 4, 64)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_state(self, state: ControllerState) -> None:
        if state != self.state:
            self.state = state
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        h = self.height()
        r = (h - 8) / 2
        cx, cy = 4 + r, h / 2
        p.setPen(QtGui.QPen(QtGui.QColor("#888"), 1.5))
        p.setBrush(QtGui.QColor("#2a2d33"))
        p.drawEllipse(QtCore.QPointF(cx, cy), r, r)
        p.drawLine(QtCore.QPointF(cx - r, cy), QtCore.QPointF(cx + r, cy))
        p.drawLine(QtCore.QPointF(cx, cy - r), QtCore.QPointF(cx, cy + r))
        sx = self.state.x / STICK_MAX
        sy = self.state.y / STICK_MAX
        p.setBrush(QtGui.QColor("#46b3ff"))
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        # N64 y is positive when the stick is pushed up; screen y grows downwards.
        p.drawEllipse(QtCore.QPointF(cx + sx * (r - 5), cy - sy * (r - 5)), 5, 5)
        x = 2 * r + 16
        font = p.font()
        font.setBold(True)
        p.setFont(font)
        for name, label in METER_BUTTONS:
            on = getattr(self.state, name)
            p.setBrush(QtGui.QColor("#3ddc84" if on else "#3a3d44"))
            p.setPen(QtGui.QPen(QtGui.QColor("#777"), 1))
            rect = QtCore.QRectF(x, cy - 12, 24, 24)
            p.drawRoundedRect(rect, 5, 5)
            p.setPen(QtGui.QColor("#111" if on else "#bbb"))
            p.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, label)
            x += 28
        p.setPen(QtGui.QColor("#555"))
        text = f"x {self.state.x:+d}  y {self.state.y:+d}"
        text = p.fontMetrics().elidedText(text, QtCore.Qt.TextElideMode.ElideRight, max(0, int(self.width() - x - 6)))
        p.drawText(QtCore.QPointF(x + 6, cy + 5), text)
        p.end()


def tile_maps(maps: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """(H, W, C) feature maps -> one (rows*H, cols*W) uint8 grey mosaic, each map scaled to 0..255."""
    if maps.ndim == 4:
        maps = maps[0]
    h, w, c = maps.shape
    columns = columns or int(np.ceil(np.sqrt(c * w / max(h, 1) * 0.5))) or 1
    columns = max(1, min(c, columns))
    rows = int(np.ceil(c / columns))
    lo = maps.min(axis=(0, 1), keepdims=True)
    hi = maps.max(axis=(0, 1), keepdims=True)
    scaled = ((maps - lo) / np.maximum(hi - lo, 1e-6) * 255).astype(np.uint8)
    out = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad), 40, np.uint8)
    for i in range(c):
        r, col = divmod(i, columns)
        out[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = scaled[:, :, i]
    return out
