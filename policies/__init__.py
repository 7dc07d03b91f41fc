"""Policies: classical baselines, training, evaluation, export and the deploy runtime.

Every controller has `act(obs) -> action` (and optionally `reset()`), the
interface the env, the robustness benchmark and the real-time loop share, plus
`control_rate_hz`, `action_history`, `observe_winding` and `friction_compensation`:
the env conditions its observation and its passive joints need.
This module imports neither torch nor stable-baselines3.
"""

from __future__ import annotations

CONTROLLERS = {
    "baseline": "energy-shaping swing-up + LQR (pendubot)",
    "zoo:NAME": "a shipped policy (policies/zoo/NAME.json)",
    "PATH.json": "an exported policy artifact",
}


def controller_robot(name: str) -> str | None:
    """The robot a controller is made for (an artifact's own, the baseline's), or None if unknown."""
    if name.startswith("zoo:") or name.endswith((".json", ".onnx")):
        from policies.runtime import read_metadata, resolve

        return read_metadata(resolve(name))["robot"]
    return "pendubot" if name == "baseline" else None


def make_controller(name: str, robot: str):
    """A controller by name for a robot: "baseline", "zoo:NAME" or an artifact path."""
    if name.startswith("zoo:") or name.endswith((".json", ".onnx")):
        from policies.runtime import load_policy

        policy = load_policy(name)
        if policy.robot != robot:
            raise ValueError(f"{name} is a policy for the {policy.robot}, not the {robot}")
        return policy
    if name == "baseline":
        if robot != "pendubot":
            raise ValueError(f"the classical baseline exists for the pendubot only, not {robot!r}")
        from policies.baselines import PendubotEnergyLQR

        return PendubotEnergyLQR()
    known = ", ".join(f"{k} ({v})" for k, v in CONTROLLERS.items())
    raise ValueError(f"unknown controller {name!r}; known controllers: {known}")
