"""The simulated pendulum plant: MuJoCo physics plus the real robot's imperfections.

The Gymnasium env and the simulated device share this class, so a policy meets
the same plant in training, in evaluation and behind the hardware layer.
It records the true trajectory at the physics rate (the samples the
RealAIGym scores are computed on), which doubles as the measurement delay line.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import scipy.signal

from sim.imperfections import Imperfections
from sim.robots import Robot, apply_params
from sim.robots.params import PendulumParams

PHYSICS_DT = 0.002
"""Physics step, s: the competition's RK4 step."""
_QPOS_QVEL = mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL
PULSE_GAP_S = 1.0
"""Least time between two pulses and between a pulse and either end of the window, s."""


def pulse_times(start: float, end: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """Centres of `count` pulses in [start, end] (s), shuffled: spaced as the competition's
    perturbation profiles are, so every pulse leaves the controller time to recover before
    the next one and before the end. A window too short for PULSE_GAP_S shrinks the gap."""
    gap = min(PULSE_GAP_S, (end - start) / (count + 1))
    slack = (end - start - (count + 1) * gap) / count
    times = start + np.cumsum(gap + slack * rng.uniform(0.0, 1.0, count))
    return rng.permutation(times)


class Plant:
    """A pendulum chain in MuJoCo with imperfections, advanced one control period at a time."""

    def __init__(self, robot: Robot, params: PendulumParams, imperfections: Imperfections | None = None):
        self.robot = robot
        self.model = robot.build_model(params)
        if abs(self.model.opt.timestep - PHYSICS_DT) > 1e-12:
            raise ValueError(f"{robot.xml} has timestep {self.model.opt.timestep} s, expected {PHYSICS_DT} s")
        self.data = mujoco.MjData(self.model)
        # Views into MjData, fetched once: the attribute lookups cost more than the copies.
        self._data_ctrl, self._data_qfrc, self._data_qvel = self.data.ctrl, self.data.qfrc_applied, self.data.qvel
        self.n = params.n
        self._actuated = np.array(robot.actuated, dtype=float)
        self.configure(params, imperfections or Imperfections())
        self.reset(np.zeros(2 * self.n), np.random.default_rng(0), horizon_s=0.0)

    def configure(self, params: PendulumParams, imperfections: Imperfections) -> None:
        """Use this parameter set and these imperfections (e.g. randomised ones) from the next reset on."""
        self.imperfections = imp = imperfections
        apply_params(self.model, params)
        self.model.dof_damping[:] += imp.extra_viscous
        self.params = params
        self._delay_steps = int(round(imp.delay_s / PHYSICS_DT))
        self._coulomb = [cf + imp.extra_coulomb for cf in params.cf]
        self._friction = any(self._coulomb)
        self._decay = np.zeros((0, 1))
        mujoco.mj_setConst(self.model, self.data)

    def reset(self, x0: np.ndarray, rng: np.random.Generator, horizon_s: float) -> None:
        """Start from state x0 = [q, dq] at t = 0, drawing the episode's noise and pushes from `rng`;
        buffers are sized for horizon_s (s) and grow as needed."""
        n = self.n
        self._rng = rng
        self._X = np.zeros((0, 2 * n))
        self._U = np.zeros((0, n))
        self._pulses = np.zeros((0, n))
        self._noise = np.zeros((0, n))
        self._velocity_noise = np.zeros((0, n))
        self._steps = 0
        self._lagged_cmd = np.zeros(n)
        self._grow(int(round(horizon_s / PHYSICS_DT)) + 1)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = x0[:n]
        self.data.qvel[:] = x0[n:]
        mujoco.mj_forward(self.model, self.data)
        self._X[0, :n] = self.data.qpos
        self._X[0, n:] = self.data.qvel

    def _grow(self, steps: int) -> None:
        """Extend the buffers by `steps` physics steps, drawing their pulses and torque noise."""
        imp, n, rng = self.imperfections, self.n, self._rng
        start = len(self._X)
        self._X = np.concatenate([self._X, np.zeros((steps, 2 * n))])
        self._U = np.concatenate([self._U, np.zeros((steps, n))])
        t = (start + np.arange(steps)) * PHYSICS_DT
        pulses = np.zeros((steps, n))
        if imp.pulses_per_joint:
            count = (imp.pulses_per_joint, n)
            centres = pulse_times(t[0], t[-1], imp.pulses_per_joint * n, rng).reshape(count)
            widths = rng.uniform(*imp.pulse_width_s, count)
            amplitudes = rng.uniform(*imp.pulse_amplitude, count) * rng.choice([-1.0, 1.0], count)
            for k, joint in np.ndindex(count):
                # Beyond 5 sigma a pulse is below 4e-6 of its peak: evaluate it only where it acts.
                lo, hi = np.searchsorted(
                    t, [centres[k, joint] - 5 * widths[k, joint], centres[k, joint] + 5 * widths[k, joint]]
                )
                span = (t[lo:hi] - centres[k, joint]) / widths[k, joint]
                pulses[lo:hi, joint] += amplitudes[k, joint] * np.exp(-0.5 * span**2)
        # The torque lag is linear, so lag(cmd + noise) = lag(cmd) + lag(noise):
        # the noise is drawn and lagged here once, the command in step().
        noise = np.zeros((steps, n))
        if imp.torque_noise_std > 0:
            k = imp.torque_response
            raw = rng.normal(0.0, imp.torque_noise_std, (steps, n)) * self._actuated
            last = self._noise[-1] if len(self._noise) else np.zeros(n)
            noise = scipy.signal.lfilter([k], [1.0, k - 1.0], raw, axis=0, zi=(1.0 - k) * last[None, :])[0]
        self._noise = np.concatenate([self._noise, noise])
        self._pulses = np.concatenate([self._pulses, pulses])
        velocity_noise = rng.normal(0.0, imp.velocity_noise_std, (steps, n))
        self._velocity_noise = np.concatenate([self._velocity_noise, velocity_noise])

    @property
    def time(self) -> float:
        """Simulated time since reset, s."""
        return self._steps * PHYSICS_DT

    def state(self) -> np.ndarray:
        """True state [q, dq], (2n,), rad and rad/s."""
        return self._X[self._steps].copy()

    def measure(self) -> np.ndarray:
        """Measured state [q, dq], (2n,): delayed and with velocity noise per the imperfections."""
        x = self._X[max(0, self._steps - self._delay_steps)].copy()
        x[self.n :] += self._velocity_noise[self._steps]
        return x

    def step(self, tau_cmd: np.ndarray, substeps: int) -> None:
        """Hold the commanded joint torques (n,), N m, for `substeps` physics steps."""
        model, data = self.model, self.data
        j = self._steps
        if j + substeps >= len(self._X):
            self._grow(max(len(self._X), substeps + 1))
        # Torque lag per physics step, in closed form for a held command:
        # c_i = cmd + (1 - k)^i (c_0 - cmd).
        if len(self._decay) != substeps:
            self._decay = (1.0 - self.imperfections.torque_response) ** np.arange(1.0, substeps + 1.0)[:, None]
        lagged = tau_cmd + self._decay * (self._lagged_cmd - tau_cmd)
        self._lagged_cmd = lagged[-1]
        # The motors take the lagged command and its noise (their gear is km); pushes and Coulomb
        # friction are generalised forces. Python floats beat numpy on 1- and 2-element arrays here.
        motor = (lagged + self._noise[j : j + substeps]).tolist()
        pulses = self._pulses[j : j + substeps].tolist()
        ctrl, qfrc, qvel, X = self._data_ctrl, self._data_qfrc, self._data_qvel, self._X
        if self._friction:
            coulomb = self._coulomb
            for command, push in zip(motor, pulses, strict=True):
                ctrl[:] = command
                # Coulomb friction cf atan(100 dq) as the spec models it, held over the step.
                qfrc[:] = [f - c * math.atan(100.0 * v) for f, c, v in zip(push, coulomb, qvel.tolist(), strict=True)]
                mujoco.mj_step(model, data)
                j += 1
                mujoco.mj_getState(model, data, X[j], _QPOS_QVEL)
        else:
            for command, push in zip(motor, pulses, strict=True):
                ctrl[:] = command
                qfrc[:] = push
                mujoco.mj_step(model, data)
                j += 1
                mujoco.mj_getState(model, data, X[j], _QPOS_QVEL)
        self._U[self._steps : j + 1] = tau_cmd
        self._steps = j

    def trajectory(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T (N,), X (N, 2n), U (N, n)) at the physics rate since reset; U is the commanded torque."""
        n = self._steps + 1
        return np.arange(n) * PHYSICS_DT, self._X[:n].copy(), self._U[:n].copy()
