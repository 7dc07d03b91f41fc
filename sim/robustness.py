"""The RealAIGym v2 robustness benchmark (simulation), as the competition defines it.

Six criteria, each swept over 21 levels; a criterion's score is the fraction of
levels at which the controller still succeeds (final true state within
[0.35, 0.35, 1.0, 1.0] of the goal, angles wrapped); the robustness score is
their mean. Episodes run on model 1.1 with only the swept imperfection on.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from sim.env import RobotEnv
from sim.imperfections import Imperfections
from sim.robots import get_robot
from sim.robots.params import PendulumParams

LEVELS = 21
REPETITIONS = 10
PROFILES = 50
GOAL = np.array([np.pi, 0.0, 0.0, 0.0])
SUCCESS_TOLERANCE = np.array([0.35, 0.35, 1.0, 1.0])
MODEL_SWEEPS: dict[str, tuple[str, float, float]] = {
    # name: (how, low, high); "abs" sets the value, "scale" multiplies the nominal.
    "Ir": ("abs", 0.0, 1e-4),
    "m1r1": ("scale", 0.75, 1.25),
    "I1": ("scale", 0.75, 1.25),
    "b1": ("abs", -0.1, 0.1),
    "cf1": ("abs", -0.2, 0.2),
    "m2r2": ("scale", 0.75, 1.25),
    "m2": ("scale", 0.75, 1.25),
    "I2": ("scale", 0.75, 1.25),
    "b2": ("abs", -0.1, 0.1),
    "cf2": ("abs", -0.2, 0.2),
}
CRITERIA = ("model", "velocity_noise", "torque_noise", "torque_response", "delay", "perturbations")


class Controller(Protocol):
    control_rate_hz: float
    action_history: int
    observe_winding: bool

    def act(self, obs: np.ndarray) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class Job:
    """One episode of the benchmark."""

    criterion: str
    level: int
    repetition: int
    params: PendulumParams
    imperfections: Imperfections
    seed: int


def model_value(p: PendulumParams, name: str) -> float:
    """Current value of a swept model parameter (Ir, m1r1, I1, b1, cf1, m2r2, m2, ...)."""
    if name == "Ir":
        return p.Ir
    i = int(name[-1]) - 1
    if name in ("m1r1", "m2r2"):
        return p.m[i] * p.r[i]
    return getattr(p, name[:-1])[i]


def swept_params(p: PendulumParams, name: str, value: float) -> PendulumParams:
    """The set with one model parameter set to value; an m r product changes r at fixed m,
    as the official sweep does."""
    if name == "Ir":
        return p.replace(Ir=value)
    i = int(name[-1]) - 1
    key = "r" if name in ("m1r1", "m2r2") else name[:-1]
    if key == "r":
        value = value / p.m[i]
    values = list(getattr(p, key))
    values[i] = value
    return p.replace(**{key: tuple(values)})


def jobs(nominal: PendulumParams) -> list[Job]:
    """Every episode of the benchmark, in a fixed order with fixed seeds."""
    off = Imperfections()
    out: list[Job] = []
    for name, (how, low, high) in MODEL_SWEEPS.items():
        for level, x in enumerate(np.linspace(low, high, LEVELS)):
            value = model_value(nominal, name) * x if how == "scale" else float(x)
            out.append(Job(f"model:{name}", level, 0, swept_params(nominal, name, value), off, 0))
    sweeps = {
        "velocity_noise": ("velocity_noise_std", np.linspace(0.0, 0.5, LEVELS), REPETITIONS),
        "torque_noise": ("torque_noise_std", np.linspace(0.0, 1.1, LEVELS), REPETITIONS),
        "torque_response": ("torque_response", np.linspace(0.1, 2.0, LEVELS), 1),
        "delay": ("delay_s", np.linspace(0.0, 0.04, LEVELS), 1),
    }
    for criterion, (field, values, reps) in sweeps.items():
        for level, value in enumerate(values):
            for rep in range(reps):
                imp = dataclasses.replace(off, **{field: float(value)})
                out.append(Job(criterion, level, rep, nominal, imp, 1000 * level + rep))
    pulses = dataclasses.replace(off, pulses_per_joint=3, pulse_amplitude=(0.5, 5.0), pulse_width_s=(0.05, 0.1))
    for profile in range(PROFILES):
        out.append(Job("perturbations", profile, 0, nominal, pulses, profile))
    return out


def run_episode(robot: str, controller: Controller, job: Job) -> bool:
    """Run one episode at the controller's rate; success = final true state within
    SUCCESS_TOLERANCE of the goal."""
    env = RobotEnv(
        robot,
        params=job.params,
        control_rate_hz=controller.control_rate_hz,
        imperfections=job.imperfections,
        action_history=controller.action_history,
        observe_winding=controller.conditions.get("observe_winding", False),
        safety_stops=False,  # the benchmark's simulator has none: only the final state counts
        # No friction compensation, whatever the controller was trained with: its model would be the
        # varied parameter set itself, cancelling exactly the friction the benchmark varies.
    )
    obs, _ = env.reset(seed=job.seed)
    if hasattr(controller, "reset"):
        controller.reset()
    truncated = False
    while not truncated:  # without stops an episode only ends at t_final
        obs, _, _, truncated, _ = env.step(controller.act(obs))
    x = env.plant.state()
    err = np.abs(np.concatenate([(x[:2] - GOAL[:2] + np.pi) % (2 * np.pi) - np.pi, x[2:]]))
    return bool(np.all(err < SUCCESS_TOLERANCE))


def _worker(args: tuple[str, Callable[[], Controller], Job]) -> tuple[Job, bool]:
    robot, make_controller, job = args
    return job, run_episode(robot, make_controller(), job)


def run(
    make_controller: Callable[[], Controller],
    robot: str = "pendubot",
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; `make_controller` must be picklable (a module-level
    function or functools.partial). Returns per-criterion results and `score`."""
    r = get_robot(robot)
    if r.kind != "double_pendulum":
        raise ValueError(f"the robustness benchmark is defined for the double pendulum robots, not {robot!r}")
    todo = jobs(r.load_params("model_1.1"))
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    results: list[tuple[Job, bool]] = []
    args = [(robot, make_controller, job) for job in todo]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for item in tqdm(
            pool.imap_unordered(_worker, args, chunksize=4), total=len(args), disable=not progress, desc="robustness"
        ):
            results.append(item)
    return summarise(results, time.perf_counter() - start)


def summarise(results: list[tuple[Job, bool]], wall_time_s: float) -> dict[str, Any]:
    """Criterion scores from episode outcomes."""
    out: dict[str, Any] = {"criteria": {}}
    by: dict[str, dict[int, list[bool]]] = {}
    for job, ok in results:
        by.setdefault(job.criterion, {}).setdefault(job.level, []).append(ok)
    model_levels = []
    for criterion, levels in sorted(by.items()):
        passed = [sum(v) > len(v) / 2 if len(v) > 1 else v[0] for _, v in sorted(levels.items())]
        if criterion.startswith("model:"):
            model_levels += passed
            out["criteria"].setdefault("model", {"score": 0.0, "parameters": {}})
            out["criteria"]["model"]["parameters"][criterion[6:]] = float(np.mean(passed))
        else:
            out["criteria"][criterion] = {"score": float(np.mean(passed)), "levels_passed": [bool(p) for p in passed]}
    out["criteria"]["model"]["score"] = float(np.mean(model_levels))
    out["score"] = float(np.mean([out["criteria"][c]["score"] for c in CRITERIA]))
    out["episodes"] = len(results)
    out["wall_time_s"] = wall_time_s
    return out
