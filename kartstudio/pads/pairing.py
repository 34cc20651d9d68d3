"""Which pad drives which seat: "Seat 1: press any button on your pad", then seat 2.

Qt-free. The assignment is kept by pad identity (GUID) in the config folder and restored at
the next launch; a paired pad that is not plugged in is named, so the user knows which to find.
"""

from __future__ import annotations

from dataclasses import dataclass

from kartstudio.configfile import need, read_json_config
from kartstudio.paths import config_dir, write_json

SEATS = (1, 2)


@dataclass
class Pairing:
    key: str  # the pad's identity (GamepadSource.key: GUID, or GUID#2 for a second identical pad)
    name: str


class PairingModel:
    def __init__(self, manager) -> None:
        self.manager = manager  # a kartstudio.pads.sdl.PadManager (or anything with connected())
        self.seats: dict[int, Pairing] = self._load()
        self.listening: int | None = None
        self.message = ""
        self._held: dict[str, set[str]] = {}

    # -- listening for "press any button" ------------------------------------------------------
    def listen(self, seat: int) -> None:
        """Wait for a pad to press a button for `seat`. Buttons already held do not count."""
        self.listening = seat
        self._held = {pad.key: set(pad.pressed) for pad in self.manager.connected()}
        self.message = f"Seat {seat}: press any button on your pad"

    def poll(self) -> int | None:
        """Check the pads once; returns the seat that just got a pad, if any."""
        if self.listening is None:
            return None
        for pad in self.manager.connected():
            fresh = set(pad.pressed) - self._held.get(pad.key, set())
            self._held[pad.key] = set(pad.pressed)
            if not fresh:
                continue
            seat = self.listening
            other = next((s for s, p in self.seats.items() if p.key == pad.key and s != seat), None)
            if other is not None:
                self.message = f"{pad.name} already drives seat {other}: seat {seat} needs another pad"
                continue
            self.seats[seat] = Pairing(pad.key, pad.name)
            self._save()
            self.listening = None
            self.message = f"Seat {seat}: {pad.name}"
            return seat
        return None

    def cancel(self) -> None:
        self.listening = None
        self.message = ""

    def clear(self, seat: int) -> None:
        """Seat `seat` drives with the keyboard until a pad is paired with it again."""
        if self.listening == seat:
            self.cancel()
        self.seats.pop(seat, None)
        self._save()
        self.message = f"Seat {seat}: no pad (keyboard)"

    def swap(self) -> None:
        """Seat 1's pad drives seat 2 and seat 2's seat 1 (either may have none)."""
        first, second = SEATS
        one, two = self.seats.pop(first, None), self.seats.pop(second, None)
        if two is not None:
            self.seats[first] = two
        if one is not None:
            self.seats[second] = one
        self.cancel()  # a pad being waited for would land on a seat the user no longer means
        self._save()
        names = [self.seats[s].name if s in self.seats else "no pad" for s in SEATS]
        self.message = f"Seats swapped: seat {first} {names[0]}, seat {second} {names[1]}"

    # -- what the rest of the app asks ----------------------------------------------------------
    def pad_for(self, seat: int):
        """The pad object paired with `seat` (plugged in or not), or None."""
        pairing = self.seats.get(seat)
        if pairing is None:
            return None
        return next((p for p in self.manager.known() if p.key == pairing.key), None)

    def missing(self) -> dict[int, str]:
        """Seats whose paired pad is not plugged in now -> that pad's name."""
        plugged = {p.key for p in self.manager.connected()}
        return {seat: p.name for seat, p in self.seats.items() if p.key not in plugged}

    # -- persistence ---------------------------------------------------------------------------
    @staticmethod
    def _file():
        return config_dir() / "pairing.json"

    def _load(self) -> dict[int, Pairing]:
        return read_json_config(self._file(), _checked_pairing, "the pad pairing file") or {}

    def _save(self) -> None:
        path = self._file()
        write_json(path, {str(seat): {"key": p.key, "name": p.name} for seat, p in self.seats.items()})


def _checked_pairing(data) -> dict[int, Pairing]:
    """pairing.json's content: {"1": {"key": ..., "name": ...}, ...}, every field checked."""
    need(isinstance(data, dict), "it is not a JSON object")
    seats = {}
    for seat, p in data.items():
        need(seat in {str(s) for s in SEATS}, f"seat {seat!r} is not one of {', '.join(map(str, SEATS))}")
        need(isinstance(p, dict) and isinstance(p.get("key"), str) and isinstance(p.get("name"), str),
             f"seat {seat} is {p!r}; expected {{\"key\": text, \"name\": text}}")
        seats[int(seat)] = Pairing(p["key"], p["name"])
    return seats
