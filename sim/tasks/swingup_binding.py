"""The swing-up task's binding for the pendulum family: state [q, dq], commands joint torques."""

from __future__ import annotations

import numpy as np

from sim.tasks import realaigym
from sim.tasks.binding import Binding
from sim.tasks.swingup import SwingUp, outside_envelope


def binding(task: SwingUp, damping: float) -> Binding:
    """The swing-up `task` on the robot, with its nominal parameter set as the robot's model (the
    friction compensation's, when the task has it). The safe state damps the actuated joints by
    `damping` N m s/rad while the state is trusted; blind, it is zero torque. Metrics: the
    RealAIGym v2 score (simulation normalisation) of what the loop measured and sent."""
    robot, params, n = task.robot, task.params, task.n
    limits = robot.command_limits(params)
    actuated = np.array(robot.actuated, dtype=float)

    def safe(values: np.ndarray | None, elapsed_s: float) -> np.ndarray:
        # Damping needs a velocity it can trust; blind, a motor without torque is the safe one.
        if values is None:
            return np.zeros(n)
        return np.clip(-damping * values[n:] * actuated, -limits, limits)

    def held(T: np.ndarray, X: np.ndarray, U: np.ndarray) -> tuple[bool, str]:
        t_up = realaigym.swingup_time(T, X[:, : 2 * n], params.l, t_final=T[-1])
        word = "held" if t_up < T[-1] else "not held"
        return t_up < T[-1], f"swing-up {word} for {T[-1]:.2f} s (swing-up time {t_up:.2f} s)"

    return Binding(
        task=task.name,
        observe=task.observe,
        to_command=lambda action, values: task.to_command(action, values, params),
        envelope=lambda values: outside_envelope(values[:n], values[n:]),
        safe_command=safe,
        action_size=task.action_size,
        memory_size=task.memory_size,
        initial_action=task.initial_action(),
        metrics=lambda T, X, U: task.metrics(T, X, U, params, None),
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
