"""A Crazyflie on UDP, as the Crazyflie's software-in-the-loop is reached: the MuJoCo quadrotor behind CRTP.

cflib's own client connects to it, unmodified (`udp://127.0.0.1:PORT`: one
CRTP packet per datagram, `hardware.links.crtp`), and finds what it looks for
when a link opens: the link service's "Bitcraze Crazyflie" source (and its echo), the platform's
protocol version (`PROTOCOL_VERSION`, with the supervisor port), the log and
parameter tables of contents (TOC v2), no memories, parameter reads and
writes, log blocks (create v2, start, stop, delete, reset) streamed at their
period, the supervisor's arming and state bitfield, and the commanders.

The firmware's behaviour, as the Crazyflie has it:
- the RPYT commander: roll and pitch are angles, or body rates when
  `flightmode.stabModeRoll` / `stabModePitch` are 0 (rate mode); yaw is a
  rate; thrust 0..65535 is the collective thrust. After a link opens (and
  after a stop) thrust stays locked until a set-point with zero thrust;
- the generic commander's STOP: motors off; POSITION and FULL_STATE: the
  on-board position controller (the geometric controller at the rates level)
  tracks them;
- the supervisor: arming on request; without set-points for
  `LEVEL_TIMEOUT_S` it levels out (thrust kept), after `SHUTDOWN_TIMEOUT_S`
  its motors go off and it disarms;
- the state estimate (`stateEstimateZ`: position and velocity in mm and mm/s,
  the compressed quaternion, body rates in mrad/s) is the plant's measurement,
  as an estimator fed by motion capture gives it; `pm.vbat` and `pm.state`
  report the battery.
Its rate loop is `rate_loop.RateLoop` on its gyro at every physics step. The
vehicle is held at its task's start until a flight is launched: the set-point
that unlocks the thrust after arming (or a first position set-point) starts it
there again, as the simulated device's activation does, unless `keep_state`.

Faults (`FaultPlan`): once armed, datagrams are lost each way with `drop`, and
`corrupt` and `bitflip` lose them too (the radio's CRC drops a damaged
packet); the firmware's own packets are delayed by latency and jitter. Events:
a frozen sensor (the estimate stops changing; the rate loop flies on it), a
brown-out (silent, then a reboot: disarmed, log blocks gone, thrust locked),
an unplug (the radio out of range: nothing either way from then on).
"""

from __future__ import annotations

import collections
import math
import socket
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.faults import FaultPlan
from hardware.emulators.rate_loop import RateLoop, attitude_rates
from hardware.links import crtp
from hardware.links.crtp import Packet, Port
from policies.geometric import GeometricController
from sim.flight import PHYSICS_DT
from sim.simulated import PlantServer, SimulatedRobot
from sim.tasks import flight

PROTOCOL_VERSION = 12
LEVEL_TIMEOUT_S = 0.5
"""Without a set-point for this long the supervisor levels the vehicle out, s."""
SHUTDOWN_TIMEOUT_S = 2.0
"""...and after this long its motors go off, s."""
BATTERY_V = 4.1
LINK_MAGIC = b"Bitcraze Crazyflie"

# Log TOC: (group, name, type id); type ids as the TOC has them (cflib's LogTocElement.types).
UINT8, UINT16, UINT32, INT8, INT16, FLOAT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
LOG_TYPES = {UINT8: "<B", UINT16: "<H", UINT32: "<I", INT8: "<b", INT16: "<h", FLOAT: "<f"}
LOG_TOC = (
    ("stateEstimateZ", "x", INT16),
    ("stateEstimateZ", "y", INT16),
    ("stateEstimateZ", "z", INT16),
    ("stateEstimateZ", "vx", INT16),
    ("stateEstimateZ", "vy", INT16),
    ("stateEstimateZ", "vz", INT16),
    ("stateEstimateZ", "quat", UINT32),
    ("stateEstimateZ", "rateRoll", INT16),
    ("stateEstimateZ", "ratePitch", INT16),
    ("stateEstimateZ", "rateYaw", INT16),
    ("pm", "vbat", FLOAT),
    ("pm", "state", INT8),
    ("supervisor", "info", UINT16),
)
# Param TOC: (group, name, type id, default); param type ids (cflib's ParamTocElement.types).
P_UINT8, P_FLOAT = 0x08, 0x06
PARAM_TYPES = {P_UINT8: "<B", P_FLOAT: "<f"}
PARAM_TOC = (
    ("flightmode", "stabModeRoll", P_UINT8, 1),
    ("flightmode", "stabModePitch", P_UINT8, 1),
    ("flightmode", "stabModeYaw", P_UINT8, 0),
    ("commander", "enHighLevel", P_UINT8, 0),
)
# Supervisor bitfield bits (cflib's Supervisor).
CAN_BE_ARMED, IS_ARMED, CAN_FLY, IS_FLYING, IS_TUMBLED = 1 << 0, 1 << 1, 1 << 3, 1 << 4, 1 << 5


class Firmware:
    """The Crazyflie's commander, supervisor and rate loop; times in monotonic ns."""

    def __init__(self, vehicle: Any):
        self.params = {f"{g}.{n}": default for g, n, _, default in PARAM_TOC}
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
            if quiet > LEVEL_TIMEOUT_S:
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


class CrtpEmulator:
    """The Crazyflie on a UDP port of 127.0.0.1 (`open()` returns its cflib URI; `run()` serves it)."""

    def __init__(
        self,
        robot: str = "crazyflie",
        params: str | Path = "l2f",
        imperfections: bool = True,
        seed: int = 0,
        faults: FaultPlan | None = None,
        port: int = 0,
        keep_state: bool = False,
    ):
        from sim.robots import load_robot_params

        self.server = PlantServer(SimulatedRobot(robot, params=params, imperfections=imperfections), seed)
        self.vehicle = load_robot_params(robot, params)
        self.firmware = Firmware(self.vehicle)
        self.faults = faults or FaultPlan()
        self.rng = np.random.default_rng(self.faults.seed)
        self.keep_state = keep_state
        self.battery_state = 0
        """What `pm.state` reports: 0 on battery (3 low power, 4 shutting down)."""
        self.port = port
        self.sock: socket.socket | None = None
        self.client: tuple[str, int] | None = None
        self.outbox: collections.deque[tuple[int, bytes]] = collections.deque()
        self.blocks: dict[int, dict[str, Any]] = {}
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

    def open(self) -> str:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        return f"udp://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> dict[str, Any]:
        import select

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
                select.select([self.sock], [], [], (wake - now) / 1e9)
            self._receive()
            now = time.monotonic_ns()
            self._flush(now)
            if server.due(now):
                self._events(now)
                self._physics_step(now)
        x = server.robot.env.plant.state()
        self.report["flight"] = {
            "events": self.firmware.events,
            "armed": self.firmware.armed,
            "final_position": [float(v) for v in x[:3]],
            "final_speed": float(np.linalg.norm(x[7:10])),
        }
        return self.report

    # The vehicle ---------------------------------------------------------------------------------
    def _physics_step(self, now: int) -> None:
        silent = now < self.silent_until_ns
        if now >= self.frozen_until_ns:
            self.estimate = self.server.robot.measure()
        speeds = np.zeros(4) if silent else self.firmware.update(now, self.estimate)
        # Held in the hand at its start until the thrust unlock launches it: what a host reads before
        # and after the unlock's restart is the same vehicle.
        if self.launched:
            self.server.step(speeds)
        else:
            self.server.hold()
        if not silent:
            for block_id, block in self.blocks.items():
                if block["started"] and now >= block["due_ns"]:
                    block["due_ns"] = max(block["due_ns"] + block["period_ns"], now)
                    self._log_data(block_id, block, now)

    def _log_values(self) -> dict[int, float]:
        m, fw = self.estimate, self.firmware
        values = [*(1000 * m[:3]), *(1000 * m[7:10]), crtp.compress_quaternion(tuple(m[3:7]))]
        values += [*(1000 * m[10:13]), BATTERY_V, self.battery_state, fw.bitfield]
        return dict(enumerate(values))

    def _log_data(self, block_id: int, block: dict[str, Any], now: int) -> None:
        values = self._log_values()
        data = b"".join(struct.pack(LOG_TYPES[t], _as(t, values[i])) for i, t in block["variables"])
        stamp_ms = ((now - self.started_ns) // 1_000_000) & 0xFFFFFF
        head = bytes((block_id, stamp_ms & 0xFF, (stamp_ms >> 8) & 0xFF, stamp_ms >> 16))
        self._send(Packet(Port.LOGGING, 2, head + data), now, stamp=stamp_ms)

    # The link ------------------------------------------------------------------------------------
    def _receive(self) -> None:
        while self.sock is not None:
            try:
                raw, address = self.sock.recvfrom(64)
            except (BlockingIOError, InterruptedError):
                return
            now = time.monotonic_ns()
            if self.unplugged or now < self.silent_until_ns:
                continue
            if raw == b"\xff":  # cflib's scan probe: any answer says a Crazyflie is here
                self.sock.sendto(b"\xff", address)
                continue
            try:
                packet = crtp.decode(raw)
            except crtp.CrtpError:
                self.report["malformed"] += 1
                continue
            self.client = address
            if self._lost(outgoing=False):
                if packet.port in (Port.COMMANDER, Port.COMMANDER_GENERIC):
                    self.report["commands_dropped"] += 1
                continue
            self._handle(packet, now)

    def _lost(self, outgoing: bool) -> bool:
        """Whether a datagram is lost: only in flight (the link's own retries cover the set-up)."""
        f = self.faults
        if not self.firmware.armed:
            return False
        lost = f.drop and self.rng.random() < f.drop
        if outgoing:  # the radio's CRC drops a damaged packet
            lost = (
                lost or (f.corrupt and self.rng.random() < f.corrupt) or (f.bitflip and self.rng.random() < f.bitflip)
            )
        return bool(lost)

    def _send(self, packet: Packet, now: int, stamp: int | None = None) -> None:
        """Send a packet through the faulty link; a log packet's `stamp` (ms) is recorded if lost."""
        if self.client is None or self.unplugged:
            return
        if stamp is not None:
            self.report["states_sent"] += 1
        if self._lost(outgoing=True):
            if stamp is not None:
                self.report["states_dropped"].append(stamp)
            return
        f = self.faults
        delay = f.latency_ms + (self.rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0.0)
        when = max(now + int(delay * 1e6), self.outbox[-1][0] if self.outbox else 0)
        self.outbox.append((when, crtp.encode(packet)))

    def _flush(self, now: int) -> None:
        while self.outbox and self.outbox[0][0] <= now:
            _, data = self.outbox.popleft()
            if self.sock is not None and self.client is not None:
                try:
                    self.sock.sendto(data, self.client)
                except OSError:  # the client went away
                    pass

    def _handle(self, p: Packet, now: int) -> None:
        d = p.data
        if p.port == Port.LINK and p.channel == 0:  # link service echo
            self._send(p, now)
        elif p.port == Port.LINK and p.channel == 1:  # link service source: identify
            self._send(Packet(Port.LINK, 1, LINK_MAGIC), now)
        elif p.port == Port.PLATFORM and p.channel == 1 and d[:1] == b"\x00":
            self._send(Packet(Port.PLATFORM, 1, bytes((0, PROTOCOL_VERSION))), now)
        elif p.port == Port.LOGGING and p.channel == 0:
            self._toc(p, [(t | 0, f"{g}\0{n}\0".encode()) for g, n, t in LOG_TOC], now)
        elif p.port == Port.LOGGING and p.channel == 1:
            self._log_settings(d, now)
        elif p.port == Port.PARAM:
            self._param(p, now)
        elif p.port == Port.MEM and p.channel == 0 and d[:1] == b"\x01":
            self._send(Packet(Port.MEM, 0, bytes((1, 0))), now)  # no memories
        elif p.port == Port.SUPERVISOR:
            self._supervisor(p, now)
        elif p.port in (Port.COMMANDER, Port.COMMANDER_GENERIC):
            try:
                setpoint = crtp.unpack_setpoint(p)
            except crtp.CrtpError:
                self.report["malformed"] += 1
                return
            self.report["commands_received"] += 1
            tracking = isinstance(setpoint, crtp.FullState) or (
                isinstance(setpoint, crtp.Generic) and setpoint.kind == crtp.Setpoint.POSITION
            )
            unlock = isinstance(setpoint, crtp.Rpyt) and self.firmware.thrust_locked and setpoint.thrust == 0
            if self.firmware.armed and (unlock or (tracking and not self.launched)):
                self._launch()
            if isinstance(setpoint, crtp.Rpyt):
                self.firmware.rpyt(now, setpoint)
            elif isinstance(setpoint, crtp.FullState):
                self.firmware.track(now, np.array(setpoint.position), np.array(setpoint.velocity))
            elif tracking:
                self.firmware.track(now, np.array(setpoint.values[:3]), np.zeros(3))
            elif setpoint.kind == crtp.Setpoint.STOP:
                self.firmware.stop(now)

    def _toc(self, p: Packet, items: list[tuple[int, bytes]], now: int) -> None:
        d = p.data
        crc = 0x5232 + len(items)
        if d[:1] == b"\x03":  # TOC info v2: count u16, CRC u32, (log: max blocks and variables)
            self._send(Packet(p.port, 0, struct.pack("<BHIBB", 3, len(items), crc, 16, 128)), now)
        elif d[:1] == b"\x02" and len(d) >= 3:  # TOC item v2
            index = d[1] | d[2] << 8
            if index < len(items):
                kind, name = items[index]
                self._send(Packet(p.port, 0, bytes((2, d[1], d[2], kind)) + name), now)

    def _log_settings(self, d: bytes, now: int) -> None:
        command = d[0] if d else -1
        if command == 5:  # reset: every block gone
            self.blocks.clear()
            self._send(Packet(Port.LOGGING, 1, bytes((5, 0, 0))), now)
            return
        if len(d) < 2:
            return
        block_id = d[1]
        status = 0
        if command in (6, 7):  # create and append v2: (storage << 4 | fetch, TOC id u16)*
            variables = []
            entries = d[2:]
            for i in range(0, len(entries) - 2, 3):
                fetch, toc_id = entries[i] & 0x0F, entries[i + 1] | entries[i + 2] << 8
                if toc_id >= len(LOG_TOC) or fetch not in LOG_TYPES:
                    status = 2  # ENOENT
                    break
                variables.append((toc_id, fetch))
            block = self.blocks.get(block_id)
            if command == 6 and block is not None:
                status = status or 17  # EEXIST
            elif command == 7 and block is None:
                status = status or 2
            if status == 0:
                block = block if command == 7 else {"variables": [], "started": False, "period_ns": 0, "due_ns": 0}
                variables = block["variables"] + variables
                if sum(struct.calcsize(LOG_TYPES[t]) for _, t in variables) > crtp.MAX_PAYLOAD - 4:
                    status = 7  # E2BIG
                else:  # an append may come after the start (cflib starts on the create's reply)
                    self.blocks[block_id] = block | {"variables": variables}
        elif command == 3:  # start, period in 10 ms
            if block_id in self.blocks and len(d) >= 3:
                period = max(1, d[2]) * 10_000_000
                self.blocks[block_id].update(started=True, period_ns=period, due_ns=now)
            else:
                status = 2
        elif command == 4:  # stop
            if block_id in self.blocks:
                self.blocks[block_id]["started"] = False
        elif command == 2:  # delete
            status = 0 if self.blocks.pop(block_id, None) is not None else 2
        else:
            return
        self._send(Packet(Port.LOGGING, 1, bytes((command, block_id, status))), now)

    def _param(self, p: Packet, now: int) -> None:
        d, names = p.data, [f"{g}.{n}" for g, n, _, _ in PARAM_TOC]
        if p.channel == 0:
            self._toc(p, [(t, f"{g}\0{n}\0".encode()) for g, n, t, _ in PARAM_TOC], now)
            return
        if len(d) < 2:
            return
        index = d[0] | d[1] << 8
        if index >= len(PARAM_TOC):
            return
        name, kind = names[index], PARAM_TOC[index][2]
        if p.channel == 1:  # read: id, status, value
            self._send(
                Packet(Port.PARAM, 1, d[:2] + b"\x00" + struct.pack(PARAM_TYPES[kind], self.firmware.params[name])), now
            )
        elif p.channel == 2 and len(d) == 2 + struct.calcsize(PARAM_TYPES[kind]):  # write: echoed
            (self.firmware.params[name],) = struct.unpack(PARAM_TYPES[kind], d[2:])
            self._send(Packet(Port.PARAM, 2, d), now)

    def _supervisor(self, p: Packet, now: int) -> None:
        d = p.data
        if p.channel == 0 and d[:1] == b"\x0c":
            self._send(Packet(Port.SUPERVISOR, 0, struct.pack("<BH", 0x8C, self.firmware.bitfield)), now)
        elif p.channel == 1 and d[:1] == b"\x01" and len(d) >= 2:
            if d[1] and not self.firmware.armed and self.armed_at_ns is None:
                self.armed_at_ns = now
                self.report["sessions"] += 1
            ok = self.firmware.arm(now, bool(d[1]), self.estimate[3:7])
            self._send(Packet(Port.SUPERVISOR, 1, bytes((0x81, ok, self.firmware.armed))), now)

    def _launch(self) -> None:
        """The flight starts where the task's episodes start (as the simulated device's activation
        does), unless `keep_state`."""
        if not self.keep_state:
            self.server.restart()
            self.estimate = self.server.robot.measure()
        self.launched = True

    # Timed faults -------------------------------------------------------------------------------
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
                events = [*self.firmware.events, {"kind": "rebooted", "at_ns": self.silent_until_ns}]
                self.firmware = Firmware(self.vehicle)
                self.firmware.events = events
                self.blocks.clear()
            elif event.kind == "unplug":
                self.unplugged = True
                self.outbox.clear()


def _as(kind: int, value: float) -> float | int:
    """A logged value in its wire type: integers rounded and held within the type's range."""
    if kind == FLOAT:
        return float(value)
    bits = struct.calcsize(LOG_TYPES[kind]) * 8
    low, high = (0, 2**bits - 1) if kind in (UINT8, UINT16, UINT32) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return int(min(high, max(low, round(value))))
