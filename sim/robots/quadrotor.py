"""The Crazyflie-class quadrotor: its parameter sets, its MJCF and the rotor model MuJoCo lacks.

Frames: world z up; body FLU (x forward, y left, z up); the orientation is the
unit quaternion (w, x, y, z) from body to world; linear velocity in the world
frame, angular velocity in the body frame (as MuJoCo's free joint has them).

A rotor's state is its normalised speed u in [0, 1] (rotor speed over the
maximum, or the normalised throttle of the identified set); it follows its
command with a first-order lag, a time constant when rising and one when
falling. Its thrust is f = c0 + c1 u + c2 u^2 N along body z and its reaction
torque s km f about body z (s = +1 or -1 with the spin direction). MuJoCo has
neither term (its actuator dynamics are linear in one activation, and its gain
has no square of it), so `RotorModel` advances them once per physics step and
the model's four actuators take the thrusts as controls.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from sim.config import ConfigError, as_float, as_floats, check_keys, load_yaml
from sim.robots import channels
from sim.robots.spec import Channel, RobotSpec

_DIR = Path(__file__).parent / "crazyflie"
XML = _DIR / "crazyflie.xml"

COMMAND_LEVELS = ("rotors", "rates")
"""What a quadrotor device takes: rotor speeds (the vehicle's own rate loop is the host's, as in
simulation), or collective thrust and body rates (a flight controller's rate loop follows them: a
Betaflight board over MSP)."""
MAX_BODY_RATE = 10.0
"""Body-rate set-points span +-this, rad/s (a Betaflight board's rate profile at 573 deg/s, linear)."""
MAX_ROTOR_THRUST = 0.2
"""Hard thrust limit of one rotor, N: above what a Crazyflie-class motor and propeller can give
(0.15 N at full speed). A parameter set whose thrust curve asks for more is refused."""
ROTORS = 4
KEYS = (
    "mass",
    "inertia",
    "rotor_positions",
    "rotor_spin",
    "thrust_curve",
    "yaw_torque_constant",
    "motor_time_constant",
    "g",
)


@dataclasses.dataclass(frozen=True)
class QuadrotorParams:
    """One parameter set. Rotor tuples are in rotor order 1..4 (front-right, back-right, back-left,
    front-left)."""

    mass: float
    """kg."""
    inertia: tuple[float, float, float]
    """Principal moments about body x, y, z at the centre of mass, kg m^2."""
    rotor_positions: tuple[tuple[float, float, float], ...]
    """Rotor hubs in the body frame, m."""
    rotor_spin: tuple[int, ...]
    """+1 or -1: the sign of each rotor's reaction torque about body z."""
    thrust_curve: tuple[float, float, float]
    """(c0, c1, c2): thrust f = c0 + c1 u + c2 u^2 N at normalised rotor speed u."""
    yaw_torque_constant: float
    """Reaction torque per thrust, N m / N."""
    motor_time_constant: tuple[float, float]
    """First-order lag of u when rising and when falling, s."""
    g: float = 9.81
    """Gravity, m/s^2."""

    def thrust(self, u: np.ndarray) -> np.ndarray:
        """Per-rotor thrust, N, at normalised rotor speeds `u` (any shape)."""
        c0, c1, c2 = self.thrust_curve
        return c0 + c1 * u + c2 * u * u

    @property
    def max_thrust(self) -> float:
        """One rotor's thrust at full speed, N."""
        return float(self.thrust(np.float64(1.0)))

    @property
    def hover_speed(self) -> float:
        """The normalised rotor speed at which four rotors carry the weight."""
        c0, c1, c2 = self.thrust_curve
        f = self.mass * self.g / ROTORS
        return (-c1 + math.sqrt(c1 * c1 - 4 * c2 * (c0 - f))) / (2 * c2)

    @property
    def thrust_to_weight(self) -> float:
        return ROTORS * self.max_thrust / (self.mass * self.g)

    def as_dict(self) -> dict[str, Any]:
        """The set as its YAML has it (lists, not tuples)."""
        data = dataclasses.asdict(self)
        return {
            k: [list(r) for r in v] if k == "rotor_positions" else list(v) if isinstance(v, tuple) else v
            for k, v in data.items()
        }

    def replace(self, **changes: Any) -> QuadrotorParams:
        return dataclasses.replace(self, **changes)

    def ideal(self) -> QuadrotorParams:
        """The set as it is: the model has no losses a leaderboard's simulator leaves out."""
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "<params>") -> QuadrotorParams:
        """Validate a mapping (e.g. parsed YAML) into a parameter set."""
        check_keys(data, KEYS, source)
        for key in KEYS[:-1]:
            if key not in data:
                raise ConfigError(source, key, f"missing; every quadrotor parameter set gives {', '.join(KEYS[:-1])}")
        positions = data["rotor_positions"]
        if not isinstance(positions, list) or len(positions) != ROTORS:
            raise ConfigError(source, "rotor_positions", f"expected {ROTORS} [x, y, z] rows, got {positions!r}")
        spin = data["rotor_spin"]
        if not isinstance(spin, list) or len(spin) != ROTORS or any(s not in (-1, 1) for s in spin):
            raise ConfigError(source, "rotor_spin", f"expected {ROTORS} entries of +1 or -1, got {spin!r}")
        if sum(spin) != 0:
            raise ConfigError(source, "rotor_spin", "two rotors spin each way, or the yaw torques never cancel")
        params = cls(
            mass=as_float(data["mass"], source, "mass", low=1e-3, high=1.0),
            inertia=as_floats(data["inertia"], source, "inertia", 3, low=1e-8, high=1e-2),
            rotor_positions=tuple(
                as_floats(p, source, f"rotor_positions[{i}]", 3, -0.5, 0.5) for i, p in enumerate(positions)
            ),
            rotor_spin=tuple(int(s) for s in spin),
            thrust_curve=as_floats(data["thrust_curve"], source, "thrust_curve", 3, low=0.0),
            yaw_torque_constant=as_float(data["yaw_torque_constant"], source, "yaw_torque_constant", 0.0, 0.1),
            motor_time_constant=as_floats(data["motor_time_constant"], source, "motor_time_constant", 2, 1e-3, 1.0),
            g=as_float(data.get("g", 9.81), source, "g", low=0.0),
        )
        if params.max_thrust > MAX_ROTOR_THRUST:
            raise ConfigError(
                source,
                "thrust_curve",
                f"{params.max_thrust:.3f} N per rotor at full speed exceeds the hard limit of {MAX_ROTOR_THRUST} N",
            )
        if params.thrust_to_weight <= 1.0:
            raise ConfigError(source, "thrust_curve", f"thrust-to-weight {params.thrust_to_weight:.2f}: it cannot fly")
        return params

    @classmethod
    def load(cls, path: str | Path) -> QuadrotorParams:
        return cls.from_dict(load_yaml(path), path)


def param_sets() -> list[str]:
    """Names of the shipped parameter sets: ['cf21', 'l2f']."""
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def load_params(name_or_path: str | Path) -> QuadrotorParams:
    """A shipped set by name (`l2f`, `cf21`) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = _DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(name_or_path, "", f"no quadrotor parameter set of that name; shipped: {param_sets()}")
    return QuadrotorParams.load(path)


POSITION_RANGE = 10.0
"""A measured position beyond +-this (any axis) is not a state estimate of a vehicle in a room, m."""
VELOCITY_RANGE = 20.0
"""Nor a velocity beyond +-this, m/s..."""
RATE_RANGE = 50.0
"""...nor body rates beyond +-this, rad/s."""


def spec(params: QuadrotorParams, commands: str = "rotors") -> RobotSpec:
    """The quadrotor's channels, as its MJCF declares them (`sim.robots.channels`): state (13,) =
    [body.position.x/y/z (m, world), body.orientation.w/x/y/z, body.velocity.x/y/z (m/s, world),
    body.rates.x/y/z (rad/s, body)], a state estimate as the vehicle reports it. Commands (4,) at
    the `commands` level (COMMAND_LEVELS): `rotors`, rotor speed set-points in [0, 1]
    (rotor1.speed .. rotor4.speed), which the rotor model turns into the actuators' thrusts;
    `rates`, [body.thrust in [0, 1] of the four rotors' maximum, body.rate_setpoint.x/y/z within
    +-MAX_BODY_RATE rad/s (body FLU)]. No rate limit: the motors' own lag is the physics."""
    if commands not in COMMAND_LEVELS:
        raise ValueError(f"unknown quadrotor command level {commands!r}; expected one of {', '.join(COMMAND_LEVELS)}")
    model = channels.compiled(XML)
    ranges = {
        "body.position": (-POSITION_RANGE, POSITION_RANGE),
        "body.orientation": (-1.0, 1.0),
        "body.linear_velocity": (-VELOCITY_RANGE, VELOCITY_RANGE),
        "body.angular_velocity": (-RATE_RANGE, RATE_RANGE),
    }
    if commands == "rotors":
        command = channels.command_channels(model, ".speed", "1", "rotor.speed", [(0.0, 1.0)] * ROTORS, math.inf)
    else:
        command = (
            Channel("body.thrust", "1", 0.0, 1.0, "body.thrust"),
            *(
                Channel(f"body.rate_setpoint.{a}", "rad/s", -MAX_BODY_RATE, MAX_BODY_RATE, "body.rate_setpoint")
                for a in "xyz"
            ),
        )
    return RobotSpec("crazyflie", channels.state_channels(model, ranges), command, 100.0, 500.0)


def apply_params(model: mujoco.MjModel, params: QuadrotorParams) -> None:
    """Write a parameter set into the compiled model, in place: mass and inertia, rotor sites,
    each actuator's gear (thrust along z, reaction torque about z) and thrust range. Call
    mujoco.mj_setConst after it: the free body is one of MuJoCo's "simple" bodies, whose mass matrix
    comes from constants computed at compile time, so a new mass or inertia is otherwise ignored."""
    body = model.body("body").id
    model.body_mass[body] = params.mass
    model.body_inertia[body] = params.inertia
    for i in range(ROTORS):
        model.site_pos[model.site(f"rotor{i + 1}").id] = params.rotor_positions[i]
        actuator = model.actuator(f"rotor{i + 1}").id
        model.actuator_gear[actuator] = (0, 0, 1, 0, 0, params.rotor_spin[i] * params.yaw_torque_constant)
        model.actuator_ctrlrange[actuator] = (params.thrust(np.float64(0.0)), params.max_thrust)
    model.opt.gravity[:] = (0.0, 0.0, -params.g)


def build_model(params: QuadrotorParams) -> mujoco.MjModel:
    model = mujoco.MjModel.from_xml_path(str(XML))
    apply_params(model, params)
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


class RotorModel:
    """The four rotors' speeds, advanced by the first-order lag over one physics step of `dt` s
    (exactly, the command held over the step), and the thrusts MuJoCo holds over that step."""

    def __init__(self, params: QuadrotorParams, dt: float, u0: np.ndarray | None = None):
        self.params, self.dt = params, dt
        tau = np.array(params.motor_time_constant)  # rising, falling
        self._alpha = 1.0 - np.exp(-dt / tau)
        # The step's mean of u - command over its start value: (1 - e^(-dt/tau)) tau / dt.
        self._mean = self._alpha * tau / dt
        self.u = np.full(ROTORS, params.hover_speed) if u0 is None else np.array(u0, dtype=float)

    def step(self, command: np.ndarray) -> np.ndarray:
        """Advance by dt towards `command` (4,) in [0, 1]; returns the thrusts (4,) N at the speeds'
        mean over the step (MuJoCo holds a control over its step; the end speed would lag by half a
        step and, on an unstable attitude, the error grows)."""
        command = np.clip(command, 0.0, 1.0)
        rising = command > self.u
        gap = self.u - command
        mean = command + gap * np.where(rising, self._mean[0], self._mean[1])
        self.u = command + gap * (1.0 - np.where(rising, self._alpha[0], self._alpha[1]))
        return self.params.thrust(mean)
