"""The swing-up task's binding for the pendulum family: state [q, dq], commands joint torques."""

from __future__ import annotations

import numpy as np

from sim.robots import Robot
from sim.robots.params import PendulumParams
from sim.tasks import realaigym, swingup
from sim.tasks.binding import Binding


def binding(
    robot: Robot,
    params: PendulumParams,
    damping: float,
    friction_compensation: bool = False,
    observe_winding: bool = False,
) -> Binding:
    """`observe_winding` as the policy was trained (its observation holds the joints' winding).
    With `friction_compensation` the passive joints' motors cancel the friction `params` models at
    the measured velocities (`Robot.friction_compensation`), as the policy met it in training;
    without it they get 0. The safe state damps the actuated joints by `damping` N m s/rad while
    the state is trusted; blind, it is zero torque. Metrics: the RealAIGym v2 score (simulation
    normalisation) of what the loop measured and sent."""
    n = len(robot.joints)
    matrix = robot.action_matrix(params)
    limits = robot.command_limits(params)
    actuated = np.array(robot.actuated, dtype=float)

    def safe(values: np.ndarray | None, elapsed_s: float) -> np.ndarray:
        # Damping needs a velocity it can trust; blind, a motor without torque is the safe one.
        if values is None:
            return np.zeros(n)
        return np.clip(-damping * values[n:] * actuated, -limits, limits)

    def command(action: np.ndarray, values: np.ndarray) -> np.ndarray:
        torques = matrix @ action
        if friction_compensation:
            torques = torques + robot.friction_compensation(params, values[n:])
        return torques

    def metrics(T: np.ndarray, X: np.ndarray, U: np.ndarray) -> dict[str, float]:
        return realaigym.score(realaigym.Trajectory(T, X[:, : 2 * n], U), "v2", "sim", lengths=params.l)

    def held(T: np.ndarray, X: np.ndarray, U: np.ndarray) -> tuple[bool, str]:
        t_up = realaigym.swingup_time(T, X[:, : 2 * n], params.l, t_final=T[-1])
        word = "held" if t_up < T[-1] else "not held"
        return t_up < T[-1], f"swing-up {word} for {T[-1]:.2f} s (swing-up time {t_up:.2f} s)"

    return Binding(
        task="swingup",
        observe=lambda values, past, t: swingup.observation(values[:n], values[n:], past, observe_winding),
        to_command=command,
        envelope=lambda values: swingup.outside_envelope(values[:n].tolist(), values[n:].tolist()),
        safe_command=safe,
        action_size=matrix.shape[1],
        initial_action=np.zeros(matrix.shape[1]),
        metrics=metrics,
        held=held,
        describe=describe,
    )


def describe(score: dict[str, float]) -> str:
    """`v2 score 0.278, success yes, up at 2.10 s` of a RealAIGym v2 score."""
    up = score["swingup_time"]
    return (
        f"v2 score {score['score']:.3f}, success {'yes' if score['success'] else 'no'}, "
        f"up at {'never' if not np.isfinite(up) else f'{up:.2f} s'}"
    )
