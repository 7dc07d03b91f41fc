"""Many copies of a pendulum robot stepped together in numpy, for training.

`BatchedPendulum` integrates the equations MuJoCo integrates for the pendulum
MJCF (`sim.dynamics.pendulum` with the rotor inertia as MuJoCo's diagonal
armature, RK4 at 0.002 s), with the imperfections of `sim.plant.Plant` per
copy: the commanded torque's lag and noise through the motor (scaled by km),
pushes and Coulomb friction held over each physics step as generalised
forces, viscous friction within it, and measurements delayed and with
velocity noise. Each copy has its own parameter set and imperfections (a
randomised episode's). `BatchedSwingUp` runs the swing-up on it; evaluation
stays on the MuJoCo env.
"""

from __future__ import annotations

import math

import numpy as np

from sim.batched.episodes import BatchedEpisodes
from sim.imperfections import Imperfections
from sim.plant import PHYSICS_DT, pulse_times
from sim.robots import Robot
from sim.robots.params import PendulumParams
from sim.tasks.swingup import outside, reward, tip_height


class BatchedPendulum:
    """`n_envs` copies of `robot`. States x (N, 2n) = [q, dq] rad, rad/s; torques (N, n) N m."""

    MAX_DELAY_STEPS = 64
    """Longest measurement delay a copy may have, physics steps (0.128 s)."""

    def __init__(self, robot: Robot, n_envs: int, params: PendulumParams):
        self.robot, self.N, self.n = robot, n_envs, params.n
        N, n = n_envs, self.n
        self.actuated = np.array(robot.actuated, dtype=float)
        # Per copy: the parameter set and the imperfections (`configure`).
        self.m, self.l, self.r, self.I = (np.zeros((N, n)) for _ in range(4))
        self.b, self.cf = np.zeros((N, n)), np.zeros((N, n))
        self.Ir, self.gr, self.g, self.km = (np.zeros(N) for _ in range(4))
        self.velocity_noise, self.torque_noise = np.zeros(N), np.zeros(N)
        self.k, self.delay = np.ones(N), np.zeros(N, dtype=int)
        self.pulse_t, self.pulse_w, self.pulse_a = np.zeros((N, 0)), np.ones((N, 0)), np.zeros((N, 0))
        self.pulse_joint = np.zeros((N, 0), dtype=int)
        # Per copy: state, lag filters, the delay line, time.
        self.x = np.zeros((N, 2 * n))
        self.lagged, self.noise = np.zeros((N, n)), np.zeros((N, n))
        self.history = np.zeros((self.MAX_DELAY_STEPS + 1, N, 2 * n))
        self.steps = np.zeros(N, dtype=int)
        self._velocity_draw = np.zeros((N, n))
        self.imperfections = [Imperfections()] * N
        self.configure(np.arange(N), [params] * N, self.imperfections)

    def configure(self, idx: np.ndarray, params: list[PendulumParams], imperfections: list[Imperfections]) -> None:
        """Copies `idx` use these parameter sets and imperfections (one each) from their next reset."""
        for i, p, imp in zip(idx, params, imperfections, strict=True):
            self.m[i], self.l[i], self.r[i], self.I[i] = p.m, p.l, p.r, p.I
            self.b[i] = np.asarray(p.b) + imp.extra_viscous
            self.cf[i] = np.asarray(p.cf) + imp.extra_coulomb
            self.Ir[i], self.gr[i], self.g[i], self.km[i] = p.Ir, p.gr, p.g, p.km
            self.velocity_noise[i], self.torque_noise[i] = imp.velocity_noise_std, imp.torque_noise_std
            self.k[i] = imp.torque_response
            delay = int(round(imp.delay_s / PHYSICS_DT))
            if delay > self.MAX_DELAY_STEPS:
                raise ValueError(f"delay {imp.delay_s} s beyond the batched plant's {self.MAX_DELAY_STEPS} steps")
            self.delay[i] = delay
            self.imperfections[i] = imp

    def reset(self, idx: np.ndarray, x0: np.ndarray, rng: np.random.Generator, horizon_s: float) -> None:
        """Start copies `idx` from states x0 (len(idx), 2n) at t = 0, drawing their pushes over
        [0, horizon_s] as `sim.plant.Plant` does."""
        n = self.n
        self.x[idx] = x0
        self.history[:, idx] = x0
        self.lagged[idx], self.noise[idx] = 0.0, 0.0
        self.steps[idx] = 0
        for i in idx.tolist():
            imp = self.imperfections[i]
            count = imp.pulses_per_joint * n
            if count > self.pulse_t.shape[1]:
                self._widen_pulses(count)
            self.pulse_a[i] = 0.0
            if count:
                centres = pulse_times(0.0, horizon_s, count, rng).reshape(imp.pulses_per_joint, n)
                widths = rng.uniform(*imp.pulse_width_s, (imp.pulses_per_joint, n))
                signs = rng.choice([-1.0, 1.0], (imp.pulses_per_joint, n))
                amplitudes = rng.uniform(*imp.pulse_amplitude, (imp.pulses_per_joint, n)) * signs
                self.pulse_t[i, :count], self.pulse_w[i, :count] = centres.ravel(), widths.ravel()
                self.pulse_a[i, :count] = amplitudes.ravel()
                self.pulse_joint[i, :count] = np.tile(np.arange(n), imp.pulses_per_joint)
        self._velocity_draw[idx] = rng.normal(0.0, 1.0, (len(idx), n)) * self.velocity_noise[idx, None]

    def _widen_pulses(self, count: int) -> None:
        extra = count - self.pulse_t.shape[1]
        self.pulse_t = np.pad(self.pulse_t, ((0, 0), (0, extra)))
        self.pulse_w = np.pad(self.pulse_w, ((0, 0), (0, extra)), constant_values=1.0)
        self.pulse_a = np.pad(self.pulse_a, ((0, 0), (0, extra)))
        self.pulse_joint = np.pad(self.pulse_joint, ((0, 0), (0, extra)))

    def step(self, tau_cmd: np.ndarray, substeps: int, rng: np.random.Generator) -> None:
        """Hold the commanded joint torques (N, n) N m on every copy for `substeps` physics steps."""
        n, N = self.n, self.N
        decay = (1.0 - self.k)[:, None]
        gain = self.k[:, None]
        noisy = bool(self.torque_noise.any())
        pushes = bool(self.pulse_a.any())
        for _ in range(substeps):
            # The torque lag per physics step, tau = tau_prev + k (tau_des - tau_prev), and its noise.
            self.lagged = tau_cmd + decay * (self.lagged - tau_cmd)
            if noisy:
                raw = rng.normal(0.0, 1.0, (N, n)) * self.torque_noise[:, None] * self.actuated
                self.noise = self.noise + gain * (raw - self.noise)
            held = self.km[:, None] * (self.lagged + self.noise)
            if pushes:
                held = held + self._pushes(self.steps * PHYSICS_DT)
            dq0 = self.x[:, n:]
            held = held - self.cf * np.arctan(100.0 * dq0)
            self.x = self._rk4(self.x, held)
            self.steps += 1
            self.history[self.steps % len(self.history), np.arange(N)] = self.x
        self._velocity_draw = rng.normal(0.0, 1.0, (N, n)) * self.velocity_noise[:, None]

    def _pushes(self, t: np.ndarray) -> np.ndarray:
        """Generalised forces of the pushes at times t (N,) s: (N, n) N m."""
        span = (t[:, None] - self.pulse_t) / self.pulse_w
        # Beyond 5 sigma a pulse is below 4e-6 of its peak: the plant leaves it out, so does this.
        value = np.where(np.abs(span) < 5.0, self.pulse_a * np.exp(-0.5 * span**2), 0.0)
        out = np.zeros((self.N, self.n))
        for joint in range(self.n):
            out[:, joint] = np.sum(np.where(self.pulse_joint == joint, value, 0.0), axis=1)
        return out

    def _derivative(self, x: np.ndarray, held: np.ndarray) -> np.ndarray:
        n = self.n
        q, dq = x[:, :n], x[:, n:]
        force = held - self.b * dq
        rotor = self.gr**2 * self.Ir
        if n == 1:
            gravity = self.m[:, 0] * self.g * self.r[:, 0] * np.sin(q[:, 0])
            ddq = (force[:, 0] - gravity) / (self.I[:, 0] + rotor)
            return np.stack([dq[:, 0], ddq], axis=1)
        m2, l1, r2 = self.m[:, 1], self.l[:, 0], self.r[:, 1]
        c2, s2 = np.cos(q[:, 1]), np.sin(q[:, 1])
        h = m2 * l1 * r2
        # MuJoCo's mass matrix: the rotor inertia as diagonal armature, without its cross term.
        m00 = self.I[:, 0] + self.I[:, 1] + m2 * l1**2 + 2 * h * c2 + rotor + self.Ir
        m01 = self.I[:, 1] + h * c2
        m11 = self.I[:, 1] + rotor
        hs = h * s2
        s1, s12 = np.sin(q[:, 0]), np.sin(q[:, 0] + q[:, 1])
        g = self.g
        g0 = -self.m[:, 0] * g * self.r[:, 0] * s1 - m2 * g * (l1 * s1 + r2 * s12)
        g1 = -m2 * g * r2 * s12
        f0 = force[:, 0] + 2 * hs * dq[:, 1] * dq[:, 0] + hs * dq[:, 1] ** 2 + g0
        f1 = force[:, 1] - hs * dq[:, 0] ** 2 + g1
        det = m00 * m11 - m01 * m01
        return np.stack([dq[:, 0], dq[:, 1], (m11 * f0 - m01 * f1) / det, (m00 * f1 - m01 * f0) / det], axis=1)

    def _rk4(self, x: np.ndarray, held: np.ndarray) -> np.ndarray:
        dt = PHYSICS_DT
        k1 = self._derivative(x, held)
        k2 = self._derivative(x + 0.5 * dt * k1, held)
        k3 = self._derivative(x + 0.5 * dt * k2, held)
        k4 = self._derivative(x + dt * k3, held)
        return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    def measure(self) -> np.ndarray:
        """Measured states (N, 2n): each copy's delayed state with its velocity noise."""
        rows = (self.steps - np.minimum(self.delay, self.steps)) % len(self.history)
        x = self.history[rows, np.arange(self.N)].copy()
        x[:, self.n :] += self._velocity_draw
        return x

    @property
    def time(self) -> np.ndarray:
        """Simulated time of each copy since its reset, s (N,)."""
        return self.steps * PHYSICS_DT


class BatchedSwingUp(BatchedEpisodes):
    """`n_envs` swing-up episodes of `robot` stepped together on a `BatchedPendulum`
    (`BatchedEpisodes`, with the swing-up's options)."""

    def __init__(self, robot: str = "pendubot", n_envs: int = 64, seed: int = 0, **env_options):
        from sim.robots import ROBOTS

        if robot not in ROBOTS:
            raise ValueError(f"the batched swing-up runs the pendulum family ({', '.join(ROBOTS)}), not {robot!r}")
        super().__init__(robot, n_envs, seed, **env_options)
        self.n = self.task.n
        duration = self.task.duration_s
        self._horizon = duration if math.isfinite(duration) else 60.0

    def _plant(self) -> BatchedPendulum:
        return BatchedPendulum(self.task.robot, self.N, self.params)

    def _initial_state(self, params: PendulumParams, rng: np.random.Generator) -> np.ndarray:
        return self.task.initial_state(None, rng)

    def _reset_plant(self, idx: np.ndarray, starts: np.ndarray) -> None:
        self.plant.reset(idx, starts, self.rng, self._horizon)

    def _command(self, actions: np.ndarray) -> np.ndarray:
        task = self.task
        torques = task.to_command(actions, self.measured, self.params)
        # An ideal episode's friction compensation cancels the friction its ideal model has: none.
        if self.ideal.any() and task.friction_compensation:
            ideal = task.to_command(actions, self.measured, self.params.ideal())
            torques = np.where(self.ideal[:, None], ideal, torques)
        return torques

    def _outcome(self, actions: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, x = self.n, self.plant.x
        q, dq = x[:, :n], x[:, n:]
        rewards = reward(tip_height(self.params.l, q), self.params.reach, dq, actions, previous)
        terminated = outside(q, dq) if self.task.safety_stops else np.zeros(self.N, dtype=bool)
        return rewards, terminated

    def _time(self) -> float:
        return 0.0  # the swing-up's observation does not depend on time
