"""The quadrotor's safe behaviour: when a flying robot lands, and when its motors go off.

"Zero command" is not safe for a flying robot while its state can be trusted:
it falls. `FlightSupervisor` decides, at every tick, between flying the
policy, landing (a controller tracks a reference that descends at
`land_rate` from where the landing began) and motors off:

- motors off, latched, when the state cannot be trusted (none, non-finite,
  or older than `state_timeout_s`), outside the geofence, tilted beyond
  `max_tilt_rad` (a flip) or spinning faster than `max_rate`, and once landed;
- land, latched, when the policy's commands stop for `command_timeout_s`
  (Learning to Fly's 200 ms dead-man) or on request (an e-stop from a
  trusted state).

Times are seconds on one monotonic clock, passed in: the tests drive it.
A measurement is (13,) = [position 3 world m, quaternion 4, velocity 3, body rates 3].
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

FLY, LAND, OFF = "fly", "land", "off"


@dataclasses.dataclass(frozen=True)
class FlightLimits:
    geofence_low: tuple[float, float, float] = (-1.5, -1.5, 0.0)
    """The box the vehicle must stay in, world m."""
    geofence_high: tuple[float, float, float] = (1.5, 1.5, 2.5)
    max_tilt_rad: float = math.radians(60.0)
    """Body z from world z beyond this is a flip, rad."""
    max_rate: float = 20.0
    """Body rates beyond this (any axis) are a loss of control, rad/s."""
    state_timeout_s: float = 0.1
    """A state older than this is lost, s."""
    command_timeout_s: float = 0.2
    """Without a new policy command for this long, land, s."""
    land_rate: float = 0.3
    """Landing descends at this speed, m/s."""
    touchdown_height: float = 0.05
    """Below this height while landing the motors go off, m."""

    def __post_init__(self):
        if not all(lo < hi for lo, hi in zip(self.geofence_low, self.geofence_high, strict=True)):
            raise ValueError(f"geofence low {self.geofence_low} must be below high {self.geofence_high}")
        positive = (self.max_tilt_rad, self.max_rate, self.state_timeout_s, self.command_timeout_s, self.land_rate)
        if min(positive) <= 0 or self.max_tilt_rad > math.pi / 2:
            raise ValueError(f"invalid flight limits: {self}")


def tilt(quaternion: np.ndarray) -> float:
    """The angle between body z and world z, rad, of a unit quaternion (w, x, y, z)."""
    w, x, y, z = quaternion
    return math.acos(max(-1.0, min(1.0, 1.0 - 2.0 * (x * x + y * y))))


def outside(limits: FlightLimits, measured: np.ndarray) -> str | None:
    """Why a finite measurement (13,) is one to cut the motors at: outside the geofence, a flip, or
    rates out of control; None inside the envelope."""
    position = measured[:3]
    if (position < limits.geofence_low).any() or (position > limits.geofence_high).any():
        return f"outside the geofence at {np.round(position, 2).tolist()} m"
    angle = tilt(measured[3:7])
    if angle > limits.max_tilt_rad:
        return f"tilted {math.degrees(angle):.0f} degrees (limit {math.degrees(limits.max_tilt_rad):.0f})"
    rate = float(np.abs(measured[10:13]).max())
    if rate > limits.max_rate:
        return f"body rate {rate:.1f} rad/s (limit {limits.max_rate})"
    return None


class FlightSupervisor:
    """`update(...)` -> FLY, LAND or OFF, with `reason` saying why it is not FLY."""

    def __init__(self, limits: FlightLimits | None = None):
        self.limits = limits or FlightLimits()
        self.mode, self.reason = FLY, ""
        self._land_from: tuple[float, np.ndarray] | None = None  # (time s, position m)

    def update(self, now_s: float, measured: np.ndarray | None, state_time_s: float, command_time_s: float) -> str:
        """The mode for this tick: `measured` (13,) taken at `state_time_s`, or None; the policy's
        last command sent at `command_time_s`."""
        if self.mode == OFF:
            return OFF
        lim = self.limits
        if measured is None or not np.isfinite(measured).all():
            return self._off("lost state: no finite measurement")
        if now_s - state_time_s > lim.state_timeout_s:
            return self._off(f"lost state: {1e3 * (now_s - state_time_s):.0f} ms old")
        reason = outside(lim, measured)
        if reason:
            return self._off(reason)
        position = measured[:3]
        if self.mode == FLY and now_s - command_time_s > lim.command_timeout_s:
            self.land(now_s, position, f"no command for {1e3 * (now_s - command_time_s):.0f} ms")
        if self.mode == LAND and position[2] < lim.touchdown_height:
            return self._off("landed")
        return self.mode

    def land(self, now_s: float, position: np.ndarray, reason: str) -> None:
        """Land from `position` (3,) m, starting now (an e-stop while the state is trusted)."""
        if self.mode == FLY:
            self.mode, self.reason = LAND, reason
            self._land_from = (now_s, np.array(position, dtype=float))

    def landing_reference(self, now_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Where the landing controller should be (3,) m and how fast (3,) m/s: straight down from
        where the landing began at `land_rate`, to the floor."""
        if self._land_from is None:
            raise RuntimeError("not landing")
        start, position = self._land_from
        height = max(0.0, position[2] - self.limits.land_rate * (now_s - start))
        descending = height > 0.0
        return (
            np.array([position[0], position[1], height]),
            np.array([0.0, 0.0, -self.limits.land_rate if descending else 0.0]),
        )

    def _off(self, reason: str) -> str:
        self.mode, self.reason = OFF, reason
        return OFF
