"""Safety: command limits, slew limit and NaN guard, the state envelope, the watchdog and the e-stop.

Pure functions and small classes, applied in one place (the loop) for every
backend. Every fault has a reason and the tick it happened at.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.robots.spec import RobotSpec


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """Limits the loop enforces on top of the robot spec's command limits."""

    max_slew_per_s: float | None = None
    """Lowers every command channel's rate limit (its spec's `max_rate`) to this, in its unit per s;
    None keeps the spec's. No value raises a channel's own limit."""
    stale_timeout_s: float = 0.05
    """Fault when the device's sequence number has not changed for this long, s."""
    max_missed_deadlines: int = 5
    """Fault after this many consecutive missed deadlines."""
    damping: float = 0.5
    """Safe-state damping on actuated joints, N m s/rad: tau = -damping * dq, within limits."""
    frozen_timeout_s: float = 0.05
    """Fault when the state values stay bit-identical for this long, s, while they report motion or
    the command pushes (see Watchdog.check_frozen)."""
    frozen_min_command: float = 0.5
    """A command of this magnitude on some channel (in its unit) moves a live robot at rest."""

    def __post_init__(self):
        if (
            (self.max_slew_per_s is not None and not self.max_slew_per_s > 0)
            or self.stale_timeout_s <= 0
            or self.max_missed_deadlines < 1
            or self.damping < 0
            or self.frozen_timeout_s <= 0
            or self.frozen_min_command < 0
        ):
            raise ValueError(f"invalid safety configuration: {self}")


@dataclasses.dataclass(frozen=True)
class Fault:
    """Why the loop went to its safe state, and when."""

    tick: int
    reason: str


def max_steps(spec: RobotSpec, safety: SafetyConfig, rate_hz: float) -> np.ndarray:
    """The largest change per tick of each command channel (spec order) at `rate_hz`: its `max_rate`,
    lowered by `safety.max_slew_per_s`."""
    rates = np.array([c.max_rate for c in spec.command], dtype=float)
    if safety.max_slew_per_s is not None:
        rates = np.minimum(rates, safety.max_slew_per_s)
    return rates / rate_hz


def limit_command(
    command: np.ndarray, previous: np.ndarray, low: np.ndarray, high: np.ndarray, spec: RobotSpec, max_step: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Clamp to the command limits [low, high] (the spec's, in its channel order) and to
    `max_step` (per channel) change per tick. Returns the safe command and one message per clamped channel.
    Non-finite commands never get here: `guard_finite` refuses them first."""
    safe = np.minimum(np.maximum(command, np.maximum(low, previous - max_step)), np.minimum(high, previous + max_step))
    if (safe == command).all():
        return safe, []
    notes = [
        f"{c.name} {command[i]:.4g} -> {safe[i]:.4g} {c.unit}"
        for i, c in enumerate(spec.command)
        if safe[i] != command[i]
    ]
    return safe, notes


def blind_torque_ticks(
    commands: np.ndarray, trusted: np.ndarray, blind_command: np.ndarray, max_step: np.ndarray
) -> np.ndarray:
    """Ticks on which the loop was blind (`trusted` false: no reading it could trust) and yet did
    not move every channel toward the blind safe command `blind_command` as fast as the slew limit
    allows: a command kept, or made, from a reading that could not be trusted. `commands` (ticks,
    channels) as sent; `max_step` the slew limit per tick (per channel, `max_steps`). Returns the ticks' indices."""
    distance = np.abs(np.asarray(commands, dtype=float) - blind_command)
    before = np.vstack([np.abs(blind_command)[None], distance[:-1]])  # the loop starts from zero
    allowed = np.maximum(before - max_step, 0.0) + 1e-9
    return np.flatnonzero(~np.asarray(trusted, dtype=bool) & (distance > allowed).any(axis=1))


def guard_finite(values: np.ndarray, what: str) -> str | None:
    """A fault reason if any value is NaN or infinite."""
    if not np.isfinite(values).all():
        return f"non-finite {what}: {np.asarray(values).tolist()}"
    return None


class EStop:
    """A latched emergency stop: once tripped it stays tripped until reset() is called."""

    def __init__(self):
        self.fault: Fault | None = None

    @property
    def tripped(self) -> bool:
        return self.fault is not None

    def trip(self, fault: Fault) -> None:
        if self.fault is None:
            self.fault = fault

    def reset(self) -> None:
        """Explicitly re-arm; the caller takes responsibility for the robot's state."""
        self.fault = None


class Watchdog:
    """Stale state (no new sequence number within the timeout), a frozen sensor (new sequence
    numbers, identical values, while the command pushes) and consecutive missed deadlines."""

    def __init__(self, config: SafetyConfig):
        self.config = config
        self.last_seq: int | None = None
        self.last_change_ns = 0
        self.missed_in_a_row = 0
        self._values = b""
        self._values_since_ns = 0
        self._frozen_seq: int | None = None

    def check_state(self, seq: int, now_ns: int) -> str | None:
        if seq != self.last_seq:
            self.last_seq, self.last_change_ns = seq, now_ns
            return None
        limit_ms = self.config.stale_timeout_s * 1e3
        if now_ns - self.last_change_ns > limit_ms * 1e6:
            return f"stale state: sequence {seq} unchanged for over {limit_ms:.0f} ms"
        return None

    def check_frozen(
        self, seq: int, values: np.ndarray, rates: np.ndarray, last_command: np.ndarray, now_ns: int
    ) -> str | None:
        """A live sensor's readings change while the robot moves. Fault when new readings (sequence
        `seq` moved on; no new reading at all is check_state's to judge) keep `values` bit-identical
        for longer than the frozen timeout while they report motion (a nonzero rate channel; `rates`
        is the boolean mask of those, e.g. unit rad/s) or while the previous tick's command pushes with
        at least frozen_min_command: a robot at rest, commanded gently, is not frozen."""
        if seq == self._frozen_seq:
            return None
        self._frozen_seq = seq
        raw = values.tobytes()
        if raw != self._values:
            self._values, self._values_since_ns = raw, now_ns
            return None
        pushing = max(map(abs, last_command.tolist()), default=0.0)
        if not (values[rates].any() or pushing >= self.config.frozen_min_command):
            self._values_since_ns = now_ns
            return None
        # The reason stays the same while the condition lasts: one fault, not one per tick.
        if now_ns - self._values_since_ns > self.config.frozen_timeout_s * 1e9:
            return (
                f"frozen sensor: state values unchanged for over {self.config.frozen_timeout_s * 1e3:.0f} ms "
                "while reporting motion or under a command that moves the robot"
            )
        return None

    def check_deadline(self, missed: int) -> str | None:
        """`missed`: deadlines missed before this tick (0 when on time)."""
        self.missed_in_a_row = self.missed_in_a_row + missed if missed else 0
        if self.missed_in_a_row >= self.config.max_missed_deadlines:
            return f"{self.missed_in_a_row} consecutive missed deadlines (limit {self.config.max_missed_deadlines})"
        return None
