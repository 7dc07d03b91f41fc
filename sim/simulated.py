"""A simulated robot as a device or an emulator serves it: the task's env's plant, started as its
episodes start, advanced one physics step or one control period at a time, measured as the robot
measures itself.

`make` builds one by robot and task name; the env does the building and the
reset (its parameter set, imperfections and start distribution), and never
steps: what advances is the plant behind it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sim.robots.spec import RobotSpec


class PendulumSim:
    """A pendulum-family robot on the swing-up task: state [q, dq], commands joint torques (N m)."""

    def __init__(self, robot: str, control_rate_hz: float, **env_options):
        from sim.env import SwingUpEnv
        from sim.plant import PHYSICS_DT

        env_options.setdefault("t_final", math.inf)
        self.env = SwingUpEnv(robot, control_rate_hz=control_rate_hz, **env_options)
        self.spec: RobotSpec = self.env.robot.spec(self.env.nominal_params)
        self.physics_dt, self.substeps = PHYSICS_DT, self.env.substeps

    def start(self, seed: int) -> None:
        self.env.reset(seed=seed)

    def advance(self, command: np.ndarray, physics_steps: int) -> None:
        """Hold `command` (spec order) for `physics_steps` physics steps."""
        self.env.plant.step(command, physics_steps, self.env.np_random)

    def measure(self) -> np.ndarray:
        return self.env.plant.measure()

    @property
    def time(self) -> float:
        """Simulated time since start(), s."""
        return self.env.plant.time

    @property
    def steps(self) -> int:
        """Physics steps since start()."""
        return self.env.plant._steps


class QuadrotorSim:
    """The quadrotor on a flight task: state its estimate (13,), commands rotor speeds (4,) in [0, 1]."""

    def __init__(
        self,
        task: str,
        control_rate_hz: float,
        params: str | Path = "l2f",
        imperfections: bool = True,
        randomization: str | Path | None = None,
    ):
        from sim.flight import PHYSICS_DT
        from sim.flight_env import QuadrotorEnv
        from sim.robots import quadrotor
        from sim.tasks import flight

        self.env = QuadrotorEnv(
            task,
            params=params,
            control_rate_hz=control_rate_hz,
            imperfections=imperfections,
            randomization=randomization,
            action_history=0,
            init_spread=flight.get_task(task).eval_spread,
        )
        self.spec = quadrotor.spec(self.env.params)
        self.physics_dt, self.substeps = PHYSICS_DT, self.env.substeps
        self._measured = np.zeros(13)

    def start(self, seed: int) -> None:
        self.env.reset(seed=seed)
        self._measured = self.env.plant.measure(self.env.np_random)

    def advance(self, command: np.ndarray, physics_steps: int) -> None:
        self.env.plant.step(command, physics_steps)
        self._measured = self.env.plant.measure(self.env.np_random)

    def measure(self) -> np.ndarray:
        # One noise draw per step, not per read: a reading read twice is the same reading.
        return self._measured.copy()

    @property
    def time(self) -> float:
        return self.env.plant.time

    @property
    def steps(self) -> int:
        return round(self.env.plant.time / self.physics_dt)


def make(
    robot: str,
    task: str,
    control_rate_hz: float,
    params: str | Path,
    imperfections: bool,
) -> PendulumSim | QuadrotorSim:
    """The simulated `robot` on `task` with parameter set `params`, with or without its imperfections."""
    if robot == "crazyflie":
        return QuadrotorSim(task, control_rate_hz, params=params, imperfections=imperfections)
    return PendulumSim(robot, control_rate_hz, params=params, imperfections=imperfections)
