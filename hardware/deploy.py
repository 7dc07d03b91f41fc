"""Deploy a controller on a device: build the loop, run it, put the device in its safe state.

The policy is anything with act(obs) (the deploy command hands it the ONNX
runtime or the classical baseline); this module never imports training code.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from hardware.clock import FakeClock, MonotonicClock
from hardware.loop import ControlLoop, Policy, apply_realtime_settings, pendulum_binding
from hardware.safety import SafetyConfig
from hardware.sim_device import SimDevice
from sim.robots import get_robot
from sim.tasks import realaigym

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DeployOptions:
    """What `s2r deploy` runs."""

    robot: str
    rate_hz: float
    duration_s: float = 10.0
    mode: str = "realtime"
    """realtime (wall clock) or lockstep (as fast as possible, simulated device only)."""
    params: str | Path = "model_1.0"
    """The simulated device's parameter set: by default the identified real robot."""
    imperfections: bool = True
    seed: int = 0
    action_history: int = 1
    safety: SafetyConfig = dataclasses.field(default_factory=SafetyConfig)
    rt_priority: int | None = None


def deploy_sim(policy: Policy, options: DeployOptions) -> dict[str, Any]:
    """Run `policy` on the simulated device; returns loop statistics and the task score."""
    robot = get_robot(options.robot)
    device = SimDevice(
        options.robot,
        control_rate_hz=options.rate_hz,
        mode=options.mode,
        seed=options.seed,
        params=options.params,
        imperfections=options.imperfections,
    )
    params = device.env.nominal_params
    clock = FakeClock() if options.mode == "lockstep" else MonotonicClock()
    warnings: list[str] = []
    if options.mode == "realtime" and options.rt_priority is not None:
        warnings = apply_realtime_settings(priority=options.rt_priority, lock_memory=True)
    with device:
        device.configure(robot.spec(params))
        device.activate()
        loop = ControlLoop(
            device,
            policy,
            pendulum_binding(robot, params, options.safety.damping),
            rate_hz=options.rate_hz,
            clock=clock,
            safety=options.safety,
            action_history=options.action_history,
        )
        interrupted = False
        try:
            stats = loop.run(duration_s=options.duration_s)
        except KeyboardInterrupt:
            interrupted = True
            stats = loop.stats()
        finally:
            device.deactivate()  # the safe state: zero command, physics stopped
        traj = realaigym.Trajectory(*device.trajectory())
    score = realaigym.score(traj, "v2", "sim", lengths=params.l) if traj.T[-1] > 0 else None
    return {"loop": stats, "score": score, "interrupted": interrupted, "warnings": warnings}
