"""Training speed: the batched path against the per-env MuJoCo env, side by side in one run.

Three parts, each written to bench/results/training_speed.json and drawn in
bench/results/training_speed.png:

1. env steps/s with random actions, for each robot under its training
   conditions (default imperfections and randomisation): the batched path
   (`sim.batched`, one numpy batch) against the MuJoCo env under SB3's
   DummyVecEnv and SubprocVecEnv (one process per core). Rounds alternate
   between the paths and each figure is the median over rounds, so a noisy
   machine slows them alike; the results are ratios.
2. PPO end to end on the pendubot, each path with its shipped config
   (policies/configs/pendubot/ppo.yaml against ppo_batched.yaml), and the
   learners' own update rates: PPO's samples per second through its epochs,
   SAC's and CrossQ's gradient steps per second with the pendulum's configs.
3. Time to target: wall time to each success threshold of `s2r train` runs,
   one curve per seed (the pendulum's batched PPO against its per-env SAC and
   CrossQ by default; `--runs DIR...` adds finished run directories, their eval.jsonl).

    pip install -e ".[bench]"
    python bench/training_speed.py [--rounds 5] [--seeds 0 1 2] [--runs RUN ...] [--skip-curves]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from policies.config import algorithm_class, load_config
from policies.train import make_vec_env, train
from policies.vec_env import BatchedVecEnv
from sim.batched import make_batched
from sim.env import RobotEnv

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CONDITIONS = {
    "pendulum": {"params": "model_1.0", "control_rate_hz": 20, "imperfections": True, "randomization": "pendulum"},
    "pendubot": {"params": "model_1.0", "imperfections": True, "randomization": "double_pendulum"},
    "acrobot": {"params": "model_1.0", "imperfections": True, "randomization": "double_pendulum"},
    "crazyflie": {"imperfections": True, "randomization": "crazyflie"},
}
"""Each robot's training conditions: its default imperfections and randomisation."""
THRESHOLDS = (0.5, 0.8, 0.9, 1.0)
"""Success rates whose wall time to reach the curves report."""


def make_mujoco(robot: str, seed: int):
    def thunk():
        env = RobotEnv(robot, **CONDITIONS[robot])
        env.reset(seed=seed)
        return env

    return thunk


def steps_per_s(venv: VecEnv, steps: int, rng: np.random.Generator) -> float:
    """Env steps per second (all envs together) over `steps` calls of random actions."""
    n = venv.num_envs
    low, high = venv.action_space.low, venv.action_space.high
    actions = rng.uniform(low, high, (steps, n, *venv.action_space.shape)).astype(np.float32)
    venv.reset()
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    return steps * n / (time.perf_counter() - start)


def env_throughput(robot: str, args: argparse.Namespace) -> dict:
    paths: dict[str, VecEnv] = {
        "dummy": DummyVecEnv([make_mujoco(robot, i) for i in range(args.mujoco_envs)]),
        "subproc": SubprocVecEnv([make_mujoco(robot, i) for i in range(os.cpu_count() or 1)], start_method="fork"),
        "batched": BatchedVecEnv(make_batched(robot, args.batched_envs, seed=0, **CONDITIONS[robot])),
    }
    # Calls per round: `steps` env steps on the MuJoCo paths, 20 times as many on the batch (as long a round).
    calls = {k: max(10, args.steps // v.num_envs) for k, v in paths.items()}
    calls["batched"] = max(10, 20 * args.steps // args.batched_envs)
    rng = np.random.default_rng(0)
    rates: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(args.rounds):
        for key, venv in paths.items():
            rates[key].append(steps_per_s(venv, calls[key], rng))
    for venv in paths.values():
        venv.close()
    median = {k: statistics.median(v) for k, v in rates.items()}
    out = {
        "envs": {k: v.num_envs for k, v in paths.items()},
        "steps_per_s": median,
    }
    out["ratio_batched_over_dummy"] = median["batched"] / median["dummy"]
    out["ratio_batched_over_subproc"] = median["batched"] / median["subproc"]
    return out


class PhaseClock(BaseCallback):
    """Wall time spent collecting rollouts and in the learner's updates, s."""

    def __init__(self):
        super().__init__()
        self.collect = self.update = 0.0
        self.mark = time.perf_counter()

    def _on_rollout_start(self) -> None:
        now = time.perf_counter()
        self.update += now - self.mark
        self.mark = now

    def _on_rollout_end(self) -> None:
        now = time.perf_counter()
        self.collect += now - self.mark
        self.mark = now

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.update += time.perf_counter() - self.mark


def ppo_end_to_end(config: str, updates: int) -> dict:
    """PPO on the pendubot with a shipped config for `updates` policy updates."""
    cfg = load_config("pendubot", HERE.parent / "policies" / "configs" / "pendubot" / config)
    hp = cfg.hyperparams
    per_update = hp["n_steps"] * cfg.n_envs
    venv = make_vec_env(cfg)
    model = PPO(cfg.policy, venv, seed=0, device="cpu", verbose=0, **hp)
    clock = PhaseClock()
    start = time.perf_counter()
    model.learn(per_update * updates, callback=clock)
    wall = time.perf_counter() - start
    venv.close()
    samples = per_update * updates
    minibatches = hp.get("n_epochs", 10) * -(-per_update // hp.get("batch_size", 64)) * updates
    return {
        "config": f"policies/configs/pendubot/{config}",
        "batched": cfg.batched,
        "n_envs": cfg.n_envs,
        "batch_size": hp.get("batch_size", 64),
        "env_steps": samples,
        "wall_s": wall,
        "env_steps_per_s": samples / wall,
        "collect_s": clock.collect,
        "update_s": clock.update,
        "learner_samples_per_s": samples * hp.get("n_epochs", 10) / clock.update,
        "learner_minibatches_per_s": minibatches / clock.update,
    }


def off_policy_updates(config: str, steps: int) -> dict:
    """Gradient steps per second of an off-policy learner with a pendulum config's own networks and
    batch (policies/configs/pendulum/CONFIG)."""
    cfg = load_config("pendulum", HERE.parent / "policies" / "configs" / "pendulum" / config)
    env = RobotEnv("pendulum", **cfg.env)
    model = algorithm_class(cfg.algo)(cfg.policy, env, seed=0, device="cpu", verbose=0, **cfg.hyperparams)
    model.learn(cfg.hyperparams["learning_starts"] + 10)  # fills the buffer past learning_starts
    start = time.perf_counter()
    model.train(gradient_steps=steps, batch_size=model.batch_size)
    wall = time.perf_counter() - start
    return {"config": config, "algo": cfg.algo, "gradient_steps": steps, "gradient_steps_per_s": steps / wall}


def curve_from_run(run: Path, label: str) -> dict:
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines() if line.strip()]
    if not records or "wall_s" not in records[0]:
        raise SystemExit(f"{run}/eval.jsonl has no wall times (trained before they were recorded)")
    info = json.loads((run / "run.json").read_text())
    points = [(r["wall_s"], r["steps"], r["success_rate"]) for r in records]
    return {
        "label": label,
        "run": run.name,
        "command": info.get("command"),
        "git_commit": info.get("git_commit"),
        "points": [{"wall_s": w, "steps": s, "success_rate": p} for w, s, p in points],
        "time_to": {str(t): next((w for w, _, p in points if p >= t), None) for t in THRESHOLDS},
    }


def time_to_target(seeds: list[int], work: Path) -> list[dict]:
    """Train the pendulum both ways for each seed; one curve per run."""
    configs = HERE.parent / "policies" / "configs" / "pendulum"
    plans = [
        ("pendulum ppo_batched.yaml (batched)", configs / "ppo_batched.yaml", {"n_timesteps": 1_000_000}),
        ("pendulum sac.yaml (MuJoCo, 1 env)", configs / "sac.yaml", {"n_timesteps": 20_000}),
        ("pendulum crossq.yaml (MuJoCo, 1 env)", configs / "crossq.yaml", {"n_timesteps": 20_000}),
    ]
    curves = []
    for label, path, changes in plans:
        for seed in seeds:
            cfg = dataclasses.replace(load_config("pendulum", path), seed=seed, **changes)
            if cfg.batched:
                cfg = dataclasses.replace(cfg, eval={**cfg.eval, "freq": 100_000})
            run = train(cfg, work / f"{path.stem}-{seed}", progress=False)
            curves.append({**curve_from_run(run, f"{label}, seed {seed}"), "seed": seed})
    return curves


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(13, 5.2))
    robots = list(result["env_throughput"])
    keys = ("dummy", "subproc", "batched")
    width = 0.27
    for i, key in enumerate(keys):
        values = [result["env_throughput"][r]["steps_per_s"].get(key, 0.0) for r in robots]
        n = [result["env_throughput"][r]["envs"].get(key) for r in robots]
        label = {"dummy": "MuJoCo env, DummyVecEnv", "subproc": "MuJoCo env, SubprocVecEnv", "batched": "batched"}[key]
        xs = np.arange(len(robots)) + (i - 1) * width
        bars.bar(xs, values, width, label=f"{label} ({', '.join(sorted({str(k) for k in n if k}))} envs)")
    bars.set_yscale("log")
    bars.set_xticks(np.arange(len(robots)), robots)
    bars.set_ylabel("env steps/s (log)")
    bars.axhline(100_000, color="k", lw=0.8, ls="--")
    bars.text(len(robots) - 0.5, 110_000, "100k target", ha="right", fontsize=8)
    bars.set_title("env throughput, default imperfections and randomisation")
    bars.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    colours = plt.cm.tab20.colors  # more curves than the default cycle's ten colours
    for i, curve in enumerate(result.get("time_to_target", [])):
        pts = curve["points"]
        style = "--" if "MuJoCo" in curve["label"] else "-"
        curves.plot(
            [p["wall_s"] for p in pts],
            [p["success_rate"] for p in pts],
            style,
            marker=".",
            color=colours[i % len(colours)],
            label=curve["label"],
        )
    curves.set_xscale("log")
    curves.set_xlabel("wall time, s (log; evaluations included)")
    curves.set_ylabel("success rate (evaluation episodes)")
    curves.set_ylim(-0.03, 1.03)
    curves.set_title("time to target")
    if result.get("time_to_target"):
        curves.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000, help="env steps per round of the MuJoCo paths")
    parser.add_argument("--mujoco-envs", type=int, default=8, help="envs under DummyVecEnv")
    parser.add_argument("--batched-envs", type=int, default=1024)
    parser.add_argument("--ppo-updates", type=int, default=2, help="PPO updates per path")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="finished run directories to add as curves")
    parser.add_argument("--skip-curves", action="store_true", help="no training runs (parts 1 and 2 only)")
    parser.add_argument("--out", type=Path, default=RESULTS / "training_speed.json")
    args = parser.parse_args()

    result: dict = {
        "benchmark": "training_speed",
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "conditions": CONDITIONS,
        "rounds": args.rounds,
        "thresholds": THRESHOLDS,
        "env_throughput": {},
    }
    for robot in CONDITIONS:
        result["env_throughput"][robot] = r = env_throughput(robot, args)
        rates = "  ".join(f"{k} {v:,.0f}" for k, v in r["steps_per_s"].items())
        ratios = f"  batched/dummy {r['ratio_batched_over_dummy']:.0f}x"
        print(f"{robot:<10} env steps/s: {rates}{ratios}", flush=True)

    today = ppo_end_to_end("ppo.yaml", args.ppo_updates)
    batched = ppo_end_to_end("ppo_batched.yaml", args.ppo_updates)
    result["ppo_end_to_end"] = {
        "per_env": today,
        "batched": batched,
        "ratio_batched_over_per_env": batched["env_steps_per_s"] / today["env_steps_per_s"],
    }
    result["off_policy_updates"] = updates = [off_policy_updates(c, 500) for c in ("sac.yaml", "crossq.yaml")]
    rates = ", ".join(f"{u['algo']} {u['gradient_steps_per_s']:.0f}" for u in updates)
    print(
        f"PPO pendubot end to end: per-env {today['env_steps_per_s']:,.0f} steps/s, batched "
        f"{batched['env_steps_per_s']:,.0f} steps/s ({result['ppo_end_to_end']['ratio_batched_over_per_env']:.1f}x); "
        f"learner {batched['learner_samples_per_s']:,.0f} samples/s through its epochs; "
        f"gradient steps/s on the pendulum's configs: {rates}",
        flush=True,
    )

    curves = [curve_from_run(run, run.name) for run in args.runs]
    if not args.skip_curves:
        with tempfile.TemporaryDirectory() as work:
            curves = time_to_target(args.seeds, Path(work)) + curves
    result["time_to_target"] = curves
    for c in curves:
        reached = ", ".join(f"{float(t):.0%} in {'-' if w is None else f'{w:.0f} s'}" for t, w in c["time_to"].items())
        print(f"{c['label']}: {reached}")

    result["versions"] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "stable-baselines3": stable_baselines3.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"written {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
