"""Physical parameters of a pendulum chain (single or double pendulum).

The names follow the RealAIGym double pendulum's: per link i the mass
m_i, length l_i, joint-to-centre-of-mass distance r_i, inertia I_i about the
JOINT axis, viscous friction b_i and Coulomb friction cf_i (modelled as
cf_i atan(100 dq_i)); the motor rotor inertia Ir behind a gear ratio gr; and a
torque-constant scale km (1 = the motor produces the commanded torque).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sim.config import ConfigError, as_float, as_floats, check_keys, load_yaml

PER_LINK = ("m", "l", "r", "I", "b", "cf", "torque_limit")
SCALARS = ("Ir", "gr", "g", "km")


@dataclasses.dataclass(frozen=True)
class PendulumParams:
    """One parameter set. Tuples have one entry per link, shoulder first."""

    m: tuple[float, ...]
    """Link masses, kg."""
    l: tuple[float, ...]  # noqa: E741 (the spec's name)
    """Link lengths, m."""
    r: tuple[float, ...]
    """Distances joint -> centre of mass, m."""
    I: tuple[float, ...]  # noqa: E741 (the spec's name)
    """Inertias about the joint axis, kg m^2."""
    b: tuple[float, ...]
    """Viscous friction, N m s."""
    cf: tuple[float, ...]
    """Coulomb friction, N m."""
    torque_limit: tuple[float, ...]
    """Motor torque limits, N m."""
    Ir: float = 0.0
    """Rotor inertia, kg m^2 (reflected as gr^2 Ir)."""
    gr: float = 6.0
    """Gear ratio."""
    g: float = 9.81
    """Gravity, m/s^2."""
    km: float = 1.0
    """Torque-constant scale: applied torque = km * commanded torque."""

    @property
    def n(self) -> int:
        """Number of links."""
        return len(self.m)

    @property
    def reach(self) -> float:
        """Distance from the shoulder to the tip when straight, m."""
        return sum(self.l)

    def replace(self, **changes: Any) -> PendulumParams:
        return dataclasses.replace(self, **changes)

    def ideal(self) -> PendulumParams:
        """The set without the losses the simulation leaderboards leave out: friction (viscous and
        Coulomb) and rotor inertia (model 1.0 becomes model 1.1)."""
        zeros = (0.0,) * self.n
        return self.replace(b=zeros, cf=zeros, Ir=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "<params>") -> PendulumParams:
        """Validate a mapping (e.g. parsed YAML) into a parameter set."""
        # `calibration` is the record s2r calibrate keeps with a fitted set; the model ignores it.
        check_keys(data, PER_LINK + SCALARS + ("calibration",), source)
        for key in ("m", "l", "r", "I"):
            if key not in data:
                raise ConfigError(source, key, "missing; every parameter set gives m, l, r, I")
        m = data["m"]
        if not isinstance(m, list) or len(m) not in (1, 2):
            raise ConfigError(source, "m", f"expected a list of 1 or 2 link masses, got {m!r}")
        n = len(m)
        values: dict[str, Any] = {}
        for key in PER_LINK:
            default = [0.0] * n if key in ("b", "cf") else None
            raw = data.get(key, default)
            if raw is None:
                raise ConfigError(source, key, f"missing; expected a list of {n} numbers")
            # Negative friction is allowed: the robustness benchmark sweeps it.
            low = -1.0 if key in ("b", "cf") else 0.0
            values[key] = as_floats(raw, source, key, n, low=low)
        for key in ("m", "l", "I", "torque_limit"):
            if min(values[key]) <= 0:
                raise ConfigError(source, key, f"expected positive values, got {list(values[key])}")
        for i in range(n):
            if values["I"][i] < values["m"][i] * values["r"][i] ** 2:
                raise ConfigError(
                    source, f"I[{i}]", "inertia about the joint must be at least m r^2 (the parallel-axis part)"
                )
        defaults = {"Ir": 0.0, "gr": 6.0, "g": 9.81, "km": 1.0}
        for key in SCALARS:
            values[key] = as_float(data.get(key, defaults[key]), source, key, low=0.0)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> PendulumParams:
        return cls.from_dict(load_yaml(path), path)
