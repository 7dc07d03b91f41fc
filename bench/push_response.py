"""Could a policy have held a push? Replay one seeded episode, replacing the policy's action by
full torque against the push over a window, and report success and the largest deviation from
upright (rad, wrapped to [0, pi]) after the window opens.

    python bench/push_response.py zoo:pendulum --seed 35 --start 9.0 --duration 0.25 --action -1

The push is the seed's own (default imperfections as the policy's metadata configures them); the
sign of --action opposes it. The single pendulum only: its upright is q = pi.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from policies.runtime import load_policy
from sim.env import SwingUpEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="zoo:NAME or an artifact path (a single-pendulum policy)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=float, required=True, help="window start, s")
    parser.add_argument("--duration", type=float, required=True, help="window length, s")
    parser.add_argument("--action", type=float, required=True, help="action in [-1, 1] held over the window")
    args = parser.parse_args()
    policy = load_policy(args.policy)
    if policy.robot != "pendulum":
        parser.error(f"{args.policy} controls the {policy.robot}; this replays single-pendulum episodes")
    env = SwingUpEnv(policy.robot, **policy.meta["env"])
    rows = {}
    for override in (False, True):
        obs, _ = env.reset(seed=args.seed)
        deviation = 0.0
        done = False
        while not done:
            t = env.plant.time
            inside = args.start - 1e-9 <= t < args.start + args.duration - 1e-9
            action = np.array([args.action]) if override and inside else policy.act(obs)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if env.plant.time > args.start:
                # Upright is pi + 2 pi k: a swing-up either way ends at one of them.
                deviation = max(deviation, abs(math.remainder(env.plant.state()[0] - math.pi, 2 * math.pi)))
        name = "with_override" if override else "as_trained"
        rows[name] = {"success": bool(info["score"]["success"]), "max_deviation_rad": deviation}
    print(json.dumps({**vars(args), **rows}, indent=2))


if __name__ == "__main__":
    main()
