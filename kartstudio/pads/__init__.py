"""Gamepads and other sources of controller states for a seat.

base: PadSource (what the recorder and game loop read), ScriptedPadSource.
sdl: SDL2 gamepads (PadManager, GamepadSource, connected_pads). mapping: SDL -> N64 per pad.
pairing: which pad drives which seat. virtual: SDL virtual pads for tests and demos.
"""

from kartstudio.pads.base import PadSample, PadSource, ScriptedPadSource

__all__ = ["PadSample", "PadSource", "ScriptedPadSource"]
