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
The Crazyflie behind it is the CRTP emulator's `Firmware` (thrust lock,
supervisor timeouts: level after 0.5 s without set-points, motors off after
2 s), auto-armed by its first set-point, as a brushed Crazyflie is. The vehicle
is held at its task's start until a flight is launched: the thrust unlock (or a
first position set-point) starts it there again, unless `keep_state`.

Faults (`FaultPlan`), once flying: messages lost each way (`drop`; a damaged
one, `corrupt` or `bitflip`, is lost too: its checksum fails), latency and
jitter on what the vehicle publishes; a frozen estimate, a brown-out (silent,
then rebooted: disarmed, thrust locked) and an unplug (the radio out of range:
nothing either way).
"""

from __future__ import annotations

import collections
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.crtp_emulator import Firmware
from hardware.emulators.faults import FaultPlan
from hardware.links import ros2_msgs as m
from hardware.links.crazyswarm2 import rpyt_of
from hardware.links.ros2_transport import make_transport
from sim.simulated import PlantServer, SimulatedRobot

PUBLISH_RATE_HZ = 100.0
COMMANDS = {"cmd_vel_legacy": m.Twist, "cmd_position": m.Position, "cmd_full_state": m.FullState}


class Crazyswarm2Emulator:
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
        from sim.robots import load_robot_params

        self.server = PlantServer(SimulatedRobot(robot, params=params, imperfections=imperfections), seed)
        self.vehicle = load_robot_params(robot, params)
        self.firmware = self._boot_firmware([])
        self.faults = faults or FaultPlan()
        self.rng = np.random.default_rng(self.faults.seed)
        self.name, self.domain_id, self.loopback, self.backend = name, domain_id, loopback, backend
        self.keep_state = keep_state
        self.transport = None
        self.outbox: collections.deque[tuple[int, Any, Any]] = collections.deque()
        self.estimate = self.server.robot.measure()
        self.frozen_until_ns = 0.0
        self.silent_until_ns = 0
        self.unplugged = False
        self.armed_at_ns: int | None = None
        self.launched = False
        self.events_pending = list(self.faults.events)
        self.every = max(1, round(1.0 / (PUBLISH_RATE_HZ * self.server.robot.physics_dt)))
        self.steps = 0
        self.started_ns = time.monotonic_ns()
        self.report: dict[str, Any] = {
            "states_sent": 0,
            "states_dropped": [],
            "states_corrupted": [],
            "commands_received": 0,
            "commands_dropped": 0,
            "commands_outside_limits": 0,
            "malformed": 0,
            "sessions": 0,
            "events": [],
        }

    def _boot_firmware(self, events: list[dict[str, Any]]) -> Firmware:
        firmware = Firmware(self.vehicle)
        firmware.params["flightmode.stabModeRoll"] = firmware.params["flightmode.stabModePitch"] = 0
        firmware.events = events
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

    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> dict[str, Any]:
        server = self.server
        start = time.monotonic_ns()
        server.due(start)
        end = None if duration_s is None else start + int(duration_s * 1e9)
        checks = 0
        while end is None or time.monotonic_ns() < end:
            checks += 1
            if checks % 16 == 0 and should_stop():
                break
            now = time.monotonic_ns()
            wake = server.next_step_ns if not self.outbox else min(server.next_step_ns, self.outbox[0][0])
            if wake > now:
                time.sleep(min(wake - now, 1_000_000) / 1e9)
            now = time.monotonic_ns()
            self._receive(now)
            self._flush(now)
            if server.due(now):
                self._events(now)
                self._physics_step(now)
        x = server.robot.env.plant.state()
        self.report["flight"] = {
            "events": self.firmware.events,
            "armed": self.firmware.armed,
            "final_position": [float(v) for v in x[:3]],
            "final_speed": float(np.linalg.norm(x[7:10])),
        }
        return self.report

    # The vehicle ---------------------------------------------------------------------------------
    def _physics_step(self, now: int) -> None:
        silent = now < self.silent_until_ns or self.unplugged
        if now >= self.frozen_until_ns:
            self.estimate = self.server.robot.measure()
        speeds = np.zeros(4) if now < self.silent_until_ns else self.firmware.update(now, self.estimate)
        # Held in the hand at its start until the thrust unlock launches it: what a host reads before
        # and after the unlock's restart is the same vehicle.
        if self.launched:
            self.server.step(speeds)
        else:
            self.server.hold()
        self.steps += 1
        if not silent and self.steps % self.every == 0:
            self._publish(now)

    def _publish(self, now: int) -> None:
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
        if self._lost(outgoing=True):
            self.report["states_dropped"].append(stamp // 1_000_000)  # the host counts by these stamps, ms
            return
        f = self.faults
        delay = f.latency_ms + (self.rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0.0)
        when = max(now + int(delay * 1e6), self.outbox[-1][0] if self.outbox else 0)
        for topic, message in (
            ("odom", odom),
            ("pose", m.PoseStamped(m.Header(header.stamp, "world"), pose)),
            ("rates", rates),
        ):
            self.outbox.append((when, self.writers[topic], message))

    def _flush(self, now: int) -> None:
        while self.outbox and self.outbox[0][0] <= now:
            _, writer, message = self.outbox.popleft()
            writer.write(message)

    def _lost(self, outgoing: bool) -> bool:
        f = self.faults
        if not self.firmware.armed:
            return False
        lost = f.drop and self.rng.random() < f.drop
        if outgoing:
            lost = (
                lost or (f.corrupt and self.rng.random() < f.corrupt) or (f.bitflip and self.rng.random() < f.bitflip)
            )
        return bool(lost)

    def _receive(self, now: int) -> None:
        for topic, reader in self.readers.items():
            for sample in reader.take(64):
                if self.unplugged or now < self.silent_until_ns:
                    continue
                if isinstance(sample, m.Malformed):
                    self.report["malformed"] += 1
                    continue
                if not isinstance(sample, COMMANDS[topic]):
                    continue  # a publisher went away: DDS says so with an invalid sample
                self.report["commands_received"] += 1
                if self._lost(outgoing=False):
                    self.report["commands_dropped"] += 1
                    continue
                self._command(topic, sample, now)

    def _command(self, topic: str, sample: Any, now: int) -> None:
        firmware = self.firmware
        if not firmware.armed:
            firmware.arm(now, True, self.estimate[3:7])  # auto-armed, as a brushed Crazyflie is
            if self.armed_at_ns is None:
                self.armed_at_ns = now
                self.report["sessions"] += 1
        if topic == "cmd_vel_legacy":
            setpoint = rpyt_of(sample)
            if firmware.thrust_locked and setpoint.thrust == 0:
                self._launch()
            firmware.rpyt(now, setpoint)
            return
        if topic == "cmd_position":
            values = np.array([sample.x, sample.y, sample.z, 0.0, 0.0, 0.0], dtype=float)
        else:
            p, v = sample.pose.position, sample.twist.linear
            values = np.array([p.x, p.y, p.z, v.x, v.y, v.z], dtype=float)
        if np.isfinite(values).all():
            if not self.launched:
                self._launch()
            firmware.track(now, values[:3], values[3:])

    def _launch(self) -> None:
        """The flight starts where the task's episodes start (as the simulated device's activation
        does), unless `keep_state`."""
        if not self.keep_state:
            self.server.restart()
            self.estimate = self.server.robot.measure()
        self.launched = True

    # Timed faults -------------------------------------------------------------------------------
    def _events(self, now: int) -> None:
        if self.armed_at_ns is None:
            return
        while self.events_pending and now >= self.armed_at_ns + self.events_pending[0].at_s * 1e9:
            event = self.events_pending.pop(0)
            self.report["events"].append({"kind": event.kind, "at_ns": now, "duration_s": event.duration_s})
            if event.kind == "frozen_sensor":
                self.frozen_until_ns = now + (event.duration_s * 1e9 if event.duration_s else math.inf)
            elif event.kind == "brownout":
                self.silent_until_ns = now + int(event.duration_s * 1e9)
                self.outbox.clear()
                self.firmware.disarm(now, "power lost")
                events = [*self.firmware.events, {"kind": "rebooted", "at_ns": self.silent_until_ns}]
                self.firmware = self._boot_firmware(events)
            elif event.kind == "unplug":
                self.unplugged = True
                self.outbox.clear()
