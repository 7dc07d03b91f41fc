"""Which imperfection costs a policy its success: seeded episodes with none, each alone, all but each, and all.

Model 1.0 (or --params) with the policy's training randomisation and friction
compensation; each imperfection at its default value (`Imperfections.defaults()`),
the others off; then all of them but one, since imperfections a policy
survives one at a time can still defeat it together. The same episode seeds
for every condition. `baseline` (the
pendubot's energy-shaping swing-up and LQR, no randomisation) shows what a
classical controller that swings up again after a fall makes of each.
Each condition also counts how its episodes end: up at the end, not up, or at
which joint's position or velocity stop (the hardware's envelope).

    python bench/imperfection_breakdown.py zoo:pendubot [--params model_1.1] [--episodes 30] [--seed 1000]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from policies import make_controller
from policies.evaluate import run_episode, summarise
from policies.runtime import load_policy
from sim.env import RobotEnv
from sim.imperfections import Imperfections
from sim.robots import POSITION_LIMIT, VELOCITY_LIMIT


def conditions() -> dict[str, dict | bool]:
    defaults = Imperfections.defaults()
    off = dataclasses.asdict(Imperfections())
    # Pulse shape fields only matter with pulses on; they keep their defaults.
    switches = [k for k in off if k not in ("pulse_amplitude", "pulse_width_s")]
    none = {k: off[k] for k in switches}
    result: dict[str, dict | bool] = {"none": none}
    for key in switches:
        result[f"only {key}"] = {**none, key: getattr(defaults, key)}
    for key in switches:
        result[f"all but {key}"] = {**{k: getattr(defaults, k) for k in switches}, key: off[key]}
    result["all (defaults)"] = True
    return result


def ending(env: RobotEnv, info: dict) -> str:
    """How an episode ended: "up" (a success, also when a stop came after the last 1% of t_final
    the score allows), "not up" or "<position|velocity> stop: <joints>"."""
    if info["success"] or "failure" not in info:
        return "up" if info["success"] else "not up"
    x = env.plant.state()
    for kind, values, limit in (
        ("position", x[: env.task.n], POSITION_LIMIT),
        ("velocity", x[env.task.n :], VELOCITY_LIMIT),
    ):
        joints = [j for j, v in zip(env.task.robot.joints, values, strict=True) if abs(v) > limit]
        if joints:
            return f"{kind} stop: {', '.join(joints)}"
    raise AssertionError(f"terminated inside the envelope: {info['failure']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="zoo:NAME, an artifact path or baseline")
    parser.add_argument("--robot", default="pendubot", help="the robot of `baseline`")
    parser.add_argument("--params", default="model_1.0", help="parameter set name or YAML path")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1000, help="first episode's seed")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.policy == "baseline":
        policy, robot = make_controller("baseline", args.robot), args.robot
        base = {"control_rate_hz": policy.control_rate_hz, "action_history": policy.action_history}
    else:
        policy = load_policy(args.policy)
        base, robot = policy.meta["env"], policy.robot
    rows = {}
    for name, imperfections in conditions().items():
        env = RobotEnv(robot, **{**base, "params": args.params, "imperfections": imperfections})
        episodes, ends = [], {}
        for seed in range(args.seed, args.seed + args.episodes):
            if hasattr(policy, "reset"):
                policy.reset()
            info = run_episode(policy.act, env, seed)
            episodes.append({k: float(v) for k, v in info["metrics"].items()})
            end = ending(env, info)
            ends[end] = ends.get(end, 0) + 1
        summary = summarise(episodes)
        rows[name] = {"success": summary["success"], "v2": summary["score"], "ends": dict(sorted(ends.items()))}
        print(
            f"{name:<28} success {summary['success']['mean']:.2f} +- {summary['success']['ci95']:.2f}"
            f"   v2 {summary['score']['mean']:.3f}   {rows[name]['ends']}",
            file=sys.stderr,
        )
    out = args.out or Path(__file__).parent / "results" / f"imperfections_{args.policy.replace(':', '_')}.json"
    result = {"policy": args.policy, "params": args.params, "episodes": args.episodes, "first_seed": args.seed}
    out.write_text(json.dumps({**result, "conditions": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
