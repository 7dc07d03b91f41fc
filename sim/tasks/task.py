"""The Task contract: what an episode is on a robot and how it is judged.

A task owns its start distribution, its observation (the pure `observe` over
what the robot measures and the actions sent, the same code in simulation and
on the robot), how an action becomes the robot's command, its reward, its
termination and its metrics. `sim.env.RobotEnv` runs any task on its robot's
simulated plant; `Task.binding` gives the real-time loop the same functions
with the robot's safe behaviour (`sim.tasks.binding.Binding`). `make_task`
builds one by robot and task name.
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sim.tasks.binding import Binding


class Task(abc.ABC):
    """One task on one robot with its nominal parameter set. Arrays are in the robot spec's channel
    order: measured values (S,), true state x of the plant, actions (m,) in [-1, 1]."""

    name: str
    duration_s: float = math.inf
    """Episode length, s (inf: the episode ends only on failure)."""
    action_size: int
    action_history: int
    """How many past actions the observation holds."""
    memory_size: int = 0
    """The size of the task's own per-episode memory (`observe`'s), e.g. an integral of an error."""
    conditions: tuple[str, ...] = ()
    """The options (`task_options`) the observation and commands depend on besides the action
    history: a policy must be deployed with the values it was trained with."""
    observation_extensions: tuple[str, ...] = ()
    """Of `conditions`, those that only append entries to the observation's end as they are turned
    on or raised: a policy can start training from one without them, with zero weights for the new
    entries."""
    observation_high: np.ndarray
    """(O,): the observation lies within +-this."""
    failure_penalty: float = 0.0
    """Taken off the reward of the step that fails."""
    score: str = "score"
    """The metric (a key of `metrics`) that ranks policies after their success rate..."""
    score_label: str = "score"
    """...what people call it..."""
    score_sign: float = 1.0
    """...and +1 when higher is better, -1 when lower is."""
    training_steps: int = 0
    """Env steps trained so far (training sets it, `RobotEnv.set_training_progress`): what a reward
    curriculum follows."""

    @abc.abstractmethod
    def initial_action(self) -> np.ndarray:
        """(m,): the action history before the first step."""

    @abc.abstractmethod
    def initial_state(self, plant: Any, rng: np.random.Generator) -> np.ndarray:
        """An episode's start state of `plant` (its `reset` takes it), drawn from the task's distribution."""

    @abc.abstractmethod
    def observe(self, measured: np.ndarray, past: np.ndarray, t: float, memory: np.ndarray) -> np.ndarray:
        """Policy input, float32 (O,), of the measured values, the past actions (k, m) oldest first,
        the time since the episode began, s, and the task's memory (`memory_size`,), zeros when the
        episode begins, which this advances to t in place. Also of a batch: (N, ...) in, (N, O) out."""

    @abc.abstractmethod
    def to_command(self, action: np.ndarray, measured: np.ndarray, params: Any) -> np.ndarray:
        """The robot's command values of `action`, with `params` the parameter set the robot
        believes it has (its controllers' model)."""

    @abc.abstractmethod
    def reward(self, x: np.ndarray, action: np.ndarray, previous: np.ndarray, t: float, params: Any) -> float:
        """Reward of one control step ending at true state x (time t s), with the episode's true
        parameter set `params`."""

    @abc.abstractmethod
    def failure(self, x: np.ndarray, t: float) -> str | None:
        """Why the episode ends failed at true state x, time t s, or None."""

    @abc.abstractmethod
    def metrics(
        self, T: np.ndarray, X: np.ndarray, U: np.ndarray, params: Any, failure: str | None
    ) -> dict[str, float]:
        """The task's metrics of a trajectory (times (N,) s, states (N, S), commands (N, C)) that
        ended with `failure` (or None), `success` (0 or 1) among them."""

    @abc.abstractmethod
    def describe(self) -> dict[str, dict[str, Any]]:
        """What an artifact's metadata says of the observation (its `layout`: a name per entry)
        and of the action (what each entry commands), as {"observation": {...}, "action": {...}}."""

    @abc.abstractmethod
    def binding(self, rate_hz: float, damping: float, commands: str | None = None) -> Binding:
        """The task as the real-time loop runs it at `rate_hz`; `damping` is a pendulum's safe-state
        damping, N m s/rad; `commands` the level of commands the device takes (a quadrotor's
        `sim.robots.quadrotor.COMMAND_LEVELS`; None: the robot's default)."""


def tasks_of(robot: str) -> tuple[str, ...]:
    """The tasks `robot` can run, its default first: the pendulum family's swing-up, the
    quadrotor's flight tasks (`sim.tasks.flight.TASKS`)."""
    from sim.robots import QUADROTORS, ROBOTS, robot_names

    if robot in QUADROTORS:
        from sim.tasks import flight

        return tuple(flight.TASKS)
    if robot in ROBOTS:
        return ("swingup",)
    raise ValueError(f"unknown robot {robot!r}; expected one of {', '.join(robot_names())}")


def default_task(robot: str) -> str:
    return tasks_of(robot)[0]


def _task_class(robot: str, task: str) -> type[Task]:
    if task not in tasks_of(robot):
        raise ValueError(f"{robot} has no task {task!r}; its tasks: {', '.join(tasks_of(robot))}")
    if task == "swingup":
        from sim.tasks.swingup import SwingUp

        return SwingUp
    from sim.tasks.flight import Flight

    return Flight


def task_options(robot: str, task: str) -> tuple[str, ...]:
    """The options `make_task` takes for `task` on `robot`."""
    return tuple(inspect.signature(_task_class(robot, task)).parameters)[2:]


def task_conditions(robot: str, task: str) -> tuple[str, ...]:
    """The options of `task` on `robot` that a policy's deployment must share with its training
    (`Task.conditions`)."""
    return _task_class(robot, task).conditions


def conditions_of(robot: str, task: str | None, env: dict[str, Any]) -> dict[str, Any]:
    """A policy's conditions: the `task_conditions` among the env options it was trained with
    (`task` None: the robot's default task)."""
    shared = task_conditions(robot, task or default_task(robot))
    return {k: v for k, v in env.items() if k in shared}


def make_task(robot: str, task: str, params: Any, **options: Any) -> Task:
    """Task `task` on `robot` with its nominal parameter set `params` (loaded) and the task's own
    options (`task_options`: `sim.tasks.swingup.SwingUp`'s, `sim.tasks.flight.Flight`'s)."""
    cls = _task_class(robot, task)
    unknown = sorted(set(options) - set(task_options(robot, task)))
    if unknown:
        raise ValueError(
            f"the {task} task has no option {', '.join(unknown)}; its options: {', '.join(task_options(robot, task))}"
        )
    if task == "swingup":
        from sim.robots import get_robot

        return cls(get_robot(robot), params, **options)
    return cls(task, params, **options)
