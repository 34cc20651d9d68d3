"""The keyboard as a pad, fed by the window's key events (the fallback when no gamepad is paired).

Arrows steer (full stick), X = A (accelerate), C = B (brake), Z = Z (item), Shift = R (hop),
Q = L (in versus mode: take over seat 1 from the AI), Enter = Start. Only while the Record or
Versus tab has the focus: keys in dialogs, other tabs, text fields and lists are left alone.
"""

from __future__ import annotations

from typing import Callable

from PyQt6 import QtCore, QtWidgets

from kartstudio.controller import STICK_MAX, ControllerState
from kartstudio.pads.base import PadSource

Key = QtCore.Qt.Key
BUTTON_KEYS = {
    Key.Key_X: "a",
    Key.Key_C: "b",
    Key.Key_Z: "z",
    Key.Key_Shift: "r",
    Key.Key_Q: "l",
    Key.Key_Return: "start",
    Key.Key_Enter: "start",
}
STICK_KEYS = {Key.Key_Left, Key.Key_Right, Key.Key_Up, Key.Key_Down}
HELP = "Keyboard: arrows steer, X accelerate (A), C brake (B), Z item, Shift hop (R), Q take over (L), Enter start"


class QtKeyboardPad(PadSource):
    name = "Keyboard"
    guid = "keyboard"

    def __init__(self) -> None:
        super().__init__()
        self._down: set[int] = set()
        self.enabled = False  # True while a running game reads this pad; then game keys are ours

    def handle_key(self, key: int, pressed: bool) -> bool:
        """Update the pad from one key; True if the key is one of ours."""
        if key not in BUTTON_KEYS and key not in STICK_KEYS:
            return False
        if pressed:
            self._down.add(key)
        else:
            self._down.discard(key)
        self.push(self._state())
        return True

    @property
    def held(self) -> set[int]:
        return set(self._down)

    def release_all(self) -> None:
        """The window lost focus: a key held then must not stay pressed forever."""
        if self._down:
            self._down.clear()
            self.push(self._state())

    def _state(self) -> ControllerState:
        d = self._down
        x = (Key.Key_Right in d) - (Key.Key_Left in d)
        y = (Key.Key_Up in d) - (Key.Key_Down in d)
        buttons = {name: True for key, name in BUTTON_KEYS.items() if key in d}
        return ControllerState(x=x * STICK_MAX, y=y * STICK_MAX, **buttons)


# Widgets that need the arrows, letters or Enter themselves: typing, lists, sliders.
OWN_KEYS = (QtWidgets.QLineEdit, QtWidgets.QAbstractSpinBox, QtWidgets.QTextEdit, QtWidgets.QPlainTextEdit,
            QtWidgets.QComboBox, QtWidgets.QAbstractSlider, QtWidgets.QAbstractItemView)


class KeyboardFilter(QtCore.QObject):
    """Application-wide event filter that routes game keys to a QtKeyboardPad.

    game_views: the widgets whose focus means "playing" (the Record and Versus tabs). Keys go to
    the pad only while a game reads it, the focus is in one of them and not in a widget that uses
    the keys itself; a dialog, another tab, a text field or a scrubber keep their keys.
    """

    def __init__(self, pad: QtKeyboardPad, parent: QtCore.QObject | None = None,
                 game_views: Callable[[], list[QtWidgets.QWidget]] | None = None) -> None:
        super().__init__(parent)
        self.pad = pad
        self.game_views = game_views or (lambda: [])

    def playing(self, focus: QtWidgets.QWidget | None) -> bool:
        if focus is None or isinstance(focus, OWN_KEYS) or QtWidgets.QApplication.activeModalWidget() is not None:
            return False
        return any(view.isVisible() and (view is focus or view.isAncestorOf(focus)) for view in self.game_views())

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        t = event.type()
        if t in (QtCore.QEvent.Type.KeyPress, QtCore.QEvent.Type.KeyRelease):
            ours = event.key() in BUTTON_KEYS or event.key() in STICK_KEYS
            if not self.pad.enabled or not ours:
                return False
            if t == QtCore.QEvent.Type.KeyRelease and event.key() in self.pad.held:
                pass  # a key pressed while playing is let go wherever the focus went
            elif not self.playing(QtWidgets.QApplication.focusWidget()):
                return False
            if not event.isAutoRepeat():
                self.pad.handle_key(event.key(), t == QtCore.QEvent.Type.KeyPress)
            return True
        if t == QtCore.QEvent.Type.ApplicationDeactivate:
            self.pad.release_all()
        return False
