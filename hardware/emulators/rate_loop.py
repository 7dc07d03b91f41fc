"""What a flight controller's firmware does with body-rate set-points: the rate loop and angle mode's
level, shared by the emulated boards (Betaflight over MSP, the Crazyflie over CRTP and ROS 2), and
the record of how their flight ended (`flight_report`).

The rate loop is the `rates` action level's own proportional loop
(`sim.tasks.flight.rate_controller`, so a policy meets the loop it trained
with) plus an integral on the rate error, as Betaflight's I-term and the
Crazyflie's rate PID have: a constant torque (a bent propeller, an offset
centre of mass) then leaves no steady rate error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.dynamics.quadrotor import rotation
from sim.simulated import PlantServer
from sim.tasks import flight

RATE_I_GAIN = 2.0
"""The integral's gain on the rate error, 1/s."""
RATE_I_LIMIT = 2.0
"""The integral's share of the set-point is held within +-this, rad/s."""
LEVEL_GAIN = 5.0
"""Angle mode's rate set-point per radian of attitude error, 1/s."""


class RateLoop:
    """`speeds(setpoint, gyro, dt)`: rotor speeds (4,) in [0, 1] for a set-point (4,) =
    [collective thrust in [0, 1], body rates (3,) rad/s] from the gyro (3,) rad/s, `dt` s after the
    last call; `params` is the vehicle the firmware is tuned for."""

    def __init__(self, params):
        self.params = params
        self.integral = np.zeros(3)
        self._last: np.ndarray | None = None

    def reset(self) -> None:
        self.integral[:] = 0.0
        self._last = None

    def speeds(self, setpoint: np.ndarray, gyro: np.ndarray, dt: float) -> np.ndarray:
        target = np.array(setpoint, dtype=float)
        self.integral = np.clip(self.integral + RATE_I_GAIN * (target[1:] - gyro) * dt, -RATE_I_LIMIT, RATE_I_LIMIT)
        target[1:] += self.integral
        speeds = flight.rate_controller(target, gyro, self.params)
        lead = speeds
        if self._last is not None and dt > 0:
            # Lead the motors' first-order lag (set-point = speed + tau d(speed)/dt), as a tuned
            # board's D-term and feedforward do: without it the loop rings at the motors' pole.
            tau = np.where(speeds > self._last, *self.params.motor_time_constant)
            lead = speeds + tau * (speeds - self._last) / dt
        self._last = speeds
        return np.clip(lead, 0.0, 1.0)


def attitude_rates(quaternion: np.ndarray, roll_rad: float = 0.0, pitch_rad: float = 0.0) -> np.ndarray:
    """Angle mode's body-rate set-points (3,) rad/s, no yaw: LEVEL_GAIN times the rotation that takes
    body z to where it is at `roll_rad` (about x) and `pitch_rad` (about y) from level, heading
    aside (0, 0: level)."""
    up = rotation(quaternion).T @ np.array([0.0, 0.0, 1.0])  # world z in the body frame
    cr, sr, cp, sp = np.cos(roll_rad), np.sin(roll_rad), np.cos(pitch_rad), np.sin(pitch_rad)
    want = np.array([-sp * cr, sr, cp * cr])  # world z in a body rolled then pitched so
    axis = np.cross(want, up)
    return LEVEL_GAIN * np.array([axis[0], axis[1], 0.0])


def flight_report(server: PlantServer, events: list[dict[str, Any]], armed: bool) -> dict[str, Any]:
    """An emulated flight's end, for the HIL verdict: the firmware's `events` (each a kind and its
    monotonic time, ns), whether it is still `armed`, and where the vehicle is (true state, m, m/s)."""
    x = server.robot.env.plant.state()
    return {
        "events": events,
        "armed": armed,
        "final_position": [float(v) for v in x[:3]],
        "final_speed": float(np.linalg.norm(x[7:10])),
    }
