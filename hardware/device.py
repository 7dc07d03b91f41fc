"""The Device contract, after ros2_control's hardware-component lifecycle.

    UNCONFIGURED --configure(spec)--> INACTIVE --activate()--> ACTIVE
    ACTIVE --deactivate()--> INACTIVE --close()--> FINALIZED
    any failure --> FAULT; configure() again recovers

read() and write() are allowed in ACTIVE only. State and Command carry values
in the order of the robot spec's state and command channels, so the loop,
the safety filter and the log never depend on what kind of robot it is.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from sim.robots.spec import RobotSpec


class Lifecycle(enum.Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FAULT = "fault"
    FINALIZED = "finalized"


class DeviceError(RuntimeError):
    """A device failed; the message says what failed and what to do."""


class LifecycleError(DeviceError):
    """A call that the device's lifecycle state does not allow."""


class SpecMismatchError(DeviceError):
    """The device does not provide what the robot spec requires."""


@dataclasses.dataclass(frozen=True)
class State:
    """One reading: monotonic stamp (ns), sequence number, values in spec.state order."""

    stamp_ns: int
    seq: int
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class Command:
    """One command: values in spec.command order (e.g. joint torques, N m)."""

    values: np.ndarray


def check_spec(required: RobotSpec, provided: RobotSpec) -> None:
    """Every channel the robot needs, with the same unit, and command limits within the device's."""
    for kind in ("state", "command"):
        have = {c.name: c for c in getattr(provided, kind)}
        for need in getattr(required, kind):
            got = have.get(need.name)
            if got is None:
                have_names = ", ".join(have)
                raise SpecMismatchError(
                    f"device {provided.name!r} lacks {kind} channel {need.name!r} ({need.unit}); it has {have_names}"
                )
            if got.unit != need.unit:
                raise SpecMismatchError(
                    f"{kind} channel {need.name!r}: device unit {got.unit!r}, robot needs {need.unit!r}"
                )
            if kind == "command" and (need.low < got.low or need.high > got.high):
                raise SpecMismatchError(
                    f"command channel {need.name!r}: robot limits [{need.low}, {need.high}] exceed the device's "
                    f"[{got.low}, {got.high}]"
                )


class Device:
    """Base class: the lifecycle and its guards. Backends implement the `_on_*` hooks and
    `_read` / `_write`."""

    def __init__(self, provided: RobotSpec | None):
        self.provided = provided
        """What the device offers; a device that learns it when it connects sets it in _on_configure."""
        self.spec: RobotSpec | None = None
        self.lifecycle = Lifecycle.UNCONFIGURED

    # Lifecycle transitions -------------------------------------------------
    def configure(self, spec: RobotSpec) -> None:
        """Connect and check the device against the robot's spec; recovers from FAULT."""
        self._require(Lifecycle.UNCONFIGURED, Lifecycle.FAULT, Lifecycle.INACTIVE, action="configure")
        self._guarded(self._on_configure)
        try:
            check_spec(spec, self.provided)
        except SpecMismatchError:
            self._on_close()
            self.lifecycle = Lifecycle.FAULT
            raise
        self.spec = spec
        self.lifecycle = Lifecycle.INACTIVE

    def activate(self) -> None:
        self._require(Lifecycle.INACTIVE, action="activate", hint="call configure() first")
        self._guarded(self._on_activate)
        self.lifecycle = Lifecycle.ACTIVE

    def deactivate(self) -> None:
        """Put the device in its safe state (zero command) and stop motion."""
        if self.lifecycle is Lifecycle.ACTIVE:
            self._guarded(self._on_deactivate)
            self.lifecycle = Lifecycle.INACTIVE

    def close(self) -> None:
        """Release the device; safe to call in any state, more than once."""
        if self.lifecycle is Lifecycle.FINALIZED:
            return
        try:
            self.deactivate()
        finally:
            self._on_close()
            self.lifecycle = Lifecycle.FINALIZED

    # Data ------------------------------------------------------------------
    def read(self) -> State:
        self._require(Lifecycle.ACTIVE, action="read", hint="call activate() first")
        return self._guarded(self._read)

    def write(self, command: Command) -> Command:
        """Send a command; returns what was actually sent."""
        self._require(Lifecycle.ACTIVE, action="write", hint="call activate() first")
        return self._guarded(self._write, command)

    def counters(self) -> dict[str, float]:
        """Link statistics for the loop's diagnostics (e.g. CRC errors, lost frames); none by default."""
        return {}

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Hooks -------------------------------------------------------------------
    def _on_configure(self) -> None: ...

    def _on_activate(self) -> None: ...

    def _on_deactivate(self) -> None: ...

    def _on_close(self) -> None: ...

    def _read(self) -> State:
        raise NotImplementedError

    def _write(self, command: Command) -> Command:
        raise NotImplementedError

    # Helpers -------------------------------------------------------------------
    def _require(self, *allowed: Lifecycle, action: str, hint: str = "") -> None:
        if self.lifecycle not in allowed:
            advice = f": {hint}" if hint else ""
            raise LifecycleError(f"cannot {action} a device that is {self.lifecycle.value}{advice}")

    def _guarded(self, fn, *args):
        """Run a backend hook; any failure puts the device in FAULT and is re-raised as a DeviceError."""
        try:
            return fn(*args)
        except DeviceError:
            self.lifecycle = Lifecycle.FAULT
            raise
        except Exception as exc:
            self.lifecycle = Lifecycle.FAULT
            raise DeviceError(f"{type(self).__name__}: {exc}") from exc
