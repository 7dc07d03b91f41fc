"""The `s2r` command line: argument parsing and dispatch only."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import sys
from pathlib import Path


def _json(obj) -> str:
    """JSON with infinities as null (strict JSON has no Infinity)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), indent=2)


def cmd_score(args: argparse.Namespace) -> int:
    from sim.robots import get_robot
    from sim.tasks import realaigym

    traj = realaigym.load_trajectory_csv(args.trajectory)
    lengths = get_robot(args.robot).load_params("model_1.1").l
    if len(lengths) != traj.U.shape[1]:
        raise ValueError(f"{args.trajectory} has {traj.U.shape[1]} joint(s); the {args.robot} has {len(lengths)}")
    print(_json(realaigym.score(traj, args.version, args.stage, lengths)))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from policies import make_controller
    from sim.env import SwingUpEnv
    from sim.tasks import realaigym

    controller = make_controller(args.controller, args.robot)
    rate = args.rate or getattr(controller, "control_rate_hz", 100.0)
    env = SwingUpEnv(
        args.robot,
        params=args.params,
        control_rate_hz=rate,
        imperfections=args.imperfections,
        randomization=args.randomization,
        action_history=0,
    )
    obs, info = env.reset(seed=args.seed)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(controller.act(obs))
        done = terminated or truncated
    if args.out:
        realaigym.write_trajectory_csv(args.out, realaigym.Trajectory(*env.plant.trajectory()))
    result = {"robot": args.robot, "controller": args.controller, "control_rate_hz": rate, **info}
    print(_json(result))
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from policies import make_controller
    from sim import robustness

    factory = functools.partial(make_controller, args.controller, args.robot)
    rate = args.rate or getattr(factory(), "control_rate_hz", 100.0)
    result = robustness.run(factory, args.robot, control_rate_hz=rate, workers=args.workers)
    result = {"robot": args.robot, "controller": args.controller, "control_rate_hz": rate, **result}
    rows = [(c, result["criteria"][c]["score"]) for c in robustness.CRITERIA]
    width = max(len(c) for c, _ in rows)
    for c, s in rows:
        print(f"{c:<{width}}  {s:.3f}", file=sys.stderr)
    print(f"{'robustness':<{width}}  {result['score']:.3f}  ({result['wall_time_s']:.0f} s)", file=sys.stderr)
    text = _json(result)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2r", description="Sim-to-real control stack.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("score", help="RealAIGym score of a trajectory CSV")
    p.add_argument("trajectory", type=Path, help="RealAIGym trajectory CSV (time, pos_meas*, vel_meas*, tau_con*)")
    p.add_argument("--robot", choices=["pendubot", "acrobot", "pendulum"], default="pendubot")
    p.add_argument("--version", choices=["v1", "v2", "v3"], default="v2")
    p.add_argument("--stage", choices=["sim", "real"], default="sim", help="v2 normalisation")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("rollout", help="run one swing-up episode in simulation and score it")
    p.add_argument("robot", choices=["pendulum", "pendubot", "acrobot", "double_pendulum"])
    p.add_argument("--controller", default="baseline")
    p.add_argument("--params", default="model_1.1", help="parameter set name or YAML path")
    p.add_argument("--rate", type=float, help="control rate, Hz (default: the controller's)")
    p.add_argument("--imperfections", action="store_true", help="turn the default imperfections on")
    p.add_argument("--randomization", help="domain randomisation file or shipped name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the trajectory as RealAIGym CSV")
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser("robustness", help="RealAIGym v2 robustness benchmark of a controller")
    p.add_argument("controller", help="controller name, e.g. baseline")
    p.add_argument("--robot", choices=["pendubot", "acrobot"], default="pendubot")
    p.add_argument("--rate", type=float, help="control rate, Hz (default: the controller's)")
    p.add_argument("--workers", type=int, help="processes (default: all cores)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.set_defaults(func=cmd_robustness)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"s2r {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
