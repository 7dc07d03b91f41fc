"""The Device contract, after ros2_control's hardware-component lifecycle.

    UNCONFIGURED --configure(spec)--> INACTIVE --activate()--> ACTIVE
    ACTIVE --deactivate()--> INACTIVE --close()--> FINALIZED
    any failure --> FAULT; configure() again recovers

read() and write() are allowed in ACTIVE only. State and Command carry values
in the order of the robot spec's state and command channels, so the loop,
the safety filter and the log never depend on what kind of robot it is. A
backend reads and writes in its own order (what the device advertises);
configure() maps the two by channel name (`check_spec`), and read() and
write() translate.

deactivate() puts the device in its safe state from ACTIVE and from FAULT
alike: a faulted device still gets the zero command or the disarm that its
link can carry, because the fault may have left a command standing.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

import numpy as np

from sim.robots.spec import RobotSpec

log = logging.getLogger(__name__)


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


@dataclasses.dataclass(frozen=True)
class ChannelMap:
    """Where the robot spec's channels are among a device's: `state[i]` is the index in the device's
    state channels of spec.state[i], `command[i]` likewise for commands. Extra state channels of the
    device are ignored."""

    state: np.ndarray
    command: np.ndarray
    ignored: tuple[str, ...] = ()
    """Device state channels the robot spec does not have."""

    @property
    def identity(self) -> bool:
        return (
            not self.ignored
            and np.array_equal(self.state, np.arange(len(self.state)))
            and np.array_equal(self.command, np.arange(len(self.command)))
        )


def check_spec(required: RobotSpec, provided: RobotSpec) -> ChannelMap:
    """Map the robot's channels onto the device's by name: every channel the robot needs, with the
    same unit, and command limits within the device's. A device command channel the robot does not
    have is refused (nobody could say what value is safe for it); extra state channels are ignored."""
    maps = {}
    for kind in ("state", "command"):
        channels = getattr(provided, kind)
        have = {c.name: i for i, c in enumerate(channels)}
        if len(have) != len(channels):
            twice = sorted({c.name for c in channels if sum(d.name == c.name for d in channels) > 1})
            raise SpecMismatchError(f"device {provided.name!r} lists {kind} channel(s) {', '.join(twice)} twice")
        index = []
        for need in getattr(required, kind):
            i = have.get(need.name)
            if i is None:
                names = ", ".join(have)
                raise SpecMismatchError(
                    f"device {provided.name!r} lacks {kind} channel {need.name!r} ({need.unit}); it has {names}"
                )
            got = channels[i]
            if got.unit != need.unit:
                raise SpecMismatchError(
                    f"{kind} channel {need.name!r}: device unit {got.unit!r}, robot needs {need.unit!r}"
                )
            if kind == "command" and (need.low < got.low or need.high > got.high):
                raise SpecMismatchError(
                    f"command channel {need.name!r}: robot limits [{need.low}, {need.high}] exceed the device's "
                    f"[{got.low}, {got.high}]"
                )
            index.append(i)
        maps[kind] = np.array(index, dtype=int)
    needed = {c.name for c in required.command}
    extra = [c.name for c in provided.command if c.name not in needed]
    if extra:
        raise SpecMismatchError(
            f"device {provided.name!r} has command channel(s) {', '.join(extra)} that the robot "
            f"{required.name!r} does not: refusing to drive an actuator without a known safe command"
        )
    needed = {c.name for c in required.state}
    ignored = tuple(c.name for c in provided.state if c.name not in needed)
    return ChannelMap(maps["state"], maps["command"], ignored)


class Device:
    """Base class: the lifecycle and its guards. Backends implement the `_on_*` hooks and
    `_read` / `_write`."""

    firmware_failsafe = ""
    """What the device's own firmware does when its host falls silent (a flight controller: level
    out, then motors off), or "" if it has no failsafe of its own. A device that has one is handed
    over to it (`hand_over`) when the loop cannot trust its state, rather than sent a command made
    without a reading."""

    def __init__(self, provided: RobotSpec | None):
        self.provided = provided
        """What the device offers; a device that learns it when it connects sets it in _on_configure."""
        self.spec: RobotSpec | None = None
        self.channels: ChannelMap | None = None
        """The robot spec's channels among the device's, set by configure()."""
        self.lifecycle = Lifecycle.UNCONFIGURED
        self._map: ChannelMap | None = None  # None when the device's order is the spec's

    # Lifecycle transitions -------------------------------------------------
    def configure(self, spec: RobotSpec) -> None:
        """Connect and check the device against the robot's spec; recovers from FAULT."""
        self._require(Lifecycle.UNCONFIGURED, Lifecycle.FAULT, Lifecycle.INACTIVE, action="configure")
        self._guarded(self._on_configure)
        try:
            channels = check_spec(spec, self.provided)
        except SpecMismatchError:
            self._on_close()
            self.lifecycle = Lifecycle.FAULT
            raise
        if channels.ignored:
            log.warning(
                "%s: state channel(s) %s not in the robot spec: ignored", self.name, ", ".join(channels.ignored)
            )
        if not channels.identity:
            log.info(
                "%s: channels mapped by name: state %s, command %s (device indices, in spec order)",
                self.name,
                channels.state.tolist(),
                channels.command.tolist(),
            )
        self.spec, self.channels = spec, channels
        self._map = None if channels.identity else channels
        self.lifecycle = Lifecycle.INACTIVE

    def activate(self) -> None:
        self._require(Lifecycle.INACTIVE, action="activate", hint="call configure() first")
        self._guarded(self._on_activate)
        self.lifecycle = Lifecycle.ACTIVE

    def deactivate(self) -> None:
        """Put the device in its safe state (zero command, disarmed) and stop motion. From FAULT too,
        as far as the link allows: the device stays in FAULT, and a failure is logged, not raised."""
        if self.lifecycle is Lifecycle.ACTIVE:
            self._guarded(self._on_deactivate)
            self.lifecycle = Lifecycle.INACTIVE
        elif self.lifecycle is Lifecycle.FAULT:
            try:
                self._on_deactivate()
            except Exception as exc:  # the link that faulted may be gone: the device's own timeout remains
                log.warning("%s: could not send the safe state after a fault: %s", self.name, exc)

    def close(self) -> None:
        """Release the device; safe to call in any state, more than once."""
        if self.lifecycle is Lifecycle.FINALIZED:
            return
        try:
            self.deactivate()
        finally:
            self._on_close()
            self.lifecycle = Lifecycle.FINALIZED

    def hand_over(self, reason: str) -> None:
        """Stop commanding an ACTIVE device and leave it to its firmware's failsafe: it goes to FAULT
        (no more writes; `deactivate()` sends nothing a faulted device's hook does not)."""
        self._require(Lifecycle.ACTIVE, action="hand over")
        log.warning("%s: %s: handed over to its firmware (%s)", self.name, reason, self.firmware_failsafe)
        self.lifecycle = Lifecycle.FAULT

    # Data ------------------------------------------------------------------
    def read(self) -> State:
        """The newest reading, values in spec.state order."""
        self._require(Lifecycle.ACTIVE, action="read", hint="call activate() first")
        state = self._guarded(self._read)
        if self._map is None:
            return state
        return State(state.stamp_ns, state.seq, np.asarray(state.values)[self._map.state])

    def write(self, command: Command) -> Command:
        """Send a command (values in spec.command order); returns what was actually sent."""
        self._require(Lifecycle.ACTIVE, action="write", hint="call activate() first")
        values = np.asarray(command.values, dtype=float)
        if values.shape != (len(self.spec.command),):
            raise DeviceError(f"command has shape {values.shape}; the robot takes {len(self.spec.command)} values")
        if self._map is None:
            return self._guarded(self._write, Command(values))
        device_order = np.empty(len(values))
        device_order[self._map.command] = values
        sent = self._guarded(self._write, Command(device_order))
        return Command(np.asarray(sent.values)[self._map.command])

    @property
    def name(self) -> str:
        """How messages name the device."""
        return type(self).__name__

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
