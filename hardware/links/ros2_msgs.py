"""The ROS 2 messages s2r exchanges, as Cyclone DDS types under ROS 2's DDS mapping.

ROS 2 over DDS: message type `pkg/msg/T` is the DDS type `pkg::msg::dds_::T_`,
a final (non-extensible) struct in plain CDR (XCDR1), so these serialise to
the bytes rmw_cyclonedds_cpp writes. Each type carries its ROS 2 name and its
RIHS01 type hash, which Iron and later expect in an endpoint's USER_DATA.

A received message that does not decode (truncated, a name that is not UTF-8)
becomes a `Malformed` in its place, so a reader counts and rejects it and
still gets the good messages that came with it.
"""

# No `from __future__ import annotations`: Cyclone DDS reads these field annotations as objects,
# and class attributes without one (ros_type, type_hash) are not fields.
from dataclasses import dataclass, field

import cyclonedds.idl as idl
import cyclonedds.idl.annotations as annotate
import cyclonedds.idl.types as types

from hardware.links import cdr


@dataclass
@annotate.final
class Time(idl.IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: types.int32 = 0
    nanosec: types.uint32 = 0
    ros_type = "builtin_interfaces/msg/Time"
    type_hash = "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197"

    @classmethod
    def from_ns(cls, ns: int) -> "Time":
        return cls(ns // 1_000_000_000, ns % 1_000_000_000)

    def to_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


@dataclass
@annotate.final
class Header(idl.IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""
    ros_type = "std_msgs/msg/Header"
    type_hash = "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01"


@dataclass
@annotate.final
class JointState(idl.IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header = field(default_factory=Header)
    name: types.sequence[str] = field(default_factory=list)
    position: types.sequence[types.float64] = field(default_factory=list)
    velocity: types.sequence[types.float64] = field(default_factory=list)
    effort: types.sequence[types.float64] = field(default_factory=list)
    ros_type = "sensor_msgs/msg/JointState"
    type_hash = "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"

    # The loop's hot path: the hand-written CDR codec (hardware.links.cdr) is several times faster than
    # the generic one, byte for byte the same.
    def serialize(self, *args, **kwargs) -> bytes:
        if args or kwargs or self.header.frame_id:
            return super().serialize(*args, **kwargs)
        stamp = self.header.stamp.to_ns()
        return cdr.joint_state(stamp, self.name, self.position, self.velocity, self.effort)

    @classmethod
    def deserialize(cls, data: bytes, has_header: bool = True, use_version_2=None) -> "JointState":
        if not has_header or use_version_2:
            return super().deserialize(data, has_header=has_header, use_version_2=use_version_2)
        stamp, frame, names, position, velocity, effort = cdr.read_joint_state(data)
        return cls(Header(Time.from_ns(stamp), frame), names, list(position), list(velocity), list(effort))


@dataclass
@annotate.final
class MultiArrayDimension(idl.IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    label: str = ""
    size: types.uint32 = 0
    stride: types.uint32 = 0
    ros_type = "std_msgs/msg/MultiArrayDimension"
    type_hash = "RIHS01_5e773a60a4c7fc8a54985f307c7837aa2994252a126c301957a24e31282c9cbe"


@dataclass
@annotate.final
class MultiArrayLayout(idl.IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: types.sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: types.uint32 = 0
    ros_type = "std_msgs/msg/MultiArrayLayout"
    type_hash = "RIHS01_4c66e6f78e740ac103a94cf63259f968e48c617e7699e829b63c21a5cb50dac6"


@dataclass
@annotate.final
class Float64MultiArray(idl.IdlStruct, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: types.sequence[types.float64] = field(default_factory=list)
    ros_type = "std_msgs/msg/Float64MultiArray"
    type_hash = "RIHS01_1025ddc6b9552d191f89ef1a8d2f60f3d373e28b283d8891ddcc974e8c55397f"

    def serialize(self, *args, **kwargs) -> bytes:
        dims = self.layout.dim
        plain = len(dims) == 1 and dims[0].size == dims[0].stride == len(self.data) and not self.layout.data_offset
        if args or kwargs or not plain:
            return super().serialize(*args, **kwargs)
        return cdr.float64_multi_array(self.data, dims[0].label)

    @classmethod
    def deserialize(cls, data: bytes, has_header: bool = True, use_version_2=None) -> "Float64MultiArray":
        if not has_header or use_version_2:
            return super().deserialize(data, has_header=has_header, use_version_2=use_version_2)
        dims, offset, values = cdr.read_float64_multi_array(data)
        return cls(MultiArrayLayout([MultiArrayDimension(*d) for d in dims], offset), list(values))

    @classmethod
    def vector(cls, values, label: str) -> "Float64MultiArray":
        """A 1-D array with its one dimension labelled, as forward_command_controller publishes."""
        values = [float(v) for v in values]
        dim = MultiArrayDimension(label, len(values), len(values))
        return cls(MultiArrayLayout([dim], 0), values)


@dataclass
@annotate.final
class KeyValue(idl.IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str = ""
    value: str = ""
    ros_type = "diagnostic_msgs/msg/KeyValue"
    type_hash = "RIHS01_d68081eaa540288c5440753baecef0c4e16e81a5f78ad68902ded5100413bb42"


@dataclass
@annotate.final
class DiagnosticStatus(idl.IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    level: types.byte = 0
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: types.sequence[KeyValue] = field(default_factory=list)
    ros_type = "diagnostic_msgs/msg/DiagnosticStatus"
    type_hash = "RIHS01_b0e3e692ea2d54a8af2f4ef1930e81556a2db55216b771f8a7d2724ed47bf0e4"
    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass
@annotate.final
class DiagnosticArray(idl.IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    header: Header = field(default_factory=Header)
    status: types.sequence[DiagnosticStatus] = field(default_factory=list)
    ros_type = "diagnostic_msgs/msg/DiagnosticArray"
    type_hash = "RIHS01_5a8a36efb05fb25070fa0fb3810290c0e6cd4862b54a8fb975a1ee8dc55a333e"


@dataclass
@annotate.final
class Empty(idl.IdlStruct, typename="std_msgs::msg::dds_::Empty_"):
    structure_needs_at_least_one_member: types.uint8 = 0
    ros_type = "std_msgs/msg/Empty"
    type_hash = "RIHS01_20b625256f32d5dbc0d04fee44f43c41e51c70d3502f84b4a08e7a9c26a96312"


@dataclass
@annotate.final
class Point(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    x: types.float64 = 0.0
    y: types.float64 = 0.0
    z: types.float64 = 0.0


@dataclass
@annotate.final
class Quaternion(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: types.float64 = 0.0
    y: types.float64 = 0.0
    z: types.float64 = 0.0
    w: types.float64 = 1.0


@dataclass
@annotate.final
class Pose(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    position: Point = field(default_factory=Point)
    orientation: Quaternion = field(default_factory=Quaternion)


@dataclass
@annotate.final
class PoseWithCovariance(idl.IdlStruct, typename="geometry_msgs::msg::dds_::PoseWithCovariance_"):
    pose: Pose = field(default_factory=Pose)
    covariance: types.array[types.float64, 36] = field(default_factory=lambda: [0.0] * 36)


@dataclass
@annotate.final
class Vector3(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: types.float64 = 0.0
    y: types.float64 = 0.0
    z: types.float64 = 0.0


@dataclass
@annotate.final
class Twist(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    """Also crazyswarm2's `cmd_vel_legacy`: linear.y roll, -linear.x pitch (deg), angular.z yaw rate
    (deg/s), linear.z thrust (0..60000), the RPYT commander's set-point."""

    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)
    ros_type = "geometry_msgs/msg/Twist"
    type_hash = "RIHS01_9c45bf16fe0983d80e3cfe750d6835843d265a9a6c46bd2e609fcddde6fb8d2a"


@dataclass
@annotate.final
class TwistWithCovariance(idl.IdlStruct, typename="geometry_msgs::msg::dds_::TwistWithCovariance_"):
    twist: Twist = field(default_factory=Twist)
    covariance: types.array[types.float64, 36] = field(default_factory=lambda: [0.0] * 36)


@dataclass
@annotate.final
class Odometry(idl.IdlStruct, typename="nav_msgs::msg::dds_::Odometry_"):
    """A body's pose in `header.frame_id` and its twist in `child_frame_id` (REP 105): what a
    motion-capture bridge publishes for a tracked vehicle."""

    header: Header = field(default_factory=Header)
    child_frame_id: str = ""
    pose: PoseWithCovariance = field(default_factory=PoseWithCovariance)
    twist: TwistWithCovariance = field(default_factory=TwistWithCovariance)
    ros_type = "nav_msgs/msg/Odometry"
    type_hash = "RIHS01_3cc97dc7fb7502f8714462c526d369e35b603cfc34d946e3f2eda2766dfec6e0"


@dataclass
@annotate.final
class PoseStamped(idl.IdlStruct, typename="geometry_msgs::msg::dds_::PoseStamped_"):
    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)
    ros_type = "geometry_msgs/msg/PoseStamped"
    type_hash = "RIHS01_10f3786d7d40fd2b54367835614bff85d4ad3b5dab62bf8bca0cc232d73b4cd8"


# crazyswarm2's crazyflie_interfaces (no wheel on the registry: defined here, wire-compatible).


@dataclass
@annotate.final
class Position(idl.IdlStruct, typename="crazyflie_interfaces::msg::dds_::Position_"):
    """`cmd_position`: where the Crazyflie's own position controller takes it, m and yaw deg."""

    header: Header = field(default_factory=Header)
    x: types.float32 = 0.0
    y: types.float32 = 0.0
    z: types.float32 = 0.0
    yaw: types.float32 = 0.0
    ros_type = "crazyflie_interfaces/msg/Position"
    type_hash = "RIHS01_a4bf0f7d2b21c142b07ce860e4d2192ad831125c65aee6f12fad6f628b329e55"


@dataclass
@annotate.final
class FullState(idl.IdlStruct, typename="crazyflie_interfaces::msg::dds_::FullState_"):
    """`cmd_full_state`: pose, twist (world linear, body angular) and acceleration to track."""

    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)
    twist: Twist = field(default_factory=Twist)
    acc: Vector3 = field(default_factory=Vector3)
    ros_type = "crazyflie_interfaces/msg/FullState"
    type_hash = "RIHS01_bd2e17994c6bec891c6ea8232010a47ecd291bc282ef452814229fd9297ba56f"


@dataclass
@annotate.final
class LogDataGeneric(idl.IdlStruct, typename="crazyflie_interfaces::msg::dds_::LogDataGeneric_"):
    """A custom log topic: the on-board stamp (ms) and the block's values, in its variables' order."""

    header: Header = field(default_factory=Header)
    timestamp: types.uint32 = 0
    values: types.sequence[types.float32] = field(default_factory=list)
    ros_type = "crazyflie_interfaces/msg/LogDataGeneric"
    type_hash = "RIHS01_c384b5eed47a721c171818ebf0619ac2681eb5949b020a344247a16ab02a63e7"


@dataclass
class Malformed:
    """What a reader gets in place of a message that did not decode, and why."""

    ros_type: str
    error: str


def _tolerant(message_type):
    """Make `message_type.deserialize` return a Malformed instead of raising on bad bytes."""
    decode = message_type.deserialize

    def deserialize(data: bytes, *args, **kwargs):
        try:
            return decode(data, *args, **kwargs)
        except Exception as exc:  # whatever the bytes made the decoder meet
            return Malformed(message_type.ros_type, f"{type(exc).__name__}: {exc}")

    message_type.deserialize = staticmethod(deserialize)
    return message_type


MESSAGES = (
    Time,
    Header,
    JointState,
    MultiArrayDimension,
    MultiArrayLayout,
    Float64MultiArray,
    KeyValue,
    DiagnosticStatus,
    DiagnosticArray,
    Empty,
    Odometry,
    Twist,
    PoseStamped,
    Position,
    FullState,
    LogDataGeneric,
)
for _type in MESSAGES:
    _tolerant(_type)
