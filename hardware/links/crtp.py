"""CRTP, the Crazyflie's packet protocol: packets and the commander set-points, as the firmware reads them.

Specification: Bitcraze's CRTP documentation
(https://www.bitcraze.io/documentation/repository/crazyflie-firmware/master/functional-areas/crtp/)
and the firmware's decoders (src/modules/src/crtp_commander_rpyt.c,
crtp_commander_generic.c, quatcompress.h). A packet is

    header u8 = port << 4 | 0b11 << 2 | channel      payload: at most 30 bytes

(the two set bits are kept for the bootloader's sake; cflib sets them and the
firmware ignores them). Over cflib's UDP link, one packet is one datagram.
Set-points, little-endian:

    commander port 3, channel 0:        roll f32 deg, -pitch f32 deg, yaw rate f32 deg/s, thrust u16
    generic commander port 7, channel 0: type u8, then
        STOP 0            nothing
        FULL_STATE 6      position 3 x i16 mm, velocity 3 x i16 mm/s, acceleration 3 x i16 mm/s^2,
                          orientation u32 (compressed quaternion), body rates 3 x i16 mrad/s
        POSITION 7        x, y, z f32 m, yaw f32 deg
        VELOCITY_WORLD 8  vx, vy, vz f32 m/s, yaw rate f32 deg/s
        HOVER 10          vx, vy f32 m/s (body), yaw rate f32 deg/s, height f32 m

Protocol versions before 9 used other type numbers (the legacy 1, 2, 5); this
codec speaks the current ones only.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct

MAX_PAYLOAD = 30
"""Bytes of payload a CRTP packet carries at most."""
THRUST_MAX = 0xFFFF
"""The RPYT commander's thrust range is 0..this (10001 is next to no power, 60000 full)."""


class Port(enum.IntEnum):
    CONSOLE = 0x0
    PARAM = 0x2
    COMMANDER = 0x3
    MEM = 0x4
    LOGGING = 0x5
    LOCALIZATION = 0x6
    COMMANDER_GENERIC = 0x7
    SETPOINT_HL = 0x8
    SUPERVISOR = 0x9
    PLATFORM = 0xD
    LINK = 0xF


class Setpoint(enum.IntEnum):
    """The generic commander's set-point types (protocol version 9 and later)."""

    STOP = 0
    FULL_STATE = 6
    POSITION = 7
    VELOCITY_WORLD = 8
    HOVER = 10


class CrtpError(ValueError):
    """A packet that is not what its port and type say."""


@dataclasses.dataclass(frozen=True)
class Packet:
    port: int
    channel: int
    data: bytes = b""


def encode(packet: Packet) -> bytes:
    """The packet's bytes (header and payload); ValueError if it cannot be a CRTP packet."""
    if not 0 <= packet.port <= 0xF or not 0 <= packet.channel <= 3:
        raise ValueError(f"CRTP ports are 0-15 and channels 0-3, got port {packet.port} channel {packet.channel}")
    if len(packet.data) > MAX_PAYLOAD:
        raise ValueError(f"a CRTP payload is at most {MAX_PAYLOAD} bytes, got {len(packet.data)}")
    return bytes((packet.port << 4 | 0b1100 | packet.channel,)) + packet.data


def decode(raw: bytes) -> Packet:
    """A packet from its bytes (one datagram); CrtpError if empty or too long."""
    if not 1 <= len(raw) <= 1 + MAX_PAYLOAD:
        raise CrtpError(f"a CRTP packet is 1 to {1 + MAX_PAYLOAD} bytes, got {len(raw)}")
    return Packet(raw[0] >> 4, raw[0] & 0x3, bytes(raw[1:]))


# Set-points ------------------------------------------------------------------------------------

RPYT = struct.Struct("<fffH")
FOUR_FLOATS = struct.Struct("<Bffff")
FULL_STATE = struct.Struct("<BhhhhhhhhhIhhh")


@dataclasses.dataclass(frozen=True)
class Rpyt:
    """The RPYT commander's set-point: roll and pitch in degrees (pitch up positive, as cflib takes
    it), yaw rate in deg/s, thrust 0..THRUST_MAX."""

    roll_deg: float
    pitch_deg: float
    yaw_rate_deg_s: float
    thrust: int


@dataclasses.dataclass(frozen=True)
class FullState:
    """Position m, velocity m/s, acceleration m/s^2 (world), orientation quaternion (w, x, y, z),
    body rates rad/s: the wire's mm, mm/s, mm/s^2 and mrad/s resolution."""

    position: tuple[float, float, float]
    velocity: tuple[float, float, float]
    acceleration: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    rates: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Generic:
    """A generic commander set-point of `kind` with its four floats (POSITION: x, y, z m and yaw
    deg; VELOCITY_WORLD: vx, vy, vz m/s and yaw rate deg/s; HOVER: vx, vy m/s, yaw rate deg/s and
    height m); STOP has none."""

    kind: Setpoint
    values: tuple[float, ...] = ()


def pack_rpyt(s: Rpyt) -> Packet:
    if not 0 <= s.thrust <= THRUST_MAX:
        raise ValueError(f"RPYT thrust must be 0-{THRUST_MAX}, got {s.thrust}")
    return Packet(Port.COMMANDER, 0, RPYT.pack(s.roll_deg, -s.pitch_deg, s.yaw_rate_deg_s, s.thrust))


def pack_generic(s: Generic) -> Packet:
    if s.kind == Setpoint.STOP:
        return Packet(Port.COMMANDER_GENERIC, 0, bytes((Setpoint.STOP,)))
    if s.kind in (Setpoint.POSITION, Setpoint.VELOCITY_WORLD, Setpoint.HOVER) and len(s.values) == 4:
        return Packet(Port.COMMANDER_GENERIC, 0, FOUR_FLOATS.pack(s.kind, *s.values))
    raise ValueError(f"a {s.kind.name} set-point takes four values here, got {len(s.values)}")


def _i16(value: float, scale: float, what: str) -> int:
    raw = int(value * scale)  # truncated towards zero, as cflib packs it
    if not -0x8000 <= raw <= 0x7FFF:
        raise ValueError(f"{what} {value} does not fit the wire's int16 at 1/{scale:g}")
    return raw


def pack_full_state(s: FullState) -> Packet:
    values = [
        *(_i16(v, 1000, "position, m") for v in s.position),
        *(_i16(v, 1000, "velocity, m/s") for v in s.velocity),
        *(_i16(v, 1000, "acceleration, m/s^2") for v in s.acceleration),
    ]
    rates = [_i16(v, 1000, "body rate, rad/s") for v in s.rates]
    quaternion = compress_quaternion(s.quaternion)
    return Packet(Port.COMMANDER_GENERIC, 0, FULL_STATE.pack(Setpoint.FULL_STATE, *values, quaternion, *rates))


def unpack_setpoint(packet: Packet) -> Rpyt | Generic | FullState:
    """The set-point a commander packet carries, as the firmware decodes it; CrtpError otherwise."""
    data = packet.data
    if packet.port == Port.COMMANDER and packet.channel == 0:
        if len(data) != RPYT.size:
            raise CrtpError(f"an RPYT set-point is {RPYT.size} bytes, got {len(data)}")
        roll, pitch, yaw_rate, thrust = RPYT.unpack(data)
        return Rpyt(roll, -pitch, yaw_rate, thrust)
    if packet.port != Port.COMMANDER_GENERIC or packet.channel != 0 or not data:
        raise CrtpError(f"port {packet.port} channel {packet.channel} carries no set-point")
    kind = data[0]
    if kind == Setpoint.STOP:
        return Generic(Setpoint.STOP)
    if kind in (Setpoint.POSITION, Setpoint.VELOCITY_WORLD, Setpoint.HOVER):
        if len(data) != FOUR_FLOATS.size:
            raise CrtpError(f"a {Setpoint(kind).name} set-point is {FOUR_FLOATS.size} bytes, got {len(data)}")
        values = FOUR_FLOATS.unpack(data)[1:]
        if not all(math.isfinite(v) for v in values):
            raise CrtpError(f"a {Setpoint(kind).name} set-point with non-finite values {values}")
        return Generic(Setpoint(kind), values)
    if kind == Setpoint.FULL_STATE:
        if len(data) != FULL_STATE.size:
            raise CrtpError(f"a FULL_STATE set-point is {FULL_STATE.size} bytes, got {len(data)}")
        fields = FULL_STATE.unpack(data)
        mm = [v / 1000.0 for v in fields[1:10]]
        return FullState(
            tuple(mm[0:3]), tuple(mm[3:6]), tuple(mm[6:9]), decompress_quaternion(fields[10]),
            tuple(v / 1000.0 for v in fields[11:14]),
        )  # fmt: skip
    raise CrtpError(f"unknown generic set-point type {kind}")


def rates_setpoint(setpoint) -> Rpyt:
    """The RPYT set-point in rate mode (`flightmode.stabModeRoll` and `stabModePitch` 0) of
    [collective thrust in [0, 1], body rates x, y, z rad/s (FLU)]: roll the rate about x, pitch
    (nose up positive, as cflib takes it) minus the rate about y, yaw rate about z, in deg/s; thrust
    scaled to 0..THRUST_MAX."""
    thrust, x, y, z = (float(v) for v in setpoint)
    return Rpyt(math.degrees(x), -math.degrees(y), math.degrees(z), int(round(min(1.0, max(0.0, thrust)) * THRUST_MAX)))


def rates_of(s: Rpyt) -> tuple[float, float, float, float]:
    """The inverse of `rates_setpoint`: [collective thrust, body rates (3) rad/s]."""
    return s.thrust / THRUST_MAX, math.radians(s.roll_deg), -math.radians(s.pitch_deg), math.radians(s.yaw_rate_deg_s)


# The firmware's compressed quaternion (quatcompress.h): the index of the largest component in the
# top 2 bits, then for each of the other three (in order) a sign bit and 9 bits of magnitude in
# units of 1/sqrt(2) / 511; the largest is recovered from the unit norm, made positive.

_SCALE = (1 << 9) - 1


def compress_quaternion(q: tuple[float, float, float, float]) -> int:
    """(w, x, y, z) -> u32; the wire's component order is (x, y, z, w)."""
    w, x, y, z = q
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if not norm > 0 or not math.isfinite(norm):
        raise ValueError(f"cannot compress the quaternion {q}")
    xyzw = [x / norm, y / norm, z / norm, w / norm]
    largest = max(range(4), key=lambda i: abs(xyzw[i]))
    negate = xyzw[largest] < 0
    out = largest
    for i, c in enumerate(xyzw):
        if i != largest:
            sign = (c < 0) ^ negate
            out = (out << 10) | (sign << 9) | int(_SCALE * abs(c) * math.sqrt(2) + 0.5)
    return out


def decompress_quaternion(packed: int) -> tuple[float, float, float, float]:
    """u32 -> (w, x, y, z), unit norm."""
    largest = packed >> 30
    xyzw = [0.0] * 4
    squares = 0.0
    for i in range(3, -1, -1):
        if i == largest:
            continue
        magnitude = (packed & _SCALE) / _SCALE / math.sqrt(2)
        xyzw[i] = -magnitude if packed & (1 << 9) else magnitude
        squares += magnitude * magnitude
        packed >>= 10
    xyzw[largest] = math.sqrt(max(0.0, 1.0 - squares))
    x, y, z, w = xyzw
    return w, x, y, z
