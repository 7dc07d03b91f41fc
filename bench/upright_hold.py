"""Does a controller hold the top? Seeded upright starts, per control rate and condition.

Every episode starts near upright (`sim.tasks.swingup.upright_start`: +-0.2 rad,
+-1 rad/s) and counts as held when the tip stays above 0.9 of the reach for the
whole 10 s without leaving the safety envelope; the shortest and longest time up
are reported beside it. Conditions: model 1.1 with nothing else (the
competition's simulation), model 1.0 (the real robot's friction and rotor
inertia), model 1.0 with the default imperfections. The passive joint's
friction compensation is each controller's own unless --friction-compensation
says otherwise. `lqr` is
the pendubot baseline's LQR alone (no swing-up), the reference for what state
feedback at a given rate can hold; policies run at each rate whatever rate
they were trained at, and on the pendubot their actions near upright are
compared with the LQR's. A training run directory stands for its last
checkpoint (through SB3, so it needs the train extra).

    python bench/upright_hold.py lqr zoo:pendubot [RUN_DIR] [--robot pendubot] [--rates 100 250 500]
        [--episodes 20] [--friction-compensation on|off] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from policies import make_controller
from policies.baselines import PendubotEnergyLQR
from sim.env import RobotEnv
from sim.tasks import swingup

CONDITIONS = {
    "model 1.1": {"params": "model_1.1", "imperfections": False},
    "model 1.0": {"params": "model_1.0", "imperfections": False},
    "model 1.0 + default imperfections": {"params": "model_1.0", "imperfections": True},
}


def hold(controller, robot: str, rate: float, env_kwargs: dict, episodes: int) -> tuple[float, list[float]]:
    """Fraction of `episodes` seeded upright starts held for the whole episode, and the time
    up (s) in each."""
    env_kwargs = {**controller.conditions, **env_kwargs}
    env = RobotEnv(
        robot,
        control_rate_hz=rate,
        action_history=controller.action_history,
        upright_starts=1.0,
        **env_kwargs,
    )
    held, uptimes = 0, []
    for seed in range(episodes):
        if hasattr(controller, "reset"):
            controller.reset()
        obs, _ = env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(controller.act(obs))
        held += not terminated and info["metrics"]["uptime"] >= 0.99 * swingup.T_FINAL
        uptimes.append(float(info["metrics"]["uptime"]))
    return held / episodes, uptimes


def lqr_agreement(controller, states: int = 500) -> dict[str, float]:
    """How a pendubot controller's actions near upright (+-0.1 rad, +-0.5 rad/s, past action
    +-0.3) compare with the LQR's: their correlation and the ratio of their standard deviations."""
    lqr = PendubotEnergyLQR(catch_cost=math.inf)
    rng = np.random.default_rng(0)
    ours, its = [], []
    for _ in range(states):
        q = np.array([math.pi, 0.0]) + rng.uniform(-0.1, 0.1, 2)
        past = rng.uniform(-0.3, 0.3, controller.action_history)
        winding = controller.conditions.get("observe_winding", False)
        obs = swingup.observation(q, rng.uniform(-0.5, 0.5, 2), past, winding)
        for c in (controller, lqr):
            if hasattr(c, "reset"):
                c.reset()
        ours.append(float(controller.act(obs)[0]))
        its.append(float(lqr.act(obs)[0]))
    return {
        "correlation": float(np.corrcoef(ours, its)[0, 1]),
        "spread_ratio": float(np.std(ours) / np.std(its)),
        "lqr_saturated": float(np.mean(np.abs(its) >= 0.99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("controllers", nargs="+", help="lqr, baseline, zoo:NAME, an artifact path or a run directory")
    parser.add_argument("--robot", default="pendubot")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 250.0, 500.0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--friction-compensation", choices=["on", "off"], help="default: each controller's own")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if "lqr" in args.controllers and args.robot != "pendubot":
        parser.error("lqr is the pendubot baseline's; it does not control the " + args.robot)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    uptime_ranges: dict[str, dict[str, dict[str, list[float]]]] = {}
    agreement: dict[str, dict[str, float]] = {}
    for name in args.controllers:
        if name == "lqr":
            controller = PendubotEnergyLQR(catch_cost=math.inf)  # never hands over to the swing-up
        elif Path(name).is_dir():
            from policies.train import RunPolicy

            controller = RunPolicy(Path(name), "last")
        else:
            controller = make_controller(name, args.robot)
        rows[name], uptime_ranges[name] = {}, {}
        for condition, env_kwargs in CONDITIONS.items():
            if args.friction_compensation is not None:
                env_kwargs = {**env_kwargs, "friction_compensation": args.friction_compensation == "on"}
            rows[name][condition], uptime_ranges[name][condition] = {}, {}
            for rate in args.rates:
                held, uptimes = hold(controller, args.robot, rate, env_kwargs, args.episodes)
                rows[name][condition][f"{rate:g} Hz"] = held
                uptime_ranges[name][condition][f"{rate:g} Hz"] = [min(uptimes), max(uptimes)]
                up = f"up {min(uptimes):.1f}-{max(uptimes):.1f} s"
                print(f"{name:<16} {condition:<36} {rate:5g} Hz  held {held:.2f}, {up}", file=sys.stderr, flush=True)
        if args.robot == "pendubot" and name != "lqr":
            agreement[name] = lqr_agreement(controller)
            print(f"{name:<16} near upright, against the LQR: {agreement[name]}", file=sys.stderr, flush=True)
    result = {
        "robot": args.robot,
        "episodes": args.episodes,
        "friction_compensation": args.friction_compensation or "each controller's own",
        "held": rows,
        "uptime_range_s": uptime_ranges,
        "lqr_agreement": agreement,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
