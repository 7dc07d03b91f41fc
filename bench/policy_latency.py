"""Policy inference latency (deploy runtime vs torch vs SB3 predict) and training throughput.

Latency: one observation at a time, as the control loop calls it, for the
same SAC actor four ways: the ONNX deploy runtime (`policies.runtime`), the
same runtime on the graph a straight export of SB3's deterministic forward
gives (which also computes the unused standard deviation), a raw torch
forward of the actor under no_grad, and SB3's `predict`. Calls are
interleaved in rounds so the machine's noise hits all of them alike; p50 and
p99 are over all calls, and the ratios are each way's p50 over the runtime's.

Throughput: env steps per second while training PPO, SAC and TD3 with the
shipped pendubot settings' network size on `s2r/Pendubot-v0`.

    pip install -e ".[bench]"
    python bench/policy_latency.py [--calls 20000] [--train-steps 3000] [--out bench/results/policy_latency.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.logger import Logger

import sim  # noqa: F401  (registers the envs)
from policies import runtime
from policies.config import config_from_dict
from policies.export import export, write_graph
from policies.train import train

NET = [256, 256]


class _SB3Deterministic(torch.nn.Module):
    """SB3's own deterministic action path, for a straight ONNX export."""

    def __init__(self, actor: torch.nn.Module):
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs, deterministic=True)


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    us = np.asarray(samples_ns) / 1e3
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean())}


def latency(calls: int, workdir: Path) -> dict[str, dict[str, float]]:
    """Export an (untrained: latency does not depend on the weights) SAC policy and time it three ways."""
    data = {
        "algo": "sac",
        "n_timesteps": 1,
        "env": {"control_rate_hz": 100, "action_history": 1},
        "eval": {"freq": 1, "episodes": 1},
        "hyperparams": {"learning_starts": 10, "policy_kwargs": {"net_arch": NET}},
    }
    cfg = config_from_dict("pendubot", data, "<bench>")
    run = train(cfg, workdir / "run", progress=False)
    policy = runtime.load_policy(export(run, workdir / "policy"))
    model = SAC.load(run / "checkpoints" / "best.zip", device="cpu")
    actor = model.policy.actor
    size = model.observation_space.shape[0]
    straight = workdir / "sb3_graph.onnx"
    write_graph(_SB3Deterministic(actor), size, straight)
    sb3_graph = runtime.OnnxPolicy(policy.meta, straight)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (calls, size)).astype(np.float32)

    def run_torch(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor(torch.as_tensor(o[None, :]), deterministic=True).numpy()[0]

    ways = {
        "runtime": policy.act,
        "runtime_sb3_graph": sb3_graph.act,
        "torch": run_torch,
        "sb3_predict": lambda o: model.predict(o, deterministic=True)[0],
    }
    samples: dict[str, list[int]] = {k: [] for k in ways}
    for f in ways.values():  # warm-up
        for o in obs[:200]:
            f(o)
    block = 500
    for start in range(0, calls, block):
        for name, f in ways.items():
            for o in obs[start : start + block]:
                t = time.perf_counter_ns()
                f(o)
                samples[name].append(time.perf_counter_ns() - t)
    return {k: percentiles(v) for k, v in samples.items()}


def throughput(steps: int) -> dict[str, float]:
    """Env steps per second of each algorithm learning on s2r/Pendubot-v0 (default imperfections)."""
    out = {}
    for name, cls, kwargs in (
        ("ppo", PPO, {"n_steps": 512, "batch_size": 64, "policy_kwargs": {"net_arch": NET}}),
        ("sac", SAC, {"learning_starts": 100, "policy_kwargs": {"net_arch": NET}}),
        ("td3", TD3, {"learning_starts": 100, "policy_kwargs": {"net_arch": NET}}),
    ):
        env = gym.make("s2r/Pendubot-v0", imperfections=True)
        model = cls("MlpPolicy", env, device="cpu", seed=0, **kwargs)
        model.set_logger(Logger(None, []))  # SB3's default logger leaves an empty folder in /tmp per run
        start = time.perf_counter()
        model.learn(steps)
        out[name] = steps / (time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--train-steps", type=int, default=3000, help="per algorithm; 0 skips the throughput")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "policy_latency.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lat = latency(args.calls, Path(tmp))
    rates = throughput(args.train_steps) if args.train_steps > 0 else {}
    result = {
        "benchmark": "policy_latency",
        "policy": f"SAC actor, MlpPolicy {NET}, s2r/Pendubot-v0 observation (7)",
        "calls": args.calls,
        "latency": lat,
        "ratio_over_runtime_p50": {k: v["p50_us"] / lat["runtime"]["p50_us"] for k, v in lat.items() if k != "runtime"},
        "training_env_steps_per_s": rates,
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": runtime.ort.__version__,
            "python": platform.python_version(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':<18} {'p50 us':>8} {'p99 us':>8} {'p50 / runtime':>14}")
    for name, v in lat.items():
        ratio = result["ratio_over_runtime_p50"].get(name, 1.0)
        print(f"{name:<18} {v['p50_us']:8.1f} {v['p99_us']:8.1f} {ratio:13.1f}x")
    for name, r in rates.items():
        print(f"training {name}: {r:.0f} env steps/s")


if __name__ == "__main__":
    main()
