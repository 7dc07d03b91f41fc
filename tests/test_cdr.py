"""The hand-written CDR encoders produce exactly the bytes rosbags (ROS 2 Humble types) produces."""

import numpy as np
import pytest

rosbags = pytest.importorskip("rosbags", reason="rosbags is the reference serialiser (dev extra)")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from hardware.links import cdr  # noqa: E402

STORE = get_typestore(Stores.ROS2_HUMBLE)
T = STORE.types


def header(stamp_ns: int):
    time = T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return T["std_msgs/msg/Header"](stamp=time, frame_id="")


@pytest.mark.parametrize(
    "names, pos, vel, eff",
    [
        (["shoulder", "elbow"], [0.1, -2.0], [3.0, 4.5], [6.0, 0.0]),
        (["a"], [1.0], [], [2.0]),
        ([], [], [], []),
        (["wrist_roll", "thumb", "index_3"], [0.0, 1e-9, -1e9], [np.pi] * 3, [0.5, 0.25, 0.125]),
    ],
)
def test_joint_state_bytes(names, pos, vel, eff):
    stamp = 1_795_321_378_123_456_789
    msg = T["sensor_msgs/msg/JointState"](
        header=header(stamp), name=names, position=np.array(pos), velocity=np.array(vel), effort=np.array(eff)
    )
    assert cdr.joint_state(stamp, names, pos, vel, eff) == bytes(STORE.serialize_cdr(msg, msg.__msgtype__))


@pytest.mark.parametrize("values, label", [([1.0, -2.5], "effort"), ([], "x"), ([0.5], "action")])
def test_float64_multi_array_bytes(values, label):
    dim = T["std_msgs/msg/MultiArrayDimension"](label=label, size=len(values), stride=len(values))
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0)
    msg = T["std_msgs/msg/Float64MultiArray"](layout=layout, data=np.array(values, dtype=float))
    assert cdr.float64_multi_array(values, label) == bytes(STORE.serialize_cdr(msg, msg.__msgtype__))


def test_diagnostic_array_bytes():
    stamp = 42_000_000_007
    statuses = [(2, "s2r/loop", "stale state", "", {"tick": "17", "k": "v"}), (0, "n", "", "hw", {})]
    status_type, kv = T["diagnostic_msgs/msg/DiagnosticStatus"], T["diagnostic_msgs/msg/KeyValue"]
    msg = T["diagnostic_msgs/msg/DiagnosticArray"](
        header=header(stamp),
        status=[
            status_type(
                level=level, name=n, message=m, hardware_id=h, values=[kv(key=a, value=b) for a, b in v.items()]
            )
            for level, n, m, h, v in statuses
        ],
    )
    assert cdr.diagnostic_array(stamp, statuses) == bytes(STORE.serialize_cdr(msg, msg.__msgtype__))


def _pose(position, quaternion_wxyz):
    w, x, y, z = quaternion_wxyz
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=position[0], y=position[1], z=position[2]),
        orientation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
    )


def _vector(v):
    return T["geometry_msgs/msg/Vector3"](x=v[0], y=v[1], z=v[2])


def _framed(stamp_ns: int, frame: str):
    time = T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return T["std_msgs/msg/Header"](stamp=time, frame_id=frame)


POSE = ([0.1, -0.2, 1.05], [0.9, 0.1, -0.3, 0.2])


def test_pose_stamped_bytes():
    msg = T["geometry_msgs/msg/PoseStamped"](header=_framed(17, "world"), pose=_pose(*POSE))
    assert cdr.pose_stamped(17, "world", *POSE) == bytes(STORE.serialize_cdr(msg, msg.__msgtype__))


def test_odometry_bytes():
    linear, angular = [0.5, 0.0, -1.0], [3.0, -2.0, 0.25]
    msg = T["nav_msgs/msg/Odometry"](
        header=_framed(5_000_000_123, "world"),
        child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=_pose(*POSE), covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=_vector(linear), angular=_vector(angular)),
            covariance=np.zeros(36),
        ),
    )
    data = cdr.odometry(5_000_000_123, "world", "base_link", *POSE, linear, angular)
    assert data == bytes(STORE.serialize_cdr(msg, msg.__msgtype__))


def test_imu_bytes_say_there_is_no_acceleration_estimate():
    angular = [0.1, 0.2, -0.3]
    no_estimate = np.zeros(9)
    no_estimate[0] = -1.0  # sensor_msgs/Imu: a covariance starting with -1 marks a field without data
    msg = T["sensor_msgs/msg/Imu"](
        header=_framed(9, "base_link"),
        orientation=_pose(*POSE).orientation,
        orientation_covariance=np.zeros(9),
        angular_velocity=_vector(angular),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=_vector([0.0, 0.0, 0.0]),
        linear_acceleration_covariance=no_estimate,
    )
    assert cdr.imu(9, "base_link", POSE[1], angular) == bytes(STORE.serialize_cdr(msg, msg.__msgtype__))
