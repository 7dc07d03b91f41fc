"""Robots: MJCF models, named parameter sets and specs.

A robot *kind* is a model file plus parameter sets (`double_pendulum`,
`pendulum`); a robot *name* is what users type, a kind in one actuation mode
(`pendubot`, `acrobot`, `double_pendulum`, `pendulum`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import mujoco
import numpy as np

from sim.config import ConfigError
from sim.robots import channels
from sim.robots.params import PendulumParams
from sim.robots.spec import RobotSpec

_HERE = Path(__file__).parent

POSITION_LIMIT = 3 * math.pi
"""The hardware's position stop, rad (540 degrees)."""
VELOCITY_LIMIT = 20.0
"""The hardware's velocity stop, rad/s."""
MOTOR_TORQUE_LIMIT = 6.0
"""Hard torque limit of an actuated joint, N m: the competition's limit for the AK80-6 motors. A
parameter set may lower it (`torque_limit`), never raise it."""
PASSIVE_TORQUE_LIMIT = 0.5
"""Hard torque limit of a passive joint, N m: its motor only cancels the friction it measures."""
TORQUE_SLEW_LIMIT = 600.0
"""Hard limit of a joint torque's change, N m/s: the full 6 N m in one 10 ms tick, no faster."""


@dataclasses.dataclass(frozen=True)
class Robot:
    """A robot name: its model kind, joints and which joints are actuated."""

    name: str
    kind: str
    joints: tuple[str, ...]
    actuated: tuple[bool, ...]

    @property
    def xml(self) -> Path:
        return _HERE / self.kind / f"{self.kind}.xml"

    @property
    def params_dir(self) -> Path:
        return _HERE / self.kind

    def param_sets(self) -> list[str]:
        """Names of the shipped parameter sets, e.g. ['model_1.0', 'model_1.1']."""
        return sorted(p.stem for p in self.params_dir.glob("*.yaml"))

    def load_params(self, name_or_path: str | Path) -> PendulumParams:
        """A shipped set by name (`model_1.0`) or a YAML file by path."""
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            path = self.params_dir / f"{name_or_path}.yaml"
            if not path.exists():
                raise ConfigError(
                    name_or_path,
                    "",
                    f"no parameter set of that name for {self.kind}; shipped sets: {', '.join(self.param_sets())}",
                )
        params = PendulumParams.load(path)
        if params.n != len(self.joints):
            raise ConfigError(path, "m", f"{self.kind} has {len(self.joints)} links, the set gives {params.n}")
        if max(params.torque_limit) > MOTOR_TORQUE_LIMIT:
            raise ConfigError(
                path,
                "torque_limit",
                f"{list(params.torque_limit)} N m exceeds the motors' hard limit of {MOTOR_TORQUE_LIMIT} N m; "
                "a parameter set may only lower it",
            )
        return params

    def build_model(self, params: PendulumParams) -> mujoco.MjModel:
        model = mujoco.MjModel.from_xml_path(str(self.xml))
        apply_params(model, params)
        return model

    def spec(self, params: PendulumParams) -> RobotSpec:
        """Its channels, as its MJCF declares them (`sim.robots.channels`): joint positions and
        velocities within the hardware's stops, joint torques within `command_limits`."""
        model = channels.compiled(self.xml)
        stops = {
            "joint.position": (-POSITION_LIMIT, POSITION_LIMIT),
            "joint.velocity": (-VELOCITY_LIMIT, VELOCITY_LIMIT),
        }
        limits = [(-t, t) for t in self.command_limits(params)]
        command = channels.command_channels(model, ".effort", "N m", "joint.effort", limits, TORQUE_SLEW_LIMIT)
        return RobotSpec(self.name, channels.state_channels(model, stops), command, 100.0, 500.0)

    def action_matrix(self, params: PendulumParams) -> np.ndarray:
        """(n, m): maps an action in [-1, 1]^m, one entry per actuated joint, to joint torques in N m."""
        active = np.flatnonzero(self.actuated)
        matrix = np.zeros((len(self.joints), len(active)))
        matrix[active, np.arange(len(active))] = self.command_limits(params)[active]
        return matrix

    def command_limits(self, params: PendulumParams) -> np.ndarray:
        """Torque limit per joint, N m: the parameter set's within MOTOR_TORQUE_LIMIT on actuated
        joints, PASSIVE_TORQUE_LIMIT on passive ones (whose motors only ever cancel friction,
        `friction_compensation`). No parameter set raises either hard limit."""
        hard = np.where(self.actuated, MOTOR_TORQUE_LIMIT, PASSIVE_TORQUE_LIMIT)
        return np.where(self.actuated, np.minimum(params.torque_limit, hard), hard)

    def friction_compensation(self, params: PendulumParams, dq: np.ndarray) -> np.ndarray:
        """What the passive joints' motors apply on the real robot to cancel the friction they
        measure: b dq + cf atan(100 dq) of `params` at the measured velocities `dq` (n,) rad/s,
        within PASSIVE_TORQUE_LIMIT; 0 on actuated joints. (n,) N m."""
        comp = np.asarray(params.b) * dq + np.asarray(params.cf) * np.arctan(100.0 * np.asarray(dq))
        return np.where(self.actuated, 0.0, np.clip(comp, -PASSIVE_TORQUE_LIMIT, PASSIVE_TORQUE_LIMIT))

    def parameter_names(self) -> list[str]:
        """The parameters a randomisation file or a calibration names: per joint, of the link it
        carries, `JOINT.m` (mass, kg), `JOINT.r` (centre-of-mass distance, m), `JOINT.I` (inertia
        about the joint, kg m^2), `JOINT.b` (viscous friction, N m s), `JOINT.cf` (Coulomb
        friction, N m); then `Ir` (rotor inertia, kg m^2) and `km` (torque-constant scale)."""
        return [f"{joint}.{key}" for key in JOINT_PARAMETERS for joint in self.joints] + list(ROBOT_PARAMETERS)

    def parameter(self, params: PendulumParams, name: str) -> float:
        """The value of parameter `name` (`parameter_names`) in `params`."""
        if name in ROBOT_PARAMETERS:
            return float(getattr(params, name))
        joint, key = self._split(name)
        return float(getattr(params, key)[self.joints.index(joint)])

    def with_parameters(self, params: PendulumParams, values: dict[str, float]) -> PendulumParams:
        """`params` with the named parameters (`parameter_names`) set to `values`."""
        fields = {key: list(getattr(params, key)) for key in JOINT_PARAMETERS}
        scalars = {}
        for name, value in values.items():
            if name in ROBOT_PARAMETERS:
                scalars[name] = value
            else:
                joint, key = self._split(name)
                fields[key][self.joints.index(joint)] = value
        return params.replace(**{k: tuple(v) for k, v in fields.items()}, **scalars)

    def _split(self, name: str) -> tuple[str, str]:
        joint, _, key = name.rpartition(".")
        if joint not in self.joints or key not in JOINT_PARAMETERS:
            raise ValueError(
                f"the {self.name} has no parameter {name!r}; its parameters: {', '.join(self.parameter_names())}"
            )
        return joint, key


JOINT_PARAMETERS = ("m", "r", "I", "b", "cf")
"""Parameters of the link each joint carries that `Robot.parameter_names` names as `JOINT.key`."""
ROBOT_PARAMETERS = ("Ir", "km")

ROBOTS: dict[str, Robot] = {
    "pendubot": Robot("pendubot", "double_pendulum", ("shoulder", "elbow"), (True, False)),
    "acrobot": Robot("acrobot", "double_pendulum", ("shoulder", "elbow"), (False, True)),
    "double_pendulum": Robot("double_pendulum", "double_pendulum", ("shoulder", "elbow"), (True, True)),
    "pendulum": Robot("pendulum", "pendulum", ("shoulder",), (True,)),
}


def robots_for(commands: np.ndarray) -> list[str]:
    """The robots whose joints and actuation fit recorded joint commands `commands` (N, n) N m, the
    fewest actuated joints first: as many joints, and no passive joint commanded beyond
    PASSIVE_TORQUE_LIMIT (what its motor may do to cancel friction)."""
    commands = np.asarray(commands, dtype=float).reshape(len(commands), -1)
    peak = np.abs(commands).max(axis=0) if len(commands) else np.zeros(commands.shape[1])
    fits = [
        r
        for r in ROBOTS.values()
        if len(r.joints) == len(peak)
        and all(a or p <= PASSIVE_TORQUE_LIMIT + 1e-9 for a, p in zip(r.actuated, peak, strict=True))
    ]
    return [r.name for r in sorted(fits, key=lambda r: sum(r.actuated))]


def get_robot(name: str) -> Robot:
    """A pendulum-family robot by name."""
    try:
        return ROBOTS[name]
    except KeyError:
        raise ValueError(f"unknown robot {name!r}; expected one of {', '.join(ROBOTS)}") from None


def apply_params(model: mujoco.MjModel, params: PendulumParams) -> None:
    """Write a parameter set into a compiled pendulum-chain model, in place.

    The spec gives inertia about the joint axis; MuJoCo wants it about the
    centre of mass (I_com = I - m r^2). Viscous friction is joint damping and
    the reflected rotor inertia is armature (shoulder gr^2 Ir + Ir, the elbow
    rotor riding on link 1; elbow gr^2 Ir). Coulomb friction and the rotor's
    cross term have no exact MuJoCo counterpart: sim.plant applies the former
    and the latter is neglected (|gr Ir| < 4e-4 kg m^2).
    """
    n = params.n
    for i in range(n):
        body = model.body(f"link{i + 1}").id
        model.body_mass[body] = params.m[i]
        model.body_ipos[body] = (0.0, 0.0, -params.r[i])
        i_com = params.I[i] - params.m[i] * params.r[i] ** 2
        model.body_inertia[body] = (i_com, i_com, i_com)
        if i + 1 < n:
            model.body_pos[model.body(f"link{i + 2}").id] = (0.0, 0.0, -params.l[i])
    model.site_pos[model.site("tip").id] = (0.0, 0.0, -params.l[-1])
    model.dof_damping[:] = params.b
    model.actuator_gear[:, 0] = params.km
    reflected = params.gr**2 * params.Ir
    model.dof_armature[:] = reflected
    if n == 2:
        model.dof_armature[0] += params.Ir
    model.opt.gravity[:] = (0.0, 0.0, -params.g)


QUADROTORS = ("crazyflie",)
"""Robots whose model is `sim.robots.quadrotor`'s, not a pendulum chain's."""


def robot_names() -> tuple[str, ...]:
    """Every robot a user can name."""
    return (*ROBOTS, *QUADROTORS)


def default_params(robot: str) -> str:
    """The parameter set a deploy uses when none is named: the real robot's."""
    return "l2f" if robot in QUADROTORS else "model_1.0"


def env_params(robot: str) -> str:
    """The parameter set an env uses when none is named: the simulation leaderboards' (model 1.1, no
    friction) for the pendulum family; the quadrotor's is its real one."""
    return "l2f" if robot in QUADROTORS else "model_1.1"


def load_robot_params(robot: str, name_or_path: str | Path):
    """`robot`'s parameter set by name or path: PendulumParams or QuadrotorParams."""
    if robot in QUADROTORS:
        from sim.robots import quadrotor

        return quadrotor.load_params(name_or_path)
    return get_robot(robot).load_params(name_or_path)


def robot_spec(robot: str, params, commands: str | None = None) -> RobotSpec:
    """`robot`'s channels with parameter set `params` (as `load_robot_params` gives it); a
    quadrotor's commands at the level its device takes (`quadrotor.COMMAND_LEVELS`, default rotors)."""
    if robot in QUADROTORS:
        from sim.robots import quadrotor

        return quadrotor.spec(params, commands or "rotors")
    if commands is not None:
        raise ValueError(f"the {robot} has one command level: joint torques")
    return get_robot(robot).spec(params)
