"""`BatchedEpisodes`: N self-resetting episodes of one task on a batched plant, as the MuJoCo env runs one.

What every robot's batch shares: the per-episode draws in `sim.env.RobotEnv.reset`'s order,
the action history and the task's memory, truncation, and the auto-reset that returns the
ended episodes' final observations. A robot's batch (`sim.batched.pendulum.BatchedSwingUp`,
`sim.batched.quadrotor.BatchedFlight`) gives its plant, start states, commands and outcome.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import numpy as np


class BatchedEpisodes(abc.ABC):
    """`n_envs` episodes of `robot` with the MuJoCo env's options (`sim.env.RobotEnv`'s: task,
    params, control_rate_hz, imperfections, randomization, randomization_intensity, ideal_episodes
    and the task's own), its start distribution, observation, reward and termination. An episode
    that ends starts again at once: `step` returns the new episode's observation and the ended
    one's in its final observations. Random draws come from one generator seeded by `seed`."""

    def __init__(self, robot: str, n_envs: int, seed: int, **env_options: Any):
        from sim.env import RobotEnv

        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        # The MuJoCo env validates the options and builds the task, parameter set and randomiser.
        self.env = env = RobotEnv(robot, **env_options)
        self.task, self.params, self.substeps = env.task, env.params, env.substeps
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.N = n_envs
        self.rng = np.random.default_rng(seed)
        self.plant = self._plant()
        self.plant.configure(np.arange(n_envs), [self.params] * n_envs, [env.imperfections] * n_envs)
        self.ideal = np.zeros(n_envs, dtype=bool)
        self.steps = np.zeros(n_envs, dtype=int)
        self.past = np.zeros((n_envs, self.task.action_history, self.task.action_size))
        self.memory = np.zeros((n_envs, self.task.memory_size))
        duration = self.task.duration_s
        self.max_steps = round(duration * env.control_rate_hz) if math.isfinite(duration) else math.inf
        self.measured = np.zeros((n_envs, len(env.plant.measure())))

    # What a robot's batch gives ---------------------------------------------------------------

    @abc.abstractmethod
    def _plant(self) -> Any:
        """The batched plant of `N` copies (configure, reset, step, measure, x)."""

    @abc.abstractmethod
    def _initial_state(self, params: Any, rng: np.random.Generator) -> np.ndarray:
        """One copy's start state, drawn from the task's distribution for parameter set `params`."""

    @abc.abstractmethod
    def _reset_plant(self, idx: np.ndarray, starts: np.ndarray) -> None:
        """Start copies `idx` at `starts` (len(idx), X)."""

    @abc.abstractmethod
    def _command(self, actions: np.ndarray) -> np.ndarray:
        """The plant's commands (N, C) of actions (N, m)."""

    @abc.abstractmethod
    def _outcome(self, actions: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rewards (N,) and terminated (N,) of the step just taken (the true state is `plant.x`)."""

    @abc.abstractmethod
    def _time(self) -> np.ndarray | float:
        """Each episode's time, s, as its observation takes it."""

    # The episodes -------------------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        """Start every episode again: observations (N, O)."""
        self._start(np.arange(self.N))
        return self.task.observe(self.measured, self.past, self._time(), self.memory)

    def _start(self, idx: np.ndarray) -> None:
        env, rng = self.env, self.rng
        params, imperfections, starts = [], [], []
        for i in idx.tolist():
            p, imp = env.params, env.imperfections
            # Drawn only when asked for, in the MuJoCo env's order.
            self.ideal[i] = bool(env.ideal_episodes) and rng.uniform() < env.ideal_episodes
            if self.ideal[i]:
                p, imp = p.ideal(), env.no_imperfections
            if env.randomization is not None:
                p, imp, _ = env.randomization.sample(rng, p, imp, env.randomization_intensity)
            params.append(p)
            imperfections.append(imp)
            starts.append(self._initial_state(p, rng))
        self.plant.configure(idx, params, imperfections)
        self._reset_plant(idx, np.array(starts))
        self.steps[idx] = 0
        self.past[idx] = self.task.initial_action()
        self.memory[idx] = 0.0
        self.measured[idx] = self.plant.measure()[idx]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Actions (N, m) in [-1, 1] -> observations (N, O), rewards (N,), terminated (N,),
        truncated (N,) and the final observations (N, O) of the episodes that ended (rows where
        terminated or truncated; the others repeat the observation)."""
        task = self.task
        actions = np.asarray(actions, dtype=float).reshape(self.N, task.action_size)
        if not np.isfinite(actions).all():
            raise ValueError("actions contain NaN or inf")
        actions = actions.clip(-1.0, 1.0)
        previous = self.past[:, -1].copy() if task.action_history else actions
        self.plant.step(self._command(actions), self.substeps, self.rng)
        self.steps += 1
        if task.action_history:
            self.past[:, :-1] = self.past[:, 1:]
            self.past[:, -1] = actions
        self.measured = self.plant.measure()

        rewards, terminated = self._outcome(actions, previous)
        rewards = rewards - task.failure_penalty * terminated
        truncated = ~terminated & (self.steps >= self.max_steps)
        observations = task.observe(self.measured, self.past, self._time(), self.memory)
        final = observations.copy()
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            self._start(done)
            memory = self.memory[done]  # a copy, which observe advances
            time = np.broadcast_to(self._time(), (self.N,))[done]
            observations[done] = task.observe(self.measured[done], self.past[done], time, memory)
            self.memory[done] = memory
        return observations, rewards, terminated, truncated, final
