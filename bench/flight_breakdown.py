"""Where a flight policy's tracking error comes from: its RMSE with each imperfection and the
randomisation on or off, beside the geometric baseline's in the same episodes.

    python bench/flight_breakdown.py [POLICY] [--episodes 30] [--out bench/results/flight_breakdown_NAME.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from policies.evaluate import run_episodes, summarise
from policies.geometric import GeometricController
from policies.runtime import load_policy

QUIET = {
    "position_noise_std": 0.0,
    "attitude_noise_std": 0.0,
    "velocity_noise_std": 0.0,
    "rate_noise_std": 0.0,
    "sensor_delay_s": 0.0,
    "motor_delay_s": 0.0,
    "disturbance_weight_fraction": 0.0,
}
CONDITIONS = {
    "training conditions": {},
    "no imperfections, no randomisation": {"imperfections": False, "randomization": None},
    "no imperfections": {"imperfections": False},
    "no randomisation": {"randomization": None},
    "the disturbance alone": {"imperfections": {**QUIET, "disturbance_weight_fraction": 0.05}, "randomization": None},
    "all but the disturbance": {"imperfections": {"disturbance_weight_fraction": 0.0}},
}
"""Changes to the policy's training env options; the disturbance is the default one (sigma m g / 20)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", nargs="?", default="zoo:crazyflie-hover")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    policy = load_policy(args.policy)
    base = dict(policy.meta["env"])
    rate = policy.control_rate_hz
    result = {"policy": args.policy, "episodes": args.episodes, "seed": args.seed, "conditions": {}}
    for name, change in CONDITIONS.items():
        env = {**base, **change}
        mine = summarise(run_episodes(policy.act, "crazyflie", env, args.episodes, seed=args.seed))
        baseline = GeometricController(env.get("params", "l2f"), rate)
        theirs = summarise(
            run_episodes(baseline.act, "crazyflie", {**env, "action_history": 0}, args.episodes, seed=args.seed)
        )
        row = {"env": change, "policy": mine, "baseline": theirs}
        result["conditions"][name] = row
        print(
            f"{name:<36} policy {mine['rmse_cm']['mean']:5.2f} cm ({mine['success']['mean']:.0%})   "
            f"baseline {theirs['rmse_cm']['mean']:5.2f} cm ({theirs['success']['mean']:.0%})",
            flush=True,
        )
    name = args.policy.removeprefix("zoo:").replace("/", "_").removesuffix(".json")
    out = args.out or Path(__file__).parent / "results" / f"flight_breakdown_{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
