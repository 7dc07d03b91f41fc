"""ROS 2 over DDS without ROS 2: message bytes and type hashes against rosbags, and real DDS traffic
on loopback between processes (Cyclone DDS confined to 127.0.0.1, a domain id per test)."""

import multiprocessing
import time

import numpy as np
import pytest
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.qos import Policy

from hardware import ros2_msgs as m
from hardware.dds import DdsTransport, dds_topic

rosbags = pytest.importorskip("rosbags.typesys", reason="rosbags is the reference serialiser (dev extra)")
STORE = rosbags.get_typestore(rosbags.Stores.ROS2_HUMBLE)
T = STORE.types


def _examples():
    """(ours, rosbags') pairs for every message type, with every field populated."""
    time_, header = m.Time(1_700_000_000, 123_456_789), m.Header(m.Time(5, 6), "base_link")
    r_time = T["builtin_interfaces/msg/Time"](1_700_000_000, 123_456_789)
    r_header = T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](5, 6), "base_link")
    dim = m.MultiArrayDimension("effort", 2, 2)
    r_dim = T["std_msgs/msg/MultiArrayDimension"]("effort", 2, 2)
    layout, r_layout = m.MultiArrayLayout([dim], 0), T["std_msgs/msg/MultiArrayLayout"]([r_dim], 0)
    kv, r_kv = m.KeyValue("tick", "17"), T["diagnostic_msgs/msg/KeyValue"]("tick", "17")
    status = m.DiagnosticStatus(2, "s2r/loop", "stale state", "pendubot", [kv])
    r_status = T["diagnostic_msgs/msg/DiagnosticStatus"](2, "s2r/loop", "stale state", "pendubot", [r_kv])
    return [
        (time_, r_time),
        (header, r_header),
        (
            m.JointState(header, ["shoulder", "elbow"], [0.5, -1.25], [3.0, 4.5], [1.5, 0.0]),
            T["sensor_msgs/msg/JointState"](
                r_header, ["shoulder", "elbow"], np.array([0.5, -1.25]), np.array([3.0, 4.5]), np.array([1.5, 0.0])
            ),
        ),
        (dim, r_dim),
        (layout, r_layout),
        (
            m.Float64MultiArray(layout, [1.5, -2.0]),
            T["std_msgs/msg/Float64MultiArray"](r_layout, np.array([1.5, -2.0])),
        ),
        (kv, r_kv),
        (status, r_status),
        (m.DiagnosticArray(header, [status]), T["diagnostic_msgs/msg/DiagnosticArray"](r_header, [r_status])),
    ]


@pytest.mark.parametrize("ours,theirs", _examples(), ids=lambda x: type(x).__name__)
def test_cdr_bytes_equal_rosbags(ours, theirs):
    assert ours.serialize() == bytes(STORE.serialize_cdr(theirs, ours.ros_type))
    assert type(ours).deserialize(ours.serialize()) == ours


@pytest.mark.parametrize("message_type", m.MESSAGES, ids=lambda t: t.ros_type)
def test_type_names_and_hashes_are_ros2s(message_type):
    package, _, name = message_type.ros_type.split("/")
    assert message_type.__idl_typename__ == f"{package}::msg::dds_::{name}_"
    assert message_type.type_hash == STORE.hash_rihs01(message_type.ros_type)


def test_topic_mapping():
    assert dds_topic("/joint_states") == "rt/joint_states"
    assert dds_topic("/pendubot/commands") == "rt/pendubot/commands"
    for bad in ("joint_states", "/a//b", "/a/"):
        with pytest.raises(ValueError, match="invalid ROS 2 topic"):
            dds_topic(bad)


def _publish_joint_states(domain_id: int, count: int) -> None:
    transport = DdsTransport(domain_id, loopback=True)
    writer = transport.publisher("/joint_states", m.JointState, reliable=False)
    time.sleep(0.5)  # discovery
    for i in range(count):
        stamp = m.Time.from_ns(i * 10_000_000)
        writer.write(m.JointState(m.Header(stamp, ""), ["shoulder", "elbow"], [i, -i], [0.0, 0.0], [0.0, 0.0]))
        time.sleep(0.01)


def test_joint_states_cross_processes_over_loopback_dds():
    domain_id = 71
    transport = DdsTransport(domain_id, loopback=True)
    reader = transport.subscriber("/joint_states", m.JointState)
    publications = BuiltinDataReader(transport.participant, BuiltinTopicDcpsPublication)
    process = multiprocessing.get_context("spawn").Process(target=_publish_joint_states, args=(domain_id, 100))
    process.start()
    received, seen = [], []
    deadline = time.monotonic() + 30
    while process.is_alive() or not received:
        received += reader.take(32)
        seen += publications.take(8)
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    process.join(timeout=5)
    received += reader.take(32)
    # A writer that goes away leaves "invalid" samples (its unregistration), not messages.
    received = [s for s in received if isinstance(s, m.JointState)]
    assert len(received) >= 50, "best effort on loopback loses little"
    positions = [s.position[0] for s in received]
    assert positions == sorted(positions) and received[-1].name == ["shoulder", "elbow"]
    remote = [p for p in seen if p.topic_name == "rt/joint_states"]
    assert remote and remote[0].type_name == "sensor_msgs::msg::dds_::JointState_"
    assert remote[0].qos[Policy.Userdata].data == f"typehash={m.JointState.type_hash};".encode()


def test_other_domains_see_nothing():
    a = DdsTransport(72, loopback=True)
    b = DdsTransport(73, loopback=True)
    writer = a.publisher("/command", m.Float64MultiArray)
    reader = b.subscriber("/command", m.Float64MultiArray, reliable=True)
    for _ in range(20):
        writer.write(m.Float64MultiArray.vector([1.0], "effort"))
        time.sleep(0.01)
    assert reader.take(32) == []
