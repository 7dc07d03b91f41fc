"""Policies: classical baselines, training, evaluation, export and the deploy runtime.

Every controller has `act(obs) -> action` (and optionally `reset()`), the
interface the env, the robustness benchmark and the real-time loop share, plus
`control_rate_hz`, `action_history` and `conditions`: its values of the task
options its observation and commands depend on (`sim.tasks.task.task_conditions`,
e.g. observe_winding, action_level; absent ones are the task's defaults).
This module imports neither torch nor stable-baselines3.
"""

from __future__ import annotations

CONTROLLERS = {
    "baseline": "energy-shaping swing-up + LQR (pendubot); geometric tracking controller (crazyflie)",
    "zoo:NAME": "a shipped policy (policies/zoo/NAME.json)",
    "PATH.json": "an exported policy artifact",
}


BASELINE_ROBOTS = ("pendubot", "crazyflie")
"""The robots with a classical baseline; the first is the baseline's robot when none is named."""


def controller_robot(name: str, robot: str | None = None) -> str | None:
    """The robot a controller is made for (an artifact's own; the baseline's: `robot` if it has one,
    else the first of BASELINE_ROBOTS), or None if unknown."""
    if name.startswith("zoo:") or name.endswith((".json", ".onnx")):
        from policies.runtime import read_metadata, resolve

        return read_metadata(resolve(name))["robot"]
    if name == "baseline":
        return robot if robot in BASELINE_ROBOTS else BASELINE_ROBOTS[0]
    return None


def make_controller(name: str, robot: str, rate_hz: float | None = None, action_level: str | None = None):
    """A controller by name for a robot: "baseline", "zoo:NAME" or an artifact path. `rate_hz`: the
    rate a baseline that can run at any rate (the crazyflie's) is run at (default: 100 Hz);
    `action_level`: the level the crazyflie's baseline acts at (default: rotors)."""
    if name.startswith("zoo:") or name.endswith((".json", ".onnx")):
        from policies.runtime import load_policy

        policy = load_policy(name)
        if policy.robot != robot:
            raise ValueError(f"{name} is a policy for the {policy.robot}, not the {robot}")
        return policy
    if name == "baseline":
        if robot not in BASELINE_ROBOTS:
            raise ValueError(
                f"a classical baseline exists for the {' and the '.join(BASELINE_ROBOTS)}, not the {robot}"
            )
        if robot == "crazyflie":
            from policies.geometric import GeometricController

            return GeometricController(control_rate_hz=rate_hz or 100.0, action_level=action_level or "rotors")
        from policies.baselines import PendubotEnergyLQR

        return PendubotEnergyLQR()
    known = ", ".join(f"{k} ({v})" for k, v in CONTROLLERS.items())
    raise ValueError(f"unknown controller {name!r}; known controllers: {known}")
