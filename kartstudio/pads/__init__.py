"""Gamepads and other sources of controller states for a seat."""

from kartstudio.pads.base import PadSample, PadSource, ScriptedPadSource

__all__ = ["PadSample", "PadSource", "ScriptedPadSource"]
