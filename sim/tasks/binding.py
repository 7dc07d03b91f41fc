"""What a task gives the real-time loop: a Binding, the task's own functions over the robot's channels.

The loop (`hardware.loop`) knows channels, limits and faults; everything that
depends on what the robot is and what it is asked to do comes from here, the
same code the task's env uses, so that a policy meets on the robot exactly the
observation and commands it was trained on: a task's binding is built from
the task itself (`sim.tasks.task.Task.binding`); `make_binding` builds it by
robot and task name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Binding:
    """A task on a robot, as the loop runs it. Values are arrays in the robot spec's channel order."""

    task: str
    observe: Callable[[np.ndarray, np.ndarray, float, np.ndarray], np.ndarray]
    """(state values, past actions (k, m), seconds since the run's first tick, the task's memory
    (`memory_size`,), zeros at the first tick and advanced in place) -> observation."""
    to_command: Callable[[np.ndarray, np.ndarray], np.ndarray]
    """(action (m,) in [-1, 1], state values) -> command values."""
    envelope: Callable[[np.ndarray], str | None]
    """state values -> reason if outside the safe envelope."""
    safe_command: Callable[[np.ndarray | None, float], np.ndarray]
    """(state values, or None when the state cannot be trusted; seconds since the safe state began)
    -> command of the robot's safe behaviour. With None it must not depend on any reading."""
    action_size: int
    initial_action: np.ndarray
    """(m,): the action history before the first tick, as the task's env has it at reset."""
    metrics: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]
    """(tick times (N,) s from the first, measured state values (N, S), commands sent (N, C)) ->
    the task's metrics of a run, `success` (0 or 1) among them."""
    held: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[bool, str]]
    """As `metrics`, over a run cut short (e.g. at an injected fault): whether the task was being
    done well up to its end, and one line saying how."""
    describe: Callable[[dict[str, float]], str]
    """metrics -> one line for a person."""
    memory_size: int = 0
    settle_s: float = 0.0
    """How long the safe behaviour may take to bring the robot to rest (all-zero command) when a run
    ends, s: 0 when the device's own safe state is safe at once (zero torque on a pendulum); a
    flying robot lands first."""


def make_binding(
    robot: str,
    task: str,
    params: Any,
    rate_hz: float,
    conditions: Mapping[str, Any],
    damping: float,
    commands: str | None = None,
) -> Binding:
    """The binding of `task` on `robot` with its parameter set `params` (loaded), at `rate_hz`, and
    the policy's training conditions (`conditions`: task options its observation and commands depend
    on, `sim.tasks.task.make_task`'s; those this task does not take are not its policy's, e.g. an
    action level for a pendulum). `damping` is the pendulum's safe-state damping, N m s/rad;
    `commands` the level the device takes (`Task.binding`)."""
    from sim.tasks.task import make_task, task_options

    taken = task_options(robot, task)
    return make_task(robot, task, params, **{k: v for k, v in conditions.items() if k in taken}).binding(
        rate_hz, damping, commands
    )
