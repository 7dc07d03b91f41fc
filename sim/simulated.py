"""A simulated robot as a device or an emulator serves it: the task's env's plant, started as its
episodes start, advanced one physics step or one control period at a time, measured as the robot
measures itself; and `PlantServer`, which serves one in real time.

`make` builds one by robot and task name; the env does the building and the
reset (its parameter set, imperfections and start distribution), and never
steps: what advances is the plant behind it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sim.robots.spec import RobotSpec

STARTS = ("down", "up")
"""Where a pendulum starts: as the swing-up task's episodes do (hanging), or balanced upright (to
test a stabiliser on its own)."""


class PendulumSim:
    """A pendulum-family robot on the swing-up task: state [q, dq], commands joint torques (N m)."""

    def __init__(self, robot: str, control_rate_hz: float = 100.0, start: str = "down", **env_options):
        from sim.env import SwingUpEnv
        from sim.plant import PHYSICS_DT

        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; expected one of {', '.join(STARTS)}")
        env_options.setdefault("t_final", math.inf)
        self.env = SwingUpEnv(robot, control_rate_hz=control_rate_hz, **env_options)
        self.spec: RobotSpec = self.env.robot.spec(self.env.nominal_params)
        self.physics_dt, self.substeps = PHYSICS_DT, self.env.substeps
        self.upright = start == "up"

    def start(self, seed: int) -> None:
        """Start again, the same way each time for the same seed."""
        self.env.reset(seed=seed)
        if self.upright:
            x0 = np.zeros(2 * self.env.n)
            x0[0] = math.pi
            self.env.plant.reset(x0, self.env.np_random, 60.0)

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


SimulatedRobot = PendulumSim | QuadrotorSim


def make(
    robot: str,
    task: str,
    control_rate_hz: float,
    params: str | Path,
    imperfections: bool,
) -> SimulatedRobot:
    """The simulated `robot` on `task` with parameter set `params`, with or without its imperfections."""
    from sim.robots import QUADROTORS

    if robot in QUADROTORS:
        return QuadrotorSim(task, control_rate_hz, params=params, imperfections=imperfections)
    return PendulumSim(robot, control_rate_hz, params=params, imperfections=imperfections)


class PlantServer:
    """A simulated robot served in real time, one physics step at a time on the wall clock: what the
    simulated device's physics thread and both emulators run. `due(now)` says when the next step is,
    `step(command)` takes it; a server far behind (the machine stalled) re-anchors rather than race
    to catch up. `restart()` starts the robot again as `seed` says."""

    BEHIND_STEPS = 10
    """Re-anchor when this many physics steps behind."""

    def __init__(self, robot: SimulatedRobot, seed: int = 0):
        self.robot, self.seed = robot, seed
        self.period_ns = int(round(robot.physics_dt * 1e9))
        self.next_step_ns = 0
        self.restart()

    def restart(self) -> None:
        self.robot.start(self.seed)

    def due(self, now_ns: int) -> bool:
        """Whether a physics step is due at `now_ns` (monotonic); the first call anchors the pace."""
        if self.next_step_ns == 0 or now_ns > self.next_step_ns + self.BEHIND_STEPS * self.period_ns:
            self.next_step_ns = now_ns
        return now_ns >= self.next_step_ns

    def step(self, command: np.ndarray) -> np.ndarray:
        """One physics step holding `command` (spec order); returns the new measurement."""
        self.robot.advance(command, 1)
        self.next_step_ns += self.period_ns
        return self.robot.measure()
