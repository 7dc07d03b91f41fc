"""Which imperfection costs a policy its success: seeded episodes with none, each alone, and all.

Model 1.0 with the policy's training randomisation; each imperfection at its
default value (`Imperfections.defaults()`), the others off. The same episode
seeds for every condition.

    python bench/imperfection_breakdown.py zoo:pendubot [--episodes 30] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from policies.evaluate import run_episodes, summarise
from policies.runtime import load_policy
from sim.imperfections import Imperfections


def conditions() -> dict[str, dict | bool]:
    defaults = Imperfections.defaults()
    off = dataclasses.asdict(Imperfections())
    # Pulse shape fields only matter with pulses on; they keep their defaults.
    switches = [k for k in off if k not in ("pulse_amplitude", "pulse_width_s")]
    none = {k: off[k] for k in switches}
    result: dict[str, dict | bool] = {"none": none}
    for key in switches:
        result[f"only {key}"] = {**none, key: getattr(defaults, key)}
    result["all (defaults)"] = True
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="zoo:NAME or an artifact path")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    policy = load_policy(args.policy)
    rows = {}
    for name, imperfections in conditions().items():
        env = {**policy.meta["env"], "params": "model_1.0", "imperfections": imperfections}
        summary = summarise(run_episodes(policy.act, policy.robot, env, args.episodes, seed=1000))
        rows[name] = {"success": summary["success"], "v2": summary["score"]}
        print(
            f"{name:<28} success {summary['success']['mean']:.2f} +- {summary['success']['ci95']:.2f}"
            f"   v2 {summary['score']['mean']:.3f}",
            file=sys.stderr,
        )
    out = args.out or Path(__file__).parent / "results" / f"imperfections_{args.policy.replace(':', '_')}.json"
    out.write_text(json.dumps({"policy": args.policy, "episodes": args.episodes, "conditions": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
