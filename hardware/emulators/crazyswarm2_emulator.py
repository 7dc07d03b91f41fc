"""crazyswarm2's topics for one Crazyflie, the vehicle behind them emulated: the quadrotor on ROS 2.

What crazyswarm2's server publishes and takes for a vehicle named `name`
(crazyflie_server.cpp), over either ROS 2 transport:
- `/NAME/odom` (nav_msgs/Odometry, 100 Hz): the state estimate's position,
  orientation and velocity (in the world frame, as the server fills it; its
  angular rates are left zero); `/NAME/pose` (PoseStamped in `world`);
- `/NAME/rates` (crazyflie_interfaces/LogDataGeneric, 100 Hz): a custom log
  topic of `stateEstimateZ.rateRoll, ratePitch, rateYaw` (mrad/s), as
  crazyflies.yaml's `custom_topics` declares it;
- `/NAME/cmd_vel_legacy` (geometry_msgs/Twist) in: the RPYT set-point (roll
  `linear.y`, pitch `-linear.x` deg, yaw rate `angular.z` deg/s, thrust
  `linear.z` capped at 60000), the firmware in rate mode (crazyflies.yaml's
  `firmware_params: flightmode: {stabModeRoll: 0, stabModePitch: 0}`);
  `/NAME/cmd_position` and `/NAME/cmd_full_state` in: the on-board position
  controller tracks them.
The Crazyflie behind it is `hardware.emulators.crazyflie`'s (thrust lock,
supervisor timeouts, on-board position controller, held at its start until a
flight is launched), auto-armed by its first set-point, as a brushed
Crazyflie is, its firmware in rate mode.

Faults (`FaultPlan`), once flying: messages lost each way (`drop`; a damaged
one, `corrupt` or `bitflip`, is lost too: its checksum fails), latency and
jitter on what the vehicle publishes; the events are the vehicle's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.crazyflie import EmulatedCrazyflie, Firmware
from hardware.emulators.faults import FaultPlan
from hardware.links import ros2_msgs as m
from hardware.links.crazyswarm2 import rpyt_of
from hardware.links.ros2_transport import make_transport

PUBLISH_RATE_HZ = 100.0
COMMANDS = {"cmd_vel_legacy": m.Twist, "cmd_position": m.Position, "cmd_full_state": m.FullState}


class Crazyswarm2Emulator(EmulatedCrazyflie):
    """One vehicle's crazyswarm2 topics on ROS 2 domain `domain_id` (`open()` describes them; `run()`
    serves them)."""

    def __init__(
        self,
        robot: str = "crazyflie",
        params: str | Path = "l2f",
        imperfections: bool = True,
        seed: int = 0,
        faults: FaultPlan | None = None,
        name: str = "cf1",
        domain_id: int = 0,
        loopback: bool = True,
        backend: str = "cyclonedds",
        keep_state: bool = False,
    ):
        super().__init__(robot, params, imperfections, seed, faults, keep_state)
        self.name, self.domain_id, self.loopback, self.backend = name, domain_id, loopback, backend
        self.transport = None
        self.every = max(1, round(1.0 / (PUBLISH_RATE_HZ * self.server.robot.physics_dt)))
        self.steps = 0

    def boot_firmware(self, events: list[dict[str, Any]]) -> Firmware:
        firmware = super().boot_firmware(events)
        # crazyflies.yaml's firmware_params: rate mode, as the device expects.
        firmware.params["flightmode.stabModeRoll"] = firmware.params["flightmode.stabModePitch"] = 0
        return firmware

    def open(self) -> str:
        self.transport = make_transport(self.domain_id, self.loopback, self.backend)
        topic = f"/{self.name}"
        self.writers = {
            "odom": self.transport.publisher(f"{topic}/odom", m.Odometry),
            "pose": self.transport.publisher(f"{topic}/pose", m.PoseStamped),
            "rates": self.transport.publisher(f"{topic}/rates", m.LogDataGeneric),
        }
        self.readers = {
            name: self.transport.subscriber(f"{topic}/{name}", kind, depth=64) for name, kind in COMMANDS.items()
        }
        return (
            f"{topic}: odom, pose, rates out; cmd_vel_legacy, cmd_position, cmd_full_state in (domain {self.domain_id})"
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _stream(self, now: int) -> None:
        self.steps += 1
        if self.steps % self.every:
            return
        e = self.estimate
        stamp = time.time_ns()  # ROS time, as the server stamps what it receives
        header = m.Header(m.Time.from_ns(stamp), self.name)
        w, x, y, z = (float(v) for v in e[3:7])
        pose = m.Pose(m.Point(*map(float, e[:3])), m.Quaternion(x, y, z, w))
        odom = m.Odometry(
            header=header,
            pose=m.PoseWithCovariance(pose),
            twist=m.TwistWithCovariance(m.Twist(m.Vector3(*map(float, e[7:10])))),
        )
        onboard_ms = (now - self.started_ns) // 1_000_000
        rates = m.LogDataGeneric(header, onboard_ms & 0xFFFFFFFF, [float(v) * 1000.0 for v in e[10:13]])
        self.report["states_sent"] += 1
        if self.lost(outgoing=True):
            self.report["states_dropped"].append(stamp // 1_000_000)  # the host counts by these stamps, ms
            return
        world = m.PoseStamped(m.Header(header.stamp, "world"), pose)

        def publish() -> None:
            self.writers["odom"].write(odom)
            self.writers["pose"].write(world)
            self.writers["rates"].write(rates)

        self.send_later(now, publish)

    def _receive(self, now: int) -> None:
        for topic, reader in self.readers.items():
            for sample in reader.take(64):
                if isinstance(sample, m.Malformed):
                    self.report["malformed"] += 1
                    continue
                if not isinstance(sample, COMMANDS[topic]):
                    continue  # a publisher went away: DDS says so with an invalid sample
                self.report["commands_received"] += 1
                if self.lost(outgoing=False):
                    self.report["commands_dropped"] += 1
                    continue
                self._command(topic, sample, now)

    def _command(self, topic: str, sample: Any, now: int) -> None:
        firmware = self.firmware
        if not firmware.armed:
            firmware.arm(now, True, self.estimate[3:7])  # auto-armed, as a brushed Crazyflie is
            self.arm_on_first(now)
        if topic == "cmd_vel_legacy":
            setpoint = rpyt_of(sample)
            if firmware.thrust_locked and setpoint.thrust == 0:
                self.launch()
            firmware.rpyt(now, setpoint)
            return
        if topic == "cmd_position":
            values = np.array([sample.x, sample.y, sample.z, 0.0, 0.0, 0.0], dtype=float)
        else:
            p, v = sample.pose.position, sample.twist.linear
            values = np.array([p.x, p.y, p.z, v.x, v.y, v.z], dtype=float)
        if np.isfinite(values).all():
            if not self.launched:
                self.launch()
            firmware.track(now, values[:3], values[3:])
