"""Virtual gamepads that SDL really enumerates (SDL2's virtual joystick API).

For tests and demos without hardware: KartStudio's pad layer sees them exactly as it sees a USB
pad. They use SDL's game-controller layout (buttons A, B, X, Y, Back, Guide, Start, sticks,
shoulders, D-pad; axes left x/y, right x/y, triggers).
"""

from __future__ import annotations

import ctypes

from kartstudio.errors import KartStudioError
from kartstudio.pads import sdl2lib

SDL_JOYSTICK_TYPE_GAMECONTROLLER = 1
SDL_VIRTUAL_JOYSTICK_DESC_VERSION = 1


class _Desc(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint16),
        ("type", ctypes.c_uint16),
        ("naxes", ctypes.c_uint16),
        ("nbuttons", ctypes.c_uint16),
        ("nhats", ctypes.c_uint16),
        ("vendor_id", ctypes.c_uint16),
        ("product_id", ctypes.c_uint16),
        ("padding", ctypes.c_uint16),
        ("button_mask", ctypes.c_uint32),
        ("axis_mask", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("userdata", ctypes.c_void_p),
        ("Update", ctypes.c_void_p),
        ("SetPlayerIndex", ctypes.c_void_p),
        ("Rumble", ctypes.c_void_p),
        ("RumbleTriggers", ctypes.c_void_p),
        ("SetLED", ctypes.c_void_p),
        ("SendEffect", ctypes.c_void_p),
    ]


class VirtualPad:
    """One virtual game controller. Distinct vendor/product ids give distinct GUIDs."""

    def __init__(self, name: str = "KartStudio virtual pad", vendor: int = 0x4B53, product: int = 1) -> None:
        sdl2lib.init_controllers()
        self.lib = sdl2lib.sdl()
        self.name = name
        self._name = name.encode()
        desc = _Desc(
            version=SDL_VIRTUAL_JOYSTICK_DESC_VERSION, type=SDL_JOYSTICK_TYPE_GAMECONTROLLER,
            naxes=6, nbuttons=15, nhats=0, vendor_id=vendor, product_id=product, name=self._name,
        )
        self.index = self.lib.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
        if self.index < 0:
            raise KartStudioError(f"SDL could not create a virtual pad: {sdl2lib.error()}")
        self.guid = sdl2lib.device_guid(self.index)
        self._handle = self.lib.SDL_JoystickOpen(self.index)
        if not self._handle:
            raise KartStudioError(f"SDL could not open the virtual pad: {sdl2lib.error()}")

    def set_axis(self, axis: int, value: int) -> None:
        self.lib.SDL_JoystickSetVirtualAxis(self._handle, axis, max(-32768, min(32767, int(value))))

    def set_button(self, button: int, pressed: bool) -> None:
        self.lib.SDL_JoystickSetVirtualButton(self._handle, button, 1 if pressed else 0)

    def detach(self) -> None:
        """Unplug it."""
        if self._handle:
            self.lib.SDL_JoystickClose(self._handle)
            self._handle = None
            # the device index may have moved since attaching: find ours by GUID and name
            for i in range(self.lib.SDL_NumJoysticks()):
                if sdl2lib.device_guid(i) == self.guid and (self.lib.SDL_JoystickNameForIndex(i) or b"") == self._name:
                    self.lib.SDL_JoystickDetachVirtual(i)
                    break
