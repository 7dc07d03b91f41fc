"""Classical baseline for the quadrotor: a geometric tracking controller on SO(3).

After Lee, Leok and McClamroch ("Geometric tracking control of a quadrotor UAV
on SE(3)", CDC 2010), with an integral on the position error as the Crazyflie
firmware's controllers have: the desired force
F = m (-kp e_p - kv e_v - ki int e_p + g e3) sets the collective thrust F . b3
and the desired attitude (body z along F, yaw zero; the tilt limited to MAX_TILT); the attitude error
e_R = vee(R_d^T R - R^T R_d) / 2 and the rates give the torque
J (-kR e_R - kw w) + w x J w; the rotor thrusts solve the allocation, and the
rotor-speed set-points lead the motors' lag by tau d(speed)/dt.

Like every policy it acts on the observation (`sim.tasks.flight.observation`)
and returns an action in [-1, 1], at the `rotors` level, or at the `rates` level
(collective thrust and the body rates -k_R e_R / k_w that its attitude loop asks
for, which a flight controller's rate loop then follows); it knows only the
model the user gives it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.robots import quadrotor
from sim.robots.quadrotor import QuadrotorParams
from sim.tasks import flight

MAX_TILT = np.radians(30.0)
"""The most the position loop tilts the vehicle, rad."""
YAW_SHARE = 0.3
"""Yaw's attitude and rate gains, as a share of roll's and pitch's."""
YAW_AUTHORITY = 0.5
"""The yaw torque is limited to this share of what the rotors can give at hover, N m."""
GAINS = {
    "rotors": {"kp": 36.0, "kv": 14.0, "ki": 60.0, "k_attitude": 600.0, "k_rate": 45.0},
    # Slower at the rates level: a flight controller's rate loop (and the motors' lag behind it) is
    # between this controller and the rotors; its attitude loop asks for k_attitude / k_rate (10) 1/s.
    "rates": {"kp": 16.0, "kv": 8.0, "ki": 15.0, "k_attitude": 450.0, "k_rate": 45.0},
}
"""Position (kp, kv, ki: 1/s^2, 1/s, 1/s^3) and attitude gains (k_attitude, k_rate) per action level."""


class GeometricController:
    """`act(obs) -> action` at `action_level` (`rotors` or `rates`), for observations without
    action history or with any (it ignores it)."""

    action_history = 0

    def __init__(
        self,
        params: QuadrotorParams | str = "l2f",
        control_rate_hz: float = 100.0,
        action_level: str = "rotors",
        **gains: float,
    ):
        """`gains` (kp, kv, ki, k_attitude, k_rate) override the level's `GAINS`."""
        if action_level not in flight.ACTION_LEVELS:
            raise ValueError(
                f"unknown action level {action_level!r}; expected one of {', '.join(flight.ACTION_LEVELS)}"
            )
        if unknown := set(gains) - set(GAINS[action_level]):
            raise ValueError(f"unknown gain(s) {', '.join(sorted(unknown))}; expected {', '.join(GAINS[action_level])}")
        kp, kv, ki, k_attitude, k_rate = (GAINS[action_level] | gains).values()
        self.conditions: dict[str, Any] = {"action_level": action_level}
        self.params = quadrotor.load_params(params) if isinstance(params, str) else params
        self.control_rate_hz = control_rate_hz
        self.dt = 1.0 / control_rate_hz
        self.gains = kp, kv, ki, k_attitude, k_rate
        self._allocation_inverse = np.linalg.inv(flight.allocation(self.params))
        # At hover each rotor has hover thrust to give or take: 2 rotors each way.
        hover_thrust = self.params.mass * self.params.g / 4
        self._max_yaw_torque = YAW_AUTHORITY * 4 * hover_thrust * self.params.yaw_torque_constant
        self.reset()

    def reset(self) -> None:
        self._integral = np.zeros(3)
        self._last_speeds: np.ndarray | None = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        p = self.params
        kp, kv, ki, k_attitude, k_rate = self.gains
        obs = np.asarray(obs, dtype=float)
        e_p, rotation, e_v = obs[:3], obs[3:12].reshape(3, 3), obs[12:15]
        rates = obs[15:18] * flight.RATE_SCALE
        # Integrate near the reference only, and at most a quarter of g: no wind-up while recovering.
        if np.linalg.norm(e_p) < flight.INTEGRATE_WITHIN:
            bound = 0.25 * p.g / ki if ki else 0.0
            self._integral = np.clip(self._integral + e_p * self.dt, -bound, bound)
        acceleration = -kp * e_p - kv * e_v - ki * self._integral
        # Tilt at most MAX_TILT and never ask to fall faster than 0.5 g: saturated rotors lose height.
        horizontal = np.linalg.norm(acceleration[:2])
        limit = p.g * np.tan(MAX_TILT)
        if horizontal > limit:
            acceleration[:2] *= limit / horizontal
        acceleration[2] = max(acceleration[2], -0.5 * p.g)
        force = p.mass * (acceleration + np.array([0.0, 0.0, p.g]))
        thrust = float(force @ rotation[:, 2])
        b3 = force / np.linalg.norm(force)
        b2 = np.cross(b3, [1.0, 0.0, 0.0])
        b2 /= np.linalg.norm(b2)
        desired = np.column_stack([np.cross(b2, b3), b2, b3])
        error = desired.T @ rotation - rotation.T @ desired
        e_r = 0.5 * np.array([error[2, 1], error[0, 2], error[1, 0]])
        inertia = np.asarray(p.inertia)
        if self.conditions["action_level"] == "rates":
            # The attitude loop's rate set-points; the flight controller's rate loop does the rest.
            setpoint = -k_attitude / k_rate * e_r
            setpoint[2] *= YAW_SHARE
            collective = thrust / (quadrotor.ROTORS * p.max_thrust)
            limit = quadrotor.MAX_BODY_RATE
            return np.clip(np.concatenate([[2.0 * collective - 1.0], setpoint / limit]), -1.0, 1.0)
        torque = inertia * (-k_attitude * e_r - k_rate * rates) + np.cross(rates, inertia * rates)
        # Roll and pitch before yaw: yaw takes differential thrust that tilting needs, and a saturated
        # rotor would couple the axes (an attitude oscillation that grows).
        torque[2] = np.clip(torque[2] * YAW_SHARE, -self._max_yaw_torque, self._max_yaw_torque)
        thrusts = self._allocation_inverse @ np.concatenate([[thrust], torque])
        speeds = flight.speeds_for(p, thrusts)
        # Lead the first-order motor lag: set-point = speed + tau d(speed)/dt.
        lead = speeds
        if self._last_speeds is not None:
            tau = np.where(speeds > self._last_speeds, *p.motor_time_constant)
            lead = speeds + tau * (speeds - self._last_speeds) / self.dt
        self._last_speeds = speeds
        return np.clip(2.0 * lead - 1.0, -1.0, 1.0)
