"""Gymnasium environment: the quadrotor + a flight task + imperfections."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim.config import control_substeps
from sim.flight import PHYSICS_DT, FlightImperfections, FlightRandomization, QuadrotorPlant
from sim.robots import quadrotor
from sim.robots.quadrotor import ROTORS, QuadrotorParams
from sim.tasks import flight


class QuadrotorEnv(gym.Env):
    """Fly a Crazyflie-class quadrotor along a task's reference (`sim.tasks.flight`).

    With `randomization` (a file, or `crazyflie`) each episode draws its vehicle
    (`sim.flight.FlightRandomization`) at `randomization_intensity`; the policy's
    hover action stays the nominal vehicle's. Observation: `sim.tasks.flight.observation` of the measured state, the
    reference and the last `action_history` actions. Action (4,) in [-1, 1] at
    `action_level`: `rotors` (rotor speeds) or `rates` (collective thrust and
    body rates). Reward: `sim.tasks.flight.reward` on the true state, with the
    weights of `reward_weights` at `curriculum_steps` (set it as training goes).
    An episode ends beyond 0.6 m from the reference or on the floor; at its end
    `info["metrics"]` holds the task's metrics on the true trajectory and
    `info["success"]`.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        task: str = "hover",
        params: str | Path | QuadrotorParams = "l2f",
        control_rate_hz: float = 100.0,
        imperfections: bool | Mapping[str, Any] | FlightImperfections = False,
        randomization: str | Path | None = None,
        randomization_intensity: float = 1.0,
        action_level: str = "rotors",
        action_history: int = 32,
        init_spread: float = 1.0,
    ):
        if action_level not in flight.ACTION_LEVELS:
            levels = ", ".join(flight.ACTION_LEVELS)
            raise ValueError(f"unknown action level {action_level!r}; expected one of {levels}")
        if not 0 <= action_history <= 64:
            raise ValueError(f"action_history must be in [0, 64], got {action_history}")
        substeps = control_substeps(control_rate_hz, PHYSICS_DT)
        if not 0.0 <= init_spread <= 1.0:
            raise ValueError(f"init_spread must be in [0, 1], got {init_spread}")
        self.task = flight.get_task(task)
        self.params = params if isinstance(params, QuadrotorParams) else quadrotor.load_params(params)
        self.imperfections = FlightImperfections.resolve(imperfections)
        self.randomization = FlightRandomization.load(randomization) if randomization is not None else None
        if not 0.0 <= randomization_intensity <= 1.0:
            raise ValueError(f"randomization_intensity must be in [0, 1], got {randomization_intensity}")
        self.randomization_intensity = float(randomization_intensity)
        self.control_rate_hz, self.substeps = float(control_rate_hz), substeps
        self.action_level, self.action_history, self.init_spread = action_level, action_history, init_spread
        self.reward_weights, self.curriculum_steps = flight.RewardWeights(), 0

        self.plant = QuadrotorPlant(self.params, self.imperfections)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ROTORS,), np.float32)
        high = np.concatenate(
            [
                np.full(3, flight.POSITION_CLIP),
                np.ones(9),
                np.full(3, flight.VELOCITY_CLIP),
                np.full(3, flight.RATE_CLIP),
                np.ones(ROTORS * action_history),
            ]
        ).astype(np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self._hover = flight.hover_action(action_level, self.params)
        self._past = np.tile(self._hover, (action_history, 1))
        self._max_steps = round(self.task.duration_s * self.control_rate_hz)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        info: dict[str, Any] = {}
        if self.randomization is not None:
            params, info["randomization"] = self.randomization.sample(
                self.np_random, self.params, self.randomization_intensity
            )
            self.plant.configure(params, self.imperfections)
        hover = self.plant.hover_state(flight.START)
        self.plant.reset(self.task.initial_state(hover, self.np_random, self.init_spread), self.np_random)
        self._past[:] = self._hover
        self._steps = 0
        self._times, self._positions = [0.0], [self.plant.state()[:3]]
        self._measured = self.plant.measure(self.np_random)
        return self._observation(), info

    def _observation(self) -> np.ndarray:
        return flight.observation(self._measured, self.task.reference(self.plant.time), self._past)

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=float).reshape(self.action_space.shape)
        if not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf: {action.tolist()}")
        action = action.clip(-1.0, 1.0)
        command = flight.rotor_command(self.action_level, action, self._measured, self.params)
        self.plant.step(command, self.substeps)
        self._steps += 1
        if self.action_history:
            self._past[:-1] = self._past[1:]
            self._past[-1] = action
        self._measured = self.plant.measure(self.np_random)
        x = self.plant.state()
        self._times.append(self.plant.time)
        self._positions.append(x[:3].copy())

        reference = self.task.reference(self.plant.time)
        weights = self.reward_weights.at(self.curriculum_steps)
        reward = flight.reward(x, reference, action, self._hover, weights)
        failure = flight.failure(x, reference)
        terminated = failure is not None
        truncated = not terminated and self._steps >= self._max_steps
        info: dict[str, Any] = {"time": self.plant.time}
        if terminated:
            info["failure"] = failure
        if terminated or truncated:
            info["metrics"] = flight.metrics(self.task, np.array(self._times), np.array(self._positions), failure)
            info["success"] = bool(info["metrics"]["success"])
        return self._observation(), reward, terminated, truncated, info
