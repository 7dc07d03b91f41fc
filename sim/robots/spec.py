"""What a robot exposes: named state and command channels with units, limits and kinds.

A real device must provide the state channels and accept the command channels
of its robot's spec; the safety filter enforces the command limits and rate
limits, and the log maps each kind of channel to the ROS 2 message a viewer
knows (`KINDS`).
"""

from __future__ import annotations

import dataclasses
import math

KINDS = (
    "joint.position",  # rad; a joint's name is the channel name before the first dot
    "joint.velocity",  # rad/s
    "joint.effort",  # N m
    "body.position",  # x, y, z of the free body in the world frame, m
    "body.orientation",  # w, x, y, z of the unit quaternion body to world
    "body.linear_velocity",  # x, y, z in the world frame, m/s
    "body.angular_velocity",  # x, y, z in the body frame, rad/s
    "rotor.speed",  # normalised rotor speed set-point in [0, 1]
    "body.thrust",  # collective thrust set-point, fraction of the rotors' maximum in [0, 1]
    "body.rate_setpoint",  # x, y, z body-rate set-points, rad/s (a flight controller's rate loop follows them)
)
"""What a channel measures or commands; channels of one body kind come in x, y, z (w first for the
orientation) order."""


@dataclasses.dataclass(frozen=True)
class Channel:
    """One scalar signal, e.g. `shoulder.position` in rad within [low, high]."""

    name: str
    unit: str
    low: float
    high: float
    kind: str = ""
    """One of KINDS, or "" for a signal the log keeps only as a number."""
    max_rate: float = math.inf
    """A command channel's largest change per second, in its unit per s: the robot's ceiling, which
    the loop's SafetyConfig may lower and nothing raises."""

    def __post_init__(self):
        if self.kind and self.kind not in KINDS:
            raise ValueError(f"channel {self.name!r}: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not self.max_rate > 0:
            raise ValueError(f"channel {self.name!r}: max_rate {self.max_rate} must be > 0")


@dataclasses.dataclass(frozen=True)
class RobotSpec:
    """The channels of a robot and its control rates."""

    name: str
    state: tuple[Channel, ...]
    command: tuple[Channel, ...]
    control_rate_hz: float
    """Default policy rate."""
    max_control_rate_hz: float
    """Highest rate the robot's bus supports."""

    def indices(self, kind: str, of: str = "state") -> list[int]:
        """Indices of the `of` ("state" or "command") channels of `kind`, in spec order."""
        return [i for i, c in enumerate(getattr(self, of)) if c.kind == kind]
