"""Evaluation of a controller over seeded episodes, scored with the task's own metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats

from sim.env import RobotEnv
from sim.tasks import realaigym
from sim.tasks.realaigym import Trajectory
from sim.tasks.task import Task

SIM_CONDITIONS = {"params": "model_1.1", "imperfections": False, "randomization": None, "safety_stops": False}
"""Env options of the competitions' simulation stage, applied over a policy's own: model 1.1, nothing
else, and no hardware stops (their simulator has none)."""


def run_episode(act: Callable[[np.ndarray], np.ndarray], env: RobotEnv, seed: int) -> dict[str, Any]:
    """One seeded episode; returns the final step's info (the task's metrics in info["metrics"])."""
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        done = terminated or truncated
    return info


def run_episodes(
    act: Callable[[np.ndarray], np.ndarray],
    robot: str,
    env_kwargs: dict[str, Any],
    episodes: int,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Run `episodes` episodes with seeds seed, seed+1, ...; the task's metrics of each (the
    swing-up's v2 simulation score and criteria, a flight's tracking errors). `act` maps an
    observation to an action."""
    env = RobotEnv(robot, **env_kwargs)
    metrics = (run_episode(act, env, seed + i)["metrics"] for i in range(episodes))
    return [{k: float(v) for k, v in m.items()} for m in metrics]


def rank(task: Task, success_rate: float, score: float | None) -> tuple[float, float]:
    """How checkpoints compare: by success rate first, then by the task's score (None: no episode
    had one); higher is better."""
    return success_rate, -math.inf if score is None or not math.isfinite(score) else task.score_sign * score


def summarise(episodes: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and 95% confidence interval (Student t) of each metric over the episodes where it is
    finite (a flight that fails before it settles has no tracking error).

    swingup_time is taken over the successful episodes only (it is infinite or
    the run's end otherwise)."""
    out: dict[str, dict[str, float]] = {}
    for key in episodes[0] if episodes else ():
        values = np.array([e[key] for e in episodes if key != "swingup_time" or e["success"]])
        values = values[np.isfinite(values)]
        if len(values) == 0:
            out[key] = {"mean": math.nan, "ci95": math.nan, "n": 0}
            continue
        half = 0.0
        if len(values) > 1:
            half = float(scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
        out[key] = {"mean": float(values.mean()), "ci95": half, "n": len(values)}
    return out


def score_gap(
    act: Callable[[np.ndarray], np.ndarray],
    robot: str,
    env_kwargs: dict[str, Any],
    runs: list[Trajectory],
    episodes: int = 10,
) -> dict[str, float]:
    """A policy's recorded runs (on the robot) beside its mean over seeded episodes in simulation:
    v2 score (simulation normalisation for both, so they compare) and success rate."""
    lengths = RobotEnv(robot, **env_kwargs).params.l
    real = [realaigym.score(run, "v2", "sim", lengths) for run in runs]
    sim = run_episodes(act, robot, env_kwargs, episodes)
    gap = {
        "sim_v2_mean": float(np.mean([e["score"] for e in sim])),
        "sim_success_rate": float(np.mean([e["success"] for e in sim])),
        "real_v2_mean": float(np.mean([r["score"] for r in real])),
        "real_success_rate": float(np.mean([r["success"] for r in real])),
        "episodes": episodes,
    }
    gap["v2_gap"] = gap["sim_v2_mean"] - gap["real_v2_mean"]
    return gap
