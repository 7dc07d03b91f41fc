"""Gymnasium environment: pendulum robot + swing-up task + randomisation + imperfections."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim.config import control_substeps
from sim.imperfections import Imperfections
from sim.plant import PHYSICS_DT, Plant
from sim.randomization import DomainRandomization
from sim.robots import get_robot
from sim.robots.params import PendulumParams
from sim.tasks import realaigym, swingup


def ideal(params: PendulumParams) -> PendulumParams:
    """`params` without friction (viscous and Coulomb) and rotor inertia."""
    zeros = (0.0,) * params.n
    return dataclasses.replace(params, b=zeros, cf=zeros, Ir=0.0)


class SwingUpEnv(gym.Env):
    """Swing a pendulum robot up from hanging and hold it above 0.9 of its reach until t_final.

    Observation: `sim.tasks.swingup.observation` of the measured joint
    positions and velocities and the last `action_history` actions, and with
    `observe_winding` the joints' winding (how far each is from its stops).
    Action: torque of each actuated joint as a fraction of its limit, in [-1, 1].
    Reward: `sim.tasks.swingup.reward`, minus FAILURE_PENALTY when the
    hardware's safety envelope is left (which ends the episode). With
    `safety_stops` off the envelope is not checked: the competitions'
    simulator has no stops, the real robot does.
    A fraction `upright_starts` of the episodes starts near the upright
    equilibrium instead of hanging (for training: the policy meets the
    balancing problem from the first step, not only after a swing-up).
    A fraction `ideal_episodes` runs on the parameter set without friction and
    rotor inertia and without imperfections (model 1.0 becomes model 1.1: the
    simulation leaderboards' conditions), randomisation still on top; for
    training a policy that must hold the top both with and without friction.
    With `friction_compensation` the passive joints' motors cancel the friction
    the episode's parameters (before randomisation) model, as on the real robot
    (`Robot.friction_compensation`); the randomised friction is what they miss.
    At the end of an episode `info` holds the RealAIGym v2 simulation score
    and criteria (`info["score"]`) computed on the true trajectory at the
    physics rate, and `info["success"]`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        robot: str = "pendubot",
        params: str | Path | PendulumParams = "model_1.1",
        control_rate_hz: float = 100.0,
        imperfections: bool | Mapping[str, Any] | Imperfections = False,
        randomization: str | Path | None = None,
        randomization_intensity: float = 1.0,
        action_history: int = 1,
        observe_winding: bool = False,
        friction_compensation: bool = False,
        init_noise: float = 0.0,
        upright_starts: float = 0.0,
        ideal_episodes: float = 0.0,
        safety_stops: bool = True,
        t_final: float = swingup.T_FINAL,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (480, 640),
    ):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r}: the env renders {self.metadata['render_modes']} or None")
        self.render_mode, self.render_size = render_mode, render_size
        self._renderer = None
        self.robot = get_robot(robot)
        self.nominal_params = params if isinstance(params, PendulumParams) else self.robot.load_params(params)
        self.nominal_imperfections = Imperfections.resolve(imperfections)
        substeps = control_substeps(control_rate_hz, PHYSICS_DT)
        if control_rate_hz > 500.0:
            raise ValueError(f"control rate {control_rate_hz} Hz exceeds the robot's 500 Hz")
        self.control_rate_hz = float(control_rate_hz)
        self.substeps = substeps
        self.randomization = (
            DomainRandomization.load(randomization, self.nominal_params.n) if randomization is not None else None
        )
        self.randomization_intensity = float(randomization_intensity)
        if not 0.0 <= self.randomization_intensity <= 1.0:
            raise ValueError(f"randomization_intensity must be in [0, 1], got {randomization_intensity}")
        if action_history < 0:
            raise ValueError(f"action_history must be >= 0, got {action_history}")
        self.action_history = action_history
        self.observe_winding = bool(observe_winding)
        self.friction_compensation = friction_compensation
        self.init_noise = float(init_noise)
        if not 0.0 <= upright_starts <= 1.0:
            raise ValueError(f"upright_starts must be a probability in [0, 1], got {upright_starts}")
        self.upright_starts = float(upright_starts)
        if not 0.0 <= ideal_episodes <= 1.0:
            raise ValueError(f"ideal_episodes must be a probability in [0, 1], got {ideal_episodes}")
        self.ideal_episodes = float(ideal_episodes)
        self.safety_stops = bool(safety_stops)
        self.t_final = float(t_final)

        self.plant = Plant(self.robot, self.nominal_params, self.nominal_imperfections)
        self._believed = self.nominal_params
        self.n = self.nominal_params.n
        self._action_to_torque = self.robot.action_matrix(self.nominal_params)
        m = self._action_to_torque.shape[1]
        self.action_space = gym.spaces.Box(-1.0, 1.0, (m,), np.float32)
        high = np.concatenate(
            [
                np.ones(2 * self.n),
                np.full(self.n, swingup.VELOCITY_CLIP),
                np.ones(m * action_history),
                np.full(self.n if self.observe_winding else 0, swingup.WINDING_CLIP),
            ]
        )
        self.observation_space = gym.spaces.Box(-high.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self._past = np.zeros((action_history, m))
        self._measured = np.zeros(2 * self.n)
        self._max_steps = round(self.t_final * self.control_rate_hz) if math.isfinite(self.t_final) else math.inf
        self._steps = 0

    def render(self):
        """The robot as the "front" camera sees it now: (height, width, 3) uint8 RGB (rgb_array mode)."""
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
        self._renderer.update_scene(self.plant.data, camera="front")
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        info: dict[str, Any] = {}
        params, imperfections = self.nominal_params, self.nominal_imperfections
        # Drawn only when asked for, like the upright starts below.
        if self.ideal_episodes and rng.uniform() < self.ideal_episodes:
            params, imperfections = ideal(params), Imperfections()
        # What the robot believes of itself this episode (its friction compensation's model).
        self._believed = params
        if self.randomization is not None:
            params, imperfections, drawn = self.randomization.sample(
                rng, params, imperfections, self.randomization_intensity
            )
            info["randomization"] = drawn
        self.plant.configure(params, imperfections)
        x0 = rng.uniform(-self.init_noise, self.init_noise, 2 * self.n) if self.init_noise else np.zeros(2 * self.n)
        # Drawn only when asked for, so that the seeded evaluation episodes stay as they were.
        if self.upright_starts and rng.uniform() < self.upright_starts:
            x0 = swingup.upright_start(self.n, rng)
        # An endless episode (a device) starts with a minute of buffers; they grow as needed.
        self.plant.reset(x0, rng, self.t_final if math.isfinite(self.t_final) else 60.0)
        self._past[:] = 0.0
        self._steps = 0
        self._measured = self.plant.measure()
        return self._observation(), info

    def _observation(self) -> np.ndarray:
        return swingup.observation(self._measured[: self.n], self._measured[self.n :], self._past, self.observe_winding)

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=float).reshape(self.action_space.shape)
        if not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf: {action.tolist()}")
        action = action.clip(-1.0, 1.0)
        tau = self._action_to_torque @ action
        if self.friction_compensation:
            tau += self._friction_compensation()
        act = action.tolist()
        previous = self._past[-1].tolist() if self.action_history else act
        self.plant.step(tau, self.substeps, self.np_random)
        self._steps += 1
        if self.action_history:
            self._past[:-1] = self._past[1:]
            self._past[-1] = action
        self._measured = self.plant.measure()

        x = self.plant.state().tolist()
        q, dq = x[: self.n], x[self.n :]
        params = self.plant.params
        height = swingup.tip_height(params.l, q)
        reward = swingup.reward(height, params.reach, dq, act, previous)
        failure = swingup.outside_envelope(q, dq) if self.safety_stops else None
        terminated = failure is not None
        truncated = not terminated and self._steps >= self._max_steps
        info: dict[str, Any] = {"time": self.plant.time}
        if terminated:
            reward -= swingup.FAILURE_PENALTY
            info["failure"] = failure
        if terminated or truncated:
            traj = realaigym.Trajectory(*self.plant.trajectory())
            info["score"] = realaigym.score(traj, "v2", "sim", lengths=params.l)
            info["success"] = bool(info["score"]["success"])
        return self._observation(), reward, terminated, truncated, info

    def _friction_compensation(self) -> np.ndarray:
        """What the hardware does: the passive joints' motors cancel the friction they measure,
        as modelled by the episode's parameters before randomisation (none in an ideal episode). (n,) N m."""
        return self.robot.friction_compensation(self._believed, self._measured[self.n :])
