"""The real-time control loop: a fixed rate with absolute deadlines, safe by construction.

Each tick: read -> watchdog -> envelope -> observation (the env's own function)
-> policy -> NaN guard -> limits and slew limit -> write -> log. Deadlines are
t0 + k * period (no drift); a tick that overruns skips the deadlines it missed
instead of catching up, and they are counted. Any fault trips the latched
e-stop, after which the device gets its safe-state command until `estop.reset()`.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from hardware.clock import Clock
from hardware.device import Command, Device, DeviceError, Lifecycle, State
from hardware.safety import EStop, Fault, SafetyConfig, Watchdog, guard_finite, limit_command
from sim.robots import Robot
from sim.robots.params import PendulumParams
from sim.tasks import swingup

log = logging.getLogger(__name__)


class Policy(Protocol):
    def act(self, obs: np.ndarray) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class Binding:
    """How the loop talks to one robot: its observation, action mapping, envelope and safe state.
    All take and return arrays in the robot spec's channel order."""

    observe: Callable[[np.ndarray, np.ndarray], np.ndarray]
    """(state values, past actions (k, m)) -> observation."""
    to_command: Callable[[np.ndarray, np.ndarray], np.ndarray]
    """(action (m,) in [-1, 1], state values) -> command values."""
    envelope: Callable[[np.ndarray], str | None]
    """state values -> reason if outside the safe envelope."""
    safe_command: Callable[[np.ndarray], np.ndarray]
    """state values -> command of the safe state."""
    action_size: int


def pendulum_binding(
    robot: Robot,
    params: PendulumParams,
    damping: float,
    friction_compensation: bool = False,
    observe_winding: bool = False,
) -> Binding:
    """The swing-up task's binding for the pendulum family (state = [q, dq], command = joint torques).
    `observe_winding` as the policy was trained (its observation holds the joints' winding).
    With `friction_compensation` the passive joints' motors cancel the friction `params` models at
    the measured velocities (`Robot.friction_compensation`), as the policy met it in training;
    without it they get 0."""
    n = len(robot.joints)
    matrix = robot.action_matrix(params)
    limits = robot.command_limits(params)
    actuated = np.array(robot.actuated, dtype=float)

    def safe(values: np.ndarray) -> np.ndarray:
        # Damp the actuated joints: the hardware's stops are followed by damping, not a dead motor.
        return np.clip(-damping * values[n:] * actuated, -limits, limits)

    def command(action: np.ndarray, values: np.ndarray) -> np.ndarray:
        torques = matrix @ action
        if friction_compensation:
            torques = torques + robot.friction_compensation(params, values[n:])
        return torques

    return Binding(
        observe=lambda values, past: swingup.observation(values[:n], values[n:], past, observe_winding),
        to_command=command,
        envelope=lambda values: swingup.outside_envelope(values[:n].tolist(), values[n:].tolist()),
        safe_command=safe,
        action_size=matrix.shape[1],
    )


@dataclasses.dataclass
class TickRecord:
    """What one tick saw and did; handed to the logger."""

    tick: int
    deadline_ns: int
    start_ns: int
    compute_ns: int
    state: State
    action: np.ndarray
    command: np.ndarray
    missed: int
    clamps: list[str]
    fault: Fault | None
    link: dict[str, float] | None = None
    """The device's link counters (lost frames, CRC errors, ...) when they changed this tick."""


class ControlLoop:
    """Run a policy against a device at a fixed rate.

    `on_tick`, if given, receives every TickRecord (the logger); it must not block.
    """

    def __init__(
        self,
        device: Device,
        policy: Policy,
        binding: Binding,
        rate_hz: float,
        clock: Clock,
        safety: SafetyConfig | None = None,
        action_history: int = 1,
        on_tick: Callable[[TickRecord], None] | None = None,
    ):
        if not 0 < rate_hz <= 1000:
            raise ValueError(f"loop rate must be in (0, 1000] Hz, got {rate_hz}")
        self.device = device
        self.policy = policy
        self.binding = binding
        self.period_ns = int(round(1e9 / rate_hz))
        self.clock = clock
        self.safety = safety or SafetyConfig()
        self.max_step = self.safety.max_slew_per_s / rate_hz
        self.estop = EStop()
        self.watchdog = Watchdog(self.safety)
        self.past = np.zeros((action_history, binding.action_size))
        self.on_tick = on_tick
        self.faults: list[Fault] = []
        # One (deadline_ns, start_ns, compute_ns) tuple per tick, appended in one step so that a Ctrl-C
        # landing anywhere leaves the columns the same length.
        self.timing: list[tuple[int, int, int]] = []
        self.missed_total = 0
        self._previous = None
        self._counters: dict[str, float] = {}
        self._low = self._high = self._rates = None  # from the spec, read at the first tick

    def _fault(self, tick: int, reason: str) -> Fault:
        fault = Fault(tick, reason)
        if not self.estop.tripped:
            log.error("tick %d: %s; going to the safe state", tick, reason)
        self.estop.trip(fault)
        # A condition that persists (a stale sensor) is one fault, not one per tick.
        if not self.faults or self.faults[-1].reason != reason:
            self.faults.append(fault)
        return fault

    def tick(self, k: int, deadline_ns: int, missed: int) -> TickRecord:
        """One control step; never raises for a device or policy failure: it faults instead."""
        start = self.clock.now_ns()
        spec = self.device.spec
        if self._low is None:
            self._low = np.array([c.low for c in spec.command])
            self._high = np.array([c.high for c in spec.command])
            self._rates = np.array([c.unit.endswith("/s") for c in spec.state])
        faults: list[Fault] = []  # the record keeps the first: the cause, not its consequences
        reason = self.watchdog.check_deadline(missed)
        if reason:
            faults.append(self._fault(k, reason))
        try:
            state = self.device.read()
            reason = (
                self.watchdog.check_state(state.seq, start)
                or guard_finite(state.values, "state")
                or self.watchdog.check_frozen(state.values, self._rates, self._last_command(), start)
                or self.binding.envelope(state.values)
            )
        except DeviceError as exc:
            state = State(start, -1, np.full(len(spec.state), np.nan))
            reason = f"device read failed: {exc}"
        if reason:
            faults.append(self._fault(k, reason))
        action = np.zeros(self.binding.action_size)
        clamps: list[str] = []
        if self.estop.tripped:
            command = self.binding.safe_command(np.nan_to_num(state.values))
        else:
            try:
                action = np.asarray(self.policy.act(self.binding.observe(state.values, self.past)), dtype=float)
                reason = guard_finite(action, "action")
            except Exception as exc:  # a policy that fails must not take the robot with it
                reason = f"policy failed: {type(exc).__name__}: {exc}"
            if reason:
                faults.append(self._fault(k, reason))
                command = self.binding.safe_command(np.nan_to_num(state.values))
            else:
                action = action.clip(-1.0, 1.0)
                if len(self.past):
                    self.past[:-1] = self.past[1:]
                    self.past[-1] = action
                command, clamps = limit_command(
                    self.binding.to_command(action, state.values),
                    self._last_command(),
                    self._low,
                    self._high,
                    spec,
                    self.max_step,
                )
        # A device in FAULT takes no command: its own safe state (e.g. firmware's host timeout) holds.
        if self.device.lifecycle is not Lifecycle.FAULT:
            try:
                command = self.device.write(Command(command)).values
            except DeviceError as exc:
                faults.append(self._fault(k, f"device write failed: {exc}"))
        fault = faults[0] if faults else None
        self._previous = command
        counters = self.device.counters()
        link = None
        if counters != self._counters:
            self._counters = link = counters
        record = TickRecord(
            k, deadline_ns, start, self.clock.now_ns() - start, state, action, command, missed, clamps, fault, link
        )
        if self.on_tick is not None:
            self.on_tick(record)
        return record

    def _last_command(self) -> np.ndarray:
        return self._previous if self._previous is not None else np.zeros(len(self.device.spec.command))

    def run(
        self, duration_s: float | None = None, ticks: int | None = None, should_stop: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        """Run until `duration_s` of loop time, `ticks` ticks, should_stop() or a device FAULT;
        returns the statistics."""
        if duration_s is None and ticks is None and should_stop is None:
            raise ValueError("give a duration, a tick count or a stop condition")
        # What the run keeps (records, the logger's and the caller's) grows every tick; frozen objects are
        # never scanned again, so a collection only sees the last second and never pauses a tick for long.
        freeze_every = max(1, int(1e9 // self.period_ns))
        gc.collect()
        gc.freeze()
        t0 = self.clock.now_ns()
        end_ns = t0 + int(duration_s * 1e9) if duration_s is not None else None
        done = 0
        k = 0
        missed = 0
        while (ticks is None or done < ticks) and (end_ns is None or t0 + k * self.period_ns < end_ns):
            if should_stop is not None and should_stop():
                break
            deadline = t0 + k * self.period_ns
            self.clock.sleep_until(deadline)
            record = self.tick(k, deadline, missed)
            self.timing.append((deadline, record.start_ns, record.compute_ns))
            done += 1
            if done % freeze_every == 0:
                gc.freeze()
            if self.device.lifecycle is Lifecycle.FAULT:
                log.error("the device is in FAULT: stopping; reconfigure it to recover")
                break
            # Skip, do not catch up: the next deadline is the first one still ahead.
            now = self.clock.now_ns()
            nxt = k + 1
            if now > t0 + nxt * self.period_ns:
                nxt = (now - t0) // self.period_ns + 1
            missed = nxt - (k + 1)
            self.missed_total += missed
            k = nxt
        return self.stats()

    def timing_ns(self) -> np.ndarray:
        """Per tick deadline, start and compute time (ns), shape (ticks, 3)."""
        return np.array(self.timing, dtype=np.int64).reshape(-1, 3)

    def stats(self) -> dict[str, Any]:
        """Loop timing in microseconds: period, jitter (start - deadline), compute; misses; faults."""
        deadline, start, compute = self.timing_ns().T

        def summary(x: np.ndarray) -> dict[str, float]:
            if len(x) == 0:
                return {"p50": 0.0, "p99": 0.0, "max": 0.0}
            us = x / 1e3
            return {"p50": float(np.percentile(us, 50)), "p99": float(np.percentile(us, 99)), "max": float(us.max())}

        return {
            "ticks": len(self.timing),
            "rate_hz": 1e9 / self.period_ns,
            "period_us": summary(np.diff(start)),
            "jitter_us": summary(start - deadline),
            "compute_us": summary(compute),
            "missed_deadlines": self.missed_total,
            "faults": [dataclasses.asdict(f) for f in self.faults],
            "estop": self.estop.tripped,
        }


def apply_realtime_settings(
    priority: int | None = None, cpus: set[int] | None = None, lock_memory: bool = False
) -> list[str]:
    """Opt-in real-time settings; each that fails is a warning, never an error. Returns the warnings."""
    warnings = []
    if priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, AttributeError) as exc:
            warnings.append(f"SCHED_FIFO priority {priority} not set: {exc}")
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except (OSError, AttributeError) as exc:
            warnings.append(f"CPU affinity {sorted(cpus)} not set: {exc}")
    if lock_memory:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.mlockall(3) != 0:  # MCL_CURRENT | MCL_FUTURE
                warnings.append(f"mlockall failed: errno {ctypes.get_errno()}")
        except OSError as exc:
            warnings.append(f"mlockall unavailable: {exc}")
    # Objects alive now are never collected again: fewer, shorter GC pauses in the loop.
    gc.collect()
    gc.freeze()
    for w in warnings:
        log.warning(w)
    return warnings
