"""A robot's channels as its MJCF declares them: the named sensors give the state channels, the
actuators the command channels, each in the model's order.

Each robot says what its channels' limits are (its hard limits and parameter set's); the names,
kinds, units and order come from the model, so a robot with more sensors or actuators (a hand's)
needs no new code here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import mujoco

from sim.robots.spec import Channel

_SENSORS = {
    mujoco.mjtSensor.mjSENS_JOINTPOS: ("joint.position", "rad", ("",)),
    mujoco.mjtSensor.mjSENS_JOINTVEL: ("joint.velocity", "rad/s", ("",)),
    mujoco.mjtSensor.mjSENS_FRAMEPOS: ("body.position", "m", ("x", "y", "z")),
    mujoco.mjtSensor.mjSENS_FRAMEQUAT: ("body.orientation", "1", ("w", "x", "y", "z")),
    mujoco.mjtSensor.mjSENS_FRAMELINVEL: ("body.linear_velocity", "m/s", ("x", "y", "z")),
    mujoco.mjtSensor.mjSENS_GYRO: ("body.angular_velocity", "rad/s", ("x", "y", "z")),
}
"""The sensors a state channel can come from: kind, unit, and the suffix of each of its values."""


@functools.cache
def compiled(xml: Path) -> mujoco.MjModel:
    """The model as its file declares it (for names, not for simulation: parameter sets are not in it)."""
    return mujoco.MjModel.from_xml_path(str(xml))


def state_channels(model: mujoco.MjModel, limits: Mapping[str, tuple[float, float]]) -> tuple[Channel, ...]:
    """One channel per value of each sensor, in the model's sensor order: named as the sensor, with
    `.x` (and so on) for a sensor of several values; `limits` by kind (low, high)."""
    channels = []
    for i in range(model.nsensor):
        sensor = model.sensor(i)
        try:
            kind, unit, axes = _SENSORS[mujoco.mjtSensor(sensor.type[0])]
        except KeyError:
            raise ValueError(f"sensor {sensor.name!r}: its type is not one a state channel comes from") from None
        low, high = limits[kind]
        channels += [Channel(f"{sensor.name}.{a}" if a else sensor.name, unit, low, high, kind) for a in axes]
    return tuple(channels)


def command_channels(
    model: mujoco.MjModel, suffix: str, unit: str, kind: str, limits: list[tuple[float, float]], max_rate: float
) -> tuple[Channel, ...]:
    """One channel per actuator, in the model's order, named `<actuator><suffix>`, with its
    (low, high) from `limits` (one per actuator) and rate limit `max_rate` in `unit` per s."""
    if len(limits) != model.nu:
        raise ValueError(f"{len(limits)} command limits for {model.nu} actuators")
    return tuple(
        Channel(model.actuator(i).name + suffix, unit, low, high, kind, max_rate)
        for i, (low, high) in enumerate(limits)
    )
