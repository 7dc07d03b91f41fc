"""The real-time control loop: a fixed rate with absolute deadlines, safe by construction.

Each tick: read -> watchdog -> envelope -> observation (the task's own function,
`sim.tasks.binding.Binding`) -> policy -> NaN guard -> limits and per-channel
rate limits -> write -> log. Deadlines are
t0 + k * period (no drift); a tick that overruns skips the deadlines it missed
instead of catching up, and they are counted. Any fault trips the latched
e-stop, after which the device gets its safe-state command until `estop.reset()`.

The safe state never trusts a reading it cannot trust: a state that is stale,
non-finite, frozen or outside the spec's ranges, or a failed read, makes the
tick *blind*, and a blind tick commands the binding's blind safe command
(zero torque for the pendulum, motors off for the quadrotor), never one
computed from the last reading. Every command, the safe state's included,
goes through the same limits and rate limits.
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
from hardware.safety import EStop, Fault, SafetyConfig, Watchdog, guard_finite, limit_command, max_steps
from sim.tasks.binding import Binding

log = logging.getLogger(__name__)


class Policy(Protocol):
    def act(self, obs: np.ndarray) -> np.ndarray: ...


class PolicyMismatchError(ValueError):
    """A policy that does not fit the robot it is deployed on."""


def probe_policy(policy: Policy, binding: Binding, state_size: int, action_history: int) -> None:
    """One forward pass on the observation of an all-zero state, before anything is armed: the
    policy must take the binding's observation and return `binding.action_size` finite values.
    Raises PolicyMismatchError saying what does not fit."""
    past = np.tile(binding.initial_action, (action_history, 1))
    obs = binding.observe(np.zeros(state_size), past, 0.0, np.zeros(binding.memory_size))
    try:
        action = np.asarray(policy.act(obs), dtype=float)
    except Exception as exc:
        raise PolicyMismatchError(f"the policy refuses the robot's observation of {len(obs)} values: {exc}") from exc
    if action.shape != (binding.action_size,):
        raise PolicyMismatchError(
            f"the policy returns {action.size} action values; the robot takes {binding.action_size}"
        )
    if not np.isfinite(action).all():
        raise PolicyMismatchError(f"the policy returns non-finite actions {action.tolist()} for the probe observation")
    if hasattr(policy, "reset"):  # the probe must leave no trace in a controller with a mode
        policy.reset()


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
    trusted: bool = True
    """The state was fresh, finite, live and within the spec's ranges (else the tick was blind)."""
    link: dict[str, float] | None = None
    """The device's link counters (lost frames, CRC errors, ...) when they changed this tick."""


class ControlLoop:
    """Run a policy against a device at a fixed rate.

    `on_tick`, if given, receives every TickRecord (the logger); it must not block. It returns
    None, or a reason to go to the safe state (the log can no longer record the run).
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
        on_tick: Callable[[TickRecord], str | None] | None = None,
    ):
        if not 0 < rate_hz <= 1000:
            raise ValueError(f"loop rate must be in (0, 1000] Hz, got {rate_hz}")
        self.device = device
        self.policy = policy
        self.binding = binding
        self.period_ns = int(round(1e9 / rate_hz))
        self.clock = clock
        self.safety = safety or SafetyConfig()
        self.rate_hz = rate_hz
        self.estop = EStop()
        self.watchdog = Watchdog(self.safety)
        self.past = np.tile(np.asarray(binding.initial_action, dtype=float), (action_history, 1))
        self.memory = np.zeros(binding.memory_size)
        self.on_tick = on_tick
        self.faults: list[Fault] = []
        # One (deadline_ns, start_ns, compute_ns) tuple per tick, appended in one step so that a Ctrl-C
        # landing anywhere leaves the columns the same length.
        self.timing: list[tuple[int, int, int]] = []
        self.missed_total = 0
        self._previous = None
        self._safe_since_ns: int | None = None
        self.ending = False
        """Set by `settle`: the run is over and the robot is brought to rest by its safe behaviour."""
        self._outside: str | None = None  # a reason from on_tick, faulted at the next tick
        self._counters: dict[str, float] = {}
        self._t0_ns: int | None = None  # the first tick's deadline: the task's time starts there
        # From the spec, read at the first tick.
        self._low = self._high = self._rates = self._state_low = self._state_high = self.max_step = None

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
            self._state_low = np.array([c.low for c in spec.state])
            self._state_high = np.array([c.high for c in spec.state])
            self._rates = np.array([c.unit.endswith("/s") for c in spec.state])
            self.max_step = max_steps(spec, self.safety, self.rate_hz)
            self._t0_ns = deadline_ns
        faults: list[Fault] = []  # the record keeps the first: the cause, not its consequences
        reason = self.watchdog.check_deadline(missed) or self._outside
        if reason:
            faults.append(self._fault(k, reason))
        trusted = False
        try:
            state = self.device.read()
            values = state.values
            reason = (
                self.watchdog.check_state(state.seq, start)
                or guard_finite(values, "state")
                or self.watchdog.check_frozen(state.seq, values, self._rates, self._last_command(), start)
            )
            in_range = reason is None and bool(((values >= self._state_low) & (values <= self._state_high)).all())
            trusted = in_range
            reason = reason or self.binding.envelope(values) or (None if in_range else self._range_reason(values))
        except DeviceError as exc:
            state = State(start, -1, np.full(len(spec.state), np.nan))
            reason = f"device read failed: {exc}"
        if reason:
            faults.append(self._fault(k, reason))
        action = np.zeros(self.binding.action_size)
        target = None
        if not (self.estop.tripped or self.ending):
            try:
                obs = self.binding.observe(state.values, self.past, (deadline_ns - self._t0_ns) / 1e9, self.memory)
                raw = np.asarray(self.policy.act(obs), dtype=float)
                reason = self._action_reason(raw)
                if reason is None:
                    action = raw.clip(-1.0, 1.0)
                    target = self.binding.to_command(action, state.values)
                    reason = guard_finite(target, "command")
            except Exception as exc:  # a policy that fails must not take the robot with it
                reason = f"policy failed: {type(exc).__name__}: {exc}"
            if reason:
                faults.append(self._fault(k, reason))
            elif len(self.past):
                self.past[:-1] = self.past[1:]
                self.past[-1] = action
        if self.estop.tripped or self.ending:
            if self._safe_since_ns is None:
                self._safe_since_ns = start
            target = self.binding.safe_command(state.values if trusted else None, (start - self._safe_since_ns) / 1e9)
            if not trusted and self.device.firmware_failsafe and self.device.lifecycle is Lifecycle.ACTIVE:
                # Blind, with a firmware that fails safe on its own sensors: leave the robot to it.
                self.device.hand_over("the loop cannot trust its state")
        else:
            self._safe_since_ns = None
        command, clamps = limit_command(target, self._last_command(), self._low, self._high, spec, self.max_step)
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
            k,
            deadline_ns,
            start,
            self.clock.now_ns() - start,
            state,
            action,
            command,
            missed,
            clamps,
            fault,
            trusted,
            link,
        )
        if self.on_tick is not None:
            self._outside = self.on_tick(record) or self._outside
        return record

    def _action_reason(self, raw: np.ndarray) -> str | None:
        if raw.shape != (self.binding.action_size,):
            return f"policy returned an action of shape {raw.shape}; the robot takes {self.binding.action_size}"
        return guard_finite(raw, "action")

    def _range_reason(self, values: np.ndarray) -> str:
        spec = self.device.spec
        outside = [
            f"{c.name} {v:.4g} {c.unit} outside [{c.low:.4g}, {c.high:.4g}]"
            for c, v in zip(spec.state, values.tolist(), strict=True)
            if not c.low <= v <= c.high
        ]
        return "state outside the spec's range: " + "; ".join(outside)

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

    def settle(self) -> bool:
        """End a run: the safe behaviour (the binding's, as after a fault, but no fault) until it
        commands the robot's rest (all zero: motors off after the quadrotor has landed), for at most
        the binding's `settle_s`. Returns whether the robot came to rest. The pendulum's rest is
        immediate (settle_s 0): the device's deactivation is its safe state."""
        if self.binding.settle_s <= 0:
            return True
        self.ending = True
        at_rest = lambda: self._previous is not None and not self._previous.any()  # noqa: E731
        self.run(duration_s=self.binding.settle_s, should_stop=at_rest)
        return at_rest()

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
