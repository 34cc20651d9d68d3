"""The SDL2 library pygame ships, reached with ctypes for what pygame does not expose
(game-controller reads from any thread, virtual joysticks)."""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache

from kartstudio.errors import KartStudioError

SDL_INIT_JOYSTICK = 0x00000200
SDL_INIT_GAMECONTROLLER = 0x00002000
SDL_IGNORE = 0


class SDL_JoystickGUID(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint8 * 16)]


def _signatures(lib: ctypes.CDLL) -> None:
    p, i, u8, s16, u32, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8, ctypes.c_int16, ctypes.c_uint32, ctypes.c_char_p
    table = {
        "SDL_InitSubSystem": (i, [u32]),
        "SDL_SetHint": (i, [cs, cs]),
        "SDL_GetError": (cs, []),
        "SDL_NumJoysticks": (i, []),
        "SDL_JoystickUpdate": (None, []),
        "SDL_JoystickEventState": (i, [i]),
        "SDL_GameControllerEventState": (i, [i]),
        "SDL_JoystickGetDeviceInstanceID": (i, [i]),
        "SDL_JoystickGetDeviceGUID": (SDL_JoystickGUID, [i]),
        "SDL_JoystickGetGUIDString": (None, [SDL_JoystickGUID, ctypes.c_char_p, i]),
        "SDL_JoystickNameForIndex": (cs, [i]),
        "SDL_IsGameController": (i, [i]),
        "SDL_GameControllerOpen": (p, [i]),
        "SDL_GameControllerClose": (None, [p]),
        "SDL_GameControllerGetAttached": (i, [p]),
        "SDL_GameControllerGetAxis": (s16, [p, i]),
        "SDL_GameControllerGetButton": (u8, [p, i]),
        "SDL_JoystickOpen": (p, [i]),
        "SDL_JoystickClose": (None, [p]),
        "SDL_JoystickGetAttached": (i, [p]),
        "SDL_JoystickGetAxis": (s16, [p, i]),
        "SDL_JoystickGetButton": (u8, [p, i]),
        "SDL_JoystickNumAxes": (i, [p]),
        "SDL_JoystickNumButtons": (i, [p]),
        "SDL_JoystickAttachVirtualEx": (i, [p]),
        "SDL_JoystickDetachVirtual": (i, [i]),
        "SDL_JoystickSetVirtualAxis": (i, [p, i, s16]),
        "SDL_JoystickSetVirtualButton": (i, [p, i, u8]),
        "SDL_JoystickSetVirtualHat": (i, [p, i, u8]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


@lru_cache(maxsize=1)
def sdl() -> ctypes.CDLL:
    """The SDL2 that pygame loaded (one library instance, shared with pygame)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        raise KartStudioError("pygame is not installed: run ./setup.sh again") from None
    base = os.path.dirname(pygame.__file__)
    candidates = sorted(glob.glob(os.path.join(base, "..", "pygame.libs", "libSDL2-*.so*")))
    candidates += sorted(glob.glob(os.path.join(base, "libSDL2*.so*")))
    candidates += ["libSDL2-2.0.so.0"]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        _signatures(lib)
        return lib
    raise KartStudioError("SDL2 not found next to pygame: reinstall pygame (./setup.sh)")


def error() -> str:
    return (sdl().SDL_GetError() or b"").decode(errors="replace")


def init_controllers() -> None:
    """Start SDL's joystick and game-controller parts. We read state ourselves, so no events."""
    lib = sdl()
    lib.SDL_SetHint(b"SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", b"1")  # pads work when unfocused
    lib.SDL_SetHint(b"SDL_NO_SIGNAL_HANDLERS", b"1")  # SIGTERM/SIGINT stay the app's (SDL would swallow them)
    if lib.SDL_InitSubSystem(SDL_INIT_JOYSTICK | SDL_INIT_GAMECONTROLLER) != 0:
        raise KartStudioError(f"SDL could not start its gamepad support: {error()}")
    lib.SDL_JoystickEventState(SDL_IGNORE)
    lib.SDL_GameControllerEventState(SDL_IGNORE)


def device_guid(index: int) -> str:
    buf = ctypes.create_string_buffer(33)
    sdl().SDL_JoystickGetGUIDString(sdl().SDL_JoystickGetDeviceGUID(index), buf, 33)
    return buf.value.decode()
