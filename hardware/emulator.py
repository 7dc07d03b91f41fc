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
import dataclasses
import errno
import logging
import math
import multiprocessing
import os
import select
import threading
import time
import tty
from pathlib import Path
from typing import Any

import numpy as np

from hardware import protocol
from hardware.protocol import FaultCode, Type
from sim.config import ConfigError, as_float, check_keys, load_yaml
from sim.env import SwingUpEnv
from sim.plant import PHYSICS_DT

log = logging.getLogger(__name__)

EVENTS = ("frozen_sensor", "brownout", "unplug")
STARTS = ("down", "up")
"""Where the plant starts: hanging (the swing-up task) or balanced upright."""
TRANSPORTS = ("serial", "ros2")


def plant_env(robot: str, params: str | Path, imperfections: bool, seed: int, start: str) -> SwingUpEnv:
    """The env whose plant an emulator runs (endless), at its start state (`restart`)."""
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; expected one of {', '.join(STARTS)}")
    env = SwingUpEnv(robot, params=params, imperfections=imperfections, t_final=math.inf)
    restart(env, seed, start)
    return env


def restart(env: SwingUpEnv, seed: int, start: str) -> None:
    """Put an emulator's plant in its start state, the same one each time for the same seed: hanging
    (the swing-up task) or balanced upright (to test a stabiliser on its own)."""
    env.reset(seed=seed)
    if start == "up":
        x0 = np.zeros(2 * env.n)
        x0[0] = math.pi
        env.plant.reset(x0, env.np_random, 60.0)


@dataclasses.dataclass(frozen=True)
class Event:
    """A timed fault: `kind` at `at_s` after the device is first armed, lasting `duration_s`."""

    kind: str
    at_s: float
    duration_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """What goes wrong, and when. Probabilities are per frame."""

    latency_ms: float = 0.0
    """Added to every device -> host frame, ms."""
    jitter_ms: float = 0.0
    """Uniform extra delay in [0, jitter_ms] per device -> host frame, ms."""
    drop: float = 0.0
    """Probability that a frame is lost, each direction."""
    corrupt: float = 0.0
    """Probability that one byte of a device -> host frame is replaced by another."""
    bitflip: float = 0.0
    """Probability that one bit of a device -> host frame flips."""
    events: tuple[Event, ...] = ()
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: str | Path) -> FaultPlan:
        return cls.from_dict(load_yaml(path), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "faults") -> FaultPlan:
        """Validate a mapping with the fields above; events as a list of {kind, at_s, duration_s}."""
        fields = [f.name for f in dataclasses.fields(cls)]
        check_keys(data, fields, source)
        values: dict[str, Any] = {}
        for key in ("latency_ms", "jitter_ms"):
            if key in data:
                values[key] = as_float(data[key], source, key, 0.0, 1000.0)
        for key in ("drop", "corrupt", "bitflip"):
            if key in data:
                values[key] = as_float(data[key], source, key, 0.0, 1.0)
        if "seed" in data:
            seed = data["seed"]
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
                raise ConfigError(source, "seed", f"expected an integer in [0, 2^32), got {seed!r}")
            values["seed"] = data["seed"]
        events = data.get("events") or []
        if not isinstance(events, list):
            raise ConfigError(source, "events", f"expected a list, got {type(events).__name__}")
        parsed = []
        for i, ev in enumerate(events):
            key = f"events[{i}]"
            if not isinstance(ev, dict):
                raise ConfigError(source, key, f"expected a mapping, got {ev!r}")
            check_keys(ev, ("kind", "at_s", "duration_s"), source, key + ".")
            if ev.get("kind") not in EVENTS:
                raise ConfigError(source, key + ".kind", f"expected one of {', '.join(EVENTS)}, got {ev.get('kind')!r}")
            if "at_s" not in ev:
                raise ConfigError(source, key + ".at_s", "missing: when the event happens, s after arming")
            at = as_float(ev["at_s"], source, key + ".at_s", 0.0)
            duration = as_float(ev.get("duration_s", 0.0), source, key + ".duration_s", 0.0)
            if ev["kind"] == "brownout" and duration <= 0:
                raise ConfigError(source, key + ".duration_s", "a brown-out needs a duration > 0 (the reboot time)")
            parsed.append(Event(ev["kind"], at, duration))
        values["events"] = tuple(sorted(parsed, key=lambda e: e.at_s))
        return cls(**values)


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
        self.env = plant_env(robot, params, imperfections, seed, start)
        self.seed, self.start, self.keep_state = seed, start, keep_state
        """A new session (a HELLO, then ARM) restarts the plant unless `keep_state`: back-to-back runs
        against one emulator then start alike."""
        self.plant = self.env.plant
        self.rng = self.env.np_random
        spec = self.env.robot.spec(self.env.nominal_params)
        self.caps = protocol.Capabilities(
            spec.name,
            int(round(1 / PHYSICS_DT)),
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
        period = int(PHYSICS_DT * 1e9)
        start = time.monotonic_ns()
        next_step = start
        end = None if duration_s is None else start + int(duration_s * 1e9)
        checks = 0
        while end is None or time.monotonic_ns() < end:
            checks += 1
            if checks % 16 == 0 and should_stop():
                break
            now = time.monotonic_ns()
            wake = next_step if not self.outbox else min(next_step, self.outbox[0][0])
            if wake > now and self.master is not None:
                select.select([self.master], [], [], (wake - now) / 1e9)
            elif wake > now:
                time.sleep((wake - now) / 1e9)
            if self.master is not None:
                self._receive()  # also when behind: the host timeout must see every command
            now = time.monotonic_ns()
            self._flush(now)
            if now >= next_step:
                self._events(now)
                self._physics_step(now)
                next_step += period
                if now > next_step + 10 * period:  # far behind (the machine stalled): re-anchor
                    next_step = now + period
        return self.report

    def _physics_step(self, now: int) -> None:
        if self.armed and now - self.last_heard_ns > self.host_timeout_ns:
            self._disarm()
            self.report["host_timeouts"] += 1
            self._send_fault(FaultCode.HOST_TIMEOUT, "host silent: disarmed")
        browned_out = now < self.silent_until_ns
        torque = self.command if self.armed and not browned_out else np.zeros(len(self.low))
        self.plant.step(torque, 1, self.rng)
        if self.connected and not browned_out and self.master is not None:
            values = self.plant.measure() if self.frozen_values is None else self.frozen_values
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
                    restart(self.env, self.seed, self.start)
                    self.rng = self.env.np_random
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
        seq, count = self.tx_seq, self.frames_sent
        self.tx_seq = (seq + 1) & 0xFFFF
        self.frames_sent += 1
        data = bytearray(protocol.encode_frame(kind, seq, payload))
        f, rng = self.faults, self.wire_rng
        record = kind == Type.STATE and not self.booted
        if record:
            self.report["states_sent"] += 1
        if kind == Type.STATE and f.drop and rng.random() < f.drop:
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
                self.frozen_values = self.plant.measure()
                self.frozen_until_ns = now + (event.duration_s * 1e9 if event.duration_s else math.inf)
            elif event.kind == "brownout":
                self._disarm()
                self.silent_until_ns = now + int(event.duration_s * 1e9)
                self.outbox.clear()
                self._boot()
            elif event.kind == "unplug":
                self._disarm()
                self.outbox.clear()
                self.close()
                self.unplugged_ns = now

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


class EmulatorProcess:
    """An emulator (serial, or ROS 2 topics) in a process of its own, as firmware runs on its own
    processor: it never shares the loop's interpreter lock. `port` (for ROS 2, a description of
    the topics) is ready when the constructor returns."""

    def __init__(self, transport: str = "serial", **emulator_options: Any):
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown emulator transport {transport!r}; expected one of {', '.join(TRANSPORTS)}")
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(transport, emulator_options, child), name="s2r-emulator", daemon=True
        )
        self._process.start()
        if not self._conn.poll(120):
            self._process.terminate()
            raise RuntimeError("the device emulator did not start within 120 s")
        kind, value = self._conn.recv()
        if kind == "error":
            self._process.join(timeout=5)
            raise RuntimeError(f"the device emulator failed to start: {value}")
        self.port: str = value
        self.report: dict[str, Any] | None = None
        self._stopping = threading.Lock()

    def stop(self) -> dict[str, Any]:
        """Stop serving; returns the emulator's report (what it received and injected, and when).
        Safe to call more than once and from several threads (a test's timer, the context's exit)."""
        with self._stopping:
            if self.report is None:
                self._conn.send("stop")
                if not self._conn.poll(60):
                    self._process.terminate()
                    raise RuntimeError("the device emulator did not stop within 60 s")
                kind, self.report = self._conn.recv()
                self._process.join(timeout=10)
                if kind == "error":
                    raise RuntimeError(f"the device emulator failed: {self.report}")
        return self.report

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.report is None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)


def _serve(transport: str, options: dict[str, Any], conn) -> None:
    try:
        if transport == "ros2":
            from hardware.ros2_emulator import Ros2Emulator

            emulator = Ros2Emulator(**options)
        else:
            emulator = Emulator(**options)
        conn.send(("port", emulator.open()))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        report = emulator.run(should_stop=conn.poll)
        conn.recv()
        conn.send(("report", report))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        emulator.close()
