"""A man in the middle on a serial link: a process that sits between the device emulator's
pseudo-terminal and the host, forwards frames both ways, and changes them as an attack says.

The host opens the relay's own pseudo-terminal as if it were the device's. Every COMMAND the host
sends is recorded (its values, in the device's channel order), so a test sees what would have
reached the motors whatever the host believed it sent.
"""

from __future__ import annotations

import dataclasses
import errno
import multiprocessing
import os
import select
import struct
import time
import tty

import numpy as np

from hardware.links import protocol
from hardware.links.protocol import Frame, Type

ATTACKS = (
    "none",
    "forge_ahead",  # one STATE 30,000 frames ahead, velocity 15 rad/s
    "forge_burst",  # five in a row from 30,000 ahead: the host may follow, must come back
    "infinite_velocity",  # for 0.1 s, genuine frames' velocity replaced by +inf (CRC recomputed)
    "nan_position",  # likewise a NaN position
    "reorder",  # pairs of STATE frames swapped
    "replay",  # every frame followed by one from 0.2 s before
    "wrong_size_state",  # STATE payloads cut by 4 bytes, valid CRC
    "garbage",  # random bytes between frames
    "unknown_type",  # frames of a type the protocol does not have
    "bad_fault",  # a FAULT frame with a payload of the wrong size
    "short_ack",  # the DISARM's ACK cut short
    "unknown_ack_status",  # the DISARM refused with a status no FaultCode has
    "version",  # a STATE frame of protocol version 2
    "stall",  # no STATE frames for 0.3 s, commands still flowing
    "swap_channels",  # a conforming device listing the elbow first, with an extra state channel
    "wider_limits",  # a device advertising +-1e6 N m
    "extra_command_channel",  # a device with an actuator the robot does not have
)


@dataclasses.dataclass(frozen=True)
class Attack:
    kind: str
    at_s: float = 0.7
    """Seconds after the host's first COMMAND."""
    seed: int = 0


class _Attacker:
    def __init__(self, attack: Attack):
        if attack.kind not in ATTACKS:
            raise ValueError(f"unknown attack {attack.kind!r}")
        self.attack = attack
        self.rng = np.random.default_rng(attack.seed)
        self.started: float | None = None
        self.injected = 0
        self.done = False
        self.held: Frame | None = None
        self.history: list[tuple[float, Frame]] = []
        self.n_state = self.n_command = 0

    def active(self, now: float) -> bool:
        return self.started is not None and now >= self.started + self.attack.at_s

    def to_host(self, frame: Frame, now: float) -> list[bytes]:
        kind = self.attack.kind
        if frame.type == Type.CAPABILITIES:
            return [self._capabilities(frame)]
        if frame.type == Type.ACK and kind in ("short_ack", "unknown_ack_status"):
            acked = frame.payload[0] if frame.payload else 0
            if acked == Type.DISARM:
                self.injected += 1
                if kind == "short_ack":
                    return [_encode(frame, payload=frame.payload[:2])]
                return [_encode(frame, payload=frame.payload[:3] + bytes([77]))]
        if frame.type != Type.STATE:
            return [_encode(frame)]
        if kind == "swap_channels":
            frame = self._swap_state(frame)
        out = [_encode(frame)]
        if not self.active(now):
            self.history.append((now, frame))
            return out
        head, values = frame.payload[: protocol.STATE_HEAD.size], frame.payload[protocol.STATE_HEAD.size :]
        if kind == "forge_ahead" and not self.done:
            self.done = True
            out.insert(0, _encode(frame, seq=frame.seq + 30_000, payload=head + _velocity(values, 15.0)))
            self.injected += 1
        elif kind == "forge_burst" and not self.done:
            self.done = True
            forged = [
                _encode(frame, seq=frame.seq + 30_000 + i, payload=head + _velocity(values, 15.0)) for i in range(5)
            ]
            out = forged + out
            self.injected += 5
        elif kind == "infinite_velocity" and now < self.started + self.attack.at_s + 0.1:
            out = [_encode(frame, payload=head + _velocity(values, float("inf")))]
            self.injected += 1
        elif kind == "nan_position" and now < self.started + self.attack.at_s + 0.1:
            out = [_encode(frame, payload=head + struct.pack("<f", float("nan")) + values[4:])]
            self.injected += 1
        elif kind == "reorder" and now < self.started + self.attack.at_s + 0.5:
            if self.held is None:
                self.held = frame
                return []
            out = [_encode(frame), _encode(self.held)]
            self.held = None
            self.injected += 1
        elif kind == "replay" and now < self.started + self.attack.at_s + 0.5:
            old = [f for t, f in self.history if t <= now - 0.2]
            if old:
                out.append(_encode(old[-1]))
                self.injected += 1
        elif kind == "wrong_size_state" and self.rng.random() < 0.1:
            out = [_encode(frame, payload=frame.payload[:-4])]
            self.injected += 1
        elif kind == "garbage" and self.rng.random() < 0.1:
            out.insert(0, bytes(self.rng.integers(0, 256, int(self.rng.integers(1, 40)), dtype=np.uint8)))
            self.injected += 1
        elif kind == "unknown_type" and self.rng.random() < 0.1:
            out.insert(0, protocol.encode_frame(0x42, frame.seq, b"\x01\x02"))
            self.injected += 1
        elif kind == "bad_fault" and not self.done:
            self.done = True
            out.insert(0, protocol.encode_frame(Type.FAULT, frame.seq, b"\x07"))
            self.injected += 1
        elif kind == "version" and not self.done:
            self.done = True
            out = [_encode(frame, version=2)]
            self.injected += 1
        elif kind == "stall" and now < self.started + self.attack.at_s + 0.3:
            self.injected += 1
            out = []
        self.history.append((now, frame))
        del self.history[:-2000]
        return out

    def to_device(self, frame: Frame, now: float) -> tuple[list[bytes], np.ndarray | None]:
        """What goes on to the device, and the command values it gets (the emulator's order:
        shoulder, elbow), if any."""
        if frame.type != Type.COMMAND:
            return [_encode(frame)], None
        if self.started is None:
            self.started = now
        if self.attack.kind == "swap_channels" and len(frame.payload) == 8:
            elbow, shoulder = struct.unpack("<2f", frame.payload)  # in the order this device lists them
            frame = dataclasses.replace(frame, payload=struct.pack("<2f", shoulder, elbow))
        n = len(frame.payload) // 4
        return [_encode(frame)], np.array(struct.unpack(f"<{n}f", frame.payload[: 4 * n]))

    def _capabilities(self, frame: Frame) -> bytes:
        caps = protocol.unpack_capabilities(frame.payload)
        self.n_state, self.n_command = len(caps.state), len(caps.command)
        kind = self.attack.kind
        if kind == "swap_channels":
            shoulder_p, elbow_p, shoulder_v, elbow_v = caps.state
            temperature = protocol.ChannelInfo("board.temperature", "degC", -40.0, 125.0)
            caps = dataclasses.replace(
                caps, state=(elbow_p, shoulder_p, temperature, elbow_v, shoulder_v), command=caps.command[::-1]
            )
        elif kind == "wider_limits":
            caps = dataclasses.replace(
                caps, command=tuple(dataclasses.replace(c, low=-1e6, high=1e6) for c in caps.command)
            )
        elif kind == "extra_command_channel":
            wrist = protocol.ChannelInfo("wrist.effort", "N m", -1.0, 1.0)
            caps = dataclasses.replace(caps, command=caps.command + (wrist,))
        else:
            return _encode(frame)
        self.injected += 1
        return _encode(frame, payload=protocol.pack_capabilities(caps))

    @staticmethod
    def _swap_state(frame: Frame) -> Frame:
        head, values = frame.payload[: protocol.STATE_HEAD.size], frame.payload[protocol.STATE_HEAD.size :]
        q1, q2, v1, v2 = struct.unpack("<4f", values)
        return dataclasses.replace(frame, payload=head + struct.pack("<5f", q2, q1, 31.5, v2, v1))


def _velocity(values: bytes, velocity: float) -> bytes:
    """A pendubot STATE's values with the shoulder's velocity replaced."""
    q1, q2, _, v2 = struct.unpack("<4f", values)
    return struct.pack("<4f", q1, q2, velocity, v2)


def _encode(frame: Frame, seq: int | None = None, payload: bytes | None = None, version: int | None = None) -> bytes:
    return protocol.encode_frame(
        frame.type,
        frame.seq if seq is None else seq,
        frame.payload if payload is None else payload,
        frame.version if version is None else version,
    )


def _write(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EIO):
            raise


def _relay(upstream: str, attack: Attack, conn) -> None:
    device = os.open(upstream, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(device)
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    conn.send(os.ttyname(slave))
    attacker = _Attacker(attack)
    from_device, from_host = protocol.FrameDecoder(), protocol.FrameDecoder()
    commands: list[list[float]] = []
    while not conn.poll():
        ready, _, _ = select.select([device, master], [], [], 0.01)
        now = time.monotonic()
        if device in ready:
            try:
                data = os.read(device, 65536)
            except OSError:
                data = b""
            for frame in from_device.feed(data):
                for out in attacker.to_host(frame, now):
                    _write(master, out)
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # no host has the port open
                data = b""
            for frame in from_host.feed(data):
                outs, values = attacker.to_device(frame, now)
                if values is not None:
                    commands.append(values.tolist())
                for out in outs:
                    _write(device, out)
    conn.recv()
    conn.send({"commands": commands, "injected": attacker.injected})
    os.close(device)
    os.close(slave)
    os.close(master)


class Relay:
    """The man in the middle, in a process of its own; `port` is what the host opens."""

    def __init__(self, upstream: str, attack: Attack):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_relay, args=(upstream, attack, child), daemon=True)
        self._process.start()
        if not self._conn.poll(60):
            self._process.terminate()
            raise RuntimeError("the relay did not start within 60 s")
        self.port: str = self._conn.recv()

    def stop(self) -> dict:
        """Stop relaying; returns {commands: what reached the device (shoulder, elbow), injected: how
        many bad inputs the relay made}."""
        self._conn.send("stop")
        if not self._conn.poll(30):
            self._process.terminate()
            raise RuntimeError("the relay did not stop within 30 s")
        report = self._conn.recv()
        self._process.join(timeout=10)
        return report
