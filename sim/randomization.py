"""Declarative domain randomisation: the file format (`parse`), and the pendulum model's sampler.

A YAML file maps parameter names to distributions:

    parameters:
      elbow.m:     {scale: [0.9, 1.1]}                     # multiply by U(0.9, 1.1)
      elbow.I:     {scale: [0.8, 1.25], dist: loguniform}  # multiply, log-uniform
      shoulder.cf: {offset: [-0.05, 0.05]}                 # add U(-0.05, 0.05)
      delay:       {offset: [0.0, 0.01]}                   # measurement delay, s

Names: the robot's parameters (`sim.robots.Robot.parameter_names`: per joint
JOINT.m, .r, .I, .b, .cf of the link it carries; Ir, km), and of its
imperfections delay (measurement delay, s) and torque_response. An intensity
in [0, 1] shrinks every range towards "no change" (scale 1, offset 0);
curricula raise it. Ranges are drawn at every reset.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from sim.config import ConfigError, as_range, check_keys, load_yaml
from sim.imperfections import Imperfections
from sim.robots import Robot
from sim.robots.params import PendulumParams

IMPERFECTIONS = {"delay": "delay_s", "torque_response": "torque_response"}
DISTRIBUTIONS = ("uniform", "loguniform")
_DIR = Path(__file__).parent / "randomization"


def parameter_names(robot: Robot) -> list[str]:
    """Every name a randomisation file may use for `robot`."""
    return robot.parameter_names() + list(IMPERFECTIONS)


@dataclasses.dataclass(frozen=True)
class Distribution:
    """How one parameter is perturbed: multiplied by or offset by a draw from [low, high]."""

    kind: str  # "scale" or "offset"
    low: float
    high: float
    dist: str = "uniform"

    def sample(self, rng: np.random.Generator, intensity: float) -> float:
        """A multiplier (scale) or an addend (offset) at the given intensity."""
        if self.kind == "offset":
            return float(rng.uniform(intensity * self.low, intensity * self.high))
        if self.dist == "loguniform":
            return float(math.exp(rng.uniform(intensity * math.log(self.low), intensity * math.log(self.high))))
        return float(rng.uniform(1.0 + intensity * (self.low - 1.0), 1.0 + intensity * (self.high - 1.0)))


@dataclasses.dataclass(frozen=True)
class DomainRandomization:
    """A validated randomisation file."""

    robot: Robot
    parameters: dict[str, Distribution]
    source: str = "<randomization>"

    @classmethod
    def load(cls, path: str | Path, robot: Robot) -> DomainRandomization:
        """Read and validate a file for `robot`; shipped files by name (`double_pendulum`,
        `pendulum`)."""
        path = Path(path)
        if path.suffix not in (".yaml", ".yml"):
            path = _DIR / f"{path}.yaml"
        return cls.from_dict(load_yaml(path), robot, path)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], robot: Robot, source: str | Path = "<randomization>"
    ) -> DomainRandomization:
        return cls(robot, parse(data, parameter_names(robot), source), str(source))

    def sample(
        self, rng: np.random.Generator, params: PendulumParams, imperfections: Imperfections, intensity: float
    ) -> tuple[PendulumParams, Imperfections, dict[str, float]]:
        """Draw one episode's parameters. Returns the perturbed parameter set and
        imperfections and the drawn values by name (in the parameter's units)."""
        if not 0.0 <= intensity <= 1.0:
            raise ValueError(f"randomisation intensity must be in [0, 1], got {intensity}")
        values: dict[str, float] = {}
        imp: dict[str, float] = {}
        drawn: dict[str, float] = {}
        for name, d in self.parameters.items():
            draw = d.sample(rng, intensity)
            if name in IMPERFECTIONS:
                field = IMPERFECTIONS[name]
                old = getattr(imperfections, field)
                value = old * draw if d.kind == "scale" else old + draw
                # Keep the draw physical: no negative delay, k within the benchmark's range.
                value = max(value, 0.0) if field == "delay_s" else min(max(value, 0.05), 2.0)
                imp[field] = drawn[name] = value
            # Every physical parameter is non-negative: an offset that reaches below zero (friction
            # down to none on a frictionless set) stops there.
            else:
                old = self.robot.parameter(params, name)
                values[name] = drawn[name] = max(old * draw if d.kind == "scale" else old + draw, 0.0)
        return self.robot.with_parameters(params, values), dataclasses.replace(imperfections, **imp), drawn


def parse(data: dict[str, Any], names: list[str], source: str | Path = "<randomization>") -> dict[str, Distribution]:
    """The distributions of a randomisation file's `parameters`, each name one of `names`."""
    check_keys(data, ["parameters"], source)
    entries = data.get("parameters")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(source, "parameters", "expected a mapping of parameter name to distribution")
    check_keys(entries, names, source, prefix="parameters.")
    parameters = {}
    for name, spec in entries.items():
        key = f"parameters.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(source, key, f"expected a mapping like {{scale: [0.9, 1.1]}}, got {spec!r}")
        check_keys(spec, ["scale", "offset", "dist"], source, prefix=key + ".")
        kinds = [k for k in ("scale", "offset") if k in spec]
        if len(kinds) != 1:
            raise ConfigError(source, key, "expected exactly one of scale: [low, high] or offset: [low, high]")
        kind = kinds[0]
        dist = spec.get("dist", "uniform")
        if dist not in DISTRIBUTIONS:
            raise ConfigError(source, key + ".dist", f"expected one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
        if kind == "scale":
            low, high = as_range(spec[kind], source, f"{key}.scale", low=0.0)
            if low <= 0.0:
                raise ConfigError(source, f"{key}.scale", f"expected positive multipliers, got [{low}, {high}]")
        else:
            if dist == "loguniform":
                raise ConfigError(source, key + ".dist", "loguniform applies to scale ranges only")
            low, high = as_range(spec[kind], source, f"{key}.offset")
        parameters[name] = Distribution(kind, low, high, dist)
    return parameters
