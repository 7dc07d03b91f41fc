"""The flight tasks' binding for the quadrotor: state the vehicle's estimate (13,), commands (4,) at the
level the device takes: rotor speeds, or collective thrust and body rates for a flight controller
whose own rate loop follows them (`sim.robots.quadrotor.COMMAND_LEVELS`).

Its safe behaviour is `FlightSupervisor`'s: from a trusted state the vehicle
lands, the classical baseline tracking a reference that descends at
`FlightLimits.land_rate`; blind, flipped, out of control or outside the
geofence its motors go off, latched.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.robots.quadrotor import COMMAND_LEVELS, ROTORS, QuadrotorParams
from sim.tasks import flight
from sim.tasks.binding import Binding
from sim.tasks.flight_safety import LAND, OFF, FlightLimits, FlightSupervisor, outside


class SafeFlight:
    """`command(values | None, elapsed_s)`: the commands (4,) of the safe state at the device's
    `commands` level, `elapsed_s` seconds after it began; motors off is all zero at either level
    (no thrust, no rates). A safe state that begins again (the loop's e-stop was reset and tripped
    anew) lands again from where the vehicle is, unless the motors went off."""

    def __init__(self, params: QuadrotorParams, rate_hz: float, limits: FlightLimits, commands: str = "rotors"):
        from policies.geometric import GeometricController  # the classical baseline lands

        self.limits, self.commands = limits, commands
        self.lander = GeometricController(params, rate_hz, action_level=commands)
        self.supervisor = FlightSupervisor(limits)
        self._elapsed = float("inf")

    def command(self, values: np.ndarray | None, elapsed_s: float) -> np.ndarray:
        if elapsed_s < self._elapsed and self.supervisor.mode != OFF:  # a safe state begins
            self.supervisor = FlightSupervisor(self.limits)
            self.lander.reset()
            if values is not None and np.isfinite(values).all():
                self.supervisor.land(elapsed_s, values[:3], "safe state")
        self._elapsed = elapsed_s
        # The loop judged the state fresh (or passed None): no state or command age to check here.
        if self.supervisor.update(elapsed_s, values, elapsed_s, elapsed_s) != LAND:
            return np.zeros(ROTORS)
        reference = self.supervisor.landing_reference(elapsed_s)
        action = self.lander.act(flight.observation(values, reference, np.zeros((0, ROTORS))))
        return (action + 1.0) / 2.0 if self.commands == "rotors" else flight.rates_setpoint(action)


def binding(
    task: flight.Flight, rate_hz: float, limits: FlightLimits | None = None, commands: str = "rotors"
) -> Binding:
    """The flight `task` on the vehicle at `rate_hz`, its nominal parameter set the rate
    controller's and the landing's model, for a device taking `commands` (`COMMAND_LEVELS`): at
    `rates` the device's own rate loop follows the policy's set-points, so the policy must act at
    that level. Time runs from the loop's first tick, as the reference does from reset."""
    route, params = task.route, task.params
    if commands not in COMMAND_LEVELS:
        raise ValueError(f"unknown quadrotor command level {commands!r}; expected one of {', '.join(COMMAND_LEVELS)}")
    if commands == "rates" and task.action_level != "rates":
        raise ValueError(
            f"this policy commands {task.action_level}, and the device takes collective thrust and body rates "
            "(its flight controller runs the rate loop): deploy a policy trained with action_level: rates"
        )
    limits = limits or FlightLimits()
    safe = SafeFlight(params, rate_hz, limits, commands)
    if commands == "rotors":
        to_command = lambda action, values: task.to_command(action, values, params)  # noqa: E731
    else:
        to_command = lambda action, values: flight.rates_setpoint(action)  # noqa: E731

    def errors(T: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, str | None]:
        T, X = measured(T, X)
        references = [route.reference(t) for t in T]
        failed = next((f for x, r in zip(X, references, strict=True) if (f := flight.failure(x, r))), None)
        return np.array([np.linalg.norm(x[:3] - r[0]) for x, r in zip(X, references, strict=True)]), failed

    def metrics(T: np.ndarray, X: np.ndarray, U: np.ndarray) -> dict[str, float]:
        # The run is the episode: it succeeds if it never failed, however long it lasted.
        _, failed = errors(T, X)
        run = dataclasses.replace(route, duration_s=float(T[-1]) if len(T) else 0.0)
        T, X = measured(T, X)
        return flight.metrics(run, T, X[:, :3], failed)

    def held(T: np.ndarray, X: np.ndarray, U: np.ndarray) -> tuple[bool, str]:
        error, failed = errors(T, X)
        T, _ = measured(T, X)
        settled = error[T >= route.settle_s]
        worst = f", max error {100 * settled.max():.1f} cm after {route.settle_s:g} s" if len(settled) else ""
        if failed:
            return False, f"{route.name} lost: {failed}"
        return True, f"{route.name} held for {T[-1]:.2f} s{worst}"

    return Binding(
        task=task.name,
        observe=task.observe,
        to_command=to_command,
        envelope=lambda values: outside(limits, values),
        safe_command=safe.command,
        action_size=task.action_size,
        memory_size=task.memory_size,
        initial_action=task.initial_action(),
        metrics=metrics,
        held=held,
        describe=describe,
        # Down from the geofence's ceiling at the landing rate, and 2 s to spare.
        settle_s=limits.geofence_high[2] / limits.land_rate + 2.0,
    )


def measured(T: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ticks that had a reading: a failed read (a lost link) leaves NaN in its place."""
    finite = np.isfinite(X).all(axis=1) if len(X) else np.zeros(0, dtype=bool)
    return T[finite], X[finite]


def describe(m: dict[str, float]) -> str:
    """`position RMSE 0.23 cm, max 0.50 cm, success yes` of flight metrics."""
    return (
        f"position RMSE {m['rmse_cm']:.2f} cm, max {m['max_error_cm']:.2f} cm, "
        f"success {'yes' if m['success'] else 'no'}"
    )
