"""KartStudio's side of the input plugin: hands controller states to mupen64plus, hears back each poll.

The plugin (plugin/kartstudio_input.c) is the server. KartStudio makes a fresh endpoint per launch
(a socket path in a private folder and a random token), passes ``endpoint.env()`` to mupen64plus,
then connects::

    endpoint = PluginEndpoint.create(controllers=(1, 2))
    proc = subprocess.Popen([...mupen64plus..., "--input", str(plugin_path())], env={**os.environ, **endpoint.env()})
    with PluginClient(endpoint).connect(timeout=10) as client:
        client.send_states({1: ControllerState(a=True), 2: NEUTRAL})   # free-run: latest wins
        for report in client.polls():                                  # what the game actually read
            ...
        client.set_lockstep(True)
        reports = client.step({1: ControllerState(x=40, a=True)})      # one poll per step

The wire format is in docs/plugin-protocol.md; the constants here mirror plugin/protocol.h.
"""

from __future__ import annotations

import collections
import os
import secrets
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from kartstudio.controller import ControllerState
from kartstudio.errors import KartStudioError

MAGIC = b"KSIP"
VERSION = 1
MSG_SIZE = 64
TOKEN_SIZE = 32
HEADER = struct.Struct("<4sHHII")  # magic, version, type, seq, reserved (0)

# KartStudio -> plugin
HELLO, STATES, STEP, MODE, STATS_REQ, KEEPALIVE, SYNC = 1, 2, 3, 4, 5, 6, 7
# plugin -> KartStudio
WELCOME, POLL, READY, STATS, MODE_ACK, SYNC_ACK = 0x81, 0x82, 0x83, 0x84, 0x85, 0x86
GAME_STATE = 0x87  # a game's own state bytes from the state channel port (KARTSTUDIO_STATE_CHANNEL)

# Where the state a poll returned came from.
SOURCES = {0: "state", 1: "no-client", 2: "silence", 3: "lockstep-timeout", 4: "no-state-yet"}

DEFAULT_LOCKSTEP_TIMEOUT_MS = 2000
KEEPALIVE_S = 0.025  # well inside the plugin's 100 ms silence limit
PLUGIN_FILE = "mupen64plus-input-kartstudio.so"
SOCKET_PATH_MAX = 107  # sockaddr_un.sun_path, less the final NUL

_STATES_PAYLOAD = struct.Struct("<I4I")  # mask, buttons for controllers 1-4
_POLL_PAYLOAD = struct.Struct("<BBxxIQI")  # controller, source, buttons, t_ns, state_seq
_STATS_PAYLOAD = struct.Struct("<Q8I")
_WELCOME_PAYLOAD = struct.Struct("<4I")


class PluginError(KartStudioError):
    """The emulator's input plugin could not be reached, refused us, or stopped answering."""


# A sync answers in microseconds; on a host at load 10 on two cores the emulator (whose thread
# answers) was once starved for over a second, and a 15-minute recording stopped 90% through.
SYNC_TIMEOUT_S = 5.0


def plugin_path() -> Path:
    """Where the built plugin is: $KARTSTUDIO_PLUGIN, else plugin/ of this checkout (``make -C plugin``)."""
    override = os.environ.get("KARTSTUDIO_PLUGIN")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "plugin" / PLUGIN_FILE


def encode(msg_type: int, seq: int = 0, payload: bytes = b"") -> bytes:
    """One wire message: header + payload, zero-padded to MSG_SIZE."""
    return (HEADER.pack(MAGIC, VERSION, msg_type, seq, 0) + payload).ljust(MSG_SIZE, b"\0")


def encode_states(msg_type: int, seq: int, states: Mapping[int, ControllerState]) -> bytes:
    mask, buttons = 0, [0, 0, 0, 0]
    for controller, state in states.items():
        if controller not in (1, 2, 3, 4):
            raise ValueError(f"controller {controller} is not 1-4")
        mask |= 1 << (controller - 1)
        buttons[controller - 1] = state.to_buttons()
    if not mask:
        raise ValueError("no controller states given")
    return encode(msg_type, seq, _STATES_PAYLOAD.pack(mask, *buttons))


@dataclass(frozen=True, slots=True)
class PollReport:
    """One GetKeys call: which controller, its poll counter, exactly what the game read, and when."""

    controller: int  # 1-4
    poll: int  # that controller's poll counter in the plugin (1 = first poll)
    buttons: int  # the BUTTONS value GetKeys returned
    t_ns: int  # the plugin's CLOCK_MONOTONIC at the poll (same clock as time.monotonic_ns())
    state_seq: int  # which message's state it was (0 = none: neutral)
    source: str  # "state", or why it was neutral: "no-client", "silence", "lockstep-timeout", "no-state-yet"

    @property
    def state(self) -> ControllerState:
        return ControllerState.from_buttons(self.buttons)


@dataclass(frozen=True, slots=True)
class GameStatePacket:
    """Bytes a game sent to the plugin's state channel port (one joybus command, as the game wrote it)."""

    seq: int  # the plugin's packet counter (1 = first)
    controller: int  # the port it came in on (1-4)
    data: bytes


def _private_dir(path: Path) -> Path:
    """Creates (mode 0700) or checks a folder only this user can enter."""
    try:
        path.mkdir(mode=0o700, parents=False, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise PluginError(f"cannot create the plugin socket folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PluginError(f"{path} is not a folder owned by you: remove it or set XDG_RUNTIME_DIR")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR/kartstudio, or /tmp/kartstudio-<uid> where there is no runtime dir."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir() and os.access(xdg, os.W_OK):
        return _private_dir(Path(xdg) / "kartstudio")
    return _private_dir(Path(f"/tmp/kartstudio-{os.geteuid()}"))


@dataclass(frozen=True)
class PluginEndpoint:
    """Where one emulator launch's plugin listens, and the token it will ask for."""

    path: Path
    token: bytes = field(repr=False)  # a secret: never in logs
    controllers: tuple[int, ...] = (1, 2)

    @classmethod
    def create(cls, controllers: Iterable[int] = (1, 2), folder: str | os.PathLike | None = None) -> "PluginEndpoint":
        controllers = tuple(sorted(set(int(c) for c in controllers)))
        if not controllers or any(c not in (1, 2, 3, 4) for c in controllers):
            raise PluginError(f"controllers {controllers} must be some of 1, 2, 3, 4")
        base = _private_dir(Path(folder)) if folder is not None else runtime_dir()
        path = base / f"plugin-{os.getpid()}-{secrets.token_hex(4)}.sock"
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:
            raise PluginError(f"the socket path {path} is too long for a Unix socket: set XDG_RUNTIME_DIR to a short path")
        return cls(path=path, token=secrets.token_bytes(TOKEN_SIZE), controllers=controllers)

    def env(self) -> dict[str, str]:
        """The environment variables to give mupen64plus so that the plugin finds us."""
        return {
            "KARTSTUDIO_SOCKET": str(self.path),
            "KARTSTUDIO_TOKEN": self.token.hex(),
            "KARTSTUDIO_CONTROLLERS": ",".join(str(c) for c in self.controllers),
        }

    def remove(self) -> None:
        """Removes a socket file the plugin left behind (it removes its own on a clean shut-down)."""
        try:
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()
        except FileNotFoundError:
            pass


class PluginClient:
    """One connection to the plugin. Thread-safe: pads, the recorder and the pilot may share it."""

    def __init__(self, endpoint: PluginEndpoint, keepalive: bool = True, max_reports: int = 100_000):
        self.endpoint = endpoint
        self.keepalive = keepalive
        self.present: tuple[int, ...] = ()
        self.silence_ms = 0
        self.lockstep_controller = 1
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._seq = 0
        self._last_sent = 0.0
        self._reports: collections.deque[PollReport] = collections.deque(maxlen=max_reports)
        self._game_states: collections.deque[GameStatePacket] = collections.deque(maxlen=max_reports)
        self._ready_id = -1
        self._mode_ack = -1
        self._sync_ack = -1
        self._stats: dict | None = None
        self._lockstep = False
        self._lockstep_timeout_ms = DEFAULT_LOCKSTEP_TIMEOUT_MS
        self._quiet = False
        self._closed = threading.Event()
        self._close_reason = ""
        self._threads: list[threading.Thread] = []

    # -- connection ------------------------------------------------------------------------
    def connect(self, timeout: float = 10.0) -> "PluginClient":
        """Connects and authenticates, retrying until the emulator's plugin listens or `timeout` passes."""
        if self._sock is not None:
            raise PluginError("this PluginClient was already connected: make a new one to connect again")
        deadline = time.monotonic() + timeout
        last_error = "nothing listening"
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                sock.connect(str(self.endpoint.path))
                sock.send(encode(HELLO, 0, self.endpoint.token))
                reply = sock.recv(MSG_SIZE + 1)
            # BlockingIOError: the plugin's backlog is full (it is busy accepting): worth a retry too
            except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError, BlockingIOError) as exc:
                sock.close()
                last_error = exc.strerror or type(exc).__name__
                if time.monotonic() >= deadline:
                    raise PluginError(
                        f"the emulator's input plugin is not listening on {self.endpoint.path} ({last_error}) after "
                        f"{timeout:g} s: is mupen64plus running with --input {plugin_path()} and this endpoint's env?"
                    ) from None
                time.sleep(0.02)
                continue
            except socket.timeout:
                sock.close()
                raise PluginError(f"the input plugin at {self.endpoint.path} did not answer within {timeout:g} s") from None
            except OSError as exc:  # permission denied, a path that is not a socket, ...
                sock.close()
                raise PluginError(f"cannot connect to the input plugin at {self.endpoint.path}: "
                                  f"{exc.strerror or type(exc).__name__}") from None
            if len(reply) != MSG_SIZE or HEADER.unpack_from(reply)[:3] != (MAGIC, VERSION, WELCOME):
                sock.close()
                raise PluginError(
                    f"the input plugin at {self.endpoint.path} refused the connection (wrong token or protocol version)"
                )
            break
        mask, _version, silence_ms, lock_ctrl = _WELCOME_PAYLOAD.unpack_from(reply, 16)
        self.present = tuple(c for c in (1, 2, 3, 4) if mask >> (c - 1) & 1)
        self.silence_ms, self.lockstep_controller = silence_ms, lock_ctrl
        sock.settimeout(None)
        self._sock = sock
        self._last_sent = time.monotonic()
        self._threads = [threading.Thread(target=self._read_loop, name="plugin-client-reader", daemon=True)]
        if self.keepalive:
            self._threads.append(threading.Thread(target=self._keepalive_loop, name="plugin-client-keepalive", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def close(self) -> None:
        if self._sock is None:
            return
        self._closed.set()
        self._close_reason = self._close_reason or "closed by KartStudio"
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=1.0)
        self._sock.close()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> "PluginClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None and not self._closed.is_set()

    # -- sending ---------------------------------------------------------------------------
    def _send(self, make) -> int:
        """Sends make(seq) under the send lock and returns the seq used."""
        if not self.connected:
            raise PluginError(f"not connected to the input plugin ({self._close_reason or 'call connect() first'})")
        with self._send_lock:
            self._seq = self._seq % 0xFFFFFFFF + 1  # never 0: 0 means "no state"
            seq = self._seq
            try:
                self._sock.send(make(seq))
            except OSError as exc:
                self._closed.set()
                self._close_reason = f"the emulator closed the connection ({exc.strerror or exc})"
                raise PluginError(f"the input plugin stopped answering: {self._close_reason}") from None
            self._last_sent = time.monotonic()
        return seq

    def send_states(self, states: Mapping[int, ControllerState]) -> int:
        """Free-run: the game reads these from its next poll on (latest wins). Returns the message seq."""
        return self._send(lambda seq: encode_states(STATES, seq, states))

    def set_lockstep(self, enabled: bool, timeout_ms: int = DEFAULT_LOCKSTEP_TIMEOUT_MS) -> None:
        """Lock-step: the game waits (up to timeout_ms, then neutral) in each poll for the next step().
        Returns once the plugin has switched (from the next poll on)."""
        if not 1 <= timeout_ms <= 60_000:
            raise ValueError("timeout_ms must be 1..60000")
        self._lockstep, self._lockstep_timeout_ms = bool(enabled), timeout_ms
        self._send_mode()

    def set_reports(self, enabled: bool) -> None:
        """Poll reports on (the default) or off, for a client that only sends states."""
        self._quiet = not enabled
        self._send_mode()

    def _send_mode(self, timeout: float = 2.0) -> None:
        payload = struct.pack("<III", int(self._lockstep), self._lockstep_timeout_ms, int(self._quiet))
        seq = self._send(lambda seq: encode(MODE, seq, payload))
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._mode_ack != seq:
                left = deadline - time.monotonic()
                if self._closed.is_set() or left <= 0:
                    raise PluginError("the input plugin did not acknowledge a mode change")
                self._cond.wait(left)

    def step(self, states: Mapping[int, ControllerState], timeout: float = 5.0) -> list[PollReport]:
        """Lock-step: the game reads `states` at its next poll; returns that poll's reports (one per
        controller the game read) once the game has run on to the following poll and waits again."""
        if not self._lockstep:
            raise PluginError("step() needs lock-step mode: call set_lockstep(True) first")
        step_id = self._send(lambda seq: encode_states(STEP, seq, states))
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ready_id != step_id:
                left = deadline - time.monotonic()
                if self._closed.is_set():
                    raise PluginError(f"the input plugin went away during a step: {self._close_reason}")
                if left <= 0:
                    raise PluginError(f"the game did not poll its controllers within {timeout:g} s of a step")
                self._cond.wait(left)
            mine = [r for r in self._reports if r.state_seq == step_id]
            rest = [r for r in self._reports if r.state_seq != step_id]
            self._reports.clear()
            self._reports.extend(rest)
        return mine

    # -- receiving -------------------------------------------------------------------------
    def polls(self, sync: bool = False) -> list[PollReport]:
        """Every poll report received since the last call (those step() returned are not repeated).

        The plugin sends reports within about 2 ms of the poll (t_ns says exactly when it was).
        With sync=True it first makes sure every poll the game made until now is included: use it
        right after capturing a picture to pair the picture with the input the game last read."""
        if sync:
            self.sync()
        with self._cond:
            out = list(self._reports)
            self._reports.clear()
        return out

    def game_states(self) -> list["GameStatePacket"]:
        """Every game state packet received since the last call (only a game that sends them, with the
        plugin's state channel on: kartstudio.emulator.raceway). sync() covers them like polls."""
        with self._cond:
            out = list(self._game_states)
            self._game_states.clear()
        return out

    def sync(self, timeout: float = SYNC_TIMEOUT_S) -> None:
        """Returns once the reports of every poll made before now have been received (a round trip,
        tens of microseconds)."""
        seq = self._send(lambda seq: encode(SYNC, seq))
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._sync_ack != seq:
                left = deadline - time.monotonic()
                if self._closed.is_set() or left <= 0:
                    raise PluginError(f"the input plugin did not answer a sync within {timeout:g} s")
                self._cond.wait(left)

    def wait_report(self, timeout: float) -> bool:
        """Whether a poll report is queued (one that polls() has not returned yet), waiting up to
        `timeout` for one; nothing is drained."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._reports and not self._closed.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return bool(self._reports)

    def wait_polls(self, count: int, timeout: float = 2.0) -> list[PollReport]:
        """Waits until at least `count` reports are queued (or timeout), then drains them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._reports) < count and not self._closed.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return self.polls()

    def stats(self, timeout: float = 2.0) -> dict[str, int]:
        """The plugin's counters: polls, messages_ok, malformed_dropped, unauthenticated_dropped,
        neutral_on_silence, connections, lockstep_timeouts, steps, reports_dropped."""
        with self._cond:
            self._stats = None
        self._send(lambda seq: encode(STATS_REQ, seq))
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._stats is None:
                left = deadline - time.monotonic()
                if self._closed.is_set() or left <= 0:
                    raise PluginError("the input plugin did not answer a stats request")
                self._cond.wait(left)
            return dict(self._stats)

    def _read_loop(self) -> None:
        sock = self._sock
        while not self._closed.is_set():
            try:
                msg = sock.recv(MSG_SIZE + 1)
            except OSError:
                msg = b""
            if len(msg) != MSG_SIZE:
                if not self._closed.is_set():
                    self._close_reason = "the emulator closed the connection"
                self._closed.set()
                break
            magic, version, msg_type, seq, _ = HEADER.unpack_from(msg)
            if magic != MAGIC or version != VERSION:
                continue
            with self._cond:
                if msg_type == POLL:
                    ctrl, source, buttons, t_ns, state_seq = _POLL_PAYLOAD.unpack_from(msg, 16)
                    self._reports.append(PollReport(ctrl, seq, buttons, t_ns, state_seq, SOURCES.get(source, "unknown")))
                elif msg_type == READY:
                    self._ready_id = seq
                elif msg_type == GAME_STATE:
                    ctrl, length = msg[16], msg[17]
                    self._game_states.append(GameStatePacket(seq, ctrl, bytes(msg[18 : 18 + min(length, MSG_SIZE - 18)])))
                elif msg_type == MODE_ACK:
                    self._mode_ack = seq
                elif msg_type == SYNC_ACK:
                    self._sync_ack = seq
                elif msg_type == STATS:
                    v = _STATS_PAYLOAD.unpack_from(msg, 16)
                    names = ("polls", "messages_ok", "malformed_dropped", "unauthenticated_dropped", "neutral_on_silence",
                             "connections", "lockstep_timeouts", "steps", "reports_dropped")
                    self._stats = dict(zip(names, v))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _keepalive_loop(self) -> None:
        """Tells the plugin we are alive when nothing else was sent lately (its silence limit is 100 ms)."""
        while not self._closed.wait(KEEPALIVE_S / 2):
            if time.monotonic() - self._last_sent >= KEEPALIVE_S:
                try:
                    self._send(lambda seq: encode(KEEPALIVE, seq))
                except PluginError:
                    break


__all__ = ["PluginEndpoint", "PluginClient", "PollReport", "GameStatePacket", "PluginError", "plugin_path", "runtime_dir"]
