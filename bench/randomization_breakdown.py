"""Which randomised parameter costs a policy its success: success against each drawn value.

Seeded episodes in the policy's own training conditions (its parameter set,
imperfections and randomisation, as `s2r eval` runs it). For each randomised
parameter: the correlation of its drawn value with success, and the success
rate in equal-count bins of the drawn values, lowest first. A parameter whose
bins run from failure to success names the corner of the randomisation the
policy has not learned.

    python bench/randomization_breakdown.py zoo:pendubot [--episodes 200] [--seed 1000] [--bins 4]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from policies.evaluate import run_episode
from policies.runtime import load_policy
from sim.env import RobotEnv


def breakdown(drawn: list[dict[str, float]], success: np.ndarray, bins: int) -> dict[str, dict]:
    """Per parameter (the keys of `drawn`): correlation with success (None when every episode
    ended alike) and success per bin of its values, sorted by the size of the correlation.
    Parameters drawn constant are left out."""
    rows = {}
    for name in drawn[0]:
        values = np.array([d[name] for d in drawn])
        if np.ptp(values) == 0.0:
            continue
        order = np.argsort(values, kind="stable")
        parts = np.array_split(order, bins)
        rows[name] = {
            "correlation": float(np.corrcoef(values, success)[0, 1]) if np.ptp(success) else None,
            "bins": [
                {"low": float(values[p].min()), "high": float(values[p].max()), "success": float(success[p].mean())}
                for p in parts
            ],
        }
    return dict(sorted(rows.items(), key=lambda item: -abs(item[1]["correlation"] or 0.0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="zoo:NAME or an artifact path")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1000, help="first episode's seed")
    parser.add_argument("--bins", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not 1 <= args.bins <= args.episodes:
        parser.error(f"--bins must be between 1 and --episodes ({args.episodes}), got {args.bins}")
    policy = load_policy(args.policy)
    env = RobotEnv(policy.robot, **policy.meta["env"])
    if env.randomization is None:
        parser.error(f"{args.policy} was trained without randomisation: nothing to break down")
    drawn, success = [], []
    for seed in range(args.seed, args.seed + args.episodes):
        if hasattr(policy, "reset"):
            policy.reset()
        # run_episode resets with the same seed, so this draws that episode's parameters.
        drawn.append(env.reset(seed=seed)[1]["randomization"])
        success.append(bool(run_episode(policy.act, env, seed)["success"]))
    rows = breakdown(drawn, np.array(success, dtype=float), args.bins)
    print(f"success {np.mean(success):.2f} over {args.episodes} episodes; by bin of each drawn value:", file=sys.stderr)
    for name, row in rows.items():
        cells = "  ".join(f"[{b['low']:.3g}, {b['high']:.3g}] {b['success']:.2f}" for b in row["bins"])
        corr = "n/a" if row["correlation"] is None else f"{row['correlation']:+.2f}"
        print(f"{name:>16}  corr {corr:>5}   {cells}", file=sys.stderr)
    out = args.out or Path(__file__).parent / "results" / f"randomization_{args.policy.replace(':', '_')}.json"
    result = {"policy": args.policy, "env": policy.meta["env"], "episodes": args.episodes, "first_seed": args.seed}
    out.write_text(json.dumps({**result, "success": float(np.mean(success)), "parameters": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
