"""ROS 2 CDR encoding (XCDR1, little endian) of the few message types s2r writes.

Hand-written because a generic encoder costs tens of microseconds per message,
which a 1 kHz loop's logger cannot afford. Field order and alignment follow the
ROS 2 message definitions; tests check every byte against rosbags' serialiser.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

ENCAPSULATION = b"\x00\x01\x00\x00"  # CDR_LE


class CdrWriter:
    """Appends aligned primitives; offsets count from after the encapsulation header."""

    def __init__(self):
        self.buf = bytearray(ENCAPSULATION)

    def _align(self, n: int) -> None:
        pad = -(len(self.buf) - 4) % n
        if pad:
            self.buf += b"\x00" * pad

    def uint32(self, v: int) -> None:
        self._align(4)
        self.buf += struct.pack("<I", v)

    def int32(self, v: int) -> None:
        self._align(4)
        self.buf += struct.pack("<i", v)

    def uint8(self, v: int) -> None:
        self.buf += struct.pack("<B", v)

    def string(self, s: str) -> None:
        data = s.encode()
        self.uint32(len(data) + 1)
        self.buf += data + b"\x00"

    def strings(self, items: Sequence[str]) -> None:
        self.uint32(len(items))
        for s in items:
            self.string(s)

    def float64s(self, values: Sequence[float]) -> None:
        self.uint32(len(values))
        if len(values):
            self._align(8)
            self.buf += struct.pack(f"<{len(values)}d", *values)

    def header(self, stamp_ns: int, frame_id: str = "") -> None:
        self.int32(stamp_ns // 1_000_000_000)
        self.uint32(stamp_ns % 1_000_000_000)
        self.string(frame_id)

    def float64_fixed(self, values: Sequence[float]) -> None:
        """Doubles of a fixed-size field (a struct's float64 members, float64[N]): no length."""
        self._align(8)
        self.buf += struct.pack(f"<{len(values)}d", *values)


@functools.lru_cache(maxsize=64)
def _joint_state_template(names: tuple[str, ...], sizes: tuple[int, int, int]) -> tuple[bytes, tuple[int, ...]]:
    """For fixed names and sizes only the numbers change: encode zeros once and remember
    where the stamp and each array of doubles sit."""
    w = CdrWriter()
    w.header(0)
    w.strings(names)
    offsets = []
    for count in sizes:
        w.uint32(count)
        if count:
            w._align(8)
        offsets.append(len(w.buf))
        w.buf += bytes(8 * count)
    return bytes(w.buf), tuple(offsets)


def joint_state(stamp_ns: int, names: Sequence[str], position, velocity, effort) -> bytes:
    """sensor_msgs/msg/JointState."""
    arrays = (position, velocity, effort)
    template, offsets = _joint_state_template(tuple(names), tuple(len(a) for a in arrays))
    buf = bytearray(template)
    struct.pack_into("<iI", buf, 4, stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    for values, offset in zip(arrays, offsets, strict=True):
        struct.pack_into(f"<{len(values)}d", buf, offset, *values)
    return bytes(buf)


@functools.lru_cache(maxsize=64)
def _multi_array_prefix(label: str, size: int) -> bytes:
    w = CdrWriter()
    w.uint32(1)  # layout.dim: one MultiArrayDimension
    w.string(label)
    w.uint32(size)  # size
    w.uint32(size)  # stride
    w.uint32(0)  # layout.data_offset
    w.uint32(size)  # data length
    if size:
        w._align(8)
    return bytes(w.buf)


def float64_multi_array(values, label: str) -> bytes:
    """std_msgs/msg/Float64MultiArray with one dimension named `label`."""
    return _multi_array_prefix(label, len(values)) + struct.pack(f"<{len(values)}d", *values)


def diagnostic_array(stamp_ns: int, statuses: Sequence[tuple[int, str, str, str, dict[str, str]]]) -> bytes:
    """diagnostic_msgs/msg/DiagnosticArray; each status is (level, name, message, hardware_id, values)."""
    w = CdrWriter()
    w.header(stamp_ns)
    w.uint32(len(statuses))
    for level, name, message, hardware_id, values in statuses:
        w.uint8(level)
        w.string(name)
        w.string(message)
        w.string(hardware_id)
        w.uint32(len(values))
        for key, value in values.items():
            w.string(key)
            w.string(value)
    return bytes(w.buf)


def _xyzw(quaternion_wxyz: Sequence[float]) -> tuple[float, float, float, float]:
    """ROS orders a quaternion x, y, z, w; s2r's channels (and MuJoCo) w, x, y, z."""
    w, x, y, z = quaternion_wxyz
    return x, y, z, w


def pose_stamped(stamp_ns: int, frame_id: str, position: Sequence[float], quaternion_wxyz: Sequence[float]) -> bytes:
    """geometry_msgs/msg/PoseStamped."""
    w = CdrWriter()
    w.header(stamp_ns, frame_id)
    w.float64_fixed([*position, *_xyzw(quaternion_wxyz)])
    return bytes(w.buf)


_NO_COVARIANCE = (0.0,) * 36


def odometry(
    stamp_ns: int,
    frame_id: str,
    child_frame_id: str,
    position: Sequence[float],
    quaternion_wxyz: Sequence[float],
    linear: Sequence[float],
    angular: Sequence[float],
) -> bytes:
    """nav_msgs/msg/Odometry: the pose in `frame_id`, the twist in `child_frame_id` (REP 105)."""
    w = CdrWriter()
    w.header(stamp_ns, frame_id)
    w.string(child_frame_id)
    w.float64_fixed([*position, *_xyzw(quaternion_wxyz), *_NO_COVARIANCE])
    w.float64_fixed([*linear, *angular, *_NO_COVARIANCE])
    return bytes(w.buf)


def imu(stamp_ns: int, frame_id: str, quaternion_wxyz: Sequence[float], angular: Sequence[float]) -> bytes:
    """sensor_msgs/msg/Imu with orientation and angular velocity; no linear acceleration (its
    covariance's first element -1, as the message defines for a field without an estimate)."""
    w = CdrWriter()
    w.header(stamp_ns, frame_id)
    w.float64_fixed([*_xyzw(quaternion_wxyz), *(0.0,) * 9, *angular, *(0.0,) * 9, 0.0, 0.0, 0.0, -1.0, *(0.0,) * 8])
    return bytes(w.buf)


class CdrReader:
    """Reads aligned primitives from a CDR_LE buffer; raises ValueError on anything malformed."""

    def __init__(self, data: bytes):
        if data[:4] != ENCAPSULATION:
            raise ValueError(f"not little-endian plain CDR: encapsulation {bytes(data[:4]).hex()}")
        self.data = memoryview(data)
        self.pos = 4

    def _take(self, fmt: str, size: int, align: int):
        self.pos += -(self.pos - 4) % align
        end = self.pos + size
        if end > len(self.data):
            raise ValueError(f"CDR message ends at byte {len(self.data)}, needs {end}")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos = end
        return values

    def uint32(self) -> int:
        return self._take("<I", 4, 4)[0]

    def int32(self) -> int:
        return self._take("<i", 4, 4)[0]

    def string(self) -> str:
        n = self.uint32()
        if n == 0 or self.pos + n > len(self.data):
            raise ValueError(f"CDR string of length {n} at byte {self.pos} does not fit")
        raw = bytes(self.data[self.pos : self.pos + n - 1])
        self.pos += n
        return raw.decode()

    def strings(self) -> list[str]:
        return [self.string() for _ in range(self.uint32())]

    def float64s(self) -> tuple[float, ...]:
        n = self.uint32()
        return self._take(f"<{n}d", 8 * n, 8 if n else 1)

    def header(self) -> tuple[int, str]:
        sec, nanosec = self.int32(), self.uint32()
        return sec * 1_000_000_000 + nanosec, self.string()


def read_joint_state(
    data: bytes,
) -> tuple[int, str, list[str], tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """sensor_msgs/msg/JointState: (stamp ns, frame_id, names, position, velocity, effort)."""
    r = CdrReader(data)
    stamp, frame = r.header()
    return stamp, frame, r.strings(), r.float64s(), r.float64s(), r.float64s()


def read_float64_multi_array(data: bytes) -> tuple[list[tuple[str, int, int]], int, tuple[float, ...]]:
    """std_msgs/msg/Float64MultiArray: (dims as (label, size, stride), data_offset, data)."""
    r = CdrReader(data)
    dims = [(r.string(), r.uint32(), r.uint32()) for _ in range(r.uint32())]
    return dims, r.uint32(), r.float64s()
