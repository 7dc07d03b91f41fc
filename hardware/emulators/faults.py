"""What goes wrong on a link and in a device, and when: the fault plan an emulator injects
(`hardware/faults/*.yaml`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sim.config import ConfigError, as_float, check_keys, load_yaml

EVENTS = ("frozen_sensor", "brownout", "unplug")


@dataclasses.dataclass(frozen=True)
class Event:
    """A timed fault: `kind` at `at_s` after the device is first armed, lasting `duration_s`."""

    kind: str
    at_s: float
    duration_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """What goes wrong, and when. Probabilities are per frame."""

    latency_ms: float = 0.0
    """Added to every device -> host frame, ms."""
    jitter_ms: float = 0.0
    """Uniform extra delay in [0, jitter_ms] per device -> host frame, ms."""
    drop: float = 0.0
    """Probability that a frame is lost, each direction."""
    corrupt: float = 0.0
    """Probability that one byte of a device -> host frame is replaced by another."""
    bitflip: float = 0.0
    """Probability that one bit of a device -> host frame flips."""
    events: tuple[Event, ...] = ()
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: str | Path) -> FaultPlan:
        return cls.from_dict(load_yaml(path), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "faults") -> FaultPlan:
        """Validate a mapping with the fields above; events as a list of {kind, at_s, duration_s}."""
        fields = [f.name for f in dataclasses.fields(cls)]
        check_keys(data, fields, source)
        values: dict[str, Any] = {}
        for key in ("latency_ms", "jitter_ms"):
            if key in data:
                values[key] = as_float(data[key], source, key, 0.0, 1000.0)
        for key in ("drop", "corrupt", "bitflip"):
            if key in data:
                values[key] = as_float(data[key], source, key, 0.0, 1.0)
        if "seed" in data:
            seed = data["seed"]
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
                raise ConfigError(source, "seed", f"expected an integer in [0, 2^32), got {seed!r}")
            values["seed"] = data["seed"]
        events = data.get("events") or []
        if not isinstance(events, list):
            raise ConfigError(source, "events", f"expected a list, got {type(events).__name__}")
        parsed = []
        for i, ev in enumerate(events):
            key = f"events[{i}]"
            if not isinstance(ev, dict):
                raise ConfigError(source, key, f"expected a mapping, got {ev!r}")
            check_keys(ev, ("kind", "at_s", "duration_s"), source, key + ".")
            if ev.get("kind") not in EVENTS:
                raise ConfigError(source, key + ".kind", f"expected one of {', '.join(EVENTS)}, got {ev.get('kind')!r}")
            if "at_s" not in ev:
                raise ConfigError(source, key + ".at_s", "missing: when the event happens, s after arming")
            at = as_float(ev["at_s"], source, key + ".at_s", 0.0)
            duration = as_float(ev.get("duration_s", 0.0), source, key + ".duration_s", 0.0)
            if ev["kind"] == "brownout" and duration <= 0:
                raise ConfigError(source, key + ".duration_s", "a brown-out needs a duration > 0 (the reboot time)")
            parsed.append(Event(ev["kind"], at, duration))
        values["events"] = tuple(sorted(parsed, key=lambda e: e.at_s))
        return cls(**values)
