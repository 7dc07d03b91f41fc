"""Recorded robot runs, as calibration and the gap report read them.

Two sources: RealAIGym trajectory CSVs (the competition's recordings) and s2r
MCAP logs (what `s2r deploy` and `s2r hil` write). Both become a `Recording`:
sample times, the measured state and the torque the motors were asked for.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hardware.apps.log import read_log
from sim.imperfections import Imperfections
from sim.plant import PHYSICS_DT, Plant
from sim.robots import Robot
from sim.robots.params import PendulumParams
from sim.tasks.realaigym import TrajectoryError, load_trajectory_csv

MIN_DURATION_S = 1.0
"""Shorter recordings hold too little motion to compare or fit anything."""
MIN_SAMPLES = 20
MAX_MAGNITUDE = 1e6
"""No robot measures or commands beyond this (rad, rad/s, N m); larger values are a broken file."""


@dataclasses.dataclass(frozen=True)
class Recording:
    """One run. T (N,) s from the first sample; X (N, 2n) measured [q rad, dq rad/s];
    U (N, n) torque applied from T[k] to T[k+1], N m: the command plus any injected perturbation;
    command (N, n) the command alone, N m (what the task's score is computed on)."""

    name: str
    T: np.ndarray
    X: np.ndarray
    U: np.ndarray
    command: np.ndarray
    robot: str | None = None
    """The robot an s2r log says it is of (a RealAIGym CSV does not say)."""

    @property
    def n(self) -> int:
        """Number of joints."""
        return self.U.shape[1]

    @property
    def duration(self) -> float:
        return float(self.T[-1] - self.T[0])

    @property
    def sample_period(self) -> float:
        """Median time between samples, s."""
        return float(np.median(np.diff(self.T)))


def load_recording(path: str | Path, joints: int | None = None) -> Recording:
    """Read a RealAIGym CSV (`.csv`) or an s2r log (`.mcap`), of a robot with `joints` joints if given.

    A RealAIGym CSV's tau_pert columns (torque injected on top of the command)
    are added to the command, since the robot felt both. Raises TrajectoryError
    naming the file and what is wrong: unreadable, wrong joint count, too short.
    """
    path = Path(path)
    robot = None
    if path.suffix == ".mcap":
        try:
            contents = read_log(path)
            T, X, U = contents.trajectory(path)
            command, robot = U, contents.robot
        except (OSError, ValueError) as exc:
            raise TrajectoryError(f"{path}: {exc}") from exc
    elif path.suffix == ".csv":
        T, X, command = load_trajectory_csv(path)
        perturbation = _perturbation(path, command.shape[1])
        U = command if perturbation is None else command + perturbation
    else:
        raise TrajectoryError(f"{path}: expected a RealAIGym trajectory .csv or an s2r log .mcap")
    if joints is not None and U.shape[1] != joints:
        raise TrajectoryError(f"{path}: the recording has {U.shape[1]} joint(s), the robot {joints}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(U))):
        raise TrajectoryError(f"{path}: non-finite state or torque values")
    if max(np.abs(X).max(), np.abs(U).max()) > MAX_MAGNITUDE:
        raise TrajectoryError(
            f"{path}: values up to {max(np.abs(X).max(), np.abs(U).max()):.3g}, beyond any robot's "
            f"{MAX_MAGNITUDE:.0e} rad, rad/s or N m: not a recording"
        )
    if np.any(np.diff(T) <= 0):
        raise TrajectoryError(f"{path}: sample times do not increase")
    T = T - T[0]
    if len(T) < MIN_SAMPLES or T[-1] < MIN_DURATION_S:
        raise TrajectoryError(
            f"{path}: too short ({len(T)} samples over {T[-1]:.3f} s); "
            f"need at least {MIN_SAMPLES} samples over {MIN_DURATION_S} s"
        )
    return Recording(_name(path), T, X, U, command, robot)


def simulated_recording(
    robot: Robot,
    params: PendulumParams,
    command: Callable[[float], np.ndarray],
    seconds: float,
    rate_hz: float = 100.0,
    delay_s: float = 0.0,
    velocity_noise: float = 0.0,
    seed: int = 0,
) -> Recording:
    """A recording made in simulation, where the truth is known: the plant with `params`, driven open
    loop by command(t) -> joint torques (n,) N m held for 1/rate_hz s, measured `delay_s` late with
    Gaussian velocity noise of std `velocity_noise` rad/s. Starts hanging at rest."""
    n = len(robot.joints)
    plant = Plant(robot, params, Imperfections(delay_s=delay_s, velocity_noise_std=velocity_noise))
    rng = np.random.default_rng(seed)
    plant.reset(np.zeros(2 * n), rng, horizon_s=seconds)
    substeps = int(round(1.0 / rate_hz / PHYSICS_DT))
    T = np.arange(int(round(seconds * rate_hz))) / rate_hz
    X, U = np.empty((len(T), 2 * n)), np.empty((len(T), n))
    for k, t in enumerate(T):
        X[k] = plant.measure()
        U[k] = command(float(t))
        plant.step(U[k], substeps)
    return Recording("simulated", T, X, U, U)


def _name(path: Path) -> str:
    # RealAIGym recordings are all called trajectory.csv: their folder names them.
    return path.parent.name if path.stem == "trajectory" and path.parent.name else path.stem


def _perturbation(path: Path, n: int) -> np.ndarray | None:
    with path.open(newline="", encoding="utf-8-sig") as f:
        header = [h.strip() for h in next(csv.reader(f))]
    columns = [f"tau_pert{i}" for i in range(1, n + 1)]
    if not all(c in header for c in columns):
        return None
    try:
        values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[header.index(c) for c in columns], ndmin=2)
    except ValueError as exc:
        raise TrajectoryError(f"{path}: unreadable tau_pert column ({exc})") from exc
    if not np.all(np.isfinite(values)):
        raise TrajectoryError(f"{path}: non-finite value in the tau_pert columns")
    return values
