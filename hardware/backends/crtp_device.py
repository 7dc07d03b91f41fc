"""A Crazyflie over CRTP, through cflib, the client Crazyflie users already run.

The link is any cflib URI: `radio://0/80/2M/E7E7E7E7E7` for a Crazyradio,
`udp://127.0.0.1:19850` for the software-in-the-loop (the emulator). At
configure cflib opens the link (the log and parameter tables of contents),
the RPYT commander is put in rate mode (`flightmode.stabModeRoll` and
`stabModePitch` 0, written and read back), and one log block streams the
state estimate at 100 Hz (`stateEstimateZ`) with the battery's state and the
supervisor's bitfield, 25 bytes, one packet. Activation checks the battery
(`pm.state` not low power or shutting down) and a fresh estimate, arms
through the supervisor (its state bitfield says when) and unlocks the thrust
with a zero set-point.

Commands are the `rates` level: collective thrust (0..65535) and body rates in
rate mode (`crtp.rates_setpoint`). A gap in the log's timestamps counts its
missing packets as lost; a silent link is the loop's stale-state fault. When
the loop cannot trust the state it hands the device over (`firmware_failsafe`)
and sends nothing more: the firmware's supervisor levels the vehicle after
500 ms without set-points and cuts its motors after 2 s.
Deactivating sends STOP (motors off) and a disarm request.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from hardware.device import Command, Device, DeviceError, Lifecycle, State
from hardware.links import crtp
from sim.robots.quadrotor import load_params, spec

log = logging.getLogger(__name__)

STATE_VARIABLES = (
    ("stateEstimateZ.x", "int16_t"),
    ("stateEstimateZ.y", "int16_t"),
    ("stateEstimateZ.z", "int16_t"),
    ("stateEstimateZ.vx", "int16_t"),
    ("stateEstimateZ.vy", "int16_t"),
    ("stateEstimateZ.vz", "int16_t"),
    ("stateEstimateZ.quat", "uint32_t"),
    ("stateEstimateZ.rateRoll", "int16_t"),
    ("stateEstimateZ.ratePitch", "int16_t"),
    ("stateEstimateZ.rateYaw", "int16_t"),
)
LOGGED = (*STATE_VARIABLES, ("pm.state", "int8_t"), ("supervisor.info", "uint16_t"))
"""One log block, 25 bytes: the estimate, the battery's state and the supervisor's bitfield."""
LOW_POWER_STATES = (3, 4)
"""`pm.state` values that forbid arming: low power, shutting down."""
IS_ARMED = 1 << 1
"""The supervisor bitfield's armed bit."""


def state_of(data: dict[str, float]) -> np.ndarray:
    """The spec's state (13,) of one `stateEstimateZ` log packet (mm, mm/s, compressed quaternion,
    mrad/s)."""
    g = "stateEstimateZ."
    position = [data[g + a] / 1000.0 for a in "xyz"]
    velocity = [data[g + a] / 1000.0 for a in ("vx", "vy", "vz")]
    rates = [data[g + a] / 1000.0 for a in ("rateRoll", "ratePitch", "rateYaw")]
    return np.array([*position, *crtp.decompress_quaternion(int(data[g + "quat"])), *velocity, *rates])


class CrtpDevice(Device):
    """The Crazyflie at cflib URI `uri`."""

    firmware_failsafe = "without set-points its supervisor levels out after 0.5 s and cuts the motors after 2 s"

    def __init__(self, uri: str, timeout_s: float = 5.0, log_period_ms: int = 10):
        super().__init__(spec(load_params("l2f"), commands="rates"))
        self.uri, self.timeout_s, self.log_period_ms = uri, timeout_s, log_period_ms
        self.cf = None
        self._lock = threading.Lock()
        self._latest: State | None = None
        self._last_stamp_ms: int | None = None
        self._supervisor = self._battery = 0
        self._lost_reason: str | None = None
        self.lost_states = self.log_packets = 0

    # Lifecycle ------------------------------------------------------------------------------------
    def _on_configure(self) -> None:
        try:
            import cflib.crtp
            from cflib.crazyflie import Crazyflie
            from cflib.crazyflie.log import LogConfig
        except ImportError as exc:
            raise DeviceError("the crtp device needs cflib: pip install -e '.[crazyflie]'") from exc
        self._on_close()
        cflib.crtp.init_drivers()
        self.cf = cf = Crazyflie(rw_cache=None)
        connected, failure = threading.Event(), []
        cf.fully_connected.add_callback(lambda uri: connected.set())
        cf.connection_failed.add_callback(lambda uri, msg: (failure.append(msg), connected.set()))
        cf.connection_lost.add_callback(self._link_lost)
        try:
            cf.open_link(self.uri)
        except Exception as exc:  # cflib raises what its drivers raise for a URI they cannot open
            raise DeviceError(f"cannot open {self.uri}: {exc}") from exc
        if not connected.wait(self.timeout_s) or failure:
            why = failure[0] if failure else f"no Crazyflie answered within {self.timeout_s} s"
            raise DeviceError(f"{self.uri}: {why}")
        for name in ("flightmode.stabModeRoll", "flightmode.stabModePitch"):
            self._set_param(name, 0)
        state = LogConfig("s2r_state", period_in_ms=self.log_period_ms)
        for name, kind in LOGGED:
            state.add_variable(name, kind)
        try:
            cf.log.add_config(state)
        except (KeyError, AttributeError) as exc:
            raise DeviceError(f"{self.uri} does not log what s2r needs: {exc}") from exc
        state.data_received_cb.add_callback(self._on_state)
        state.start()
        self._wait(lambda: self._latest is not None, "no state estimate logged")

    def _on_activate(self) -> None:
        """The host's arming checks (a fresh estimate, the battery), then the supervisor's arming."""
        self._wait(self._fresh, "the state estimate is not fresh")
        if self._battery in LOW_POWER_STATES:
            raise DeviceError(f"battery low or shutting down (pm.state {self._battery}): not arming")
        self.cf.supervisor.send_arming_request(True)
        self._wait(lambda: self.cf.supervisor.is_armed, "the supervisor did not arm")
        self.cf.commander.send_setpoint(0.0, 0.0, 0.0, 0)  # unlocks the thrust
        unlocked_ns = time.monotonic_ns()
        self._wait(lambda: self._latest.stamp_ns > unlocked_ns, "no state estimate after arming")

    def _on_deactivate(self) -> None:
        if self.cf is None or self.lifecycle is Lifecycle.FAULT:
            return  # the supervisor's timeouts, not a host that faulted, bring it down
        self.cf.commander.send_stop_setpoint()
        self.cf.supervisor.send_arming_request(False)

    def _on_close(self) -> None:
        if self.cf is not None:
            self.cf.close_link()
            self.cf = None
        self._latest, self._last_stamp_ms, self._lost_reason = None, None, None

    # Data -----------------------------------------------------------------------------------------
    def _read(self) -> State:
        if self._lost_reason:
            raise DeviceError(f"{self.uri}: link lost: {self._lost_reason}")
        with self._lock:
            if not self._supervisor & IS_ARMED:
                raise DeviceError(f"{self.uri}: the Crazyflie disarmed itself (supervisor {self._supervisor:#x})")
            return self._latest

    def _write(self, command: Command) -> Command:
        setpoint = crtp.rates_setpoint(np.asarray(command.values, dtype=float))
        try:
            self.cf.commander.send_setpoint(
                setpoint.roll_deg, setpoint.pitch_deg, setpoint.yaw_rate_deg_s, setpoint.thrust
            )
        except Exception as exc:
            raise DeviceError(f"{self.uri}: could not send the set-point: {exc}") from exc
        return Command(np.array(crtp.rates_of(setpoint)))

    def counters(self) -> dict[str, float]:
        return {
            "lost_states": self.lost_states,
            "log_packets": self.log_packets,
            "crc_errors": 0,
            "malformed_frames": 0,
        }

    # cflib's callbacks (its threads) ------------------------------------------------------------------
    def _on_state(self, stamp_ms: int, data: dict[str, float], config) -> None:
        values = state_of(data)
        with self._lock:
            if self._last_stamp_ms is not None:  # packets missing between two, a period apart
                self.lost_states += max(0, round((stamp_ms - self._last_stamp_ms) / self.log_period_ms) - 1)
            self._last_stamp_ms = stamp_ms
            self.log_packets += 1
            self._latest = State(time.monotonic_ns(), stamp_ms, values)
            self._battery, self._supervisor = int(data["pm.state"]), int(data["supervisor.info"])

    def _link_lost(self, uri: str, message: str) -> None:
        self._lost_reason = message

    # Helpers --------------------------------------------------------------------------------------
    def _fresh(self) -> bool:
        with self._lock:
            return self._latest is not None and time.monotonic_ns() - self._latest.stamp_ns < 0.1e9

    def _set_param(self, name: str, value: int) -> None:
        self.cf.param.set_value(name, value)
        group, _, field = name.partition(".")
        self._wait(lambda: self.cf.param.values.get(group, {}).get(field) == str(value), f"{name} not set to {value}")

    def _wait(self, done, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.uri}: {what} within {self.timeout_s} s")
            time.sleep(0.005)
