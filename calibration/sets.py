"""Parameter sets from calibration: writing a fitted set, reading its record back, naming sets to compare.

A calibrated set is an ordinary parameter-set YAML (what `--params` reads
everywhere) plus a `calibration` section: the delay it was fitted with, each
estimate with its interval, and the recordings. `PendulumParams` ignores the
section; the gap report uses its delay.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from calibration.gap import ModelUnderTest
from sim.config import ConfigError, load_yaml
from sim.robots import Robot

if TYPE_CHECKING:
    from calibration.identify import Calibration


def write_param_set(calibration: Calibration, path: str | Path) -> None:
    """Write the calibrated parameter set as YAML: the parameters `--params` reads, plus a
    `calibration` section (delay, estimates with intervals, recordings) kept for the record."""
    data = calibration.params.as_dict()
    data["calibration"] = calibration.as_dict()
    text = (
        f"# Calibrated by s2r calibrate from {', '.join(calibration.recordings)}.\n"
        "# Units: kg, m, kg m^2 (I about the JOINT axis), N m s, N m, N m; delay in s.\n"
    )
    Path(path).write_text(text + yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=None))


def load_calibration(path: str | Path) -> dict[str, Any] | None:
    """The `calibration` section of a parameter set file; None for a shipped name or a set without one."""
    if Path(path).suffix not in (".yaml", ".yml"):
        return None
    section = load_yaml(path).get("calibration")
    if section is not None and not isinstance(section, dict):
        raise ConfigError(path, "calibration", f"expected a mapping, got {section!r}")
    return section


def load_delay(path: str | Path) -> float:
    """The delay (s) a calibrated set was fitted with; 0 for a set without a calibration section."""
    delay = (load_calibration(path) or {}).get("delay_s", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 1:
        raise ConfigError(path, "calibration.delay_s", f"expected a delay in [0, 1] s, got {delay!r}")
    return float(delay)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def load_models(
    robot: Robot, names: list[str], delay_s: float | None = None
) -> tuple[dict[str, ModelUnderTest], dict[str, str]]:
    """Models by label for parameter-set names or YAML paths, and where each came from. A label is the
    name or the file's stem; a calibrated set brings its own delay unless `delay_s` is given for all."""
    models, sources = {}, {}
    for name in names:
        label = Path(name).stem if Path(name).suffix in (".yaml", ".yml") else name
        if label in models:
            raise ValueError(f"two parameter sets named {label!r} ({sources[label]}, {name})")
        models[label] = ModelUnderTest(robot.load_params(name), load_delay(name) if delay_s is None else delay_s)
        sources[label] = str(name)
    return models, sources
