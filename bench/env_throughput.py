"""Env steps per second: s2r/Pendubot-v0 against dm_control's acrobot swingup, side by side.

Both at 0.002 s RK4 physics and a 100 Hz policy (5 physics steps per env
step); s2r with its default imperfections on (noise, delay, torque lag,
pushes, friction, all per physics step). Rounds alternate between the two
envs in one process and the figure is the median over rounds, so a noisy
machine slows both alike; the result is the ratio.

    pip install -e ".[bench]"
    python bench/env_throughput.py [--rounds 15] [--steps 2000] [--out bench/results/env_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")  # dm_control imports a renderer otherwise

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from dm_control import suite  # noqa: E402
from dm_control.rl import control  # noqa: E402

import sim  # noqa: E402, F401  (registers the envs)

PHYSICS_DT = 0.002
CONTROL_DT = 0.01


def make_dm_control() -> control.Environment:
    """dm_control's acrobot swingup with the physics step and control rate of s2r's env."""
    template = suite.load("acrobot", "swingup", task_kwargs={"random": 0})
    physics = template.physics
    physics.model.opt.timestep = PHYSICS_DT
    env = control.Environment(physics, template.task, time_limit=10.0, control_timestep=CONTROL_DT)
    if env._n_sub_steps != 5:  # noqa: SLF001 (the only place dm_control exposes it)
        raise RuntimeError(f"dm_control takes {env._n_sub_steps} physics steps per control step, expected 5")
    return env


def time_dm_control(env: control.Environment, steps: int, rng: np.random.Generator) -> float:
    actions = rng.uniform(-1, 1, (steps, 1))
    env.reset()
    start = time.perf_counter()
    for a in actions:
        if env.step(a).last():
            env.reset()
    return (time.perf_counter() - start) / steps


def time_s2r(env: gym.Env, steps: int, rng: np.random.Generator) -> float:
    actions = rng.uniform(-1, 1, (steps, 1)).astype(np.float32)
    env.reset(seed=int(rng.integers(1 << 31)))
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / steps


def time_raw_physics(steps: int) -> float:
    """The floor: 5 bare mj_step calls on s2r's double pendulum model."""
    robot = sim.robots.get_robot("pendubot")
    model = robot.build_model(robot.load_params("model_1.1"))
    data = mujoco.MjData(model)
    start = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(model, data, 5)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=2000, help="env steps per round and env")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "env_throughput.json")
    args = parser.parse_args()

    s2r_env = gym.make("s2r/Pendubot-v0", control_rate_hz=100, imperfections=True)
    dmc_env = make_dm_control()
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"s2r": [], "dm_control": [], "raw_mj_step_x5": []}
    for _ in range(args.rounds):
        times["s2r"].append(time_s2r(s2r_env, args.steps, rng))
        times["dm_control"].append(time_dm_control(dmc_env, args.steps, rng))
        times["raw_mj_step_x5"].append(time_raw_physics(args.steps))
    median = {k: statistics.median(v) for k, v in times.items()}
    per_round = [d / s for d, s in zip(times["dm_control"], times["s2r"], strict=True)]
    result = {
        "benchmark": "env_throughput",
        "physics_dt_s": PHYSICS_DT,
        "control_dt_s": CONTROL_DT,
        "s2r_env": "s2r/Pendubot-v0, imperfections on",
        "peer_env": "dm_control acrobot swingup",
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "steps_per_s": {k: 1.0 / v for k, v in median.items()},
        "us_per_step": {k: v * 1e6 for k, v in median.items()},
        "ratio_s2r_over_dm_control": median["dm_control"] / median["s2r"],
        "ratio_per_round": {"min": min(per_round), "median": statistics.median(per_round), "max": max(per_round)},
        "versions": {"mujoco": mujoco.__version__, "gymnasium": gym.__version__, "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k in times:
        print(f"{k:<16} {result['steps_per_s'][k]:9.0f} steps/s  {result['us_per_step'][k]:7.1f} us/step")
    print(f"s2r / dm_control throughput ratio: {result['ratio_s2r_over_dm_control']:.2f}x")


if __name__ == "__main__":
    main()
