"""A Betaflight-class flight controller on a pseudo-terminal: the MuJoCo quadrotor behind MSP.

What the board does, as the firmware does it:
- answers MSP requests (`hardware.links.msp`) at once: API_VERSION, FC_VARIANT
  ("BTFL"), STATUS (armed, angle mode, failsafe), ATTITUDE, RAW_IMU, RC and
  SET_RAW_RC (the RC override); an unknown command gets an error reply;
- runs its rate loop at every physics step (500 Hz) on its own gyro: the RC
  sticks are body-rate set-points through a linear rate profile up to
  `MAX_BODY_RATE`, the throttle the collective thrust (`rate_loop.RateLoop`);
- arms on AUX1 high only with the throttle low, the vehicle within
  `SMALL_ANGLE_DEG` of level and no failsafe; disarms on AUX1 low. The
  vehicle is held at its task's start (rotors at hover) until the first arming
  launches it, and each arming starts it there again (as the simulated device's
  activation does), unless `keep_state`;
- failsafe on lost RC: no SET_RAW_RC for `RX_LOSS_S` (stage 1) levels the
  vehicle in angle mode (`rate_loop.attitude_rates`) holding the last throttle for `FAILSAFE_DELAY_S`
  (Betaflight's failsafe_delay 15), then drops: motors off, disarmed (its
  default procedure), and arms again only after the ARM switch went off; RC
  back within stage 1 recovers.

A motion-capture system stands beside the board: it publishes the vehicle's
pose and velocity as `nav_msgs/Odometry` on `mocap_topic` (ROS 2 over DDS, on
loopback) at `MOCAP_RATE_HZ`; with `mocap_topic=None` there is none.

Faults come from the serial emulator's `FaultPlan`, on the wire (latency,
jitter, drops both ways, corrupted bytes, flipped bits on the board's replies)
and in the board: a frozen IMU (attitude, gyro and accelerometer stop
changing; the board's own rate loop flies on them), a brown-out (silent, then
a reboot: disarmed), an unplug. The report adds what the flight controller
did: when it entered failsafe, when and where it disarmed, where the vehicle
ended.
"""

from __future__ import annotations

import errno
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.faults import FaultPlan
from hardware.emulators.rate_loop import RateLoop, attitude_rates, flight_report
from hardware.emulators.serial_emulator import Emulator
from hardware.links import msp
from sim.dynamics.quadrotor import rotation
from sim.robots.quadrotor import MAX_BODY_RATE
from sim.tasks.flight_safety import tilt

RX_LOSS_S = 0.1
"""RC silent for this long is a lost link: failsafe stage 1, s."""
FAILSAFE_DELAY_S = 1.5
"""Stage 1 (level, last throttle) lasts this long before the drop, s."""
SMALL_ANGLE_DEG = 25.0
"""Arming is refused when tilted beyond this, degrees (Betaflight's small_angle)."""
THROTTLE_LOW = 1050
"""Arming needs the throttle below this, us (Betaflight's min_check)."""
MOCAP_RATE_HZ = 100.0
CYCLE_TIME_US = 2000
"""The board's loop period as STATUS reports it (the 500 Hz physics step)."""


class FlightController:
    """The board's firmware: arming, the RC override, failsafe and the rate loop. Times are
    monotonic ns; `update` gives the rotor speeds (4,) in [0, 1] for the board's own sensors."""

    def __init__(self, params: Any):
        self.params = params
        self.armed = False
        self.channels = (1500, 1500, 1500, msp.RC_MIN, msp.AUX_ARM_LOW, msp.RC_MIN, msp.RC_MIN, msp.RC_MIN)
        self.last_rc_ns: int | None = None
        self.failsafe_since_ns: int | None = None
        self.events: list[dict[str, Any]] = []
        self.rate_loop = RateLoop(params)
        self._last_ns: int | None = None
        self._switch_must_reset = False  # after a failsafe the ARM switch must go off before arming again

    def rc(self, channels: tuple[int, ...], now: int, quaternion: np.ndarray) -> None:
        """A SET_RAW_RC: new sticks; AUX1 arms (when allowed) or disarms."""
        self.channels, self.last_rc_ns = tuple(channels[: msp.RC_CHANNELS]), now
        if self.failsafe_since_ns is not None and self.armed:
            self.failsafe_since_ns = None  # recovered within stage 1
            self.events.append({"kind": "failsafe_recovered", "at_ns": now})
        arm = len(channels) > 4 and channels[4] >= msp.ARM_THRESHOLD
        self._switch_must_reset &= arm
        if arm and not self.armed and self.arming_blocked(quaternion) is None:
            self.armed = True
            self.events.append({"kind": "armed", "at_ns": now})
        elif not arm and self.armed:
            self.disarm(now, "AUX1 low")

    def arming_blocked(self, quaternion: np.ndarray) -> str | None:
        if self.channels[3] >= THROTTLE_LOW:
            return "throttle not low"
        if math.degrees(tilt(quaternion)) > SMALL_ANGLE_DEG:
            return "not level"
        if self.failsafe_since_ns is not None:
            return "failsafe"
        if self._switch_must_reset:
            return "arm switch still on after a failsafe"
        return None

    def disarm(self, now: int, why: str) -> None:
        if self.armed:
            self.armed = False
            self.events.append({"kind": "disarmed", "at_ns": now, "why": why})

    def update(self, now: int, quaternion: np.ndarray, gyro: np.ndarray) -> np.ndarray:
        """Rotor speeds for this physics step from the board's attitude (4,) and gyro (3,) rad/s."""
        dt = 0.0 if self._last_ns is None else (now - self._last_ns) / 1e9
        self._last_ns = now
        if not self.armed:
            self.rate_loop.reset()
            return np.zeros(4)
        if self.failsafe_since_ns is None and self.last_rc_ns is not None and now - self.last_rc_ns > RX_LOSS_S * 1e9:
            self.failsafe_since_ns = now
            self.events.append({"kind": "failsafe", "at_ns": now})
        setpoint = msp.setpoint(self.channels, MAX_BODY_RATE)
        if self.failsafe_since_ns is not None:
            if now - self.failsafe_since_ns > FAILSAFE_DELAY_S * 1e9:
                self.disarm(now, "failsafe drop")
                self.failsafe_since_ns, self._switch_must_reset = None, True
                return np.zeros(4)
            setpoint[1:] = attitude_rates(quaternion)
        return self.rate_loop.speeds(setpoint, gyro, dt)

    @property
    def flags(self) -> int:
        failsafe = self.failsafe_since_ns is not None
        return (msp.ARMED_FLAG if self.armed else 0) | (msp.ANGLE_FLAG | msp.FAILSAFE_FLAG if failsafe else 0)


class MspEmulator(Emulator):
    """The board on a pseudo-terminal (`open()` returns its path; `run()` serves it), with the
    serial emulator's pty, faulty wire and timed faults."""

    def __init__(
        self,
        robot: str = "crazyflie",
        params: str | Path = "l2f",
        imperfections: bool = True,
        seed: int = 0,
        faults: FaultPlan | None = None,
        link: str | Path | None = None,
        mocap_topic: str | None = "/cf1/mocap/odom",
        domain_id: int = 0,
        keep_state: bool = False,
    ):
        super().__init__(robot, params, imperfections, seed, faults, link, keep_state=keep_state)
        from sim.robots import load_robot_params

        self.fc = FlightController(load_robot_params(robot, params))
        self.decoder = msp.Decoder(msp.FIRMWARE_RECEIVE_BUFFER)
        self.sensor_rng = np.random.default_rng(seed + 1)
        self.mocap_topic, self.domain_id = mocap_topic, domain_id
        self.mocap = self.transport = None
        self.mocap_every = max(1, int(round(1 / (MOCAP_RATE_HZ * self.server.robot.physics_dt))))
        self.steps = 0
        self.imu = self._imu(self.server.robot.measure())
        self.report.update({"requests": 0, "unknown_commands": 0, "rc_outside_range": 0})

    def open(self) -> str:
        port = super().open()
        if self.mocap_topic is not None and self.transport is None:
            from hardware.links import ros2_msgs
            from hardware.links.dds import DdsTransport

            self.transport = DdsTransport(self.domain_id, loopback=True)
            self.mocap = self.transport.publisher(self.mocap_topic, ros2_msgs.Odometry, reliable=False)
        return port

    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> dict[str, Any]:
        report = super().run(duration_s, should_stop)
        report["flight"] = flight_report(self.server, self.fc.events, self.fc.armed)
        if self.transport is not None:
            self.transport.close()
            self.transport = self.mocap = None
        return report

    # The board ---------------------------------------------------------------------------------
    def _imu(self, measured: np.ndarray) -> dict[str, Any]:
        """What the board's sensors read from a measurement (13,): attitude, gyro and accelerometer
        (gravity's direction in the body frame, the specific force at hover, with 0.01 g of noise)."""
        up = rotation(measured[3:7]).T @ np.array([0.0, 0.0, 1.0])
        acc = np.round(msp.ACC_1G * (up + self.sensor_rng.normal(0.0, 0.01, 3))).astype(int)
        gyro = np.degrees(measured[10:13] * np.array([1.0, -1.0, -1.0]))  # stick convention: FRD
        return {
            "quaternion": measured[3:7].copy(),
            "gyro": measured[10:13].copy(),
            "raw": (*acc, *np.round(gyro).astype(int), 0, 0, 0),
        }

    def _physics_step(self, now: int) -> None:
        browned_out = now < self.silent_until_ns
        if self.frozen_values is None:  # a frozen IMU: the board keeps its last readings
            self.imu = self._imu(self.server.robot.measure())
        speeds = np.zeros(4) if browned_out else self.fc.update(now, self.imu["quaternion"], self.imu["gyro"])
        # Held in the hand at its start until the first arming launches it: what a host reads
        # before and after the arming's restart is the same vehicle.
        measured = self.server.step(speeds) if self.armed_at_ns is not None else self.server.hold()
        self.steps += 1
        if self.mocap is not None and self.steps % self.mocap_every == 0:
            self._publish_mocap(measured, now)

    def _publish_mocap(self, measured: np.ndarray, now: int) -> None:
        from hardware.links import ros2_msgs as m

        w, x, y, z = (float(v) for v in measured[3:7])
        body_velocity = rotation(measured[3:7]).T @ measured[7:10]  # Odometry's twist is in the body frame
        self.mocap.write(
            m.Odometry(
                header=m.Header(m.Time.from_ns(now), "world"),
                child_frame_id="base_link",
                pose=m.PoseWithCovariance(m.Pose(m.Point(*map(float, measured[:3])), m.Quaternion(x, y, z, w))),
                twist=m.TwistWithCovariance(
                    m.Twist(m.Vector3(*map(float, body_velocity)), m.Vector3(*map(float, measured[10:13])))
                ),
            )
        )

    def _receive(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        now = time.monotonic_ns()
        if now < self.silent_until_ns:
            return
        for message in self.decoder.feed(data):
            if self.faults.drop and self.wire_rng.random() < self.faults.drop:
                if message.command == msp.Command.SET_RAW_RC:
                    self.report["commands_dropped"] += 1
                continue
            self._answer(message, now)

    def _answer(self, request: msp.Message, now: int) -> None:
        if request.direction is not msp.Direction.REQUEST:
            return
        self.report["requests"] += 1
        command, payload, state = request.command, b"", False
        if command == msp.Command.API_VERSION:
            payload = bytes((0, 1, 46))
        elif command == msp.Command.FC_VARIANT:
            payload = b"BTFL"
        elif command == msp.Command.STATUS:
            payload = msp.pack_status(CYCLE_TIME_US, self.fc.flags)
        elif command == msp.Command.ATTITUDE:
            payload, state = msp.pack_attitude(*msp.attitude_of(self.imu["quaternion"])), True
        elif command == msp.Command.RAW_IMU:
            payload, state = msp.pack_raw_imu(self.imu["raw"]), True
        elif command == msp.Command.RC:
            payload = msp.pack_rc(self.fc.channels)
        elif command == msp.Command.SET_RAW_RC:
            try:
                channels = msp.unpack_rc(request.payload)
                if len(channels) < 5 or not all(msp.RC_MIN <= c <= msp.RC_MAX for c in channels):
                    raise msp.MspError(f"RC channels {channels}")
            except msp.MspError:
                self.report["rc_outside_range"] += 1
                self._reply(request, b"", now, error=True)
                return
            self.report["commands_received"] += 1
            arming = not self.fc.armed and channels[4] >= msp.ARM_THRESHOLD
            if arming and not self.keep_state and self.fc.arming_blocked(self.imu["quaternion"]) != "failsafe":
                # A new flight starts where the task's episodes start, as on the simulated device.
                self.server.restart()
                self.imu = self._imu(self.server.robot.measure())
            self.fc.rc(channels, now, self.imu["quaternion"])
            if self.fc.armed and self.armed_at_ns is None:
                self.armed_at_ns = now  # timed faults count from the first arming
                self.report["sessions"] += 1
            self.armed = self.fc.armed
        else:
            self.report["unknown_commands"] += 1
            self._reply(request, b"", now, error=True)
            return
        self._reply(request, payload, now, state=state)

    def _reply(self, request: msp.Message, payload: bytes, now: int, state: bool = False, error: bool = False) -> None:
        direction = msp.Direction.ERROR if error else msp.Direction.REPLY
        frame = msp.encode(msp.Message(request.command, payload, direction, request.version, request.flags))
        self._transmit(frame, state, now)

    def _lose_link(self) -> None:
        """The UART cable is out; the battery still powers the board, which loses RC: its failsafe."""

    def _disarm(self) -> None:
        self.fc.disarm(time.monotonic_ns(), "power lost")
        self.armed = False

    def _boot(self) -> None:
        """A reset: the board comes back disarmed, its decoder empty, after the brown-out."""
        events = [*self.fc.events, {"kind": "rebooted", "at_ns": self.silent_until_ns}]
        self.fc = FlightController(self.fc.params)
        self.fc.events = events
        self.decoder = msp.Decoder(msp.FIRMWARE_RECEIVE_BUFFER)
        self.booted = True
        self.last_send_ns = self.silent_until_ns
        self.frozen_values = None
