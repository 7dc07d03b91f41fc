"""What a robot exposes: named state and command channels with units and limits.

A real device must provide the state channels and accept the command channels
of its robot's spec; the safety filter enforces the command limits.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Channel:
    """One scalar signal, e.g. `shoulder.position` in rad within [low, high]."""

    name: str
    unit: str
    low: float
    high: float


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
