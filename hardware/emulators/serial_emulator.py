"""The device emulator: a firmware stand-in that speaks the s2r serial protocol on a pseudo-terminal.

Its far side is the env's MuJoCo plant (parameters and imperfections as
configured) stepped at the physics rate, paced by the wall clock. Like real
firmware it streams a STATE frame every physics step once a host said HELLO,
holds the last command, refuses commands outside its limits, and disarms
itself when the host goes quiet for longer than the timeout given at ARM.

Faults (FaultPlan) are injected on the wire and in the device: latency and
jitter on every outgoing frame (a serial line never reorders), dropped
frames both ways, corrupted bytes and flipped bits, and timed events: a
frozen sensor, a brown-out reset, an unplug (the pty closes; with `replug_s`
a new one appears behind the same link path). Everything injected is
recorded with its monotonic time (ns), so a HIL run can check that the host
saw each fault.
"""

from __future__ import annotations

import collections
import errno
import logging
import math
import os
import select
import time
import tty
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.faults import FaultPlan
from hardware.links import protocol
from hardware.links.protocol import FaultCode, Type
from sim.simulated import PlantServer, SimulatedRobot

log = logging.getLogger(__name__)


class Emulator:
    """One emulated device on a pseudo-terminal. `open()` returns the port path; `run()` serves it."""

    def __init__(
        self,
        robot: str,
        params: str | Path = "model_1.0",
        imperfections: bool = True,
        seed: int = 0,
        faults: FaultPlan | None = None,
        link: str | Path | None = None,
        replug_s: float | None = None,
        start: str = "down",
        keep_state: bool = False,
    ):
        robot_sim = SimulatedRobot(robot, start=start, params=params, imperfections=imperfections)
        self.server = PlantServer(robot_sim, seed)
        self.keep_state = keep_state
        """A new session (a HELLO, then ARM) restarts the plant unless `keep_state`: back-to-back runs
        against one emulator then start alike."""
        spec = robot_sim.spec
        self.caps = protocol.Capabilities(
            spec.name,
            int(round(1 / robot_sim.physics_dt)),
            tuple(protocol.ChannelInfo(c.name, c.unit, c.low, c.high) for c in spec.state),
            tuple(protocol.ChannelInfo(c.name, c.unit, c.low, c.high) for c in spec.command),
        )
        self.low = np.array([c.low for c in spec.command])
        self.high = np.array([c.high for c in spec.command])
        self.faults = faults or FaultPlan()
        self.wire_rng = np.random.default_rng(self.faults.seed)
        self.link = Path(link) if link else None
        self.replug_s = replug_s
        self.master: int | None = None
        self.slave: int | None = None
        self.port = ""
        # Firmware state.
        self.decoder = protocol.FrameDecoder()
        self.connected = False  # a host said HELLO: stream states
        self.new_session = False  # a HELLO since the last ARM: the next ARM starts a session
        self.armed = False
        self.command = np.zeros(len(self.low))
        self.host_timeout_ns = 0
        self.last_heard_ns = 0
        self.last_command_seq = 0
        self.last_command_ns = 0
        self.tx_seq = 0
        self.frames_sent = 0  # tx_seq unwrapped: how the host counts
        self.booted = False  # reset once: losses after a reset are not recorded (the host has faulted)
        self.outbox: collections.deque[tuple[int, bytes]] = collections.deque()  # (send time ns, bytes)
        self.last_send_ns = 0
        self.frozen_values: np.ndarray | None = None
        self.frozen_until_ns = 0.0
        self.silent_until_ns = 0
        self.unplugged_ns: int | None = None
        # What happened, for the HIL verdict.
        self.armed_at_ns: int | None = None
        self.events_pending = list(self.faults.events)
        self.report: dict[str, Any] = {
            "states_sent": 0,
            "states_dropped": [],
            "states_corrupted": [],
            "commands_received": 0,
            "commands_dropped": 0,
            "commands_outside_limits": 0,
            "host_timeouts": 0,
            "sessions": 0,
            "events": [],
        }

    # The port -------------------------------------------------------------------------------------
    def open(self) -> str:
        """Open a pseudo-terminal pair; returns the path the host opens (the link, if one was asked)."""
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing: a byte pipe like a USB CDC port
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.port)
            tmp.replace(self.link)  # atomic: a host never sees the link missing
            return str(self.link)
        return self.port

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None

    # Main loop ------------------------------------------------------------------------------------
    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> dict[str, Any]:
        """Serve until `duration_s` has passed or should_stop() is true; returns the report."""
        server = self.server
        start = time.monotonic_ns()
        server.due(start)  # anchors the pace
        end = None if duration_s is None else start + int(duration_s * 1e9)
        checks = 0
        while end is None or time.monotonic_ns() < end:
            checks += 1
            if checks % 16 == 0 and should_stop():
                break
            now = time.monotonic_ns()
            next_step = server.next_step_ns
            wake = next_step if not self.outbox else min(next_step, self.outbox[0][0])
            if wake > now and self.master is not None:
                select.select([self.master], [], [], (wake - now) / 1e9)
            elif wake > now:
                time.sleep((wake - now) / 1e9)
            if self.master is not None:
                self._receive()  # also when behind: the host timeout must see every command
            now = time.monotonic_ns()
            self._flush(now)
            if server.due(now):
                self._events(now)
                self._physics_step(now)
        return self.report

    def _physics_step(self, now: int) -> None:
        if self.armed and now - self.last_heard_ns > self.host_timeout_ns:
            self._disarm()
            self.report["host_timeouts"] += 1
            self._send_fault(FaultCode.HOST_TIMEOUT, "host silent: disarmed")
        browned_out = now < self.silent_until_ns
        torque = self.command if self.armed and not browned_out else np.zeros(len(self.low))
        measured = self.server.step(torque)
        if self.connected and not browned_out and self.master is not None:
            values = measured if self.frozen_values is None else self.frozen_values
            age = (now - self.last_command_ns) // 1000
            msg = protocol.StateMessage(now // 1000, self.last_command_seq, age, self.armed, tuple(values))
            self._send(Type.STATE, protocol.pack_state(msg), now)

    # Receiving ------------------------------------------------------------------------------------
    def _receive(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EIO):  # nothing, or no host has the port open
                return
            raise
        now = time.monotonic_ns()
        if now < self.silent_until_ns:
            return  # rebooting: bytes fall on the floor
        for frame in self.decoder.feed(data):
            if self.faults.drop and self.wire_rng.random() < self.faults.drop:
                if frame.type == Type.COMMAND:
                    self.report["commands_dropped"] += 1
                continue
            self._handle(frame, now)

    def _handle(self, frame: protocol.Frame, now: int) -> None:
        if frame.type == Type.HELLO:
            # Answered in this device's own version: a host that speaks another one refuses it.
            self.connected = True
            self.new_session = True
            self._send(Type.CAPABILITIES, protocol.pack_capabilities(self.caps), now)
            return
        if frame.version != protocol.VERSION:
            return
        if frame.type == Type.ARM:
            if len(frame.payload) != protocol.ARM_PAYLOAD.size:
                return  # a firmware ignores what it cannot parse; the host resends
            (timeout_ms,) = protocol.ARM_PAYLOAD.unpack(frame.payload)
            if self.new_session:
                self.report["sessions"] += 1
                if not self.keep_state:
                    self.server.restart()
            self.new_session = False
            self.armed = True
            self.command = np.zeros(len(self.low))
            self.host_timeout_ns = timeout_ms * 1_000_000
            self.last_heard_ns = now
            if self.armed_at_ns is None:
                self.armed_at_ns = now
            self._ack(frame, 0, now)
        elif frame.type == Type.DISARM:
            self._disarm()
            self._ack(frame, 0, now)
        elif frame.type == Type.HEARTBEAT:
            self.last_heard_ns = now
        elif frame.type == Type.COMMAND:
            try:
                values = np.array(protocol.unpack_values(frame.payload, len(self.low)))
            except protocol.ProtocolError:
                return
            self.report["commands_received"] += 1
            self.last_heard_ns = self.last_command_ns = now
            self.last_command_seq = frame.seq
            if not self.armed:
                return
            if not (np.isfinite(values).all() and (values >= self.low).all() and (values <= self.high).all()):
                self.report["commands_outside_limits"] += 1
                self._disarm()
                self._send_fault(FaultCode.LIMIT, f"command {np.round(values, 3).tolist()} refused"[:31])
                return
            self.command = values

    def _disarm(self) -> None:
        self.armed = False
        self.command = np.zeros(len(self.low))

    def _ack(self, frame: protocol.Frame, status: int, now: int) -> None:
        self._send(Type.ACK, protocol.ACK_PAYLOAD.pack(frame.type, frame.seq, status), now)

    def _send_fault(self, code: FaultCode, reason: str) -> None:
        self._send(Type.FAULT, protocol.pack_fault(code, reason), time.monotonic_ns())

    # Sending, through the faulty wire -------------------------------------------------------------
    def _send(self, kind: Type, payload: bytes, now: int) -> None:
        seq = self.tx_seq
        self.tx_seq = (seq + 1) & 0xFFFF
        self._transmit(protocol.encode_frame(kind, seq, payload), kind == Type.STATE, now)

    def _transmit(self, frame: bytes, state: bool, now: int) -> None:
        """Put `frame` on the faulty wire at `now`; `state` frames are recorded (by their index among
        the frames sent) when dropped or damaged."""
        count = self.frames_sent
        self.frames_sent += 1
        data = bytearray(frame)
        f, rng = self.faults, self.wire_rng
        record = state and not self.booted
        if record:
            self.report["states_sent"] += 1
        if state and f.drop and rng.random() < f.drop:
            if record:
                self.report["states_dropped"].append(count)
            return
        damaged = False
        if f.corrupt and rng.random() < f.corrupt:
            i = int(rng.integers(len(data)))
            data[i] = (data[i] + int(rng.integers(1, 256))) % 256
            damaged = True
        if f.bitflip and rng.random() < f.bitflip:
            i = int(rng.integers(len(data)))
            data[i] ^= 1 << int(rng.integers(8))
            damaged = True
        if damaged and record:
            self.report["states_corrupted"].append(count)
        delay = f.latency_ms + (rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0.0)
        when = max(now + int(delay * 1e6), self.last_send_ns)  # a FIFO line: never overtake
        self.last_send_ns = when
        self.outbox.append((when, bytes(data)))

    def _flush(self, now: int) -> None:
        while self.outbox and self.outbox[0][0] <= now:
            _, data = self.outbox.popleft()
            if self.master is None:
                continue
            try:
                os.write(self.master, data)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EIO):  # EAGAIN: a full buffer drops, like a UART
                    raise

    # Timed faults ---------------------------------------------------------------------------------
    def _events(self, now: int) -> None:
        if self.armed_at_ns is None:
            return
        if self.unplugged_ns is not None and self.replug_s is not None:
            if now - self.unplugged_ns >= self.replug_s * 1e9:
                self._replug(now)
        if self.frozen_values is not None and now >= self.frozen_until_ns:
            self.frozen_values = None
        while self.events_pending and now >= self.armed_at_ns + self.events_pending[0].at_s * 1e9:
            event = self.events_pending.pop(0)
            self.report["events"].append({"kind": event.kind, "at_ns": now, "duration_s": event.duration_s})
            log.info("injecting %s", event.kind)
            if event.kind == "frozen_sensor":
                self.frozen_values = self.server.robot.measure()
                self.frozen_until_ns = now + (event.duration_s * 1e9 if event.duration_s else math.inf)
            elif event.kind == "brownout":
                self._disarm()
                self.silent_until_ns = now + int(event.duration_s * 1e9)
                self.outbox.clear()
                self._boot()
            elif event.kind == "unplug":
                self._lose_link()
                self.outbox.clear()
                self.close()
                self.unplugged_ns = now

    def _lose_link(self) -> None:
        """The cable is out: a board powered through it goes down with it."""
        self._disarm()

    def _boot(self) -> None:
        """A reset: every firmware variable to its power-on value; the first frame says so."""
        self.decoder = protocol.FrameDecoder()
        self.tx_seq = self.frames_sent = 0
        self.booted = True
        self.last_send_ns = self.silent_until_ns
        self.frozen_values = None
        self._send(Type.FAULT, protocol.pack_fault(FaultCode.RESET, "brown-out reset"), self.silent_until_ns)

    def _replug(self, now: int) -> None:
        self.unplugged_ns = None
        self.connected = False
        self.decoder = protocol.FrameDecoder()
        self.open()
        self.report["events"].append({"kind": "replug", "at_ns": now, "duration_s": 0.0, "port": self.port})
