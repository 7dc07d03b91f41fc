"""The simulated robot behind ROS 2 topics, as a ros2_control stack serves a real one.

Like joint_state_broadcaster it publishes `sensor_msgs/JointState` (header
stamped with the wall clock, as ROS time is) every physics step; like a
forward effort controller it applies the newest `std_msgs/Float64MultiArray`
on the command topic and, like ros2_control's command timeout, falls back to
zero effort when commands stop. Commands of the wrong length or with
non-finite or out-of-limit values are refused and counted.

A new commander (one more publisher matched on the command topic) starts a
session: the plant restarts at its start state unless `keep_state`, so
back-to-back runs against one emulator start alike.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.links import ros2_msgs as msgs
from hardware.links.ros2_transport import make_transport
from sim.robots import get_robot
from sim.simulated import PlantServer, SimulatedRobot

log = logging.getLogger(__name__)


class Ros2Emulator:
    """`open()` creates the topics and returns a description; `run()` serves them."""

    def __init__(
        self,
        robot: str,
        params: str | Path = "model_1.0",
        imperfections: bool = True,
        seed: int = 0,
        start: str = "down",
        domain_id: int = 0,
        loopback: bool = False,
        backend: str = "auto",
        state_topic: str = "/joint_states",
        command_topic: str = "/effort_controller/commands",
        command_timeout_s: float = 0.1,
        keep_state: bool = False,
    ):
        robot_sim = SimulatedRobot(robot, start=start, params=params, imperfections=imperfections)
        self.server = PlantServer(robot_sim, seed)
        self.keep_state = keep_state
        self.commanders = 0
        self.joints = list(get_robot(robot).joints)
        self.low = np.array([c.low for c in robot_sim.spec.command])
        self.high = np.array([c.high for c in robot_sim.spec.command])
        self.domain_id, self.loopback, self.backend = domain_id, loopback, backend
        self.state_topic, self.command_topic = state_topic, command_topic
        self.command_timeout_ns = int(command_timeout_s * 1e9)
        self.command = np.zeros(len(self.joints))
        self.last_command_ns = 0
        self.report: dict[str, Any] = {
            "states_published": 0,
            "commands_received": 0,
            "commands_refused": 0,
            "sessions": 0,
        }

    def open(self) -> str:
        self.transport = make_transport(self.domain_id, self.loopback, self.backend)
        # joint_state_broadcaster publishes reliably (a default-QoS subscriber gets nothing from a
        # best-effort publisher); a best-effort reader takes commands from either kind of publisher.
        self.writer = self.transport.publisher(self.state_topic, msgs.JointState, reliable=True)
        self.reader = self.transport.subscriber(self.command_topic, msgs.Float64MultiArray, reliable=False)
        return (
            f"ROS 2 domain {self.domain_id}: {self.state_topic} (JointState), {self.command_topic} (Float64MultiArray)"
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = self.writer = self.reader = None

    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> dict[str, Any]:
        server = self.server
        start = time.monotonic_ns()
        server.due(start)  # anchors the pace
        end = None if duration_s is None else start + int(duration_s * 1e9)
        steps = 0
        while end is None or time.monotonic_ns() < end:
            steps += 1
            if steps % 16 == 0 and should_stop():
                break
            now = time.monotonic_ns()
            if not server.due(now):
                time.sleep((server.next_step_ns - now) / 1e9)
                now = time.monotonic_ns()
            self._new_session()
            self._take_commands(now)
            fresh = now - self.last_command_ns <= self.command_timeout_ns
            self._publish(server.step(self.command if fresh else np.zeros(len(self.joints))))
        return self.report

    def _new_session(self) -> None:
        commanders = self.transport.matched(self.reader)
        if commanders > self.commanders:
            self.report["sessions"] += 1
            if not self.keep_state:
                self.server.restart()
            self.command, self.last_command_ns = np.zeros(len(self.joints)), 0
        self.commanders = commanders

    def _take_commands(self, now: int) -> None:
        for sample in self.reader.take(64):
            if isinstance(sample, msgs.Malformed):
                self.report["commands_refused"] += 1
                log.warning("%s: refused a command that does not decode: %s", self.command_topic, sample.error)
                continue
            if not isinstance(sample, msgs.Float64MultiArray):
                continue
            values = np.asarray(sample.data, dtype=float)
            if values.shape != self.command.shape or not (
                np.isfinite(values).all() and (values >= self.low).all() and (values <= self.high).all()
            ):
                self.report["commands_refused"] += 1
                log.warning("%s: refused command %s", self.command_topic, values.tolist())
                continue
            self.report["commands_received"] += 1
            self.command, self.last_command_ns = values, now

    def _publish(self, x: np.ndarray) -> None:
        n = len(self.joints)
        header = msgs.Header(msgs.Time.from_ns(time.time_ns()), "")
        effort = self.command.tolist()
        self.writer.write(msgs.JointState(header, self.joints, x[:n].tolist(), x[n:].tolist(), effort))
        self.report["states_published"] += 1
