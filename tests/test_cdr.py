"""The hand-written CDR encoders produce exactly the bytes rosbags (ROS 2 Humble types) produces."""

import numpy as np
import pytest

rosbags = pytest.importorskip("rosbags", reason="rosbags is the reference serialiser (dev extra)")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from hardware import cdr  # noqa: E402

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
