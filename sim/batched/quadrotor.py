"""Many quadrotors stepped together in numpy, for training.

`BatchedQuadrotor` integrates what MuJoCo integrates for the quadrotor MJCF
(one free body, RK4 at 0.002 s with MuJoCo's stages: positions and the
quaternion moved along the stage velocities by the exponential map, from the
step's start) with the plant's rotor model (`sim.robots.quadrotor.RotorModel`:
the lag advanced exactly over a physics step, the step's mean thrust held)
and the imperfections of `sim.flight.QuadrotorPlant` per copy: the motor and
sensor delays, measurement noise drawn once per control step, and the
episode's constant disturbance (force in the world frame, torque in the body
frame at the step's start, held in the world frame over the step, as
`xfrc_applied` holds it). The floor is not modelled: an episode ends 0.6 m
from its reference, well above it. `BatchedFlight` runs the flight task on it.
"""

from __future__ import annotations

import numpy as np

from sim.batched.episodes import BatchedEpisodes
from sim.dynamics.quadrotor import rotation
from sim.flight import LEVER_ARM_M, PHYSICS_DT, FlightImperfections, hover_state
from sim.robots.quadrotor import ROTORS, QuadrotorParams
from sim.tasks.flight import failed, reward


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Quaternion products a b of (..., 4) (w, x, y, z)."""
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def _integrate(q: np.ndarray, w: np.ndarray, h: float) -> np.ndarray:
    """Quaternions (N, 4) turned by body rates w (N, 3) rad/s for h s, as mju_quatIntegrate does."""
    speed = np.linalg.norm(w, axis=-1, keepdims=True)
    half = 0.5 * h * speed
    axis = np.divide(w, speed, out=np.zeros_like(w), where=speed > 0)
    turned = _multiply(q, np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1))
    return turned / np.linalg.norm(turned, axis=-1, keepdims=True)


class BatchedQuadrotor:
    """`n_envs` quadrotors. States x (N, 17) = [p (3) world m, q (4) body to world, v (3) world m/s,
    w (3) body rad/s, u (4) normalised rotor speeds]; commands (N, 4) rotor set-points in [0, 1]."""

    MAX_DELAY_STEPS = 64
    """Longest sensor or motor delay a copy may have, physics steps (0.128 s)."""

    def __init__(self, n_envs: int, params: QuadrotorParams):
        N = self.N = n_envs
        self.mass, self.g, self.km = np.zeros(N), np.zeros(N), np.zeros(N)
        self.inertia, self.curve = np.zeros((N, 3)), np.zeros((N, 3))
        self.positions, self.spin = np.zeros((N, ROTORS, 3)), np.zeros((N, ROTORS))
        self.alpha, self.mean = np.zeros((N, 2)), np.zeros((N, 2))
        self.noise = np.zeros((N, 4))  # position, attitude, velocity, rate std
        self.sensor_delay, self.motor_delay = np.zeros(N, dtype=int), np.zeros(N, dtype=int)
        self.disturbance = np.zeros(N)
        self.force, self.torque = np.zeros((N, 3)), np.zeros((N, 3))
        self.x = np.zeros((N, 17))
        H = self.MAX_DELAY_STEPS + 1
        self.states, self.commands = np.zeros((H, N, 13)), np.zeros((H, N, ROTORS))
        self.steps = np.zeros(N, dtype=int)
        self._measured = np.zeros((N, 13))
        self.configure(np.arange(N), [params] * N, [FlightImperfections()] * N)

    def configure(
        self, idx: np.ndarray, params: list[QuadrotorParams], imperfections: list[FlightImperfections]
    ) -> None:
        """Copies `idx` use these parameter sets and imperfections (one each) from their next reset."""
        for i, p, imp in zip(idx, params, imperfections, strict=True):
            self.mass[i], self.g[i], self.km[i] = p.mass, p.g, p.yaw_torque_constant
            self.inertia[i], self.curve[i] = p.inertia, p.thrust_curve
            self.positions[i], self.spin[i] = p.rotor_positions, p.rotor_spin
            tau = np.array(p.motor_time_constant)
            self.alpha[i] = 1.0 - np.exp(-PHYSICS_DT / tau)
            self.mean[i] = self.alpha[i] * tau / PHYSICS_DT
            self.noise[i] = (imp.position_noise_std, imp.attitude_noise_std, imp.velocity_noise_std, imp.rate_noise_std)
            delays = round(imp.sensor_delay_s / PHYSICS_DT), round(imp.motor_delay_s / PHYSICS_DT)
            if max(delays) > self.MAX_DELAY_STEPS:
                raise ValueError(
                    f"delays of {imp.sensor_delay_s} s and {imp.motor_delay_s} s: the batched plant holds "
                    f"{self.MAX_DELAY_STEPS} steps"
                )
            self.sensor_delay[i], self.motor_delay[i] = delays
            self.disturbance[i] = imp.disturbance_weight_fraction * p.mass * p.g

    def reset(self, idx: np.ndarray, x0: np.ndarray, rng: np.random.Generator) -> None:
        """Start copies `idx` from states x0 (len(idx), 17) at t = 0, drawing each one's disturbance."""
        self.x[idx] = x0
        # Rows not yet written since the reset hold the start: the delay lines' initial contents.
        self.states[:, idx] = x0[:, :13]
        self.commands[:, idx] = x0[:, 13:]
        self.steps[idx] = 0
        sigma = self.disturbance[idx, None]
        self.force[idx] = rng.normal(0.0, 1.0, (len(idx), 3)) * sigma
        self.torque[idx] = rng.normal(0.0, 1.0, (len(idx), 3)) * sigma * LEVER_ARM_M
        self._measured[idx] = self._draw(rng, idx)

    @property
    def time(self) -> np.ndarray:
        """Simulated time of each copy since its reset, s (N,)."""
        return self.steps * PHYSICS_DT

    def step(self, command: np.ndarray, substeps: int, rng: np.random.Generator) -> None:
        """Hold rotor set-points (N, 4) on every copy for `substeps` physics steps."""
        command = np.clip(command, 0.0, 1.0)
        H, rows = len(self.commands), np.arange(self.N)
        for _ in range(substeps):
            self.commands[self.steps % H, rows] = command
            applied = self.commands[(self.steps - self.motor_delay) % H, rows]
            u = self.x[:, 13:]
            rising = applied > u
            gap = u - applied
            mean = applied + gap * np.where(rising, self.mean[:, :1], self.mean[:, 1:])
            self.x[:, 13:] = applied + gap * (1.0 - np.where(rising, self.alpha[:, :1], self.alpha[:, 1:]))
            thrusts = self.curve[:, :1] + self.curve[:, 1:2] * mean + self.curve[:, 2:] * mean * mean
            torque_world = np.einsum("nij,nj->ni", rotation(self.x[:, 3:7]), self.torque)
            self._rk4(thrusts, torque_world)
            self.steps += 1
            self.states[self.steps % H, rows] = self.x[:, :13]
        self._measured = self._draw(rng)

    def _acceleration(self, q: np.ndarray, w: np.ndarray, thrusts: np.ndarray, torque_world: np.ndarray):
        R = rotation(q)
        total = thrusts.sum(axis=1, keepdims=True)
        dv = (R[:, :, 2] * total + self.force) / self.mass[:, None]
        dv[:, 2] -= self.g
        # Each rotor's thrust along body z at its hub, r x (0, 0, f), and the reaction torques.
        torque = np.stack(
            [
                np.sum(self.positions[:, :, 1] * thrusts, axis=1),
                -np.sum(self.positions[:, :, 0] * thrusts, axis=1),
                self.km * np.sum(self.spin * thrusts, axis=1),
            ],
            axis=1,
        )
        torque += np.einsum("nji,nj->ni", R, torque_world) - np.cross(w, self.inertia * w)
        return dv, torque / self.inertia

    def _rk4(self, thrusts: np.ndarray, torque_world: np.ndarray) -> None:
        """One physics step with MuJoCo's RK4 stages (mj_RungeKutta): stage i's quaternion is the
        step's start turned by stage i-1's body rates, its velocities the start's plus stage i-1's
        accelerations, over c_i h."""
        h = PHYSICS_DT
        q0, v0, w0 = self.x[:, 3:7], self.x[:, 7:10], self.x[:, 10:13]
        dv, dw = self._acceleration(q0, w0, thrusts, torque_world)
        vs, ws, dvs, dws = [v0], [w0], [dv], [dw]
        for c in (0.5, 0.5, 1.0):
            q = _integrate(q0, ws[-1], c * h)
            v, w = v0 + c * h * dvs[-1], w0 + c * h * dws[-1]
            dv, dw = self._acceleration(q, w, thrusts, torque_world)
            vs.append(v), ws.append(w), dvs.append(dv), dws.append(dw)

        def mean(k: list[np.ndarray]) -> np.ndarray:
            return (k[0] + 2 * k[1] + 2 * k[2] + k[3]) / 6.0

        self.x[:, :3] += h * mean(vs)
        self.x[:, 3:7] = _integrate(q0, mean(ws), h)
        self.x[:, 7:10] = v0 + h * mean(dvs)
        self.x[:, 10:13] = w0 + h * mean(dws)

    def measure(self) -> np.ndarray:
        """What each vehicle's state estimate reads (N, 13): delayed, with the step's noise."""
        return self._measured.copy()

    def _draw(self, rng: np.random.Generator, idx: np.ndarray | None = None) -> np.ndarray:
        """Measurements (len(idx), 13) of copies `idx` (None: all), with fresh noise."""
        idx = np.arange(self.N) if idx is None else idx
        x = self.states[(self.steps[idx] - self.sensor_delay[idx]) % len(self.states), idx].copy()
        n, std = len(idx), self.noise[idx]
        if std[:, 0].any():
            x[:, :3] += rng.normal(0.0, 1.0, (n, 3)) * std[:, :1]
        if std[:, 1].any():
            turn = np.concatenate([np.ones((n, 1)), 0.5 * rng.normal(0.0, 1.0, (n, 3)) * std[:, 1:2]], axis=1)
            x[:, 3:7] = _multiply(x[:, 3:7], turn / np.linalg.norm(turn, axis=1, keepdims=True))
        if std[:, 2].any():
            x[:, 7:10] += rng.normal(0.0, 1.0, (n, 3)) * std[:, 2:3]
        if std[:, 3].any():
            x[:, 10:13] += rng.normal(0.0, 1.0, (n, 3)) * std[:, 3:4]
        return x


class _Vehicle:
    """What `Flight.initial_state` asks of a plant, for one copy's parameter set."""

    def __init__(self, params: QuadrotorParams):
        self.params = params

    def hover_state(self, position: np.ndarray) -> np.ndarray:
        return hover_state(self.params, position)


class BatchedFlight(BatchedEpisodes):
    """`n_envs` flights of `robot` stepped together on a `BatchedQuadrotor` (`BatchedEpisodes`,
    with the flight task's options)."""

    def __init__(self, robot: str = "crazyflie", n_envs: int = 64, seed: int = 0, **env_options):
        super().__init__(robot, n_envs, seed, **env_options)
        self._hover = self.task.initial_action()

    def _plant(self) -> BatchedQuadrotor:
        return BatchedQuadrotor(self.N, self.params)

    def _initial_state(self, params: QuadrotorParams, rng: np.random.Generator) -> np.ndarray:
        return self.task.initial_state(_Vehicle(params), rng)

    def _reset_plant(self, idx: np.ndarray, starts: np.ndarray) -> None:
        self.plant.reset(idx, starts, self.rng)

    def _command(self, actions: np.ndarray) -> np.ndarray:
        # The rate controller runs on the nominal vehicle, as the MuJoCo env's does.
        return self.task.to_command(actions, self.measured, self.params)

    def _outcome(self, actions: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.plant.x
        reference = self.task.route.reference(self.plant.time)
        return reward(x, reference, actions, self._hover, self.task.reward_weights()), failed(x, reference[0])

    def _time(self) -> np.ndarray:
        return self.plant.time
