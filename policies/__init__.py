"""Policies: classical baselines now; training, export and the deploy runtime build on this.

Every controller has `act(obs) -> action` (and optionally `reset()`), the
interface the env, the robustness benchmark and the real-time loop share.
"""

from __future__ import annotations

CONTROLLERS = {"baseline": "energy-shaping swing-up + LQR (pendubot)"}


def make_controller(name: str, robot: str):
    """A controller by name for a robot, e.g. make_controller("baseline", "pendubot")."""
    if name == "baseline":
        if robot != "pendubot":
            raise ValueError(f"the classical baseline exists for the pendubot only, not {robot!r}")
        from policies.baselines import PendubotEnergyLQR

        return PendubotEnergyLQR()
    known = ", ".join(f"{k} ({v})" for k, v in CONTROLLERS.items())
    raise ValueError(f"unknown controller {name!r}; known controllers: {known}")
