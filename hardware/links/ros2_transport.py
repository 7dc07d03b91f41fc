"""ROS 2 transports: rclpy where ROS 2 is installed, Cyclone DDS (hardware.links.dds) everywhere else.

Both offer the same calls, with the messages of `hardware.links.ros2_msgs`:
`publisher(topic, type, reliable, depth).write(msg)`,
`subscriber(topic, type, reliable, depth).take(n) -> [msg]`,
`publisher_types(topic) -> {"pkg/msg/T", ...}`, `matched(endpoint) -> int`
(how many endpoints on the other side a publisher or subscriber is matched
with) and `close()`. The rclpy transport moves the messages as serialized CDR
(a publisher publishes bytes, a subscription is raw), which is byte for byte
what `hardware.links.ros2_msgs` reads and writes, so there is no per-type
conversion; it goes through whatever middleware ROS 2 is configured with
(RMW_IMPLEMENTATION).

`make_transport` picks rclpy when it can be imported and Cyclone DDS
otherwise; `backend`, or the S2R_ROS2_BACKEND environment variable, overrides.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import threading
from typing import Any

BACKENDS = ("auto", "rclpy", "cyclonedds")


def choose_backend(backend: str = "auto") -> str:
    """The backend to use: `backend`, else S2R_ROS2_BACKEND, else rclpy if importable, else cyclonedds."""
    if backend == "auto":
        backend = os.environ.get("S2R_ROS2_BACKEND", "auto") or "auto"
    if backend not in BACKENDS:
        raise ValueError(f"unknown ROS 2 backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "rclpy" if importlib.util.find_spec("rclpy") is not None else "cyclonedds"
    if backend == "rclpy" and importlib.util.find_spec("rclpy") is None:
        raise ValueError("the rclpy backend needs a ROS 2 install (source /opt/ros/<distro>/setup.bash)")
    return backend


def make_transport(
    domain_id: int = 0,
    loopback: bool = False,
    backend: str = "auto",
    node_name: str = "s2r",
    args: list[str] | None = None,
):
    """A transport on ROS 2 domain `domain_id`; `loopback` keeps Cyclone DDS on 127.0.0.1. Under rclpy
    it is the node `node_name`, and `args` (a command line with `--ros-args ...`) go to rclpy.init."""
    if choose_backend(backend) == "rclpy":
        if loopback:
            raise ValueError("loopback is for the cyclonedds backend; with rclpy use ROS 2's own setting")
        return RclpyTransport(domain_id, node_name, args)
    from hardware.links.dds import DdsTransport

    return DdsTransport(domain_id, loopback=loopback)


class _RawReader:
    """Keeps the newest `depth` serialized messages of a subscription; take() decodes them."""

    def __init__(self, message_type, depth: int):
        self.message_type = message_type
        self.subscription = None
        self._queue: collections.deque[bytes] = collections.deque(maxlen=depth)
        self._lock = threading.Lock()

    def on_message(self, data: bytes) -> None:
        with self._lock:
            self._queue.append(bytes(data))

    def take(self, n: int = 1) -> list[Any]:
        with self._lock:
            raw = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
        return [self.message_type.deserialize(data) for data in raw]


class _RawWriter:
    def __init__(self, publisher):
        self._publisher = publisher

    def write(self, message) -> None:
        self._publisher.publish(message.serialize())


class RclpyTransport:
    """One rclpy node on `domain_id`, spun by an executor in a background thread."""

    def __init__(self, domain_id: int = 0, node_name: str = "s2r", args: list[str] | None = None):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self._context = rclpy.Context()
        rclpy.init(args=args, context=self._context, domain_id=domain_id)
        self.node = rclpy.create_node(node_name, context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name="s2r-rclpy", daemon=True)
        self._thread.start()
        self._readers: list[_RawReader] = []

    @staticmethod
    def _qos(reliable: bool, depth: int):
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        return QoSProfile(reliability=reliability, history=HistoryPolicy.KEEP_LAST, depth=depth)

    @staticmethod
    def _ros_class(message_type):
        package, _, name = message_type.ros_type.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), name)

    def publisher(self, topic: str, message_type, reliable: bool = True, depth: int = 10) -> _RawWriter:
        ros_class = self._ros_class(message_type)
        return _RawWriter(self.node.create_publisher(ros_class, topic, self._qos(reliable, depth)))

    def subscriber(self, topic: str, message_type, reliable: bool = False, depth: int = 5) -> _RawReader:
        reader = _RawReader(message_type, depth)
        ros_class = self._ros_class(message_type)
        reader.subscription = self.node.create_subscription(
            ros_class, topic, reader.on_message, self._qos(reliable, depth), raw=True
        )
        self._readers.append(reader)
        return reader

    def declare_parameters(self, values: dict[str, Any]) -> None:
        """Declare `values` as the node's read-only parameters, so that `ros2 param get` shows them."""
        from rcl_interfaces.msg import ParameterDescriptor

        for name, value in values.items():
            # Dynamic typing: --ros-args -p rate:=500 gives rclpy an int where the default is a float.
            descriptor = ParameterDescriptor(read_only=True, dynamic_typing=True)
            self.node.declare_parameter(name, value, descriptor)

    def publisher_types(self, topic: str) -> set[str]:
        # Remapped as rclpy remaps the node's own topics, so that both name the same topic.
        topic = self.node.resolve_topic_name(topic)
        return {info.topic_type for info in self.node.get_publishers_info_by_topic(topic)}

    @staticmethod
    def matched(endpoint) -> int:
        if isinstance(endpoint, _RawWriter):
            return endpoint._publisher.get_subscription_count()
        return endpoint.subscription.get_publisher_count()

    def close(self) -> None:
        """Stop spinning and leave the ROS 2 graph; a spinning thread left at exit aborts the process."""
        self._executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        self._context.try_shutdown()
