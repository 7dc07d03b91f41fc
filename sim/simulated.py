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


class SimulatedRobot:
    """`robot` on `task` (None: its first) as a device serves it, with the env's options
    (`sim.env.RobotEnv`: params, imperfections, randomization; the task's own). Episodes never
    end: a pendulum's swing-up runs without its time limit. A pendulum may start upright
    (`start="up"`); a flight task starts from its evaluation spread unless `init_spread` is given."""

    def __init__(
        self, robot: str, control_rate_hz: float = 100.0, task: str | None = None, start: str = "down", **env_options
    ):
        from sim.env import RobotEnv
        from sim.robots import QUADROTORS
        from sim.tasks.task import default_task

        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; expected one of {', '.join(STARTS)}")
        if start == "up" and robot in QUADROTORS:
            raise ValueError("start='up' is a pendulum's: a quadrotor starts as its task's episodes do")
        task = task or default_task(robot)
        if robot not in QUADROTORS:
            env_options.setdefault("t_final", math.inf)
        self.env = RobotEnv(robot, task, control_rate_hz=control_rate_hz, **env_options)
        self.spec: RobotSpec = self.env.spec
        self.physics_dt, self.substeps = self.env.plant.model.opt.timestep, self.env.substeps
        self.upright = start == "up"

    def start(self, seed: int) -> None:
        """Start again, the same way each time for the same seed."""
        self.env.reset(seed=seed)
        if self.upright:
            x0 = np.zeros(len(self.env.plant.state()))
            x0[0] = math.pi
            self.env.plant.reset(x0, self.env.np_random, 60.0)

    def advance(self, command: np.ndarray, physics_steps: int) -> None:
        """Hold `command` (spec order) for `physics_steps` physics steps."""
        self.env.plant.step(command, physics_steps)

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


def make(
    robot: str,
    task: str,
    control_rate_hz: float,
    params: str | Path,
    imperfections: bool,
) -> SimulatedRobot:
    """The simulated `robot` on `task` with parameter set `params`, with or without its imperfections."""
    return SimulatedRobot(robot, control_rate_hz, task, params=params, imperfections=imperfections)


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

    def hold(self) -> np.ndarray:
        """A physics step's time with the robot held where it is (a vehicle in the hand before it
        is launched); returns its measurement."""
        self.next_step_ns += self.period_ns
        return self.robot.measure()
