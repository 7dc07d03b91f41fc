"""The emulated Crazyflie, whatever link serves it (CRTP on UDP, crazyswarm2's ROS 2 topics).

`Firmware` is what the Crazyflie does with set-points, as its firmware has it:
- the RPYT commander: roll and pitch are angles, or body rates when
  `flightmode.stabModeRoll` / `stabModePitch` are 0 (rate mode); yaw is a
  rate; thrust 0..65535 is the collective thrust. After arming (and after a
  stop) thrust stays locked until a set-point with zero thrust;
- STOP: motors off; position set-points (generic POSITION and FULL_STATE,
  crazyswarm2's cmd_position and cmd_full_state): the on-board position
  controller (the geometric controller at the rates level) tracks them;
- the supervisor: without set-points for `LEVEL_TIMEOUT_S` it levels the
  vehicle out (thrust kept; after `DEADMAN_S` when a policy streams body rates,
  Learning to Fly's dead-man), after `SHUTDOWN_TIMEOUT_S` its motors go off and
  it disarms.
Its rate loop is `rate_loop.RateLoop` on its gyro at every physics step.

`EmulatedCrazyflie` is the vehicle a link serves: the MuJoCo plant paced by the
wall clock, the firmware on its state estimate (the plant's measurement, as an
estimator fed by motion capture gives it), and the fault plan's losses
(`lost`), latency and jitter (`outgoing_at`) and events: a frozen estimate (the
rate loop flies on it), a brown-out (silent, then a reboot: disarmed, thrust
locked) and an unplug (the radio out of range: nothing either way from then
on). The vehicle is held at its task's start until a flight is launched
(`launch`: the thrust unlock or a first position set-point starts it there
again, as the simulated device's activation does, unless `keep_state`). A
link subclass gives `open`, `close`, `_wait`, `_receive` and `_stream`.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.faults import FaultPlan
from hardware.emulators.rate_loop import RateLoop, attitude_rates, flight_report
from hardware.links import crtp
from policies.geometric import GeometricController
from sim.flight import PHYSICS_DT
from sim.simulated import PlantServer, SimulatedRobot
from sim.tasks import flight

LEVEL_TIMEOUT_S = 0.5
"""Without a set-point for this long the supervisor levels the vehicle out, s."""
DEADMAN_S = 0.2
"""Body-rate set-points (rate mode) that stop for this long are a policy gone: level out sooner,
s (Learning to Fly's deployment dead-man)."""
SHUTDOWN_TIMEOUT_S = 2.0
"""...and after this long its motors go off, s."""
# Supervisor bitfield bits (cflib's Supervisor).
CAN_BE_ARMED, IS_ARMED, CAN_FLY, IS_FLYING, IS_TUMBLED = 1 << 0, 1 << 1, 1 << 3, 1 << 4, 1 << 5


class Firmware:
    """The Crazyflie's commander, supervisor and rate loop; times in monotonic ns."""

    def __init__(self, vehicle: Any):
        self.params = {"flightmode.stabModeRoll": 1, "flightmode.stabModePitch": 1, "flightmode.stabModeYaw": 0}
        """Its parameters that change what a set-point means: 1 angle mode, 0 rate mode."""
        self.rate_loop = RateLoop(vehicle)
        self.armed = False
        self.thrust_locked = True
        self.setpoint = np.zeros(4)  # [thrust, roll, pitch, yaw]: rates rad/s or angles rad as the mode says
        self.last_setpoint_ns: int | None = None
        self.stage = "fly"  # fly, level, off
        self.events: list[dict[str, Any]] = []
        self.reference: tuple[np.ndarray, np.ndarray] | None = None
        """A position set-point's (position m, velocity m/s), world: the on-board controller tracks it."""
        self._tracker = GeometricController(vehicle, 1.0 / PHYSICS_DT, action_level="rates")
        self._last_ns: int | None = None

    def arm(self, now: int, do_arm: bool, quaternion: np.ndarray) -> bool:
        if do_arm and not self.armed:
            self.armed, self.stage, self.thrust_locked = True, "fly", True
            self.events.append({"kind": "armed", "at_ns": now})
        elif not do_arm and self.armed:
            self.disarm(now, "disarm request")
        return True

    def disarm(self, now: int, why: str) -> None:
        if self.armed:
            self.armed = False
            self.events.append({"kind": "disarmed", "at_ns": now, "why": why})

    def rpyt(self, now: int, s: crtp.Rpyt) -> None:
        self._setpoint_arrived(now)
        self.reference = None
        if s.thrust == 0:
            self.thrust_locked = False
        thrust = 0.0 if self.thrust_locked else s.thrust / crtp.THRUST_MAX
        self.setpoint = np.array(crtp.rates_of(crtp.Rpyt(s.roll_deg, s.pitch_deg, s.yaw_rate_deg_s, 0)))
        self.setpoint[0] = thrust

    def track(self, now: int, position: np.ndarray, velocity: np.ndarray) -> None:
        """A position set-point (generic POSITION or FULL_STATE, crazyswarm2's cmd_position and
        cmd_full_state): the on-board position controller takes the vehicle there."""
        self._setpoint_arrived(now)
        if self.reference is None:
            self._tracker.reset()
        self.reference = (np.asarray(position, dtype=float), np.asarray(velocity, dtype=float))

    def stop(self, now: int) -> None:
        self.last_setpoint_ns, self.thrust_locked, self.reference = now, True, None
        self.setpoint = np.zeros(4)

    def _setpoint_arrived(self, now: int) -> None:
        self.last_setpoint_ns = now
        if self.stage != "fly" and self.armed:
            self.events.append({"kind": "setpoints_back", "at_ns": now})
            self.stage = "fly"

    def update(self, now: int, estimate: np.ndarray) -> np.ndarray:
        """Rotor speeds (4,) for this physics step from the state estimate (13,)."""
        quaternion, gyro = estimate[3:7], estimate[10:13]
        dt = 0.0 if self._last_ns is None else (now - self._last_ns) / 1e9
        self._last_ns = now
        if not self.armed:
            self.rate_loop.reset()
            return np.zeros(4)
        if self.last_setpoint_ns is not None:
            quiet = (now - self.last_setpoint_ns) / 1e9
            if quiet > SHUTDOWN_TIMEOUT_S:
                self._stage(now, "off")
                self.disarm(now, "no set-point for 2 s: motors off")
                return np.zeros(4)
            rate_mode = self.reference is None and not (
                self.params["flightmode.stabModeRoll"] or self.params["flightmode.stabModePitch"]
            )
            if quiet > (DEADMAN_S if rate_mode else LEVEL_TIMEOUT_S):
                self._stage(now, "level")
        thrust, roll, pitch, yaw = self.setpoint
        if self.reference is not None and self.stage == "fly":
            action = self._tracker.act(flight.observation(estimate, self.reference, np.zeros((0, 4))))
            thrust, roll, pitch, yaw = flight.rates_setpoint(action)
        if self.stage == "level":
            rates = attitude_rates(quaternion)
        else:
            rates = np.array([roll, pitch, yaw])
            if self.reference is None and (
                self.params["flightmode.stabModeRoll"] or self.params["flightmode.stabModePitch"]
            ):
                angles = attitude_rates(quaternion, roll, pitch)
                rates[0] = angles[0] if self.params["flightmode.stabModeRoll"] else roll
                rates[1] = angles[1] if self.params["flightmode.stabModePitch"] else pitch
        if thrust <= 0.0:
            self.rate_loop.reset()
            return np.zeros(4)
        return self.rate_loop.speeds(np.array([thrust, *rates]), gyro, dt)

    def _stage(self, now: int, stage: str) -> None:
        if self.stage != stage:
            self.stage = stage
            self.events.append({"kind": stage, "at_ns": now})

    @property
    def bitfield(self) -> int:
        return CAN_BE_ARMED | (IS_ARMED | CAN_FLY if self.armed else 0) | (IS_FLYING if self.setpoint[0] > 0 else 0)


class EmulatedCrazyflie:
    """The vehicle behind a link; `run()` serves it until `duration_s` or `should_stop()` and
    returns the report (what arrived, what was injected, and the flight: the firmware's events and
    where the vehicle ended)."""

    def __init__(
        self,
        robot: str = "crazyflie",
        params: str | Path = "l2f",
        imperfections: bool = True,
        seed: int = 0,
        faults: FaultPlan | None = None,
        keep_state: bool = False,
    ):
        from sim.robots import load_robot_params

        self.server = PlantServer(SimulatedRobot(robot, params=params, imperfections=imperfections), seed)
        self.vehicle = load_robot_params(robot, params)
        self.firmware = self.boot_firmware([])
        self.faults = faults or FaultPlan()
        self.rng = np.random.default_rng(self.faults.seed)
        self.keep_state = keep_state
        self.outbox: collections.deque[tuple[int, Callable[[], None]]] = collections.deque()
        self.estimate = self.server.robot.measure()
        self.frozen_until_ns = 0.0
        self.silent_until_ns = 0
        self.unplugged = False
        self.armed_at_ns: int | None = None
        self.launched = False
        self.events_pending = list(self.faults.events)
        self.started_ns = time.monotonic_ns()
        self.report: dict[str, Any] = {
            "states_sent": 0,
            "states_dropped": [],
            "states_corrupted": [],
            "commands_received": 0,
            "commands_dropped": 0,
            "commands_outside_limits": 0,
            "malformed": 0,
            "sessions": 0,
            "events": [],
        }

    def boot_firmware(self, events: list[dict[str, Any]]) -> Firmware:
        """The firmware at power-on, its event record carried over a reboot."""
        firmware = Firmware(self.vehicle)
        firmware.events = events
        return firmware

    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> dict[str, Any]:
        server = self.server
        start = time.monotonic_ns()
        server.due(start)
        end = None if duration_s is None else start + int(duration_s * 1e9)
        checks = 0
        while end is None or time.monotonic_ns() < end:
            checks += 1
            if checks % 16 == 0 and should_stop():
                break
            now = time.monotonic_ns()
            wake = server.next_step_ns if not self.outbox else min(server.next_step_ns, self.outbox[0][0])
            if wake > now:
                self._wait((wake - now) / 1e9)
            now = time.monotonic_ns()
            if not (self.unplugged or now < self.silent_until_ns):
                self._receive(now)
            while self.outbox and self.outbox[0][0] <= now:
                self.outbox.popleft()[1]()
            if server.due(now):
                self._events(now)
                self._physics_step(now)
        self.report["flight"] = flight_report(server, self.firmware.events, self.firmware.armed)
        return self.report

    # For the link ----------------------------------------------------------------------------------
    def arm_on_first(self, now: int) -> None:
        """Arming's bookkeeping: timed faults count from the first arming."""
        if self.armed_at_ns is None:
            self.armed_at_ns = now
            self.report["sessions"] += 1

    def launch(self) -> None:
        """Start a flight where the task's episodes start, unless `keep_state`."""
        if not self.keep_state:
            self.server.restart()
            self.estimate = self.server.robot.measure()
        self.launched = True

    def lost(self, outgoing: bool) -> bool:
        """Whether a message is lost: only in flight (the link's own retries cover the set-up); an
        outgoing one also when damaged (a radio's CRC or a datagram's checksum drops it)."""
        f = self.faults
        if not self.firmware.armed:
            return False
        lost = f.drop and self.rng.random() < f.drop
        if outgoing:
            lost = (
                lost or (f.corrupt and self.rng.random() < f.corrupt) or (f.bitflip and self.rng.random() < f.bitflip)
            )
        return bool(lost)

    def send_later(self, now: int, send: Callable[[], None]) -> None:
        """Send through the faulty link: after the plan's latency and jitter, never overtaking."""
        f = self.faults
        delay = f.latency_ms + (self.rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0.0)
        when = max(now + int(delay * 1e6), self.outbox[-1][0] if self.outbox else 0)
        self.outbox.append((when, send))

    def _wait(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.001))

    def _receive(self, now: int) -> None: ...

    def _stream(self, now: int) -> None:
        """What the vehicle sends unasked, each physics step it is powered and in range."""

    def _rebooted(self) -> None:
        """What else a reboot resets."""

    # The vehicle ---------------------------------------------------------------------------------
    def _physics_step(self, now: int) -> None:
        silent = now < self.silent_until_ns
        if now >= self.frozen_until_ns:
            self.estimate = self.server.robot.measure()
        speeds = np.zeros(4) if silent else self.firmware.update(now, self.estimate)
        # Held in the hand at its start until a flight is launched: what a host reads before and
        # after the launch's restart is the same vehicle.
        if self.launched:
            self.server.step(speeds)
        else:
            self.server.hold()
        if not (silent or self.unplugged):
            self._stream(now)

    def _events(self, now: int) -> None:
        if self.armed_at_ns is None:
            return
        while self.events_pending and now >= self.armed_at_ns + self.events_pending[0].at_s * 1e9:
            event = self.events_pending.pop(0)
            self.report["events"].append({"kind": event.kind, "at_ns": now, "duration_s": event.duration_s})
            if event.kind == "frozen_sensor":
                self.frozen_until_ns = now + (event.duration_s * 1e9 if event.duration_s else math.inf)
            elif event.kind == "brownout":
                self.silent_until_ns = now + int(event.duration_s * 1e9)
                self.outbox.clear()
                self.firmware.disarm(now, "power lost")
                self.firmware = self.boot_firmware(
                    [*self.firmware.events, {"kind": "rebooted", "at_ns": self.silent_until_ns}]
                )
                self._rebooted()
            elif event.kind == "unplug":
                self.unplugged = True
                self.outbox.clear()
