"""YAML loading and validation shared by every s2r configuration file.

Every error names the file, the key and what was expected, so that a typo in
a parameter set or a randomisation file is found before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file or mapping is malformed."""

    def __init__(self, source: str | Path, key: str, problem: str):
        self.source = str(source)
        self.key = key
        self.problem = problem
        where = f"{self.source}: {key}" if key else self.source
        super().__init__(f"{where}: {problem}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a mapping at the top level, got {type(data).__name__}")
    return data


def check_keys(data: Mapping[str, Any], allowed: Sequence[str], source: str | Path, prefix: str = "") -> None:
    """Refuse keys that are not in `allowed`, naming the first one and the allowed set."""
    for key in data:
        if key not in allowed:
            raise ConfigError(source, prefix + str(key), f"unknown key; expected one of {', '.join(allowed)}")


def as_float(value: Any, source: str | Path, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(source, key, f"expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(source, key, f"expected a finite number in [{low}, {high}], got {value}")
    return value


def as_floats(
    value: Any, source: str | Path, key: str, length: int, low: float = -math.inf, high: float = math.inf
) -> tuple[float, ...]:
    """A list of exactly `length` finite numbers within [low, high]."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ConfigError(source, key, f"expected a list of {length} numbers, got {value!r}")
    return tuple(as_float(v, source, f"{key}[{i}]", low, high) for i, v in enumerate(value))


def as_range(
    value: Any, source: str | Path, key: str, low: float = -math.inf, high: float = math.inf
) -> tuple[float, float]:
    """A [lo, hi] pair with lo <= hi, both within [low, high]."""
    lo, hi = as_floats(value, source, key, 2, low, high)
    if lo > hi:
        raise ConfigError(source, key, f"expected [low, high] with low <= high, got [{lo}, {hi}]")
    return lo, hi


def control_substeps(rate_hz: float, physics_dt: float) -> int:
    """Physics steps per control period at `rate_hz`; the period must be a whole number of them."""
    substeps = round(1.0 / (rate_hz * physics_dt)) if rate_hz > 0 else 0
    if substeps < 1 or abs(substeps * physics_dt * rate_hz - 1.0) > 1e-9:
        raise ValueError(f"control period 1/{rate_hz} Hz must be a whole multiple of the physics step {physics_dt} s")
    return substeps
