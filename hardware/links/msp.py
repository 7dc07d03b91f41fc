"""The MultiWii Serial Protocol (MSP), versions 1 and 2: how Betaflight and INAV flight controllers talk over a UART.

Specifications: MSP v1 as Betaflight implements it (src/main/msp/msp_serial.c,
command numbers in src/main/msp/msp_protocol.h) and MSP v2 as INAV's wiki
defines it (https://github.com/iNavFlight/inav/wiki/MSP-V2). Every frame is

    v1:  '$' 'M' dir  size u8   command u8                       payload  checksum u8
    v2:  '$' 'X' dir  flags u8  command u16 LE  size u16 LE      payload  crc8 u8

    dir       '<' request (host to board), '>' reply, '!' error reply (the board
              knows no such command or cannot do it now)
    checksum  XOR of size, command and payload bytes
    crc8      CRC-8/DVB-S2 (polynomial 0xD5, init 0) of flags .. payload

v1 carries commands 0-254 and payloads up to 254 bytes (size 255 announces a
"jumbo" frame, which this codec does not speak). A board drops a request whose
payload does not fit its receive buffer: 192 bytes on Betaflight
(MSP_PORT_INBUF_SIZE), `FIRMWARE_RECEIVE_BUFFER`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct

import numpy as np

FIRMWARE_RECEIVE_BUFFER = 192
"""The largest request payload a Betaflight board accepts, bytes."""
MAX_REPLY = 1024
"""The largest reply payload this host accepts, bytes (no board command here replies with more)."""
V1_MAX_PAYLOAD = 254
V1_MAX_COMMAND = 254


class Command(enum.IntEnum):
    """The commands s2r uses (Betaflight's numbers)."""

    API_VERSION = 1
    FC_VARIANT = 2
    STATUS = 101
    RAW_IMU = 102
    RC = 105
    ATTITUDE = 108
    ALTITUDE = 109
    SET_RAW_RC = 200
    SET_MOTOR = 214


class Direction(bytes, enum.Enum):
    REQUEST = b"<"
    REPLY = b">"
    ERROR = b"!"


class MspError(ValueError):
    """A payload that is not what its command says (the frame itself was sound)."""


@dataclasses.dataclass(frozen=True)
class Message:
    command: int
    payload: bytes = b""
    direction: Direction = Direction.REQUEST
    version: int = 1
    flags: int = 0
    """v2 only; 0 in v1."""


def crc8_dvb_s2(data: bytes, crc: int = 0) -> int:
    """CRC-8/DVB-S2: polynomial 0xD5, init 0, no reflection, no xor-out; check value 0xBC."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0xD5) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _xor(data: bytes) -> int:
    out = 0
    for byte in data:
        out ^= byte
    return out


def encode(message: Message) -> bytes:
    """The frame of `message`; ValueError if it does not fit its version."""
    m = message
    if m.version == 1:
        if not 0 <= m.command <= V1_MAX_COMMAND or len(m.payload) > V1_MAX_PAYLOAD or m.flags:
            raise ValueError(
                f"MSP v1 carries commands 0-{V1_MAX_COMMAND}, payloads up to {V1_MAX_PAYLOAD} bytes and no flags; "
                f"got command {m.command}, {len(m.payload)} bytes, flags {m.flags}"
            )
        body = bytes((len(m.payload), m.command)) + m.payload
        return b"$M" + m.direction.value + body + bytes((_xor(body),))
    if m.version == 2:
        if not 0 <= m.command <= 0xFFFF or len(m.payload) > 0xFFFF or not 0 <= m.flags <= 0xFF:
            raise ValueError(f"MSP v2 command {m.command}, flags {m.flags} or {len(m.payload)} bytes out of range")
        body = struct.pack("<BHH", m.flags, m.command, len(m.payload)) + m.payload
        return b"$X" + m.direction.value + body + bytes((crc8_dvb_s2(body),))
    raise ValueError(f"MSP has versions 1 and 2, not {m.version}")


class Decoder:
    """Turns a byte stream into Messages; never raises. A frame whose checksum fails, whose
    direction byte is not one of MSP's, or whose payload is longer than `max_payload` is dropped
    and counted, and decoding resumes at the byte after its '$'.

    `max_payload`: FIRMWARE_RECEIVE_BUFFER on a board's side, MAX_REPLY on the host's."""

    def __init__(self, max_payload: int = MAX_REPLY):
        self.max_payload = max_payload
        self._buffer = bytearray()
        self.checksum_errors = 0
        self.malformed = 0
        self.oversized = 0
        self.frames = 0

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages = []
        while True:
            start = self._buffer.find(b"$")
            if start < 0:
                self._buffer.clear()
                return messages
            del self._buffer[:start]
            result = self._frame()
            if result is None:  # incomplete: wait for more bytes
                return messages
            length, message = result
            if message is None:
                del self._buffer[:1]  # resync after this '$'
            else:
                del self._buffer[:length]
                self.frames += 1
                messages.append(message)

    def _frame(self) -> tuple[int, Message | None] | None:
        """(frame length, the message or None if it is bad) at the buffer's start, or None if the
        buffer holds only part of a frame."""
        b = self._buffer
        if len(b) < 3:
            return None
        if b[1] not in b"MX" or b[2] not in b"<>!":
            self.malformed += 1
            return 0, None
        direction = Direction(bytes(b[2:3]))
        version = 1 if b[1] == ord("M") else 2
        start = 5 if version == 1 else 8  # where the payload begins
        if len(b) < start:
            return None
        if version == 1:
            flags, command, size, limit, check = 0, b[4], b[3], min(V1_MAX_PAYLOAD, self.max_payload), _xor
        else:
            flags, command, size = struct.unpack_from("<BHH", b, 3)
            limit, check = self.max_payload, crc8_dvb_s2
        if size > limit:
            self.oversized += 1
            return 0, None
        end = start + size
        if len(b) < end + 1:
            return None
        if check(b[3:end]) != b[end]:
            self.checksum_errors += 1
            return 0, None
        return end + 1, Message(command, bytes(b[start:end]), direction, version, flags)


# Payloads --------------------------------------------------------------------------------------

ATTITUDE = struct.Struct("<hhh")
"""Roll and pitch in 0.1 degree, yaw (heading) in degrees, 0..359."""
RAW_IMU = struct.Struct("<9h")
"""Accelerometer (x, y, z), gyro (x, y, z) and magnetometer (x, y, z) in the board's raw units."""
RC_MIN, RC_MAX = 1000, 2000
"""RC channel values, microseconds of pulse width."""


def pack_attitude(roll_deg: float, pitch_deg: float, yaw_deg: float) -> bytes:
    return ATTITUDE.pack(round(roll_deg * 10), round(pitch_deg * 10), round(yaw_deg) % 360)


def unpack_attitude(payload: bytes) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in degrees, as Betaflight reports them."""
    if len(payload) != ATTITUDE.size:
        raise MspError(f"ATTITUDE payload of {len(payload)} bytes; {ATTITUDE.size} expected")
    roll, pitch, yaw = ATTITUDE.unpack(payload)
    return roll / 10.0, pitch / 10.0, float(yaw)


def pack_raw_imu(values: tuple[int, ...]) -> bytes:
    return RAW_IMU.pack(*values)


def unpack_raw_imu(payload: bytes) -> tuple[int, ...]:
    if len(payload) != RAW_IMU.size:
        raise MspError(f"RAW_IMU payload of {len(payload)} bytes; {RAW_IMU.size} expected")
    return RAW_IMU.unpack(payload)


def pack_rc(channels: tuple[int, ...]) -> bytes:
    """SET_RAW_RC's (and RC's) payload: u16 pulse widths, us; ValueError outside RC_MIN..RC_MAX."""
    bad = [c for c in channels if not RC_MIN <= c <= RC_MAX]
    if bad:
        raise ValueError(f"RC channel values must be within {RC_MIN}-{RC_MAX} us, got {bad}")
    return struct.pack(f"<{len(channels)}H", *channels)


def unpack_rc(payload: bytes) -> tuple[int, ...]:
    if len(payload) % 2:
        raise MspError(f"RC payload of {len(payload)} bytes is not a whole number of u16 channels")
    return struct.unpack(f"<{len(payload) // 2}H", payload)


STATUS = struct.Struct("<HHHIB")
"""MSP_STATUS's first fields: cycle time us, I2C errors, sensors present, flight mode flags, profile."""
ARMED_FLAG, ANGLE_FLAG, FAILSAFE_FLAG = 1 << 0, 1 << 1, 1 << 2
"""Flight mode flags of STATUS as the s2r emulator sets them (a board packs its own box ids, which
MSP_BOXIDS lists; ARM is box 0 on Betaflight)."""


def pack_status(cycle_time_us: int, flags: int) -> bytes:
    return STATUS.pack(cycle_time_us, 0, 0b11, flags, 0)


def unpack_status(payload: bytes) -> tuple[int, int]:
    """(cycle time us, flight mode flags) of a STATUS reply (longer replies: the first fields)."""
    if len(payload) < STATUS.size:
        raise MspError(f"STATUS payload of {len(payload)} bytes; at least {STATUS.size} expected")
    cycle, _, _, flags, _ = STATUS.unpack_from(payload)
    return cycle, flags


# Conventions ---------------------------------------------------------------------------------
# s2r's frames are world ENU-like (z up) and body FLU; a flight controller speaks in stick terms:
# roll right wing down, pitch nose up, yaw (heading) clockwise seen from above, all positive.

RC_CHANNELS = 8
"""SET_RAW_RC carries roll, pitch, yaw, throttle (Betaflight's AETR map) and AUX1..AUX4."""
AUX_ARM_HIGH, AUX_ARM_LOW = 1800, 1000
"""AUX1 at these arms and disarms (a board's ARM mode on AUX1 from 1700 us)."""
ARM_THRESHOLD = 1700


def sticks(setpoint: np.ndarray, max_rate: float, arm: bool) -> tuple[int, ...]:
    """SET_RAW_RC channels (RC_CHANNELS) of [collective thrust in [0, 1], body rates x, y, z rad/s
    (FLU)] for a board whose rate profile is linear up to `max_rate` rad/s at full stick: roll about
    body x, pitch stick forward (nose down) about +y, yaw stick right about -z; AUX1 arms."""
    thrust, rx, ry, rz = (float(v) for v in setpoint)

    def stick(v: float) -> int:
        return int(round(1500 + 500 * max(-1.0, min(1.0, v / max_rate))))

    throttle = int(round(RC_MIN + (RC_MAX - RC_MIN) * max(0.0, min(1.0, thrust))))
    aux = AUX_ARM_HIGH if arm else AUX_ARM_LOW
    return (stick(rx), stick(ry), stick(-rz), throttle, aux, RC_MIN, RC_MIN, RC_MIN)


def setpoint(channels: tuple[int, ...], max_rate: float) -> np.ndarray:
    """The inverse of `sticks`: [collective thrust, body rates x, y, z rad/s] of RC channels."""
    roll, pitch, yaw, throttle = (float(c) for c in channels[:4])
    scale = max_rate / 500.0
    return np.array(
        [(throttle - RC_MIN) / (RC_MAX - RC_MIN), (roll - 1500) * scale, (pitch - 1500) * scale, -(yaw - 1500) * scale]
    )


def attitude_of(quaternion: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, heading) in degrees, as ATTITUDE reports them, of the unit quaternion (w, x, y,
    z) from body FLU to world (z up): ZYX angles of the FLU frame, pitch negated (nose up positive)
    and heading clockwise in [0, 360)."""
    w, x, y, z = (float(v) for v in quaternion)
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return math.degrees(roll), -math.degrees(pitch), (-math.degrees(yaw)) % 360.0


def quaternion_of(roll_deg: float, pitch_deg: float, heading_deg: float) -> np.ndarray:
    """The inverse of `attitude_of`: the unit quaternion (w, x, y, z) of ATTITUDE's angles."""
    r, p, y = math.radians(roll_deg) / 2, -math.radians(pitch_deg) / 2, -math.radians(heading_deg) / 2
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return np.array(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ]
    )


GYRO_SCALE = 1.0
"""RAW_IMU's gyro unit, deg/s (Betaflight sends whole degrees per second)."""
ACC_1G = 512
"""RAW_IMU's accelerometer counts per g."""
