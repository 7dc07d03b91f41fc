"""A Crazyflie behind crazyswarm2's server, over ROS 2: its per-vehicle topics.

State: `/NAME/odom` (nav_msgs/Odometry: position, orientation and, as the
server fills it, velocity in the world frame) and body rates from a custom log
topic `/NAME/rates` (crazyflie_interfaces/LogDataGeneric of
`stateEstimateZ.rateRoll, ratePitch, rateYaw`, mrad/s: the server's odom
leaves its angular rates zero). In crazyflies.yaml:

    firmware_logging: {enabled: true, default_topics: {odom: {frequency: 100}},
                       custom_topics: {rates: {frequency: 100, vars: [stateEstimateZ.rateRoll,
                                                                      stateEstimateZ.ratePitch,
                                                                      stateEstimateZ.rateYaw]}}}
    firmware_params: {flightmode: {stabModeRoll: 0, stabModePitch: 0}}

Commands: `/NAME/cmd_vel_legacy` (geometry_msgs/Twist), the RPYT set-point in
rate mode: collective thrust and body rates (the server caps the thrust at
60000 of 65535; `write` returns the capped command). Activation sends the
zero set-point that unlocks the thrust (a brushed Crazyflie arms itself).

A gap in the odometry's stamps counts its missing messages as lost; rates
older than `rates_timeout_s` make the rates NaN (the loop is blind). When the
loop cannot trust the state the device is handed over (`firmware_failsafe`):
the Crazyflie's supervisor levels out, then cuts its motors.
"""

from __future__ import annotations

import time

import numpy as np

from hardware.device import Command, Device, DeviceError, Lifecycle, State
from hardware.links import crtp
from hardware.links import ros2_msgs as m
from hardware.links.crazyswarm2 import THRUST_CAP, twist_of
from sim.robots.quadrotor import load_params, spec

ODOM_PERIOD_MS = 10.0


class Crazyswarm2Device(Device):
    """The vehicle `name` (its topics' namespace) on ROS 2 domain `domain_id`."""

    firmware_failsafe = "without set-points its supervisor levels out after 0.5 s and cuts the motors after 2 s"

    def __init__(
        self,
        name: str = "cf1",
        domain_id: int = 0,
        loopback: bool = False,
        backend: str = "auto",
        timeout_s: float = 5.0,
        rates_timeout_s: float = 0.05,
    ):
        super().__init__(spec(load_params("l2f"), commands="rates"))
        self.vehicle, self.domain_id, self.loopback, self.backend = name, domain_id, loopback, backend
        self.timeout_s, self.rates_timeout_s = timeout_s, rates_timeout_s
        self.transport = None
        self._latest: State | None = None
        self._rates: tuple[int, np.ndarray] | None = None  # (arrival ns, rad/s)
        self._last_stamp_ms: float | None = None
        self.lost_states = self.malformed = self.odometry = 0

    @property
    def name(self) -> str:
        return f"Crazyswarm2Device /{self.vehicle}"

    def _on_configure(self) -> None:
        from hardware.links.ros2_transport import make_transport

        self._on_close()
        self.transport = make_transport(self.domain_id, self.loopback, self.backend)
        topic = f"/{self.vehicle}"
        self.odom = self.transport.subscriber(f"{topic}/odom", m.Odometry, depth=16)
        self.rates = self.transport.subscriber(f"{topic}/rates", m.LogDataGeneric, depth=16)
        self.command = self.transport.publisher(f"{topic}/cmd_vel_legacy", m.Twist)
        deadline = time.monotonic() + self.timeout_s
        while self._latest is None or self._rates is None or not self.transport.matched(self.command):
            self._take()
            if time.monotonic() > deadline:
                missing = [t for t, ok in (("odom", self._latest), ("rates", self._rates)) if ok is None]
                if not missing:
                    missing = ["a subscriber of cmd_vel_legacy"]
                published = {t: sorted(self.transport.publisher_types(f"{topic}/{t}")) for t in ("odom", "rates")}
                raise DeviceError(
                    f"{topic}: no {', '.join(missing)} within {self.timeout_s} s (published: {published}); is "
                    "crazyswarm2's server running with the odom and rates topics on (see this module's docstring)?"
                )
            time.sleep(0.01)

    def _on_activate(self) -> None:
        if not self._fresh():
            raise DeviceError(f"/{self.vehicle}: the state estimate is not fresh: not arming")
        self._send(crtp.Rpyt(0.0, 0.0, 0.0, 0))  # unlocks the thrust; a brushed Crazyflie arms itself
        unlocked = time.monotonic_ns()
        deadline = time.monotonic() + self.timeout_s
        while self._latest.stamp_ns <= unlocked:
            self._take()
            if time.monotonic() > deadline:
                raise DeviceError(f"/{self.vehicle}: no state estimate after the unlock within {self.timeout_s} s")
            time.sleep(0.002)

    def _on_deactivate(self) -> None:
        if self.transport is None or self.lifecycle is Lifecycle.FAULT:
            return  # the supervisor's timeouts, not a host that faulted, bring it down
        for _ in range(3):
            self._send(crtp.Rpyt(0.0, 0.0, 0.0, 0))  # motors off

    def _on_close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self._latest, self._rates, self._last_stamp_ms = None, None, None

    def _read(self) -> State:
        self._take()
        state = self._latest
        values = state.values.copy()
        if self._rates is None or time.monotonic_ns() - self._rates[0] > self.rates_timeout_s * 1e9:
            values[10:13] = np.nan
        else:
            values[10:13] = self._rates[1]
        return State(state.stamp_ns, state.seq, values)

    def _write(self, command: Command) -> Command:
        setpoint = crtp.rates_setpoint(np.asarray(command.values, dtype=float))
        setpoint = crtp.Rpyt(
            setpoint.roll_deg, setpoint.pitch_deg, setpoint.yaw_rate_deg_s, min(setpoint.thrust, THRUST_CAP)
        )
        self._send(setpoint)
        return Command(np.array(crtp.rates_of(setpoint)))

    def counters(self) -> dict[str, float]:
        return {
            "lost_states": self.lost_states,
            "odometry": self.odometry,
            "crc_errors": 0,
            "malformed_frames": self.malformed,
        }

    def _send(self, setpoint: crtp.Rpyt) -> None:
        try:
            self.command.write(twist_of(setpoint))
        except Exception as exc:  # the transport's own errors
            raise DeviceError(f"/{self.vehicle}: could not publish cmd_vel_legacy: {exc}") from exc

    def _take(self) -> None:
        now = time.monotonic_ns()
        for sample in self.odom.take(16):
            if isinstance(sample, m.Malformed):
                self.malformed += 1
                continue
            if not isinstance(sample, m.Odometry):
                continue  # a publisher went away: DDS says so with an invalid sample
            p, q, v = sample.pose.pose.position, sample.pose.pose.orientation, sample.twist.twist.linear
            values = np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z, v.x, v.y, v.z, 0.0, 0.0, 0.0])
            stamp_ms = sample.header.stamp.to_ns() / 1e6
            if self._last_stamp_ms is not None:
                self.lost_states += max(0, round((stamp_ms - self._last_stamp_ms) / ODOM_PERIOD_MS) - 1)
            self._last_stamp_ms = stamp_ms
            self.odometry += 1
            self._latest = State(now, int(stamp_ms), values)
        for sample in self.rates.take(16):
            if not isinstance(sample, (m.Malformed, m.LogDataGeneric)):
                continue
            if isinstance(sample, m.Malformed) or len(sample.values) != 3 or not np.isfinite(sample.values).all():
                self.malformed += 1
                continue
            self._rates = (now, np.array(sample.values, dtype=float) / 1000.0)

    def _fresh(self) -> bool:
        self._take()
        return self._latest is not None and time.monotonic_ns() - self._latest.stamp_ns < 0.1e9
