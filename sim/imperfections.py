"""What a real robot does to a controller, as configuration.

These are the conditions of the RealAIGym robustness benchmark:
velocity measurement noise, torque noise, measurement delay, torque response
lag tau = tau_prev + k (tau_des - tau_prev) per 0.002 s physics step,
Gaussian torque pulses, and friction the model does not know about. They are
all off (`Imperfections()`), or all at the defaults (`Imperfections.defaults()`),
or set one by one from a mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.config import ConfigError, as_float, as_range, check_keys


@dataclasses.dataclass(frozen=True)
class Imperfections:
    """Imperfection settings; the zero value of each field means "off"."""

    velocity_noise_std: float = 0.0
    """Gaussian noise on measured joint velocities, rad/s."""
    torque_noise_std: float = 0.0
    """Gaussian noise on applied torques of actuated joints, drawn every physics step, N m."""
    delay_s: float = 0.0
    """Delay of position and velocity measurements, s (rounded to the physics step)."""
    torque_response: float = 1.0
    """k of tau = tau_prev + k (tau_des - tau_prev) per physics step; 1 = ideal motor."""
    pulses_per_joint: int = 0
    """Gaussian torque pulses per joint and episode, at random times at least 1 s apart
    and from the episode's start and end (`sim.plant.pulse_times`)."""
    pulse_amplitude: tuple[float, float] = (0.5, 5.0)
    """Range of pulse peak torques, N m (sign random)."""
    pulse_width_s: tuple[float, float] = (0.05, 0.1)
    """Range of pulse standard deviations, s."""
    extra_viscous: float = 0.0
    """Viscous friction added to every joint beyond the parameter set's, N m s."""
    extra_coulomb: float = 0.0
    """Coulomb friction added to every joint beyond the parameter set's, N m."""

    @classmethod
    def defaults(cls) -> Imperfections:
        """Moderate real-robot conditions, about a fifth of each robustness sweep's range."""
        return cls(
            velocity_noise_std=0.1,
            torque_noise_std=0.2,
            delay_s=0.008,
            torque_response=0.8,
            pulses_per_joint=1,
            pulse_amplitude=(0.5, 2.0),
            pulse_width_s=(0.05, 0.1),
            extra_viscous=0.002,
            extra_coulomb=0.04,
        )

    @classmethod
    def resolve(
        cls, value: bool | Mapping[str, Any] | Imperfections | None, source: str | Path = "<imperfections>"
    ) -> Imperfections:
        """The single switch: False/None = all off, True = defaults, a mapping =
        defaults with the given fields changed (validated)."""
        if isinstance(value, Imperfections):
            return value
        if value is None or value is False:
            return cls()
        if value is True:
            return cls.defaults()
        if not isinstance(value, Mapping):
            raise ConfigError(source, "", f"expected true, false or a mapping of settings, got {value!r}")
        fields = [f.name for f in dataclasses.fields(cls)]
        check_keys(value, fields, source)
        changes: dict[str, Any] = {}
        for key, raw in value.items():
            if key in ("pulse_amplitude", "pulse_width_s"):
                changes[key] = as_range(raw, source, key, low=0.0)
            elif key == "pulses_per_joint":
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                    raise ConfigError(source, key, f"expected a non-negative integer, got {raw!r}")
                changes[key] = raw
            elif key == "torque_response":
                changes[key] = as_float(raw, source, key, low=0.0, high=2.0)
                if changes[key] == 0.0:
                    raise ConfigError(source, key, "expected k in (0, 2]; k = 0 never applies a torque")
            elif key in ("extra_viscous", "extra_coulomb"):
                changes[key] = as_float(raw, source, key)
            else:
                changes[key] = as_float(raw, source, key, low=0.0)
        return dataclasses.replace(cls.defaults(), **changes)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
