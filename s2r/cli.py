"""The `s2r` command line: argument parsing and dispatch only."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from s2r import strict_json


def cmd_score(args: argparse.Namespace) -> int:
    from sim.robots import get_robot
    from sim.tasks import realaigym

    traj = realaigym.load_trajectory_csv(args.trajectory)
    lengths = get_robot(args.robot).load_params("model_1.1").l
    if len(lengths) != traj.U.shape[1]:
        raise ValueError(f"{args.trajectory} has {traj.U.shape[1]} joint(s); the {args.robot} has {len(lengths)}")
    print(strict_json.dumps(realaigym.score(traj, args.version, args.stage, lengths)))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from policies import make_controller
    from policies.evaluate import run_episode
    from sim.env import SwingUpEnv
    from sim.tasks import realaigym

    controller = make_controller(args.controller, args.robot)
    rate = args.rate or controller.control_rate_hz
    env = SwingUpEnv(
        args.robot,
        params=args.params,
        control_rate_hz=rate,
        imperfections=args.imperfections,
        randomization=args.randomization,
        action_history=controller.action_history,
        observe_winding=controller.observe_winding,
        friction_compensation=controller.friction_compensation,
    )
    if hasattr(controller, "reset"):
        controller.reset()
    info = run_episode(controller.act, env, args.seed)
    if args.out:
        realaigym.write_trajectory_csv(args.out, realaigym.Trajectory(*env.plant.trajectory()))
    result = {"robot": args.robot, "controller": args.controller, "control_rate_hz": rate, **info}
    print(strict_json.dumps(result))
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from policies import make_controller
    from sim import robustness

    factory = functools.partial(make_controller, args.controller, args.robot)
    rate = factory().control_rate_hz
    result = robustness.run(factory, args.robot, workers=args.workers)
    result = {"robot": args.robot, "controller": args.controller, "control_rate_hz": rate, **result}
    rows = [(c, result["criteria"][c]["score"]) for c in robustness.CRITERIA]
    width = max(len(c) for c, _ in rows)
    for c, s in rows:
        print(f"{c:<{width}}  {s:.3f}", file=sys.stderr)
    print(f"{'robustness':<{width}}  {result['score']:.3f}  ({result['wall_time_s']:.0f} s)", file=sys.stderr)
    text = strict_json.dumps(result)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from policies.config import load_config
    from policies.train import load_run_config, train

    if args.resume and args.init:
        raise ValueError("--resume continues a run and --init starts a new one from another: give one of them")
    stopped_by: list[int] = []
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second signal: give up at once; checkpoints are saved whole or not at all
        stopped_by.append(signum)
        stop.set()
        print("s2r train: stopping after this step, saving checkpoints/last.zip (again to abort)", file=sys.stderr)

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.resume:
            cfg = load_run_config(args.resume)
            if args.steps:
                cfg = dataclasses.replace(cfg, n_timesteps=args.steps)
            run = train(cfg, args.resume, resume=True, progress_bar=not args.no_progress, stop=stop)
        else:
            if not args.robot or not (args.algo or args.config):
                raise ValueError("give ROBOT and --algo or --config FILE, or --resume RUN")
            cfg = load_config(args.robot, args.config, args.algo)
            changes = {k: v for k, v in (("n_timesteps", args.steps), ("seed", args.seed), ("n_envs", args.envs)) if v}
            if args.params:
                from sim.robots import get_robot

                get_robot(cfg.robot).load_params(args.params)  # a bad set fails before training starts
                changes["env"] = {**cfg.env, "params": str(args.params)}
            cfg = dataclasses.replace(cfg, **changes)
            run = train(
                cfg,
                args.out,
                progress_bar=not args.no_progress,
                init=args.init,
                stop=stop,
                init_checkpoint=args.init_checkpoint,
            )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(run)
    if stopped_by:
        print(f"s2r train: stopped early; continue with: s2r train --resume {run}", file=sys.stderr)
        return 128 + stopped_by[0]
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from calibration import report
    from calibration.recording import load_recording
    from calibration.sets import load_calibration, load_models
    from sim.robots import get_robot

    robot = get_robot(args.robot)
    recordings = [load_recording(path, len(robot.joints)) for path in args.logs]
    models, sources = load_models(robot, args.params or ["model_1.0"], args.delay)
    calibrations = {label: c for label in models if (c := load_calibration(sources[label]))}
    gap = None
    if args.policy:
        from policies.evaluate import score_gap
        from policies.runtime import load_policy
        from sim.tasks.realaigym import Trajectory

        # The policy in simulation: its own training conditions on the first parameter set compared.
        policy = load_policy(args.policy)
        env = {**policy.meta["env"], "params": sources[next(iter(models))]}
        runs = [Trajectory(r.T, r.X, r.command) for r in recordings]
        gap = {"policy": args.policy, "sim_env": env, **score_gap(policy.act, policy.robot, env, runs)}
    data, predictions = report.build(
        robot,
        recordings,
        models,
        sources,
        score_gap=gap,
        calibrations=calibrations,
        progress=lambda name: print(f"analysed {name}", file=sys.stderr),
    )
    html_path, json_path = report.write(args.out, data, recordings, predictions)
    for name, summary in data["summary"].items():
        print(f"{name:<24} normalised k-step error {summary['mean_normalised_kstep_error']:.4f}", file=sys.stderr)
    print(html_path)
    print(json_path)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from calibration.identify import calibrate
    from calibration.recording import load_recording
    from calibration.sets import write_param_set
    from sim.robots import get_robot

    robot = get_robot(args.robot)
    start = robot.load_params(args.params)
    recordings = [load_recording(path, len(robot.joints)) for path in args.logs]
    fit = [f.strip() for f in args.fit.split(",") if f.strip()]
    with tqdm(desc="calibrating", unit=" rollouts", disable=args.no_progress) as bar:

        def progress(evaluations: int, error: float) -> None:
            bar.update(1)
            bar.set_postfix(error=f"{error:.4f}")

        cal = calibrate(
            robot,
            start,
            recordings,
            fit,
            horizon_s=args.horizon,
            stride_s=args.stride,
            max_iters=args.max_iters,
            progress=progress,
        )
    write_param_set(cal, args.out)
    for e in cal.estimates:
        flag = "" if e.identified else f"  <- {e.note}"
        print(f"{e.name:<6} {e.start:12.6g} -> {e.value:12.6g} +- {e.ci95:.3g}{flag}", file=sys.stderr)
    print(
        f"normalised k-step error on the fitted windows {cal.error_before:.4f} -> {cal.error_after:.4f} "
        f"({cal.evaluations} rollout batches, {cal.wall_s:.1f} s)",
        file=sys.stderr,
    )
    print(args.out)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from policies.export import export

    out = args.out or args.run / "policy"
    print(export(args.run, out, args.checkpoint))
    return 0


def _eval_target(target: str):
    """(act, robot, env options) for a run directory or a policy artifact."""
    if Path(target).is_dir():
        from policies.train import RunPolicy

        policy = RunPolicy(Path(target))
        return policy.act, policy.config.robot, dict(policy.config.env)
    from policies.runtime import load_policy

    policy = load_policy(target)
    return policy.act, policy.robot, dict(policy.meta["env"])


def cmd_eval(args: argparse.Namespace) -> int:
    from policies.evaluate import METRICS, SIM_CONDITIONS, run_episodes, summarise

    act, robot, env = _eval_target(args.target)
    if args.sim_conditions:
        env.update(SIM_CONDITIONS)
    if args.params:
        env["params"] = args.params
    if args.imperfections is not None:
        env["imperfections"] = args.imperfections == "on"
    if args.randomization is not None:
        env["randomization"] = None if args.randomization == "none" else args.randomization
    if args.intensity is not None:
        env["randomization_intensity"] = args.intensity
    if args.friction_compensation is not None:
        env["friction_compensation"] = args.friction_compensation == "on"
    episodes = run_episodes(act, robot, env, args.episodes, seed=args.seed)
    summary = summarise(episodes)
    for key in METRICS:
        m = summary[key]
        if m["n"] == 0:  # swingup_time, which only successful episodes have
            print(f"{key:<16} {'-':>10}            (no successful episode)", file=sys.stderr)
            continue
        print(f"{key:<16} {m['mean']:10.4f} +- {m['ci95']:.4f}  (n={m['n']})", file=sys.stderr)
    result = {
        "target": args.target,
        "robot": robot,
        "episodes": args.episodes,
        "seed": args.seed,
        "env": env,
        "metrics": summary,
    }
    text = strict_json.dumps(result)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def _deploy_options(args: argparse.Namespace, policy):
    from hardware.deploy import DeployOptions
    from hardware.safety import SafetyConfig

    meta = getattr(policy, "meta", None)
    policy_record = {"name": args.policy, "sha256": meta["graph"]["sha256"] if meta else "none (classical controller)"}
    return DeployOptions(
        robot=args.robot,
        rate_hz=args.rate or policy.control_rate_hz,
        duration_s=args.duration,
        device=args.device,
        mode="lockstep" if getattr(args, "lockstep", False) else "realtime",
        params=args.params,
        imperfections=not args.no_imperfections,
        seed=args.seed,
        action_history=policy.action_history,
        observe_winding=policy.observe_winding,
        friction_compensation=policy.friction_compensation,
        safety=SafetyConfig(max_slew_per_s=args.max_slew),
        rt_priority=args.rt_priority,
        log_path=args.log,
        metadata={"policy": policy_record},
        domain_id=getattr(args, "domain_id", 0),
        loopback=getattr(args, "loopback", False),
        ros2_backend=getattr(args, "ros2_backend", "auto"),
    )


def _stop_on_signals() -> Callable[[], bool]:
    """Ctrl-C and a supervisor's SIGTERM ask the loop to stop at its next tick (then the safe state, the
    log closed), also when the shell that started us made the process ignore SIGINT. Returns the loop's
    should_stop."""
    # A flag, not an exception: an exception raised wherever the main thread happens to be can land
    # inside a lock (the log queue's, say) and leave it held, hanging the way into the safe state.
    stop = threading.Event()

    def request(signum, frame) -> None:
        if stop.is_set():
            print("s2r: already stopping (safe state, closing the log); SIGKILL skips both", file=sys.stderr)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request)
    return stop.is_set


def _print_loop(result: dict) -> None:
    loop = result["loop"]
    rows = [("period", loop["period_us"]), ("jitter", loop["jitter_us"]), ("compute", loop["compute_us"])]
    print(f"{'us':<10} {'p50':>9} {'p99':>9} {'max':>9}", file=sys.stderr)
    for name, v in rows:
        print(f"{name:<10} {v['p50']:9.1f} {v['p99']:9.1f} {v['max']:9.1f}", file=sys.stderr)
    print(
        f"ticks {loop['ticks']}, missed deadlines {loop['missed_deadlines']}, faults {len(loop['faults'])}",
        file=sys.stderr,
    )
    for fault in loop["faults"][:10]:
        print(f"fault at tick {fault['tick']}: {fault['reason']}", file=sys.stderr)
    if len(loop["faults"]) > 10:
        print(f"... and {len(loop['faults']) - 10} more faults (all in the JSON)", file=sys.stderr)
    if result["link"]:
        print("link " + ", ".join(f"{k} {v:g}" for k, v in result["link"].items()), file=sys.stderr)
    if result["score"] is not None:
        print(f"v2 score {result['score']['score']:.3f}, success {bool(result['score']['success'])}", file=sys.stderr)
    log = result["log"]
    if log is not None:
        why = log["error"] or f"{log['dropped']} ticks dropped"
        state = "complete" if log["complete"] else f"INCOMPLETE: {why}"
        print(f"log {log['path']}: {log['ticks']} ticks, {state}", file=sys.stderr)


def cmd_deploy(args: argparse.Namespace) -> int:
    from hardware.deploy import deploy
    from policies import make_controller

    policy = make_controller(args.policy, args.robot)
    options = _deploy_options(args, policy)
    result = deploy(policy, options, should_stop=_stop_on_signals())
    _print_loop(result)
    summary = {"robot": args.robot, "policy": args.policy, "device": args.device, "mode": options.mode}
    print(strict_json.dumps({**summary, **result}))
    # A run that ended in the safe state is not a success, whatever a script around it does next.
    return 1 if result["loop"]["faults"] else 0


def _fault_plan(args: argparse.Namespace):
    from hardware.emulator import FaultPlan

    plan = FaultPlan.from_yaml(args.faults) if args.faults else FaultPlan()
    flags = {k: getattr(args, k) for k in ("latency_ms", "jitter_ms", "drop", "corrupt", "bitflip")}
    flags = {k: v for k, v in flags.items() if v is not None}
    if flags:
        data = {k: v for k, v in dataclasses.asdict(plan).items() if k != "events"}
        data["events"] = [dataclasses.asdict(e) for e in plan.events]
        plan = FaultPlan.from_dict({**data, **flags}, "command line")
    return plan


def cmd_emulate(args: argparse.Namespace) -> int:
    from hardware.emulator import Emulator

    common = {"params": args.params, "imperfections": not args.no_imperfections, "seed": args.seed, "start": args.start}
    if args.transport == "ros2":
        from hardware.ros2_emulator import Ros2Emulator

        if args.faults or args.link or args.replug:
            raise ValueError("--faults, --link and --replug are for the serial transport")
        emulator = Ros2Emulator(
            args.robot, domain_id=args.domain_id, loopback=args.loopback, backend=args.ros2_backend, **common
        )
    else:
        emulator = Emulator(args.robot, faults=_fault_plan(args), link=args.link, replug_s=args.replug, **common)
    print(emulator.open(), flush=True)
    try:
        report = emulator.run(duration_s=args.duration, should_stop=_stop_on_signals())
    finally:
        emulator.close()
    summary = {k: len(v) if isinstance(v, list) and k != "events" else v for k, v in report.items()}
    print(strict_json.dumps(summary), file=sys.stderr)
    return 0


def cmd_hil(args: argparse.Namespace) -> int:
    from hardware.hil import run_hil
    from policies import make_controller

    if args.device == "serial" and not args.emulate:
        raise ValueError("--device serial needs --emulate (the emulator's port) or a port: --device serial:PORT")
    if not args.device.startswith("serial"):
        raise ValueError(f"hil runs over serial: --device serial[:PORT], not {args.device!r}")
    policy = make_controller(args.policy, args.robot)
    options = _deploy_options(args, policy)
    faults = _fault_plan(args) if args.emulate else None
    result = run_hil(policy, options, faults, start=args.start, should_stop=_stop_on_signals())
    _print_loop(result)
    print(f"\n{'check':<22} {'':<5} detail", file=sys.stderr)
    for c in result["checks"]:
        print(f"{c['name']:<22} {'PASS' if c['ok'] else 'FAIL':<5} {c['detail']}", file=sys.stderr)
    print(f"verdict: {result['verdict'].upper()}", file=sys.stderr)
    text = strict_json.dumps({"robot": args.robot, "policy": args.policy, "device": args.device, **result})
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0 if result["verdict"] == "pass" else 1


def cmd_log_info(args: argparse.Namespace) -> int:
    from hardware.log import summarise_log

    print(strict_json.dumps(summarise_log(args.file)))
    return 0


def cmd_log_export(args: argparse.Namespace) -> int:
    from hardware.log import export_realaigym

    out = args.out or args.file.with_suffix(".csv")
    export_realaigym(args.file, out)
    print(out)
    return 0


ROBOTS = ["pendulum", "pendubot", "acrobot", "double_pendulum"]


def _number(kind: type, low: float, high: float = math.inf, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a `kind` (int or float) in [low, high] ((low, high] with `low_open`)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or not (low < value if low_open else low <= value) or not value <= high:
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"expected a value in {bounds}, got {text}")
        return value

    parse.__name__ = kind.__name__  # what argparse names in its messages
    return parse


SEED = _number(int, 0, 2**32 - 1)
RATE_HZ = _number(float, 0, 1000, low_open=True)
SECONDS = _number(float, 0, low_open=True)
PROBABILITY = _number(float, 0, 1)
MILLISECONDS = _number(float, 0, 1000)


def _add_loop_arguments(p: argparse.ArgumentParser, robot: bool = True) -> None:
    if robot:
        p.add_argument("--robot", required=True, choices=ROBOTS)
    p.add_argument("--policy", required=True, help="zoo:NAME, an artifact path or baseline")
    p.add_argument("--rate", type=RATE_HZ, help="loop rate, Hz (default: the policy's)")
    p.add_argument("--duration", type=SECONDS, default=10.0, help="seconds")
    p.add_argument("--params", default="model_1.0", help="robot parameter set (default: the real robot's)")
    p.add_argument("--no-imperfections", action="store_true", help="simulated plant without noise, delay, lag, pushes")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument(
        "--max-slew", type=_number(float, 0, low_open=True), default=600.0, help="command slew limit, units per second"
    )
    p.add_argument("--rt-priority", type=_number(int, 1, 99), help="SCHED_FIFO priority (needs privileges; fails soft)")
    p.add_argument("--log", type=Path, help="write an MCAP log (ROS 2 schemas) here")


def _add_ros2_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--domain-id",
        type=_number(int, 0, 232),
        default=os.environ.get("ROS_DOMAIN_ID", "0"),  # a string: argparse checks it like a typed value
        help="ROS 2 domain id (ros2; default: ROS_DOMAIN_ID, else 0)",
    )
    p.add_argument("--loopback", action="store_true", help="keep DDS on 127.0.0.1 (ros2; tests, one machine)")
    p.add_argument(
        "--ros2-backend",
        choices=["auto", "rclpy", "cyclonedds"],
        default="auto",
        help="ROS 2 transport (ros2): rclpy where ROS 2 is installed (auto), or Cyclone DDS directly",
    )


def _add_fault_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--faults", type=Path, help="fault injection YAML (docs/protocol.md); flags below override it")
    p.add_argument("--latency-ms", type=MILLISECONDS, help="added to every frame the device sends, ms")
    p.add_argument("--jitter-ms", type=MILLISECONDS, help="uniform extra delay up to this, ms")
    p.add_argument("--drop", type=PROBABILITY, help="probability a frame is lost, each direction")
    p.add_argument("--corrupt", type=PROBABILITY, help="probability a sent frame has a corrupted byte")
    p.add_argument("--bitflip", type=PROBABILITY, help="probability a sent frame has a flipped bit")


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
    p.add_argument("--controller", default="baseline", help="baseline, zoo:NAME or an artifact path")
    p.add_argument("--params", default="model_1.1", help="parameter set name or YAML path")
    p.add_argument("--rate", type=RATE_HZ, help="control rate, Hz (default: the controller's)")
    p.add_argument("--imperfections", action="store_true", help="turn the default imperfections on")
    p.add_argument("--randomization", help="domain randomisation file or shipped name")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", type=Path, help="write the trajectory as RealAIGym CSV")
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser("train", help="train a policy with stable-baselines3")
    p.add_argument("robot", nargs="?", choices=["pendulum", "pendubot", "acrobot", "double_pendulum"])
    p.add_argument("--algo", choices=["ppo", "sac", "td3"])
    p.add_argument("--config", type=Path, help="training YAML (default: policies/configs/ROBOT/ALGO.yaml)")
    p.add_argument("--steps", type=_number(int, 1, 10**10), help="total env steps (overrides the config's n_timesteps)")
    p.add_argument("--seed", type=SEED)
    p.add_argument("--envs", type=_number(int, 1, 256), help="vectorised envs (overrides n_envs)")
    p.add_argument("--out", type=Path, help="run directory (default: runs/ROBOT-ALGO-TIME)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this directory")
    p.add_argument("--init", type=Path, metavar="RUN", help="start a new run from RUN's best checkpoint (fine-tune)")
    p.add_argument(
        "--init-checkpoint",
        choices=("best", "last"),
        default="best",
        help="with --init: which of RUN's checkpoints (last, for a stage whose evaluation cannot rank it)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--params", help="train on this parameter set (name or YAML path, e.g. a calibrated one)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a run to a deployable ONNX + JSON artifact")
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--out", type=Path, help="artifact path without suffix (default: RUN/policy)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("eval", help="task metrics of a run or artifact over seeded episodes (mean, 95% CI)")
    p.add_argument("target", help="run directory, artifact path or zoo:NAME")
    p.add_argument("--episodes", type=_number(int, 1, 100_000), default=100)
    p.add_argument("--seed", type=SEED, default=0, help="first episode's seed")
    p.add_argument("--sim-conditions", action="store_true", help="competition simulation: model 1.1, nothing else")
    p.add_argument("--params", help="parameter set name or YAML path")
    p.add_argument("--imperfections", choices=["on", "off"])
    p.add_argument("--randomization", help="randomisation file or shipped name; 'none' turns it off")
    p.add_argument("--intensity", type=PROBABILITY, help="randomisation intensity in [0, 1]")
    p.add_argument(
        "--friction-compensation",
        choices=["on", "off"],
        help="the passive joints' motors cancel the friction they measure (default: as trained)",
    )
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("deploy", help="run a policy on a device with the real-time loop")
    _add_loop_arguments(p)
    p.add_argument(
        "--device", default="sim", help="sim (the simulated robot), serial:PORT or ros2 (ROS 2 topics) (default: sim)"
    )
    _add_ros2_arguments(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--realtime", action="store_true", help="paced by the wall clock (default)")
    mode.add_argument(
        "--lockstep", action="store_true", help="simulated device: one control period per tick, as fast as possible"
    )
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("emulate", help="a device emulator speaking the s2r serial protocol on a pseudo-terminal")
    p.add_argument("robot", choices=ROBOTS)
    p.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal, print its path (the default)")
    p.add_argument(
        "--transport",
        choices=["serial", "ros2"],
        default="serial",
        help="the s2r serial protocol on a pty, or ROS 2 topics",
    )
    _add_ros2_arguments(p)
    p.add_argument("--link", type=Path, help="also make this symlink to the port (stable across replugs)")
    p.add_argument("--replug", type=SECONDS, metavar="S", help="after an injected unplug, a new port after S seconds")
    p.add_argument("--params", default="model_1.0", help="plant parameter set (default: the real robot's)")
    p.add_argument("--no-imperfections", action="store_true", help="plant without noise, delay, lag, pushes")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--duration", type=SECONDS, help="seconds (default: until Ctrl-C)")
    p.add_argument("--start", choices=["down", "up"], default="down", help="plant hanging (default) or upright")
    _add_fault_arguments(p)
    p.set_defaults(func=cmd_emulate)

    p = sub.add_parser("hil", help="hardware-in-the-loop: the loop over serial against the emulator or a device")
    p.add_argument("robot", choices=ROBOTS)
    _add_loop_arguments(p, robot=False)
    p.add_argument("--device", default="serial", help="serial (with --emulate) or serial:PORT (a real device)")
    p.add_argument("--emulate", action="store_true", help="start the device emulator and run against it")
    p.add_argument("--start", choices=["down", "up"], default="down", help="emulated plant hanging or upright")
    _add_fault_arguments(p)
    p.add_argument("--out", type=Path, help="also write the JSON verdict here")
    p.set_defaults(func=cmd_hil)

    p = sub.add_parser("log", help="inspect or convert a run log (MCAP)")
    log_sub = p.add_subparsers(dest="log_command", required=True)
    q = log_sub.add_parser("info", help="summarise a log")
    q.add_argument("file", type=Path)
    q.set_defaults(func=cmd_log_info)
    q = log_sub.add_parser("export", help="convert a log")
    q.add_argument("file", type=Path)
    q.add_argument("--format", choices=["realaigym"], default="realaigym")
    q.add_argument("--out", type=Path, help="output file (default: FILE with .csv)")
    q.set_defaults(func=cmd_log_export)

    p = sub.add_parser("robustness", help="RealAIGym v2 robustness benchmark of a controller")
    p.add_argument("controller", help="baseline, zoo:NAME or an artifact path (runs at its own rate)")
    p.add_argument("--robot", choices=["pendubot", "acrobot"], default="pendubot")
    p.add_argument("--workers", type=_number(int, 1, 256), help="processes (default: all cores)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("report", help="sim2real gap report of recorded runs (HTML + JSON)")
    p.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="s2r MCAP logs or RealAIGym trajectory CSVs")
    p.add_argument("--robot", required=True, choices=ROBOTS)
    p.add_argument(
        "--params",
        action="append",
        help="parameter set to compare (name or YAML path); repeat for several (default: model_1.0)",
    )
    p.add_argument(
        "--delay",
        type=_number(float, 0, 1),
        help="torque delay for every set, s (default: a calibrated set's own, else 0)",
    )
    p.add_argument("--policy", help="the policy that drove the runs (artifact or zoo:NAME): adds the task-score gap")
    p.add_argument("--out", type=Path, required=True, help="directory for report.html and report.json")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("calibrate", help="fit model parameters and delay to recorded runs (mujoco.sysid)")
    p.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="s2r MCAP logs or RealAIGym trajectory CSVs")
    p.add_argument("--robot", required=True, choices=ROBOTS)
    p.add_argument("--fit", required=True, help="comma-separated: m1,m2,r1,r2,I1,I2,b1,b2,cf1,cf2,Ir,km,delay")
    p.add_argument("--params", default="model_1.0", help="starting parameter set (name or YAML path)")
    p.add_argument("--horizon", type=SECONDS, default=0.3, help="length of each fitted prediction window, s")
    p.add_argument("--stride", type=SECONDS, default=0.15, help="time between window starts, s")
    p.add_argument("--max-iters", type=_number(int, 1, 10_000), default=30, help="solver iterations")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", type=Path, required=True, help="parameter set YAML to write")
    p.set_defaults(func=cmd_calibrate)
    return parser


def _one_line(exc: BaseException) -> str:
    """An error as one line (libraries such as onnxruntime write theirs over several)."""
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from hardware.device import DeviceError

    try:
        return args.func(args)
    except (ValueError, OSError, ImportError) as exc:
        # ImportError: an optional part (training, calibration) that is not installed; the message says which.
        print(f"s2r {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except DeviceError as exc:  # the device failed before the loop ran: a failed run, not a usage error
        print(f"s2r {args.command}: device error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
