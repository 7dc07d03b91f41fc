"""The `s2r` command line: argument parsing and dispatch only.

Every command ends with a short summary for people on stdout; `--json` prints the whole record
instead, for machines. A mistake is one line on stderr and exit code 2; a run that failed (a fault,
a device that failed, a HIL verdict of fail) exits with 1. `--debug` or S2R_DEBUG=1 shows the
traceback behind an error.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from sim import strict_json
from sim.robots import ROBOTS
from sim.tasks.flight import TASKS as FLIGHT_TASKS

QUADROTOR = "crazyflie"
"""The quadrotor: in simulation only so far (`s2r rollout --robot crazyflie`), not yet in ROBOTS."""
EXTRAS = {
    "torch": "train",
    "stable_baselines3": "train",
    "tensorboard": "train",
    "onnx": "train",
    "matplotlib": "calibrate",
    "PIL": "render",
    "imageio": "render",
}
"""Modules of the optional extras, and the extra that installs each."""


# Output -----------------------------------------------------------------------------------------


def _finish(args: argparse.Namespace, record: dict[str, Any], lines: list[str]) -> None:
    """A command's result: `lines` for people, or with --json the whole `record`; with --out (where
    the command's --out is the record's file) the record is written there too."""
    out = getattr(args, "json_out", None)
    if out is not None:
        Path(out).write_text(strict_json.dumps(record) + "\n")
        lines = [*lines, f"record written to {out}"]
    if args.json:
        print(strict_json.dumps(record))
    else:
        print("\n".join(lines))


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal: a redirected log gets no carriage returns."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def _yes(flag: float | bool) -> str:
    return "yes" if flag else "no"


def _seconds(value: float | None) -> str:
    return "never" if value is None or not math.isfinite(value) else f"{value:.2f} s"


def _score_line(score: dict[str, Any], what: str = "v2 score") -> str:
    return f"{what} {score['score']:.3f}, success {_yes(score['success'])}, up at {_seconds(score['swingup_time'])}"


# Robots -----------------------------------------------------------------------------------------


def _controller_robot(args: argparse.Namespace, controller: str) -> str:
    """The robot a command runs: --robot, else the one the controller is made for."""
    from policies import controller_robot

    made_for = controller_robot(controller, args.robot)
    if args.robot and made_for and args.robot != made_for:
        raise ValueError(f"{controller} is for the {made_for}, not the {args.robot}")
    robot = args.robot or made_for
    if robot is None:
        raise ValueError(f"give --robot: {controller} does not say which robot it is for")
    return robot


def _data_robot(args: argparse.Namespace, source: Path, commands, logged: str | None = None) -> str:
    """The robot a recording is of: the log's own, else the robots its joint commands fit (fewest
    actuated joints first); --robot must agree with it."""
    from sim.robots import robots_for

    fits = [logged] if logged else robots_for(commands)
    if args.robot:
        if args.robot not in fits:
            n = len(commands[0]) if len(commands) else 0
            what = f"a log of the {logged}" if logged else f"a recording of {n} joint(s) whose commands fit the "
            what += "" if logged else " or the ".join(fits) if fits else "no s2r robot"
            raise ValueError(f"{source} is {what}, not of the {args.robot}: check --robot")
        return args.robot
    if not fits:
        raise ValueError(f"{source}: its joint commands fit no s2r robot; give --robot")
    tied = [f for f in fits if sum(ROBOTS[f].actuated) == sum(ROBOTS[fits[0]].actuated)]
    if len(tied) > 1:
        logging.getLogger("s2r").warning(
            "%s fits the %s alike; taken as the %s (give --robot to say which)", source, " and ".join(tied), tied[0]
        )
    return fits[0]


# Commands ---------------------------------------------------------------------------------------


def cmd_score(args: argparse.Namespace) -> int:
    from sim.robots import get_robot
    from sim.tasks import realaigym

    traj = realaigym.load_trajectory_csv(args.trajectory)
    robot = _data_robot(args, args.trajectory, traj.U)
    lengths = get_robot(robot).load_params("model_1.1").l
    score = realaigym.score(traj, args.version, args.stage, lengths)
    record = {"trajectory": str(args.trajectory), "robot": robot, "version": args.version, "stage": args.stage}
    record["score"] = score
    norm = f" ({args.stage} normalisation)" if args.version == "v2" else ""
    _finish(args, record, [f"{args.trajectory} ({robot}): {_score_line(score, args.version + ' score')}{norm}"])
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from policies import make_controller
    from policies.evaluate import run_episode
    from sim.env import RobotEnv
    from sim.tasks import realaigym

    if args.robot_name:
        if args.robot and args.robot != args.robot_name:
            raise ValueError(f"two robots named: {args.robot_name} and --robot {args.robot}")
        args.robot = args.robot_name
    if args.robot == QUADROTOR:
        return _rollout_flight(args)
    if args.task:
        tasks = ", ".join(FLIGHT_TASKS)
        raise ValueError(f"--task is the {QUADROTOR}'s ({tasks}); the pendulum family's task is the swing-up")
    robot = _controller_robot(args, args.controller)
    controller = make_controller(args.controller, robot)
    rate = args.rate or controller.control_rate_hz
    env = RobotEnv(
        robot,
        params=args.params,
        control_rate_hz=rate,
        imperfections=args.imperfections,
        randomization=args.randomization,
        action_history=controller.action_history,
        **controller.conditions,
    )
    if hasattr(controller, "reset"):
        controller.reset()
    if args.video:
        from sim.render import record_episode, write_video

        env.render_mode = "rgb_array"
        frames, fps, info = record_episode(controller.act, env, args.seed)
        write_video(frames, args.video, fps)
    else:
        info = run_episode(controller.act, env, args.seed)
    lines = [f"{robot}, {args.controller} at {rate:g} Hz, seed {args.seed}: {_score_line(info['metrics'])}"]
    trajectory = realaigym.Trajectory(*env.plant.trajectory())
    if args.out:
        realaigym.write_trajectory_csv(args.out, trajectory)
        lines += [f"trajectory written to {args.out}", f"next: s2r score {args.out}"]
    if args.video:
        lines.append(f"video written to {args.video}")
    if args.plot:
        _plot(robot, trajectory, args.plot, [], f"{robot}, {args.controller}, seed {args.seed}")
        lines.append(f"plot written to {args.plot}")
    _finish(args, {"robot": robot, "controller": args.controller, "control_rate_hz": rate, **info}, lines)
    return 0


def _rollout_flight(args: argparse.Namespace) -> int:
    """`s2r rollout --robot crazyflie`: one episode of a flight task with the geometric baseline, from
    the task's evaluation start distribution, and its metrics."""
    from policies.evaluate import run_episode
    from policies.geometric import GeometricController
    from sim.env import RobotEnv

    if args.controller != "baseline":
        raise ValueError(f"the {QUADROTOR} has only its baseline controller so far, not {args.controller!r}")
    for flag in ("out", "video", "plot"):
        if getattr(args, flag):
            raise ValueError(f"--{flag} is not there for the {QUADROTOR} yet")
    task = args.task or "hover"
    rate = args.rate or 100.0
    env = RobotEnv(
        QUADROTOR,
        task,
        params=args.params,
        control_rate_hz=rate,
        imperfections=args.imperfections,
        randomization=args.randomization,
        action_history=0,
    )
    info = run_episode(GeometricController(env.params, rate).act, env, args.seed)
    m = info["metrics"]
    line = (
        f"{QUADROTOR} {task}, baseline at {rate:g} Hz, seed {args.seed}: position RMSE {m['rmse_cm']:.2f} cm, "
        f"max {m['max_error_cm']:.2f} cm after {env.task.route.settle_s:g} s, success {_yes(m['success'])}"
    )
    lines = [line] + ([f"failed: {info['failure']}"] if "failure" in info else [])
    record = {"robot": QUADROTOR, "task": task, "controller": "baseline", "control_rate_hz": rate, **info}
    _finish(args, record, lines)
    return 0


def _plot(robot: str, trajectory, path: Path, faults: list[tuple[float, str]], title: str) -> None:
    from sim.plot import plot_trajectory
    from sim.robots import POSITION_LIMIT, get_robot

    T, X, U = trajectory
    plot_trajectory(T, X, U, get_robot(robot).joints, path, faults, title, stops=POSITION_LIMIT)


def cmd_robustness(args: argparse.Namespace) -> int:
    from policies import make_controller
    from sim import robustness

    robot = _controller_robot(args, args.controller)
    factory = functools.partial(make_controller, args.controller, robot)
    rate = factory().control_rate_hz
    result = robustness.run(factory, robot, workers=args.workers, progress=_progress(args))
    record = {"robot": robot, "controller": args.controller, "control_rate_hz": rate, **result}
    width = max(len(c) for c in robustness.CRITERIA)
    lines = [f"{c:<{width}}  {result['criteria'][c]['score']:.3f}" for c in robustness.CRITERIA]
    lines.append(f"{'robustness':<{width}}  {result['score']:.3f}  ({result['wall_time_s']:.0f} s)")
    _finish(args, record, lines)
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
            run = train(cfg, args.resume, resume=True, progress=_progress(args), stop=stop)
        else:
            if not args.robot or not (args.algo or args.config):
                raise ValueError("give --robot and --algo (or --config FILE), or --resume RUN")
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
                progress=_progress(args),
                init=args.init,
                stop=stop,
                init_checkpoint=args.init_checkpoint,
            )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    from policies.progress import count, duration, figures

    evaluations = _evaluations(run)
    info = json.loads((Path(run) / "run.json").read_text())
    record = {"run": str(run), "evaluations": evaluations, "stopped_by_signal": stopped_by[0] if stopped_by else None}
    lines = [f"run {run}: {count(info.get('steps', 0))} steps in {duration(info.get('wall_s', 0.0))}"]
    if evaluations:
        best = next((e for e in evaluations if e["steps"] == info.get("best_steps")), evaluations[-1])
        lines.append(f"best evaluation at {count(best['steps'])} steps: {figures(best)} (checkpoints/best.zip)")
        if best is not evaluations[-1]:
            lines.append(f"last evaluation at {count(evaluations[-1]['steps'])} steps: {figures(evaluations[-1])}")
    if stopped_by:
        lines.append(f"stopped early; continue with: s2r train --resume {run}")
    lines.append(f"next: s2r export {run}, then s2r eval {Path(run) / 'policy.json'} --episodes 100")
    _finish(args, record, lines)
    return 128 + stopped_by[0] if stopped_by else 0


def _evaluations(run: Path) -> list[dict[str, Any]]:
    path = Path(run) / "eval.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def cmd_report(args: argparse.Namespace) -> int:
    import matplotlib  # noqa: F401 (the report's plots: say so before the analysis, not after)

    from calibration import report
    from calibration.recording import load_recording
    from calibration.sets import load_calibration, load_models
    from sim.robots import get_robot

    recordings = [load_recording(path) for path in args.logs]
    robot = get_robot(_recordings_robot(args, recordings))
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
        progress=lambda name: print(f"analysed {name}", file=sys.stderr) if _progress(args) else None,
    )
    html_path, json_path = report.write(args.out, data, recordings, predictions)
    lines = [
        f"{name:<24} normalised k-step error {s['mean_normalised_kstep_error']:.4f}"
        for name, s in data["summary"].items()
    ]
    lines += [f"report: {html_path}", f"numbers: {json_path}"]
    _finish(args, {"html": str(html_path), "json": str(json_path), "summary": data["summary"]}, lines)
    return 0


def _recordings_robot(args: argparse.Namespace, recordings) -> str:
    """The robot of a set of recordings (s2r logs or RealAIGym CSVs); every one must agree."""
    robots = {_data_robot(args, path, r.command, r.robot) for path, r in zip(args.logs, recordings, strict=True)}
    if len(robots) > 1:
        raise ValueError(f"the recordings are of different robots ({', '.join(sorted(robots))}): give one robot's")
    return robots.pop()


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from calibration.identify import calibrate
    from calibration.recording import load_recording
    from calibration.sets import write_param_set
    from sim.robots import get_robot

    recordings = [load_recording(path) for path in args.logs]
    robot = get_robot(_recordings_robot(args, recordings))
    start = robot.load_params(args.params)
    fit = [f.strip() for f in args.fit.split(",") if f.strip()]
    with tqdm(desc="calibrating", unit=" rollouts", disable=not _progress(args)) as bar:

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
    lines = []
    for e in cal.estimates:
        flag = "" if e.identified else f"  <- {e.note}"
        lines.append(f"{e.name:<6} {e.start:12.6g} -> {e.value:12.6g} +- {e.ci95:.3g}{flag}")
    lines.append(
        f"normalised k-step error on the fitted windows {cal.error_before:.4f} -> {cal.error_after:.4f} "
        f"({cal.evaluations} rollout batches, {cal.wall_s:.1f} s)"
    )
    lines += [
        f"parameter set written to {args.out}",
        f"next: s2r report {' '.join(map(str, args.logs))} --params {args.params} --params {args.out} --out report",
    ]
    record = {
        "out": str(args.out),
        "estimates": [e.__dict__ for e in cal.estimates],
        "error_before": cal.error_before,
        "error_after": cal.error_after,
    }
    _finish(args, record, lines)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from policies.export import export

    out = args.out or args.run / "policy"
    path = export(args.run, out, args.checkpoint)
    lines = [f"policy written to {path} and {path.with_suffix('.onnx')}", f"next: s2r eval {path}"]
    _finish(args, {"metadata": str(path), "graph": str(path.with_suffix(".onnx"))}, lines)
    return 0


def _eval_target(target: str):
    """(act, robot, env options, the graph's sha256 or None) for a run directory or a policy artifact."""
    if Path(target).is_dir():
        from policies.train import RunPolicy

        policy = RunPolicy(Path(target))
        return policy.act, policy.config.robot, dict(policy.config.env), None
    from policies.runtime import load_policy

    policy = load_policy(target)
    return policy.act, policy.robot, dict(policy.meta["env"]), policy.meta["graph"]["sha256"]


def cmd_eval(args: argparse.Namespace) -> int:
    from policies.evaluate import SIM_CONDITIONS, run_episodes, summarise

    act, robot, env, sha256 = _eval_target(args.target)
    if args.robot and args.robot != robot:
        raise ValueError(f"{args.target} is for the {robot}, not the {args.robot}")
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
    lines = [f"{args.target} ({robot}), {args.episodes} episodes from seed {args.seed}: mean and 95% interval"]
    for key, m in summary.items():
        if m["n"] == 0:  # e.g. swingup_time, which only successful episodes have
            lines.append(f"{key:<16} {'-':>10}            (no episode has it)")
            continue
        lines.append(f"{key:<16} {m['mean']:10.4f} +- {m['ci95']:.4f}  (n={m['n']})")
    record = {"target": args.target, "sha256": sha256, "robot": robot, "episodes": args.episodes, "seed": args.seed}
    record["env"] = env
    _finish(args, {**record, "metrics": summary}, lines)
    return 0


def _deploy_options(args: argparse.Namespace, robot: str, policy):
    from hardware.apps.deploy import options_for
    from hardware.safety import SafetyConfig

    meta = getattr(policy, "meta", None)
    policy_record = {"name": args.policy, "sha256": meta["graph"]["sha256"] if meta else "none (classical controller)"}
    return options_for(
        policy,
        robot,
        task=getattr(args, "task", None),
        rate_hz=args.rate,
        duration_s=args.duration,
        device=args.device,
        mode="lockstep" if getattr(args, "lockstep", False) else "realtime",
        params=args.params,
        imperfections=not args.no_imperfections,
        seed=args.seed,
        safety=SafetyConfig(max_slew_per_s=args.max_slew),
        rt_priority=args.rt_priority,
        log_path=args.log,
        metadata={"policy": policy_record},
        domain_id=getattr(args, "domain_id", 0),
        loopback=getattr(args, "loopback", False),
        ros2_backend=getattr(args, "ros2_backend", "auto"),
        mocap_topic=args.mocap_topic,
        vehicle=args.vehicle,
    )


def _baseline_level(device: str, robot: str) -> str | None:
    """The crazyflie baseline's action level on `device`: a flight controller over MSP, a Crazyflie
    over CRTP or behind crazyswarm2 (ros2) take rates."""
    return "rates" if device.startswith(("msp", "crtp")) or (device == "ros2" and robot == QUADROTOR) else None


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


def _loop_lines(result: dict[str, Any]) -> list[str]:
    loop = result["loop"]
    lines = [f"{'us':<10} {'p50':>9} {'p99':>9} {'max':>9}"]
    for name in ("period", "jitter", "compute"):
        v = loop[f"{name}_us"]
        lines.append(f"{name:<10} {v['p50']:9.1f} {v['p99']:9.1f} {v['max']:9.1f}")
    lines.append(f"ticks {loop['ticks']}, missed deadlines {loop['missed_deadlines']}, faults {len(loop['faults'])}")
    lines += [f"fault at tick {f['tick']}: {f['reason']}" for f in loop["faults"][:10]]
    if len(loop["faults"]) > 10:
        lines.append(f"... and {len(loop['faults']) - 10} more faults (all in --json)")
    if result["link"]:
        lines.append("link " + ", ".join(f"{k} {v:g}" for k, v in result["link"].items()))
    if result["summary"] is not None:
        lines.append(f"{result['task']}: {result['summary']}")
    if not result["settled"]:
        lines.append("the robot was not at rest when the device was disarmed (see the faults)")
    log = result["log"]
    if log is not None:
        why = log["error"] or f"{log['dropped']} ticks dropped"
        state = "complete" if log["complete"] else f"INCOMPLETE: {why}"
        lines.append(f"log {log['path']}: {log['ticks']} ticks, {state}")
        lines.append(f"next: s2r log info {log['path']}")
    return lines


def cmd_deploy(args: argparse.Namespace) -> int:
    from hardware.apps.deploy import deploy
    from policies import make_controller

    robot = _controller_robot(args, args.policy)
    if args.plot and robot not in ROBOTS:
        raise ValueError(f"--plot draws joints: the {robot}'s flight is in its --log (Foxglove's 3D panel)")
    policy = make_controller(args.policy, robot, args.rate, _baseline_level(args.device, robot))
    options = _deploy_options(args, robot, policy)
    records = []
    result = deploy(policy, options, records=records, should_stop=_stop_on_signals())
    summary = {"robot": robot, "policy": args.policy, "device": args.device, "mode": options.mode}
    lines = _loop_lines(result)
    if args.plot and len(records) > 1:
        from hardware.apps.deploy import trajectory_of

        t0 = records[0].start_ns
        faults = [((r.start_ns - t0) / 1e9, r.fault.reason) for r in records if r.fault is not None]
        T, X, U = trajectory_of(records)
        n = len(ROBOTS[robot].joints)
        _plot(robot, (T, X[:, : 2 * n], U), args.plot, faults, f"{robot}, {args.policy} on {args.device}")
        lines.append(f"plot written to {args.plot}")
    _finish(args, {**summary, **result}, lines)
    # A run that ended in the safe state is not a success, whatever a script around it does next.
    return 1 if result["loop"]["faults"] else 0


def _fault_plan(args: argparse.Namespace):
    import dataclasses

    from hardware.emulators.faults import FaultPlan

    plan = FaultPlan.from_yaml(args.faults) if args.faults else FaultPlan()
    flags = {k: getattr(args, k) for k in ("latency_ms", "jitter_ms", "drop", "corrupt", "bitflip")}
    flags = {k: v for k, v in flags.items() if v is not None}
    if flags:
        data = {k: v for k, v in dataclasses.asdict(plan).items() if k != "events"}
        data["events"] = [dataclasses.asdict(e) for e in plan.events]
        plan = FaultPlan.from_dict({**data, **flags}, "command line")
    return plan


def cmd_emulate(args: argparse.Namespace) -> int:
    from hardware.emulators.serial_emulator import Emulator
    from sim.robots import default_params

    common = {
        "params": args.params or default_params(args.robot),
        "imperfections": not args.no_imperfections,
        "seed": args.seed,
        "start": args.start,
        "keep_state": args.keep_state,
    }
    quadrotor = args.robot == QUADROTOR
    if (args.transport in ("msp", "crtp") and not quadrotor) or (args.transport == "serial" and quadrotor):
        raise ValueError(
            f"the {args.robot} is not on {args.transport}: the pendulums speak serial or ros2, the "
            f"{QUADROTOR} msp, crtp or ros2 (crazyswarm2's topics)"
        )
    if args.transport in ("ros2", "crtp") and (args.link or args.replug):
        raise ValueError("--link and --replug are for a pseudo-terminal (serial, msp)")
    if args.transport == "ros2" and not quadrotor:
        from hardware.emulators.ros2_emulator import Ros2Emulator

        if args.faults:
            raise ValueError("--faults are for the serial, msp and crtp transports and the quadrotor's ros2")
        emulator = Ros2Emulator(
            args.robot, domain_id=args.domain_id, loopback=args.loopback, backend=args.ros2_backend, **common
        )
    elif quadrotor:
        del common["start"]
        common["faults"] = _fault_plan(args)
        if args.transport == "msp":
            from hardware.emulators.msp_emulator import MspEmulator

            emulator = MspEmulator(args.robot, link=args.link, domain_id=args.domain_id, **common)
        elif args.transport == "ros2":
            from hardware.emulators.crazyswarm2_emulator import Crazyswarm2Emulator

            emulator = Crazyswarm2Emulator(
                args.robot, domain_id=args.domain_id, loopback=args.loopback, backend=args.ros2_backend, **common
            )
        else:
            from hardware.emulators.crtp_emulator import CrtpEmulator

            emulator = CrtpEmulator(args.robot, port=args.udp_port, **common)
    else:
        emulator = Emulator(args.robot, faults=_fault_plan(args), link=args.link, replug_s=args.replug, **common)
    print(emulator.open(), flush=True)  # the port: the first line, for whoever started us
    try:
        report = emulator.run(duration_s=args.duration, should_stop=_stop_on_signals())
    finally:
        emulator.close()
    counts = {k: len(v) if isinstance(v, list) and k != "events" else v for k, v in report.items()}
    lines = ["emulator stopped: " + ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("events", "flight"))]
    if "flight" in report:
        flight = report["flight"]
        said = ", ".join(e["kind"] for e in flight["events"]) or "none"
        lines.append(
            f"vehicle {'armed' if flight['armed'] else 'disarmed'} at height {flight['final_position'][2]:.2f} m; "
            f"firmware events: {said}"
        )
    _finish(args, counts, lines)
    return 0


def cmd_hil(args: argparse.Namespace) -> int:
    from hardware.apps.hil import run_hil
    from policies import make_controller

    link = args.device.split(":")[0]
    if link not in ("serial", "msp", "crtp", "ros2"):
        raise ValueError(f"hil runs over serial, msp, crtp or ros2 (with --emulate, or LINK:PORT), not {args.device!r}")
    if ":" not in args.device and link != "ros2" and not args.emulate:
        raise ValueError(f"--device {link} needs --emulate (the emulator's port) or a port: --device {link}:PORT")
    if ":" in args.device and args.emulate:
        raise ValueError(f"--emulate starts the emulator: give --device {link}, not a port")
    robot = _controller_robot(args, args.policy)
    if (link != "serial") != (robot == QUADROTOR):
        raise ValueError(
            f"{link} is not the {robot}'s link in hil: the pendulums speak serial, the {QUADROTOR} msp, crtp or ros2"
        )
    policy = make_controller(args.policy, robot, args.rate, _baseline_level(args.device, robot))
    options = _deploy_options(args, robot, policy)
    faults = _fault_plan(args) if args.emulate else None
    result = run_hil(policy, options, faults, start=args.start, should_stop=_stop_on_signals())
    lines = _loop_lines(result) + ["", f"{'check':<22} {'':<5} detail"]
    lines += [f"{c['name']:<22} {'PASS' if c['ok'] else 'FAIL':<5} {c['detail']}" for c in result["checks"]]
    lines.append(f"verdict: {result['verdict'].upper()}")
    _finish(args, {"robot": robot, "policy": args.policy, "device": args.device, **result}, lines)
    return 0 if result["verdict"] == "pass" else 1


def cmd_log_info(args: argparse.Namespace) -> int:
    from hardware.apps.log import summarise_log

    info = summarise_log(args.file)
    if not info["topics"] and info["damage"]:
        raise ValueError(f"{args.file}: {info['damage'][0]}")
    run = info["metadata"].get("run", {})
    lines = [
        f"{args.file}: {run.get('robot', 'unknown robot')}, {info['duration_s']:.2f} s, "
        + ("complete" if info["complete"] else "INCOMPLETE (the writer did not finish it)"),
        "topics: " + ", ".join(f"{topic} {n}" for topic, n in info["topics"].items()),
        f"faults: {len(info['faults'])}" + "".join(f"\n  {f['message']}" for f in info["faults"][:10]),
    ]
    lines += [f"DAMAGED: {d}" for d in info["damage"]]
    if info["link"]:
        lines.append("link " + ", ".join(f"{k} {v}" for k, v in info["link"].items() if k != "tick"))
    _finish(args, info, lines)
    return 1 if info["damage"] else 0


def cmd_log_plot(args: argparse.Namespace) -> int:
    from hardware.apps.log import ERROR, read_log

    contents = read_log(args.file)
    if not contents.messages and contents.damage:
        raise ValueError(f"{args.file}: {contents.damage[0]}")
    robot = contents.robot
    if robot == QUADROTOR:
        raise ValueError(f"{args.file} is a {QUADROTOR} log: open it in Foxglove (3D panel: /pose, /odom)")
    if robot not in ROBOTS:
        raise ValueError(f"{args.file} does not say which s2r robot it is of (metadata run.robot: {robot!r})")
    trajectory = contents.trajectory(args.file)
    t0 = contents.messages["/joint_states"][0][0]
    faults = [
        ((t - t0) / 1e9, status.message)
        for t, message in contents.messages.get("/diagnostics", [])
        for status in message.status
        if status.level == ERROR
    ]
    out = args.out or args.file.with_suffix(".png")
    _plot(robot, trajectory, out, faults, f"{args.file.name}: {robot}")
    _finish(args, {"file": str(args.file), "out": str(out), "faults": len(faults)}, [f"plot written to {out}"])
    return 0


def cmd_log_export(args: argparse.Namespace) -> int:
    from hardware.apps.log import read_log
    from sim.tasks.realaigym import Trajectory, write_trajectory_csv

    out = args.out or args.file.with_suffix(".csv")
    write_trajectory_csv(out, Trajectory(*read_log(args.file).trajectory(args.file)))
    _finish(args, {"file": str(args.file), "out": str(out)}, [f"trajectory written to {out}", f"next: s2r score {out}"])
    return 0


# Parsing ----------------------------------------------------------------------------------------


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


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line that says what to do, not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == argparse.SUPPRESS:
            return text
        if not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _robot_argument(
    p: argparse.ArgumentParser, required: bool = False, inferred: str = "", robots: tuple[str, ...] = tuple(ROBOTS)
) -> None:
    help_text = "robot" + (f" (default: {inferred})" if inferred else "")
    p.add_argument("--robot", required=required, choices=list(robots), help=help_text)


def _add_loop_arguments(p: argparse.ArgumentParser, robots: tuple[str, ...] = tuple(ROBOTS)) -> None:
    _robot_argument(p, inferred="the policy's robot", robots=robots)
    p.add_argument("--policy", required=True, help="zoo:NAME, an artifact path or baseline")
    if QUADROTOR in robots:
        p.add_argument("--task", help=f"the task (default: the robot's first; the {QUADROTOR}'s: hover or figure8)")
    p.add_argument("--rate", type=RATE_HZ, help="loop rate, Hz (default: the policy's)")
    p.add_argument("--duration", type=SECONDS, default=10.0, help="seconds")
    p.add_argument("--params", help="robot parameter set (default: the real robot's, model_1.0; the crazyflie's: l2f)")
    p.add_argument("--no-imperfections", action="store_true", help="simulated plant without noise, delay, lag, pushes")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the simulated plant")
    p.add_argument(
        "--max-slew",
        type=_number(float, 0, low_open=True),
        help="lower every command channel's rate limit to this, units per second (default: the robot's)",
    )
    p.add_argument("--rt-priority", type=_number(int, 1, 99), help="SCHED_FIFO priority (needs privileges; fails soft)")
    p.add_argument("--log", type=Path, help="write an MCAP log (ROS 2 schemas) here")


def _add_flight_link_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mocap-topic", default="/cf1/mocap/odom", help="motion capture's nav_msgs/Odometry (msp)")
    p.add_argument("--vehicle", default="cf1", help="the quadrotor's crazyswarm2 name (ros2)")


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
    from policies.config import ALGOS

    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the whole record as JSON instead of the summary")
    common.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    common.add_argument("--debug", action="store_true", help="show the traceback behind an error (or S2R_DEBUG=1)")
    parser = _Parser(
        prog="s2r",
        description="Sim-to-real control stack: train, evaluate and deploy robot policies, safely.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {metadata.version('s2r')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=summary, description=summary + ".", formatter_class=_HelpFormatter, parents=[common]
        )
        p.set_defaults(func=func)
        return p

    p = command("score", "RealAIGym score of a recorded trajectory (CSV)", cmd_score)
    p.add_argument("trajectory", type=Path, help="RealAIGym trajectory CSV (time, pos_meas*, vel_meas*, tau_con*)")
    _robot_argument(p, inferred="from the trajectory's joints and torques")
    p.add_argument("--version", choices=["v1", "v2", "v3"], default="v2", help="score version")
    p.add_argument("--stage", choices=["sim", "real"], default="sim", help="v2 normalisation")

    p = command("rollout", "run one episode in simulation and print its task's metrics", cmd_rollout)
    p.add_argument("robot_name", nargs="?", choices=[*ROBOTS, QUADROTOR], metavar="ROBOT", help="as --robot")
    p.add_argument("--robot", choices=[*ROBOTS, QUADROTOR], help="robot (default: the controller's robot)")
    p.add_argument("--task", choices=list(FLIGHT_TASKS), help=f"the {QUADROTOR}'s task (default: hover)")
    p.add_argument("--controller", default="baseline", help="baseline, zoo:NAME or an artifact path")
    p.add_argument("--params", help="parameter set name or YAML path (default: model_1.1; the crazyflie's: l2f)")
    p.add_argument("--rate", type=RATE_HZ, help="control rate, Hz (default: the controller's)")
    p.add_argument("--imperfections", action="store_true", help="turn the default imperfections on")
    p.add_argument("--randomization", help="domain randomisation file or shipped name")
    p.add_argument("--seed", type=SEED, default=0, help="episode seed")
    p.add_argument("--out", type=Path, help="write the trajectory as RealAIGym CSV")
    p.add_argument("--video", type=Path, help="write a video of the episode (.gif or .mp4; the render extra)")
    p.add_argument("--plot", type=Path, help="write a PNG of the trajectory (matplotlib: the calibrate extra)")

    p = command("train", "train a policy with stable-baselines3", cmd_train)
    _robot_argument(p, robots=(*ROBOTS, QUADROTOR))
    p.add_argument("--algo", choices=ALGOS, help="algorithm (default: the config file's)")
    p.add_argument("--config", type=Path, help="training YAML (default: policies/configs/ROBOT/ALGO.yaml)")
    p.add_argument("--steps", type=_number(int, 1, 10**10), help="total env steps (overrides the config's n_timesteps)")
    p.add_argument("--seed", type=SEED, help="seed (overrides the config's)")
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
    p.add_argument("--no-progress", action="store_true", help="no progress line (there is none off a terminal)")
    p.add_argument("--params", help="train on this parameter set (name or YAML path, e.g. a calibrated one)")

    p = command("export", "export a run to a deployable ONNX + JSON artifact", cmd_export)
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--out", type=Path, help="artifact path without suffix (default: RUN/policy)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best", help="which checkpoint")

    p = command("eval", "task metrics of a run or artifact over seeded episodes (mean, 95%% interval)", cmd_eval)
    p.add_argument("target", help="run directory, artifact path or zoo:NAME")
    _robot_argument(p, inferred="the target's robot", robots=(*ROBOTS, QUADROTOR))
    p.add_argument("--episodes", type=_number(int, 1, 100_000), default=100, help="episodes")
    p.add_argument("--seed", type=SEED, default=0, help="first episode's seed")
    p.add_argument("--sim-conditions", action="store_true", help="competition simulation: model 1.1, nothing else")
    p.add_argument("--params", help="parameter set name or YAML path (default: as trained)")
    p.add_argument("--imperfections", choices=["on", "off"], help="default imperfections (default: as trained)")
    p.add_argument("--randomization", help="randomisation file or shipped name; 'none' turns it off")
    p.add_argument("--intensity", type=PROBABILITY, help="randomisation intensity in [0, 1]")
    p.add_argument(
        "--friction-compensation",
        choices=["on", "off"],
        help="the passive joints' motors cancel the friction they measure (default: as trained)",
    )
    p.add_argument("--out", dest="json_out", metavar="FILE", type=Path, help="also write the record as JSON here")

    p = command("deploy", "run a policy on a device with the real-time loop", cmd_deploy)
    _add_loop_arguments(p, robots=(*ROBOTS, QUADROTOR))
    p.add_argument(
        "--device",
        default="sim",
        help="sim (the simulated robot), serial:PORT, ros2 (ROS 2 topics), msp:PORT (a flight controller) "
        "or crtp:URI (a Crazyflie, cflib's URI); a quadrotor on ros2 is a crazyswarm2 vehicle",
    )
    _add_flight_link_arguments(p)
    _add_ros2_arguments(p)
    p.add_argument("--plot", type=Path, help="write a PNG of what the loop measured and sent, faults marked")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--realtime", action="store_true", help="paced by the wall clock (the default)")
    mode.add_argument(
        "--lockstep", action="store_true", help="simulated device: one control period per tick, as fast as possible"
    )

    p = command("emulate", "a simulated robot behind a serial port (pty) or ROS 2 topics", cmd_emulate)
    _robot_argument(p, required=True, robots=(*ROBOTS, QUADROTOR))
    p.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal, print its path (the default)")
    p.add_argument(
        "--transport",
        choices=["serial", "ros2", "msp", "crtp"],
        default="serial",
        help="the s2r serial protocol on a pty, ROS 2 topics; a quadrotor's flight controller (MSP on a pty, "
        "motion capture on DDS), a Crazyflie (CRTP on UDP, for cflib) or crazyswarm2's topics (ros2)",
    )
    p.add_argument("--udp-port", type=_number(int, 0, 65535), default=19850, help="crtp: the UDP port (0: any)")
    _add_ros2_arguments(p)
    p.add_argument("--link", type=Path, help="also make this symlink to the port (stable across replugs)")
    p.add_argument("--replug", type=SECONDS, metavar="S", help="after an injected unplug, a new port after S seconds")
    p.add_argument("--params", help="plant parameter set (default: the real robot's, model_1.0; the crazyflie's l2f)")
    p.add_argument("--no-imperfections", action="store_true", help="plant without noise, delay, lag, pushes")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the plant")
    p.add_argument("--duration", type=SECONDS, help="seconds (default: until Ctrl-C)")
    p.add_argument("--start", choices=["down", "up"], default="down", help="plant hanging or upright")
    p.add_argument(
        "--keep-state",
        action="store_true",
        help="a new session (a host arming it) continues from where the last left the plant, instead of the start",
    )
    _add_fault_arguments(p)

    p = command("hil", "hardware-in-the-loop: the loop over a link against its emulator or a device, judged", cmd_hil)
    _add_loop_arguments(p, robots=(*ROBOTS, QUADROTOR))
    p.add_argument(
        "--device",
        default="serial",
        help="serial, msp (a flight controller), crtp (a Crazyflie) or ros2 (crazyswarm2's topics), with --emulate; "
        "or a device: LINK:PORT (crtp:radio://0/80/2M/E7E7E7E7E7), ros2",
    )
    p.add_argument(
        "--domain-id", type=_number(int, 0, 232), default=0, help="ROS 2 domain (msp's motion capture, ros2)"
    )
    _add_flight_link_arguments(p)
    p.add_argument("--emulate", action="store_true", help="start the device emulator and run against it")
    p.add_argument("--start", choices=["down", "up"], default="down", help="emulated plant hanging or upright")
    _add_fault_arguments(p)
    p.add_argument("--out", dest="json_out", metavar="FILE", type=Path, help="also write the record as JSON here")

    p = command("log", "inspect or convert a run log (MCAP)", None)
    log_sub = p.add_subparsers(dest="log_command", required=True, metavar="ACTION")
    q = log_sub.add_parser(
        "info", help="summarise a log: topics, faults, damage", formatter_class=_HelpFormatter, parents=[common]
    )
    q.add_argument("file", type=Path, help="an s2r MCAP log")
    q.set_defaults(func=cmd_log_info)
    q = log_sub.add_parser(
        "plot",
        help="a PNG of a log's states and commands, faults marked",
        formatter_class=_HelpFormatter,
        parents=[common],
    )
    q.add_argument("file", type=Path, help="an s2r MCAP log")
    q.add_argument("--out", type=Path, help="PNG to write (default: FILE with .png)")
    q.set_defaults(func=cmd_log_plot)
    q = log_sub.add_parser(
        "export", help="convert a log to RealAIGym's trajectory CSV", formatter_class=_HelpFormatter, parents=[common]
    )
    q.add_argument("file", type=Path, help="an s2r MCAP log")
    q.add_argument("--format", choices=["realaigym"], default="realaigym", help="output format")
    q.add_argument("--out", type=Path, help="output file (default: FILE with .csv)")
    q.set_defaults(func=cmd_log_export)

    p = command("robustness", "RealAIGym v2 robustness benchmark of a controller", cmd_robustness)
    p.add_argument("controller", help="baseline, zoo:NAME or an artifact path (runs at its own rate)")
    _robot_argument(p, inferred="the controller's robot")
    p.add_argument("--workers", type=_number(int, 1, 256), help="processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress line (there is none off a terminal)")
    p.add_argument("--out", dest="json_out", metavar="FILE", type=Path, help="also write the record as JSON here")

    p = command("report", "sim2real gap report of recorded runs (HTML + JSON)", cmd_report)
    p.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="s2r MCAP logs or RealAIGym trajectory CSVs")
    _robot_argument(p, inferred="the recordings' robot")
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

    p = command("calibrate", "fit model parameters and delay to recorded runs (mujoco.sysid)", cmd_calibrate)
    p.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="s2r MCAP logs or RealAIGym trajectory CSVs")
    _robot_argument(p, inferred="the recordings' robot")
    p.add_argument(
        "--fit",
        required=True,
        help="comma-separated: JOINT.m, .r, .I, .b, .cf (e.g. elbow.m, shoulder.cf), Ir, km, delay",
    )
    p.add_argument("--params", default="model_1.0", help="starting parameter set (name or YAML path)")
    p.add_argument("--horizon", type=SECONDS, default=0.3, help="length of each fitted prediction window, s")
    p.add_argument("--stride", type=SECONDS, default=0.15, help="time between window starts, s")
    p.add_argument("--max-iters", type=_number(int, 1, 10_000), default=30, help="solver iterations")
    p.add_argument("--no-progress", action="store_true", help="no progress line (there is none off a terminal)")
    p.add_argument("--out", type=Path, required=True, help="parameter set YAML to write")
    return parser


def _explain(exc: BaseException) -> tuple[int, str]:
    """An error as (exit code, one line): 2 for what the user can fix, 1 for a run that failed."""
    from hardware.device import DeviceError

    text = " ".join(str(exc).split())  # libraries such as onnxruntime write theirs over several lines
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in EXTRAS:
        extra = EXTRAS[exc.name.split(".")[0]]
        return 2, f"needs the {extra} extra: pip install -e '.[{extra}]' ({text})"
    if isinstance(exc, (ValueError, OSError, ImportError)):
        return 2, f"error: {text}"
    if isinstance(exc, DeviceError):  # the device failed before the loop ran: a failed run
        return 1, f"device error: {text}"
    return 1, f"unexpected {type(exc).__name__}: {text} (--debug shows the traceback)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("S2R_DEBUG") == "1"
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        code, line = _explain(exc)
        name = args.command if args.command != "log" else f"log {args.log_command}"
        print(f"s2r {name}: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
