"""A robot behind ROS 2 topics, as a ros2_control stack exposes it.

State comes from a `sensor_msgs/JointState` topic (joint_state_broadcaster's
`/joint_states`); commands go to a `std_msgs/Float64MultiArray` topic in the
form a forward_command_controller takes (one value per joint, in the order of
its `joints` parameter), as topic_based_ros2_control does.

ROS 2 topics say nothing about limits: the device provides the joints it
sees, with the robot spec's units and unbounded commands, and the loop's
safety filter enforces the robot spec's limits. A message of the wrong shape
(joints missing, arrays of the wrong length, non-finite values) or that does
not decode is rejected, and one stamped more than `max_age_s` in the past or
the future is stale; each is counted with a warning naming what was wrong,
and the loop never sees it.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from hardware.device import Command, Device, DeviceError, State
from hardware.links import ros2_msgs as msgs
from hardware.links.ros2_transport import make_transport
from sim.robots.spec import Channel, RobotSpec

log = logging.getLogger(__name__)

MATCH_SETTLE_S = 0.05
"""After our command publisher is matched, how long the robot's side may take to see it too, s."""


class Ros2Device(Device):
    """Joints `joints` (names as in JointState) with effort commands for `command_joints`."""

    def __init__(
        self,
        joints: list[str],
        command_joints: list[str],
        state_topic: str = "/joint_states",
        command_topic: str = "/effort_controller/commands",
        domain_id: int = 0,
        loopback: bool = False,
        backend: str = "auto",
        timeout_s: float = 5.0,
        max_age_s: float = 0.5,
    ):
        super().__init__(None)
        self.joints = list(joints)
        self.command_joints = list(command_joints)
        self.state_topic, self.command_topic = state_topic, command_topic
        self.domain_id, self.loopback, self.backend = domain_id, loopback, backend
        self.timeout_s = timeout_s
        """How long configure waits for a valid state and a matched controller, s. Fast DDS takes about
        2 s to discover a participant that missed its first announcements (seen 1 time in 5)."""
        self.max_age_s = max_age_s
        """A JointState whose header stamp is further than this from the wall clock, in the past or
        the future, is stale, s."""
        self._transport = None
        self._reader = self._writer = None
        self._latest: State | None = None
        self.received = 0
        self.rejected = 0
        self.stale = 0
        self.future = 0

    def _on_configure(self) -> None:
        if self._transport is None:
            self._transport = make_transport(self.domain_id, self.loopback, self.backend)
            # Depth 1: the newest state is the only one the loop wants. A best-effort reader matches
            # reliable publishers (joint_state_broadcaster) and best-effort ones (sensor-data QoS);
            # commands go out reliably, as forward_command_controller subscribes to them.
            self._reader = self._transport.subscriber(self.state_topic, msgs.JointState, reliable=False, depth=1)
            self._writer = self._transport.publisher(self.command_topic, msgs.Float64MultiArray, reliable=True)
        deadline = time.monotonic() + self.timeout_s
        while self._poll() is None:
            if time.monotonic() > deadline:
                raise DeviceError(self._no_state_reason())
            time.sleep(0.005)
        # Commands must reach a controller; and a robot that restarts for a new commander (an
        # emulator) has done so once it has seen ours: only states from after that count.
        while not self._transport.matched(self._writer):
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"nothing subscribes to {self.command_topic} within {self.timeout_s} s (ROS domain "
                    f"{self.domain_id}): is the robot's effort controller running?"
                )
            time.sleep(0.005)
        matched = time.monotonic_ns() + int(MATCH_SETTLE_S * 1e9)
        while self._poll().stamp_ns < matched:
            if time.monotonic() > deadline + MATCH_SETTLE_S:
                raise DeviceError(self._no_state_reason())
            time.sleep(0.005)
        self.provided = RobotSpec(
            "ros2",
            tuple(Channel(f"{j}.position", "rad", -math.inf, math.inf) for j in self.joints)
            + tuple(Channel(f"{j}.velocity", "rad/s", -math.inf, math.inf) for j in self.joints),
            tuple(Channel(f"{j}.effort", "N m", -math.inf, math.inf) for j in self.command_joints),
            control_rate_hz=0.0,
            max_control_rate_hz=math.inf,
        )

    def _no_state_reason(self) -> str:
        others = self._transport.publisher_types(self.state_topic) - {msgs.JointState.ros_type}
        hint = f"; publishers on it send {', '.join(sorted(others))}, not {msgs.JointState.ros_type}" if others else ""
        return (
            f"no valid sensor_msgs/msg/JointState with joints {self.joints} on {self.state_topic} within "
            f"{self.timeout_s} s (ROS domain {self.domain_id}; {self.rejected} rejected){hint}"
        )

    def _read(self) -> State:
        self._poll()
        return self._latest

    def _write(self, command: Command) -> Command:
        values = np.asarray(command.values, dtype=float)
        if values.shape != (len(self.command_joints),):
            raise DeviceError(
                f"command has shape {values.shape}; {self.command_topic} takes {len(self.command_joints)}"
            )
        self._writer.write(msgs.Float64MultiArray.vector(values, "effort"))
        return Command(values)

    def _on_deactivate(self) -> None:
        if self._writer is None:
            return  # never connected, or closed: nothing can be published
        self._writer.write(msgs.Float64MultiArray.vector(np.zeros(len(self.command_joints)), "effort"))

    def _on_close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = self._reader = self._writer = None

    def counters(self) -> dict[str, float]:
        return {
            "rx_messages": self.received,
            "rejected_messages": self.rejected,
            "stale_messages": self.stale,
            "future_messages": self.future,
        }

    def _poll(self) -> State | None:
        """Take what arrived; the newest valid JointState becomes the latest state."""
        for sample in self._reader.take(64):
            if isinstance(sample, msgs.Malformed):
                self.rejected += 1
                log.warning("%s: rejected a message that does not decode: %s", self.state_topic, sample.error)
                continue
            if not isinstance(sample, msgs.JointState):
                continue  # a publisher went away: DDS says so with an invalid sample
            values = self._values(sample)
            if values is None:
                continue
            age = time.time() - sample.header.stamp.to_ns() / 1e9
            if age > self.max_age_s:
                self.stale += 1
                continue
            if age < -self.max_age_s:  # a clock that is off, or a forged stamp: not a reading of now
                self.future += 1
                log.warning("%s: rejected a JointState stamped %.3f s in the future", self.state_topic, -age)
                continue
            self.received += 1
            self._latest = State(time.monotonic_ns(), self.received, values)
        return self._latest

    def _values(self, sample: msgs.JointState) -> np.ndarray | None:
        names = list(sample.name)
        problem = None
        if len(sample.position) != len(names) or len(sample.velocity) != len(names):
            problem = f"{len(names)} names but {len(sample.position)} positions and {len(sample.velocity)} velocities"
        elif missing := [j for j in self.joints if j not in names]:
            problem = f"joints {missing} missing (it has {names})"
        else:
            index = [names.index(j) for j in self.joints]
            values = np.array([sample.position[i] for i in index] + [sample.velocity[i] for i in index])
            if np.isfinite(values).all():
                return values
            problem = f"non-finite values {values.tolist()}"
        self.rejected += 1
        log.warning("%s: rejected a JointState: %s", self.state_topic, problem)
        return None
