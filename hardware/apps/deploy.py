"""Deploy a controller on a device: build the loop, run it, put the device in its safe state.

The policy is anything with act(obs) (the deploy command hands it the ONNX
runtime or the classical baseline); this module never imports training code.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hardware.apps.log import RunLog
from hardware.backends.serial_device import SerialDevice
from hardware.backends.sim_device import SimDevice
from hardware.clock import FakeClock, MonotonicClock
from hardware.device import Device
from hardware.loop import ControlLoop, Policy, TickRecord, apply_realtime_settings, probe_policy
from hardware.safety import SafetyConfig
from sim import simulated
from sim.robots import QUADROTORS, ROBOTS, default_params, get_robot, load_robot_params, robot_names, robot_spec
from sim.tasks.binding import Binding, make_binding
from sim.tasks.task import default_task, task_conditions, tasks_of

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DeployOptions:
    """What `s2r deploy` runs."""

    robot: str
    rate_hz: float
    task: str | None = None
    """The task the policy does (None: the robot's first, `sim.tasks.task.tasks_of`)."""
    duration_s: float | None = 10.0
    """Run length, s; None runs until Ctrl-C or `should_stop`."""
    device: str = "sim"
    """sim (the simulated robot), serial:PORT (a device speaking the s2r serial protocol), ros2
    (ROS 2 topics: JointState in, Float64MultiArray effort commands out; a quadrotor's crazyswarm2
    topics, `vehicle`'s odom and rates in, cmd_vel_legacy out), msp:PORT (a quadrotor's
    Betaflight-class flight controller, position from motion capture on `mocap_topic`) or crtp:URI
    (a Crazyflie through cflib, e.g. crtp:radio://0/80/2M/E7E7E7E7E7 or crtp:udp://127.0.0.1:19850)."""
    mocap_topic: str = "/cf1/mocap/odom"
    """nav_msgs/Odometry of the vehicle from motion capture (the msp device), ROS 2."""
    vehicle: str = "cf1"
    """A quadrotor's name under crazyswarm2 (the ros2 device): its topics' namespace."""
    domain_id: int = 0
    """ROS 2 domain id (the ros2 device)."""
    loopback: bool = False
    """Keep DDS discovery and traffic on 127.0.0.1 (the ros2 device, Cyclone DDS backend)."""
    ros2_backend: str = "auto"
    """rclpy, cyclonedds or auto (rclpy where ROS 2 is installed) for the ros2 device."""
    mode: str = "realtime"
    """realtime (wall clock) or lockstep (as fast as possible, simulated device only)."""
    params: str | Path | None = None
    """The robot's parameter set (limits; the simulated device's model); None: the real robot's
    (`sim.robots.default_params`)."""
    imperfections: bool = True
    seed: int = 0
    action_history: int = 1
    conditions: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The task options the policy's observation and commands were made with (its metadata's env:
    e.g. observe_winding, friction_compensation, action_level); absent ones are the task's defaults."""
    safety: SafetyConfig = dataclasses.field(default_factory=SafetyConfig)
    rt_priority: int | None = None
    log_path: Path | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Extra metadata records for the log (e.g. the policy's name and sha256)."""

    def __post_init__(self):
        if self.robot not in robot_names():
            raise ValueError(f"unknown robot {self.robot!r}; expected one of {', '.join(robot_names())}")
        self.task = self.task or default_task(self.robot)
        self.params = self.params or default_params(self.robot)
        problems = []
        if self.task not in tasks_of(self.robot):
            problems.append(
                f"the {self.robot} has no task {self.task!r} (its tasks: {', '.join(tasks_of(self.robot))})"
            )
        elif unknown := sorted(set(self.conditions) - set(task_conditions(self.robot, self.task))):
            known = ", ".join(task_conditions(self.robot, self.task))
            problems.append(f"the {self.task} task's policies have no condition {', '.join(unknown)} (only {known})")
        if not 0 < self.rate_hz <= 1000:
            problems.append(f"rate_hz {self.rate_hz} is not in (0, 1000] Hz")
        if self.duration_s is not None and not self.duration_s > 0:
            problems.append(f"duration_s {self.duration_s} is not > 0 s (None runs until stopped)")
        if self.mode not in ("realtime", "lockstep"):
            problems.append(f"mode {self.mode!r} is neither realtime nor lockstep")
        if not 0 <= self.domain_id <= 232:
            problems.append(f"domain_id {self.domain_id} is not a ROS 2 domain id (0..232)")
        if not 0 <= self.action_history <= 64:
            problems.append(f"action_history {self.action_history} is not in [0, 64]")
        if not 0 <= self.seed < 2**32:
            problems.append(f"seed {self.seed} is not in [0, 2^32)")
        if self.device.startswith(("msp", "crtp")) and self.robot not in QUADROTORS:
            problems.append(f"{self.device.split(':')[0]} is a quadrotor's link: the {self.robot} is not one")
        if problems:
            raise ValueError("invalid deploy options: " + "; ".join(problems))

    @property
    def commands(self) -> str | None:
        """The level of commands the device takes (`sim.robots.quadrotor.COMMAND_LEVELS`; None: the
        robot's only or default one): a flight controller over MSP, a Crazyflie over CRTP or behind
        crazyswarm2 runs the rate loop itself."""
        flight_controller = self.device.startswith(("msp", "crtp")) or (
            self.device == "ros2" and self.robot in QUADROTORS
        )
        return "rates" if flight_controller else None


def options_for(policy: Policy, robot: str, **settings: Any) -> DeployOptions:
    """The DeployOptions of running `policy` on `robot`, the one place they are built (`s2r deploy`,
    `s2r hil` and the ROS 2 node): the task, rate, action history and training conditions the policy
    carries (an artifact's metadata, a baseline's attributes), unless `settings` (the command line's
    or the node's) give them (None: as the policy says); the other settings as given."""
    conditions = {
        "task": getattr(policy, "task", None),
        "rate_hz": policy.control_rate_hz,
        "action_history": policy.action_history,
        "conditions": dict(getattr(policy, "conditions", {})),
    }
    given = {k: v for k, v in settings.items() if not (k in conditions and v is None)}
    return DeployOptions(robot=robot, **(conditions | given))


def make_device(options: DeployOptions) -> Device:
    """The device `options.device` names (not yet configured)."""
    if options.device == "sim":
        plant = simulated.make(options.robot, options.task, options.rate_hz, options.params, options.imperfections)
        return SimDevice(plant, mode=options.mode, seed=options.seed)
    if options.mode == "lockstep":
        raise ValueError("--lockstep needs the simulated device: a real device runs in real time")
    if options.device.startswith("serial:") and len(options.device) > len("serial:"):
        if options.robot not in ROBOTS:
            raise ValueError(f"the s2r serial protocol carries joints: the {options.robot} is not on it yet")
        return SerialDevice(options.device.removeprefix("serial:"))
    if options.device.startswith("msp:") and len(options.device) > len("msp:"):
        from hardware.backends.msp_device import MocapOdometry, MspDevice

        mocap = MocapOdometry(options.mocap_topic, options.domain_id, options.loopback, options.ros2_backend)
        return MspDevice(options.device.removeprefix("msp:"), mocap)
    if options.device.startswith("crtp:") and len(options.device) > len("crtp:"):
        from hardware.backends.crtp_device import CrtpDevice

        return CrtpDevice(options.device.removeprefix("crtp:"))
    if options.device == "ros2" and options.robot in QUADROTORS:
        from hardware.backends.crazyswarm2_device import Crazyswarm2Device

        return Crazyswarm2Device(options.vehicle, options.domain_id, options.loopback, options.ros2_backend)
    if options.device == "ros2":
        from hardware.backends.ros2_device import Ros2Device  # DDS only when asked for

        joints = list(get_robot(options.robot).joints)
        return Ros2Device(
            joints, joints, domain_id=options.domain_id, loopback=options.loopback, backend=options.ros2_backend
        )
    raise ValueError(
        f"unknown device {options.device!r}; expected sim, serial:PORT (e.g. serial:/dev/ttyACM0), ros2, msp:PORT "
        "or crtp:URI"
    )


def binding_of(options: DeployOptions) -> Binding:
    """The loop's binding for the robot, task and policy conditions `options` name."""
    params = load_robot_params(options.robot, options.params)
    return make_binding(
        options.robot,
        options.task,
        params,
        options.rate_hz,
        options.conditions,
        options.safety.damping,
        options.commands,
    )


def trajectory_of(records: list[TickRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the loop saw and sent: tick times from the first (N,) s, measured state values (N, S),
    commands sent (N, C). The same data the log holds, so the metrics agree."""
    T = (np.array([r.start_ns for r in records]) - records[0].start_ns) / 1e9
    X = np.array([r.state.values for r in records])
    U = np.array([r.command for r in records])
    return T, X, U


def deploy(
    policy: Policy,
    options: DeployOptions,
    device: Device | None = None,
    records: list[TickRecord] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run `policy` on a device (by default the one `options.device` names) until the duration,
    a fault that stops the device, or Ctrl-C; the device ends in its safe state and the log is
    closed. Returns loop statistics, the device's link counters and the task's metrics of what the
    loop measured and sent (with `summary`, their line for a person). `records`, if given,
    receives every tick; `should_stop`, if given, is asked before every tick."""
    params = load_robot_params(options.robot, options.params)
    spec = robot_spec(options.robot, params, options.commands)
    binding = binding_of(options)
    probe_policy(policy, binding, len(spec.state), options.action_history)  # before anything moves
    device = device or make_device(options)
    clock = FakeClock() if options.mode == "lockstep" else MonotonicClock()
    warnings: list[str] = []
    if options.mode == "realtime" and options.rt_priority is not None:
        warnings = apply_realtime_settings(priority=options.rt_priority, lock_memory=True)
    records = [] if records is None else records
    run_log = None
    if options.log_path is not None:
        metadata = {
            "run": {k: str(v) for k, v in dataclasses.asdict(options).items() if k not in ("metadata", "safety")},
            "safety": {k: str(v) for k, v in dataclasses.asdict(options.safety).items()},
            "robot": {k: json.dumps(v) for k, v in params.as_dict().items()},
            **options.metadata,
        }
        run_log = RunLog(options.log_path, spec, metadata, block=options.mode == "lockstep")

    def on_tick(record: TickRecord) -> str | None:
        records.append(record)
        return None if run_log is None else run_log.on_tick(record)

    interrupted = settled = False
    loop = None
    flown = 0
    try:
        with device:
            device.configure(spec)
            # Collect everything loaded so far before arming, not in the loop's first moments: with
            # MuJoCo, scipy and onnxruntime loaded it takes about 0.1 s on a busy machine, and a
            # device's host timeout (the firmware's 100 ms) runs from the arm. The loop then only
            # scans what it creates.
            gc.collect()
            gc.freeze()
            device.activate()
            loop = ControlLoop(
                device,
                policy,
                binding,
                rate_hz=options.rate_hz,
                clock=clock,
                safety=options.safety,
                action_history=options.action_history,
                on_tick=on_tick,
            )
            try:
                try:
                    loop.run(duration_s=options.duration_s, should_stop=should_stop or (lambda: False))
                    interrupted = should_stop is not None and should_stop()
                except KeyboardInterrupt:
                    interrupted = True
                flown = len(records)
                # A flying robot lands before its motors are disarmed; Ctrl-C lands it too (a second
                # KeyboardInterrupt disarms at once).
                settled = loop.settle()
            finally:
                link = device.counters()  # what the run saw, before the disarm's own traffic
                device.deactivate()  # the safe state: zero command, actuators off
    finally:
        if run_log is not None:
            run_log.close({"loop": loop.stats() if loop else None, "link": device.counters()})
    # The task's metrics are of the run, not of the landing after it.
    flown = flown or len(records)
    metrics = binding.metrics(*trajectory_of(records[:flown])) if flown > 1 else None
    log_info = None
    if run_log is not None:
        log_info = {
            "path": str(run_log.path),
            "ticks": run_log.written,
            "dropped": run_log.dropped,
            "complete": run_log.failure is None and run_log.written == len(records),
            "error": run_log.failure,
        }
    return {
        "loop": loop.stats(),
        "link": link,
        "settled": settled,
        "task": binding.task,
        "metrics": metrics,
        "summary": binding.describe(metrics) if metrics else None,
        "log": log_info,
        "interrupted": interrupted,
        "warnings": warnings,
    }
