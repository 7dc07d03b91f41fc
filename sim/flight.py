"""The simulated quadrotor plant: MuJoCo physics, the rotor model, and a real vehicle's imperfections.

State, as `sim.dynamics.quadrotor` has it: x (17,) = [position (3) world m,
quaternion (4) body to world (w, x, y, z), velocity (3) world m/s, body rates
(3) rad/s, normalised rotor speeds (4)]. A measurement is the first 13 of
them, delayed and with noise; commands are normalised rotor-speed set-points
in [0, 1], applied after the motor delay.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from sim.config import ConfigError, as_float, check_keys, load_yaml
from sim.randomization import Distribution, parse
from sim.robots import quadrotor
from sim.robots.quadrotor import MAX_ROTOR_THRUST, QuadrotorParams

PHYSICS_DT = 0.002
"""Physics step, s (RK4)."""
LEVER_ARM_M = 0.01
"""The random disturbance torque's sigma is the random force's at this lever arm, m."""
THRUST_TO_WEIGHT = (1.5, 5.0)
"""A randomised vehicle's thrust-to-weight stays within this range (Learning to Fly's)."""
RANDOMIZED = ("mass", "inertia", "thrust", "motor_time_constant", "yaw_torque_constant")
"""What a quadrotor randomisation file may name; each scales the parameter set's value (inertia:
all three moments, thrust: the whole thrust curve, motor_time_constant: rising and falling)."""
_RANDOMIZATION_DIR = Path(__file__).parent / "randomization"


@dataclasses.dataclass(frozen=True)
class FlightImperfections:
    """What a real quadrotor does to a controller; the zero value of each field means "off"."""

    position_noise_std: float = 0.0
    """Gaussian noise on measured position, m."""
    attitude_noise_std: float = 0.0
    """Gaussian noise on the measured orientation, rad (a small random rotation)."""
    velocity_noise_std: float = 0.0
    """Gaussian noise on measured velocity, m/s."""
    rate_noise_std: float = 0.0
    """Gaussian noise on measured body rates, rad/s."""
    sensor_delay_s: float = 0.0
    """Delay of measurements, s (rounded to the physics step)."""
    motor_delay_s: float = 0.0
    """Delay of rotor commands before the motors see them, s (rounded to the physics step)."""
    disturbance_weight_fraction: float = 0.0
    """Sigma of a constant random force per episode (world frame), as a fraction of the weight;
    the torque's sigma is that force at LEVER_ARM_M."""

    @classmethod
    def defaults(cls) -> FlightImperfections:
        """Learning to Fly's: noise of 1 mm, 0.001 rad, 2 mm/s and 0.002 rad/s, a random force of
        sigma m g / 20 and torque per episode, and one physics step of sensor and motor delay."""
        return cls(0.001, 0.001, 0.002, 0.002, PHYSICS_DT, PHYSICS_DT, 0.05)

    @classmethod
    def resolve(cls, value: bool | Mapping[str, Any] | FlightImperfections) -> FlightImperfections:
        """True: the defaults; False: none; a mapping: the defaults with these fields changed."""
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            return cls.defaults() if value else cls()
        check_keys(value, [f.name for f in dataclasses.fields(cls)], "imperfections")
        changes = {k: as_float(v, "imperfections", k, low=0.0, high=1.0) for k, v in value.items()}
        return dataclasses.replace(cls.defaults(), **changes)


def hover_state(params: QuadrotorParams, position: np.ndarray) -> np.ndarray:
    """The vehicle at rest and level at `position` (3,) m, its rotors at hover speed: x (17,)."""
    x = np.zeros(17)
    x[:3], x[3], x[13:] = position, 1.0, params.hover_speed
    return x


def _small_rotation(rng: np.random.Generator, std: float) -> np.ndarray:
    """A unit quaternion of a random rotation by angles of `std` rad about each axis (first order)."""
    if std == 0.0:
        return np.array([1.0, 0.0, 0.0, 0.0])
    q = np.concatenate([[1.0], 0.5 * rng.normal(0.0, std, 3)])
    return q / np.linalg.norm(q)


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


class QuadrotorPlant:
    """The quadrotor in MuJoCo with imperfections, advanced one control period at a time."""

    def __init__(self, params: QuadrotorParams, imperfections: FlightImperfections | None = None):
        self.model = quadrotor.build_model(params)
        if abs(self.model.opt.timestep - PHYSICS_DT) > 1e-12:
            raise ValueError(f"{quadrotor.XML} has timestep {self.model.opt.timestep} s, expected {PHYSICS_DT} s")
        self.data = mujoco.MjData(self.model)
        self.configure(params, imperfections or FlightImperfections())
        self.reset(self.hover_state(np.zeros(3)), np.random.default_rng(0), horizon_s=0.0)

    def hover_state(self, position: np.ndarray) -> np.ndarray:
        """At rest and level at `position` (3,) m, the rotors at hover speed: x (17,)."""
        return hover_state(self.params, position)

    def configure(self, params: QuadrotorParams, imperfections: FlightImperfections) -> None:
        """Use this parameter set and these imperfections (e.g. randomised ones) from the next reset on."""
        quadrotor.apply_params(self.model, params)
        mujoco.mj_setConst(self.model, self.data)
        self.params, self.imperfections = params, imperfections
        self._sensor_delay = round(imperfections.sensor_delay_s / PHYSICS_DT)
        self._motor_delay = round(imperfections.motor_delay_s / PHYSICS_DT)

    def reset(self, x0: np.ndarray, rng: np.random.Generator, horizon_s: float) -> None:
        """Start at state x0 (17,) at t = 0, drawing the episode's disturbance and its measurement noise
        from `rng`; the trajectory's buffers are sized for horizon_s (s) and grow as needed."""
        self._rng = rng
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:7], self.data.qvel[:6] = x0[:7], x0[7:13]
        mujoco.mj_forward(self.model, self.data)
        self.rotors = quadrotor.RotorModel(self.params, PHYSICS_DT, x0[13:])
        sigma = self.imperfections.disturbance_weight_fraction * self.params.mass * self.params.g
        self.force = rng.normal(0.0, sigma, 3) if sigma else np.zeros(3)
        self.torque = rng.normal(0.0, sigma * LEVER_ARM_M, 3) if sigma else np.zeros(3)
        self._commands = deque([x0[13:].copy()] * self._motor_delay, maxlen=self._motor_delay + 1)
        self._states = deque([self.state()[:13]] * (self._sensor_delay + 1), maxlen=self._sensor_delay + 1)
        self._steps = 0
        self._X = np.zeros((int(round(horizon_s / PHYSICS_DT)) + 1, 17))
        self._U = np.zeros((len(self._X), 4))
        self._X[0] = self.state()
        self._measured = self._draw_measurement()

    @property
    def time(self) -> float:
        """Simulated time since reset, s."""
        return self._steps * PHYSICS_DT

    def state(self) -> np.ndarray:
        """The true state x (17,)."""
        return np.concatenate([self.data.qpos[:7], self.data.qvel[:6], self.rotors.u])

    def step(self, command: np.ndarray, substeps: int) -> None:
        """Hold rotor set-points `command` (4,) in [0, 1] for `substeps` physics steps."""
        command = np.clip(np.asarray(command, dtype=float), 0.0, 1.0)
        if self._steps + substeps >= len(self._X):
            grow = max(len(self._X), substeps + 1)
            self._X, self._U = (
                np.concatenate([self._X, np.zeros((grow, 17))]),
                np.concatenate([self._U, np.zeros((grow, 4))]),
            )
        rotation = np.zeros(9)
        for _ in range(substeps):
            self._commands.append(command)
            self.data.ctrl[:] = self.rotors.step(self._commands[0])
            # The disturbance: force in the world frame, torque in the body frame, at the centre of mass.
            mujoco.mju_quat2Mat(rotation, self.data.qpos[3:7])
            self.data.xfrc_applied[1, :3] = self.force
            self.data.xfrc_applied[1, 3:] = rotation.reshape(3, 3) @ self.torque
            mujoco.mj_step(self.model, self.data)
            self._U[self._steps] = command
            self._steps += 1
            self._X[self._steps] = x = self.state()
            self._states.append(x[:13])
        self._U[self._steps] = command  # U[k] acts from T[k] on, as the pendulum plant records it
        # One noise draw per step, not per read: a reading read twice is the same reading.
        self._measured = self._draw_measurement()

    def trajectory(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T (N,), X (N, 17), U (N, 4)) at the physics rate since reset; U is the rotor set-point."""
        n = self._steps + 1
        return np.arange(n) * PHYSICS_DT, self._X[:n].copy(), self._U[:n].copy()

    def measure(self) -> np.ndarray:
        """What the vehicle's state estimate reads (13,): the state's first 13 entries, delayed, with
        noise drawn once per `step`."""
        return self._measured.copy()

    def _draw_measurement(self) -> np.ndarray:
        x = self._states[0].copy()
        imp, rng = self.imperfections, self._rng
        if imp.position_noise_std:
            x[:3] += rng.normal(0.0, imp.position_noise_std, 3)
        if imp.attitude_noise_std:
            x[3:7] = _multiply(x[3:7], _small_rotation(rng, imp.attitude_noise_std))
        if imp.velocity_noise_std:
            x[7:10] += rng.normal(0.0, imp.velocity_noise_std, 3)
        if imp.rate_noise_std:
            x[10:13] += rng.normal(0.0, imp.rate_noise_std, 3)
        return x


@dataclasses.dataclass(frozen=True)
class FlightRandomization:
    """A validated quadrotor randomisation file (the format of `sim.randomization`, scale entries)."""

    parameters: dict[str, Distribution]

    @classmethod
    def load(cls, path: str | Path) -> FlightRandomization:
        """Read and validate a file; the shipped one by name (`crazyflie`)."""
        path = Path(path)
        if path.suffix not in (".yaml", ".yml"):
            path = _RANDOMIZATION_DIR / f"{path}.yaml"
        parameters = parse(load_yaml(path), list(RANDOMIZED), path)
        for name, d in parameters.items():
            if d.kind != "scale":
                raise ConfigError(path, f"parameters.{name}", "the quadrotor's parameters take scale ranges only")
        return cls(parameters)

    def sample(
        self, rng: np.random.Generator, params: QuadrotorParams, imperfections: FlightImperfections, intensity: float
    ) -> tuple[QuadrotorParams, FlightImperfections, dict[str, float]]:
        """One episode's parameter set and imperfections (these as given), and the drawn multipliers
        by name. The thrust curve is then scaled, if it must, to keep thrust-to-weight within
        THRUST_TO_WEIGHT and the rotors within MAX_ROTOR_THRUST."""
        if not 0.0 <= intensity <= 1.0:
            raise ValueError(f"randomisation intensity must be in [0, 1], got {intensity}")
        drawn = {name: d.sample(rng, intensity) for name, d in self.parameters.items()}
        scale = {name: drawn.get(name, 1.0) for name in RANDOMIZED}
        mass = params.mass * scale["mass"]
        weight = mass * params.g
        thrust = scale["thrust"]
        full = 4 * params.max_thrust * thrust
        low, high = THRUST_TO_WEIGHT
        thrust *= min(max(full, low * weight), high * weight) / full
        thrust = min(thrust, MAX_ROTOR_THRUST / params.max_thrust)
        randomized = params.replace(
            mass=mass,
            inertia=tuple(i * scale["inertia"] for i in params.inertia),
            thrust_curve=tuple(c * thrust for c in params.thrust_curve),
            motor_time_constant=tuple(t * scale["motor_time_constant"] for t in params.motor_time_constant),
            yaw_torque_constant=params.yaw_torque_constant * scale["yaw_torque_constant"],
        )
        return randomized, imperfections, drawn
