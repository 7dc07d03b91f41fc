"""Can a policy's network and observation hold the pendubot's top at all? Imitate the LQR.

Rolls out the pendubot baseline's LQR (no swing-up) from seeded upright starts on
model 1.1 at 100 Hz with Gaussian action noise, so that the data covers the states
around its path, and fits an MLP of the given layers (ReLU, tanh output, like a
squashed SAC actor) from the policy's own observation (`sim.tasks.swingup.observation`,
one past action) to the LQR's action by least squares. Then counts the upright starts
each of the two holds for the whole episode, on seeds the data never saw. If the
imitation holds as many as the LQR, the network and the observation are not what
keeps a trained policy from holding the top.

    python bench/hold_imitation.py [--layers 256 256] [--episodes 20] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from policies.baselines import PendubotEnergyLQR
from sim.env import RobotEnv
from sim.tasks import swingup

TRAINING_SEEDS = range(100, 160)
ACTION_NOISE = 0.3
"""Standard deviation of the noise added to the LQR's actions while collecting, in action units."""


def rollout(env: RobotEnv, act, seed: int, teacher=None, noise: float = 0.0, rng=None) -> tuple[list, list, bool]:
    """One upright start: (observations, the teacher's actions on them, held for the whole episode)."""
    obs, _ = env.reset(seed=seed)
    observations, labels = [], []
    terminated = truncated = False
    while not (terminated or truncated):
        if teacher is not None:
            observations.append(obs.copy())
            labels.append(teacher(obs))
        action = act(obs)
        if noise:
            action = action + rng.normal(0.0, noise, action.shape)
        obs, _, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
    held = not terminated and info["metrics"]["uptime"] >= 0.99 * swingup.T_FINAL
    return observations, labels, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--episodes", type=int, default=20, help="upright starts to count holds on (seeds 0..)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lqr = PendubotEnergyLQR(catch_cost=math.inf)  # never hands over to the swing-up
    env = RobotEnv(
        "pendubot", params="model_1.1", imperfections=False, control_rate_hz=100, action_history=1, upright_starts=1.0
    )
    start = time.perf_counter()
    observations, labels = [], []
    for seed in TRAINING_SEEDS:
        o, a, _ = rollout(env, lqr.act, seed, teacher=lqr.act, noise=ACTION_NOISE, rng=rng)
        observations += o
        labels += a
    x = torch.tensor(np.array(observations), dtype=torch.float32)
    y = torch.tensor(np.clip(np.array(labels), -1.0, 1.0), dtype=torch.float32)

    layers: list[nn.Module] = []
    width = x.shape[1]
    for size in args.layers:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    net = nn.Sequential(*layers, nn.Linear(width, y.shape[1]), nn.Tanh())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(args.epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            batch = order[i : i + 256]
            loss = ((net(x[batch]) - y[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        mse = float(((net(x) - y) ** 2).mean())

    def imitation(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(obs, dtype=torch.float32)).numpy()

    held = {"lqr": 0, "imitation": 0}
    for seed in range(args.episodes):
        held["lqr"] += rollout(env, lqr.act, seed)[2]
        held["imitation"] += rollout(env, imitation, seed)[2]
    result = {
        "robot": "pendubot",
        "conditions": "model 1.1, no imperfections, 100 Hz, upright starts",
        "layers": args.layers,
        "samples": len(x),
        "training_mse": mse,
        "episodes": args.episodes,
        "held": {k: v / args.episodes for k, v in held.items()},
        "wall_time_s": time.perf_counter() - start,
    }
    n = args.episodes
    print(f"LQR held {held['lqr']}/{n}, imitation held {held['imitation']}/{n}", file=sys.stderr)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
