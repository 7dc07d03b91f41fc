"""The s2r serial protocol, version 1: COBS-framed, CRC-checked binary messages for joint-level devices.

Byte-level tables are in docs/protocol.md. In short, every frame on the wire is

    COBS(header | payload | crc16) 0x00

    header  = version u8, type u8, seq u16        (little-endian; seq counts per sender, wraps)
    crc16   = CRC-16/CCITT-FALSE of header | payload, u16 little-endian

A zero byte only ever ends a frame, so a receiver that meets garbage resyncs
at the next zero. Payloads are fixed-size little-endian records, small enough
for a microcontroller to pack with a struct.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import struct

VERSION = 1
MAX_FRAME = 4096
"""Longest decoded frame (header, payload and CRC), bytes: capabilities of 84 channels."""
HEADER = struct.Struct("<BBH")
CRC = struct.Struct("<H")


class Type(enum.IntEnum):
    HELLO = 0x01  # host -> device: who are you?
    CAPABILITIES = 0x02  # device -> host: name, rate, channels with units and limits
    ARM = 0x03  # host -> device: enable the actuators; payload: command timeout, ms
    DISARM = 0x04  # host -> device: actuators off
    ACK = 0x05  # device -> host: ARM or DISARM done (or refused)
    COMMAND = 0x06  # host -> device: command values
    STATE = 0x07  # device -> host: measurement, streamed at the device's rate
    HEARTBEAT = 0x08  # host -> device: keeps an armed device armed without a command
    FAULT = 0x09  # device -> host: the device disarmed itself, and why


class FaultCode(enum.IntEnum):
    HOST_TIMEOUT = 1  # no COMMAND or HEARTBEAT within the timeout given at ARM
    LIMIT = 2  # a command outside the device's limits (refused, actuators off)
    RESET = 3  # the device (re)booted: brown-out, watchdog or power cycle


def fault_name(code: int) -> str:
    """A fault code's name, or the number of one this host does not know."""
    return FaultCode(code).name if code in FaultCode._value2member_map_ else f"unknown code {code}"


STATE_FLAG_ARMED = 0x01

# Payload records.
CAPS_HEAD = struct.Struct("<16sHBB")  # name, state rate Hz, n state channels, n command channels
CHANNEL = struct.Struct("<24s8sdd")  # name, unit, low, high (float64: limits compare exactly)
ARM_PAYLOAD = struct.Struct("<H")  # command timeout, ms
ACK_PAYLOAD = struct.Struct("<BHB")  # acked type, acked seq, status (0 ok, else a FaultCode)
STATE_HEAD = struct.Struct("<IHHBx")  # device time us (wraps), echoed command seq, its age us, flags
FAULT_PAYLOAD = struct.Struct("<B31s")  # code, reason (ASCII, zero-padded)


class ProtocolError(ValueError):
    """A frame that decoded (its CRC holds) but whose content is not what the protocol says."""


# Framing ---------------------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out); check value 0x29B1."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent overhead byte stuffing: the result has no zero byte, one byte longer per 254."""
    out = bytearray()
    for block in data.split(b"\x00"):
        while len(block) >= 254:
            out += b"\xff" + block[:254]
            block = block[254:]
        out += bytes((len(block) + 1,)) + block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode; raises ValueError on a zero byte or a block past the end."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise ValueError(f"invalid COBS code {code} at byte {i} of {n}")
        block = data[i + 1 : end]
        if 0 in block:
            raise ValueError("zero byte inside a COBS block")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclasses.dataclass(frozen=True)
class Frame:
    version: int
    type: int
    seq: int
    payload: bytes


def encode_frame(kind: Type, seq: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    """One frame ready for the wire, delimiter included."""
    body = HEADER.pack(version, kind, seq & 0xFFFF) + payload
    if len(body) + CRC.size > MAX_FRAME:
        raise ValueError(f"frame of {len(body) + CRC.size} bytes exceeds the protocol's {MAX_FRAME}")
    return cobs_encode(body + CRC.pack(crc16(body))) + b"\x00"


class FrameDecoder:
    """Turns a byte stream into frames; never raises. Frames that fail COBS, the length checks or
    the CRC are dropped and counted, and decoding resumes at the next delimiter."""

    def __init__(self):
        self._buffer = bytearray()
        self._skipping = False  # inside an over-long run of bytes: drop up to the next delimiter
        self.crc_errors = 0
        self.malformed = 0
        self.frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        self._buffer += data
        while True:
            end = self._buffer.find(0)
            if end < 0:
                # COBS adds one byte per 254: a longer run without a delimiter is garbage.
                if len(self._buffer) > MAX_FRAME + MAX_FRAME // 254 + 1:
                    self._buffer.clear()
                    if not self._skipping:
                        self.malformed += 1
                    self._skipping = True
                return frames
            chunk = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if chunk:
                frame = self._decode(chunk)
                if frame is not None:
                    frames.append(frame)

    def _decode(self, chunk: bytes) -> Frame | None:
        try:
            body = cobs_decode(chunk)
        except ValueError:
            self.malformed += 1
            return None
        if not HEADER.size + CRC.size <= len(body) <= MAX_FRAME:
            self.malformed += 1
            return None
        (crc,) = CRC.unpack_from(body, len(body) - CRC.size)
        if crc16(body[: -CRC.size]) != crc:
            self.crc_errors += 1
            return None
        version, kind, seq = HEADER.unpack_from(body)
        self.frames += 1
        return Frame(version, kind, seq, body[HEADER.size : -CRC.size])


# Messages --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChannelInfo:
    name: str
    unit: str
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a device says it is: its name, state rate (Hz) and channels in order."""

    name: str
    rate_hz: int
    state: tuple[ChannelInfo, ...]
    command: tuple[ChannelInfo, ...]


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("ascii", errors="replace")


def _field(text: str, size: int, what: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{what} {text!r} is longer than {size} ASCII bytes")
    return raw


def pack_capabilities(caps: Capabilities) -> bytes:
    out = CAPS_HEAD.pack(_field(caps.name, 16, "device name"), caps.rate_hz, len(caps.state), len(caps.command))
    for c in caps.state + caps.command:
        out += CHANNEL.pack(_field(c.name, 24, "channel name"), _field(c.unit, 8, "unit"), c.low, c.high)
    return out


def unpack_capabilities(payload: bytes) -> Capabilities:
    if len(payload) < CAPS_HEAD.size:
        raise ProtocolError(f"CAPABILITIES payload of {len(payload)} bytes; at least {CAPS_HEAD.size} expected")
    name, rate, n_state, n_command = CAPS_HEAD.unpack_from(payload)
    expected = CAPS_HEAD.size + (n_state + n_command) * CHANNEL.size
    if len(payload) != expected:
        raise ProtocolError(
            f"CAPABILITIES for {n_state} state and {n_command} command channels should be {expected} bytes, "
            f"got {len(payload)}"
        )
    channels = [
        ChannelInfo(_text(cn), _text(cu), lo, hi) for cn, cu, lo, hi in CHANNEL.iter_unpack(payload[CAPS_HEAD.size :])
    ]
    return Capabilities(_text(name), rate, tuple(channels[:n_state]), tuple(channels[n_state:]))


@dataclasses.dataclass(frozen=True)
class StateMessage:
    device_time_us: int
    echo_seq: int
    """Sequence number of the last COMMAND the device received."""
    echo_age_us: int
    """How long before this state that command arrived, us (saturates at 65535)."""
    armed: bool
    values: tuple[float, ...]


def pack_state(msg: StateMessage) -> bytes:
    head = STATE_HEAD.pack(
        msg.device_time_us & 0xFFFFFFFF,
        msg.echo_seq & 0xFFFF,
        min(msg.echo_age_us, 0xFFFF),
        STATE_FLAG_ARMED if msg.armed else 0,
    )
    return head + struct.pack(f"<{len(msg.values)}f", *msg.values)


def unpack_state(payload: bytes, n: int) -> StateMessage:
    if len(payload) != STATE_HEAD.size + 4 * n:
        raise ProtocolError(f"STATE payload of {len(payload)} bytes; {STATE_HEAD.size + 4 * n} for {n} channels")
    t, echo, age, flags = STATE_HEAD.unpack_from(payload)
    values = struct.unpack_from(f"<{n}f", payload, STATE_HEAD.size)
    return StateMessage(t, echo, age, bool(flags & STATE_FLAG_ARMED), values)


def pack_values(values) -> bytes:
    """COMMAND payload: float32 per command channel, in capabilities order."""
    return struct.pack(f"<{len(values)}f", *values)


def unpack_values(payload: bytes, n: int) -> tuple[float, ...]:
    if len(payload) != 4 * n:
        raise ProtocolError(f"COMMAND payload of {len(payload)} bytes; {4 * n} for {n} channels")
    return struct.unpack(f"<{n}f", payload)


def pack_fault(code: FaultCode, reason: str) -> bytes:
    return FAULT_PAYLOAD.pack(code, reason.encode("ascii", errors="replace")[:31])


def unpack_fault(payload: bytes) -> tuple[int, str]:
    if len(payload) != FAULT_PAYLOAD.size:
        raise ProtocolError(f"FAULT payload of {len(payload)} bytes; {FAULT_PAYLOAD.size} expected")
    code, reason = FAULT_PAYLOAD.unpack(payload)
    return code, _text(reason)
