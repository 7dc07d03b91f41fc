"""Gymnasium environment: a robot + a task + randomisation + imperfections, for any robot."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim.config import control_substeps
from sim.robots import QUADROTORS, env_params, get_robot, load_robot_params, robot_spec
from sim.tasks.task import Task, default_task, make_task

MAX_CONTROL_RATE_HZ = 500.0
"""The fastest control rate of the robots' links, Hz."""


def _simulation(robot: str) -> tuple[Any, Any, Any]:
    """`robot`'s plant (a callable of parameter set and imperfections), its imperfections' type and
    its randomisation loader (a callable of a path)."""
    if robot in QUADROTORS:
        from sim.flight import FlightImperfections, FlightRandomization, QuadrotorPlant

        return QuadrotorPlant, FlightImperfections, FlightRandomization.load
    from sim.imperfections import Imperfections
    from sim.plant import Plant
    from sim.randomization import DomainRandomization

    body = get_robot(robot)
    return (
        lambda p, imp: Plant(body, p, imp),
        Imperfections,
        lambda path: DomainRandomization.load(path, body),
    )


class RobotEnv(gym.Env):
    """Robot `robot` doing task `task` (`sim.tasks.task.tasks_of`; None: the robot's first) in MuJoCo.

    Each episode draws its parameter set from `randomization` (a file, or a shipped one by name)
    at `randomization_intensity` on top of the nominal set `params` (None: the robot's
    `sim.robots.env_params`), with the real robot's `imperfections` (True: the defaults,
    a mapping: the defaults with these changed). A fraction `ideal_episodes` runs on the ideal
    parameter set (its `ideal()`) without imperfections (a pendulum's model 1.0 becomes model 1.1, the
    simulation leaderboards' conditions), randomisation still on top. The task's own options
    (`task_options`) are the task's (`sim.tasks.swingup.SwingUp`, `sim.tasks.flight.Flight`).

    Observation, action, reward and termination are the task's; the observation is of what the
    plant measures, reward and termination of its true state. The task's commands use the
    parameter set the robot believes it has (the nominal or ideal set, before randomisation). At
    the end of an episode `info["metrics"]` holds the task's metrics of the true trajectory at the
    physics rate and `info["success"]` whether it succeeded; a failed episode's `info["failure"]`
    says why.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        robot: str = "pendubot",
        task: str | None = None,
        params: str | Path | Any = None,
        control_rate_hz: float = 100.0,
        imperfections: bool | Mapping[str, Any] | Any = False,
        randomization: str | Path | None = None,
        randomization_intensity: float = 1.0,
        ideal_episodes: float = 0.0,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (480, 640),
        **task_options: Any,
    ):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r}: the env renders {self.metadata['render_modes']} or None")
        self.render_mode, self.render_size = render_mode, render_size
        self._renderer = None
        if control_rate_hz > MAX_CONTROL_RATE_HZ:
            raise ValueError(f"control rate {control_rate_hz} Hz exceeds the robot's {MAX_CONTROL_RATE_HZ:g} Hz")
        if not 0.0 <= randomization_intensity <= 1.0:
            raise ValueError(f"randomization_intensity must be in [0, 1], got {randomization_intensity}")
        if not 0.0 <= ideal_episodes <= 1.0:
            raise ValueError(f"ideal_episodes must be a probability in [0, 1], got {ideal_episodes}")
        self.robot = robot
        if params is None or isinstance(params, str | Path):
            params = load_robot_params(robot, params or env_params(robot))
        self.params = params
        self.spec = robot_spec(robot, params)
        self.task: Task = make_task(robot, task or default_task(robot), params, **task_options)
        plant, imperfection_type, load_randomization = _simulation(robot)
        self.imperfections = imperfection_type.resolve(imperfections)
        self.no_imperfections = imperfection_type()
        """An ideal episode's imperfections: none."""
        self.randomization = load_randomization(randomization) if randomization is not None else None
        self.randomization_intensity = float(randomization_intensity)
        self.ideal_episodes = float(ideal_episodes)
        self.plant = plant(params, self.imperfections)
        self.control_rate_hz = float(control_rate_hz)
        self.substeps = control_substeps(control_rate_hz, self.plant.model.opt.timestep)

        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.task.action_size,), np.float32)
        high = self.task.observation_high.astype(np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self._believed = params
        self._past = np.tile(self.task.initial_action(), (self.task.action_history, 1))
        self._memory = np.zeros(self.task.memory_size)
        self._measured = self.plant.measure()
        duration = self.task.duration_s
        self._max_steps = round(duration * self.control_rate_hz) if math.isfinite(duration) else math.inf
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        info: dict[str, Any] = {}
        params, imperfections = self.params, self.imperfections
        # Drawn only when asked for, so that the seeded evaluation episodes stay as they were.
        if self.ideal_episodes and rng.uniform() < self.ideal_episodes:
            params, imperfections = params.ideal(), self.no_imperfections
        self._believed = params
        if self.randomization is not None:
            params, imperfections, drawn = self.randomization.sample(
                rng, params, imperfections, self.randomization_intensity
            )
            info["randomization"] = drawn
        self.plant.configure(params, imperfections)
        x0 = self.task.initial_state(self.plant, rng)
        # An endless episode (a device) starts with a minute of buffers; they grow as needed.
        duration = self.task.duration_s
        self.plant.reset(x0, rng, duration if math.isfinite(duration) else 60.0)
        self._past[:] = self.task.initial_action()
        self._memory[:] = 0.0
        self._steps = 0
        self._measured = self.plant.measure()
        return self.task.observe(self._measured, self._past, 0.0, self._memory), info

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=float).reshape(self.action_space.shape)
        if not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf: {action.tolist()}")
        action = action.clip(-1.0, 1.0)
        task, plant = self.task, self.plant
        previous = self._past[-1] if task.action_history else action
        plant.step(task.to_command(action, self._measured, self._believed), self.substeps)
        self._steps += 1
        if task.action_history:
            self._past[:-1] = self._past[1:]
            self._past[-1] = action
        self._measured = plant.measure()

        x, t = plant.state(), plant.time
        reward = task.reward(x, action, previous, t, plant.params)
        failure = task.failure(x, t)
        terminated = failure is not None
        truncated = not terminated and self._steps >= self._max_steps
        info: dict[str, Any] = {"time": t}
        if terminated:
            reward -= task.failure_penalty
            info["failure"] = failure
        if terminated or truncated:
            info["metrics"] = task.metrics(*plant.trajectory(), plant.params, failure)
            info["success"] = bool(info["metrics"]["success"])
        return task.observe(self._measured, self._past, t, self._memory), reward, terminated, truncated, info

    def set_training_progress(self, steps: int, randomization_intensity: float | None = None) -> None:
        """Training's progress, from the next step on: the env steps trained so far (the task's
        `training_steps`, which a reward curriculum follows) and, if given, the randomisation
        intensity of the next episodes."""
        if randomization_intensity is not None:
            if not 0.0 <= randomization_intensity <= 1.0:
                raise ValueError(f"randomization_intensity must be in [0, 1], got {randomization_intensity}")
            self.randomization_intensity = float(randomization_intensity)
        self.task.training_steps = int(steps)

    def render(self):
        """The robot as the model's first camera sees it now: (height, width, 3) uint8 RGB (rgb_array mode)."""
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            import mujoco

            height, width = self.render_size
            try:
                self._renderer = mujoco.Renderer(self.plant.model, height, width)
            except Exception as exc:  # MuJoCo raises what the OpenGL layer met
                raise RuntimeError(
                    f"offscreen rendering is not available ({type(exc).__name__}: {exc}); install an offscreen "
                    "OpenGL (Debian: libosmesa6, with MUJOCO_GL=osmesa) or use a machine with EGL"
                ) from exc
        self._renderer.update_scene(self.plant.data, camera=0)
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()
