"""Control-loop timing: per-tick overhead in lock-step, and real-time jitter against a naive loop.

Overhead: everything a tick does except waiting (read, watchdog, observation,
ONNX policy, safety filter, write, MCAP logging), timed per tick, with an echo
device (so the robot's physics is not counted; with and without the log) and with the simulated device
in lock-step (physics included). Ticks run back to back there, faster than the
log's writer process can encode, so that log drops ticks (counted); `s2r_compute`
is the same per-tick work measured in the real-time runs.

Jitter: s2r's loop (absolute deadlines, sleep-then-spin) and a naive loop
(work, then time.sleep(period)) with the same work, alternating in one run,
at 500 Hz and 1 kHz. Jitter is |tick start - intended start|; for the naive
loop the intended start is the previous start plus one period (it has no
deadlines), which flatters it.

    python bench/loop_timing.py [--policy zoo:pendulum --robot pendulum] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hardware.apps.log import RunLog
from hardware.backends.sim_device import SimDevice
from hardware.clock import FakeClock, MonotonicClock
from hardware.device import Command, Device, State
from hardware.loop import ControlLoop
from hardware.safety import SafetyConfig
from policies import make_controller
from sim.robots import get_robot
from sim.simulated import SimulatedRobot
from sim.tasks import swingup_binding


class EchoDevice(Device):
    """Answers at once: a fresh, slowly changing state every read, commands accepted. Isolates the
    loop's own cost."""

    def __init__(self, spec):
        super().__init__(spec)
        self.seq = 0
        self.values = np.zeros(len(spec.state))

    def _read(self) -> State:
        self.seq += 1
        # A live sensor's values change (the loop's frozen-sensor watchdog checks): a slow sweep.
        self.values[:] = 0.1 * np.sin(1e-3 * self.seq)
        return State(time.monotonic_ns(), self.seq, self.values.copy())

    def _write(self, command: Command) -> Command:
        return command


def percentiles(ns: list[int]) -> dict[str, float]:
    us = np.asarray(ns) / 1e3
    return {"p50": float(np.percentile(us, 50)), "p99": float(np.percentile(us, 99)), "max": float(us.max())}


def overhead(robot_name: str, policy_name: str, ticks: int, device_kind: str, workdir: Path) -> dict[str, float]:
    robot = get_robot(robot_name)
    params = robot.load_params("model_1.0")
    policy = make_controller(policy_name, robot_name)
    if device_kind.startswith("echo"):
        device: Device = EchoDevice(robot.spec(params))
    else:
        device = SimDevice(SimulatedRobot(robot_name, policy.control_rate_hz, params="model_1.0"), mode="lockstep")
    log = None if device_kind == "echo_no_log" else RunLog(workdir / f"{device_kind}.mcap", robot.spec(params), {})
    device.configure(robot.spec(params))
    device.activate()
    loop = ControlLoop(
        device,
        policy,
        swingup_binding.binding(robot, params, 0.5),
        rate_hz=policy.control_rate_hz,
        clock=FakeClock(),
        action_history=policy.action_history,
        on_tick=None if log is None else log.on_tick,
    )
    samples = []
    for k in range(ticks):
        start = time.perf_counter_ns()
        loop.tick(k, 0, 0)
        samples.append(time.perf_counter_ns() - start)
    if log is not None:
        log.close()
    device.close()
    return percentiles(samples[100:])


def jitter(
    robot_name: str, policy_name: str, rate_hz: float, seconds: float, workdir: Path
) -> dict[str, dict[str, float]]:
    robot = get_robot(robot_name)
    params = robot.load_params("model_1.0")
    policy = make_controller(policy_name, robot_name)
    period = int(1e9 / rate_hz)
    device = EchoDevice(robot.spec(params))
    device.configure(robot.spec(params))
    device.activate()
    log = RunLog(workdir / f"realtime-{rate_hz:g}.mcap", robot.spec(params), {})
    loop = ControlLoop(
        device,
        policy,
        swingup_binding.binding(robot, params, 0.5),
        rate_hz=rate_hz,
        clock=MonotonicClock(),
        safety=SafetyConfig(max_missed_deadlines=10**9, stale_timeout_s=1e9),
        action_history=policy.action_history,
        on_tick=log.on_tick,
    )
    loop.run(duration_s=seconds)
    log.close()
    deadline, start, compute = loop.timing_ns().T
    ours = np.abs(start - deadline)

    naive_starts = []
    obs = np.zeros(len(robot.joints) * 3 + policy.action_history * robot.action_matrix(params).shape[1], np.float32)
    end = time.monotonic_ns() + int(seconds * 1e9)
    while time.monotonic_ns() < end:
        naive_starts.append(time.monotonic_ns())
        policy.act(obs)  # the same policy work each tick
        time.sleep(period / 1e9)
    naive = np.abs(np.diff(naive_starts) - period)
    return {
        "s2r": percentiles(list(ours)),
        "naive_sleep": percentiles(list(naive)),
        "s2r_compute": percentiles(compute),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="pendulum")
    parser.add_argument("--policy", default="zoo:pendulum")
    parser.add_argument("--ticks", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "loop_timing.json")
    args = parser.parse_args()
    jit: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        over = {
            kind: overhead(args.robot, args.policy, args.ticks, kind, workdir)
            for kind in ("echo_no_log", "echo", "sim_lockstep")
        }
        for _ in range(args.rounds):
            for rate in (500.0, 1000.0):
                for name, v in jitter(args.robot, args.policy, rate, args.seconds, workdir).items():
                    jit.setdefault(f"{rate:g}Hz", {}).setdefault(name, []).append(v)
    summary = {
        rate: {
            name: {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "max")} for name, runs in v.items()
        }
        for rate, v in jit.items()
    }
    ratios = {rate: v["naive_sleep"]["p99"] / max(v["s2r"]["p99"], 1e-3) for rate, v in summary.items()}
    result = {
        "benchmark": "loop_timing",
        "robot": args.robot,
        "policy": args.policy,
        "overhead_us": over,
        "jitter_us": summary,
        "ratio_naive_over_s2r_p99_jitter": ratios,
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'overhead us':<22} {'p50':>8} {'p99':>8} {'max':>8}")
    for kind, v in over.items():
        print(f"{kind:<22} {v['p50']:8.1f} {v['p99']:8.1f} {v['max']:8.1f}")
    print(f"{'real time us':<22} {'p50':>8} {'p99':>8} {'max':>8}")
    for rate, v in summary.items():
        for name, s in v.items():
            print(f"{rate + ' ' + name:<22} {s['p50']:8.1f} {s['p99']:8.1f} {s['max']:8.1f}")
        print(f"{rate} naive / s2r p99 jitter: {ratios[rate]:.1f}x")


if __name__ == "__main__":
    main()
