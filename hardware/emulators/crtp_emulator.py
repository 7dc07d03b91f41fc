"""A Crazyflie on UDP, as the Crazyflie's software-in-the-loop is reached: the MuJoCo quadrotor behind CRTP.

cflib's own client connects to it, unmodified (`udp://127.0.0.1:PORT`: one
CRTP packet per datagram, `hardware.links.crtp`), and finds what it looks for
when a link opens: the link service's "Bitcraze Crazyflie" source (and its
echo), the platform's protocol version (`PROTOCOL_VERSION`, with the supervisor
port), the log and parameter tables of contents (TOC v2), no memories,
parameter reads and writes, log blocks (create and append v2, start, stop,
delete, reset) streamed at their period, the supervisor's arming and state
bitfield, and the commanders (RPYT; generic STOP, POSITION, FULL_STATE). The
state estimate is logged as `stateEstimateZ` (position and velocity in mm and
mm/s, the compressed quaternion, body rates in mrad/s); `pm.vbat` and
`pm.state` report the battery. The vehicle and its firmware are
`hardware.emulators.crazyflie`'s.

Faults (`FaultPlan`): once armed, datagrams are lost each way with `drop`, and
`corrupt` and `bitflip` lose them too (the radio's CRC drops a damaged
packet); the firmware's own packets are delayed by latency and jitter; the
events are the vehicle's (a reboot also forgets the log blocks).
"""

from __future__ import annotations

import select
import socket
import struct
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.crazyflie import EmulatedCrazyflie, Firmware
from hardware.emulators.faults import FaultPlan
from hardware.links import crtp
from hardware.links.crtp import Packet, Port

PROTOCOL_VERSION = 12
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


class CrtpEmulator(EmulatedCrazyflie):
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
        super().__init__(robot, params, imperfections, seed, faults, keep_state)
        self.battery_state = 0
        """What `pm.state` reports: 0 on battery (3 low power, 4 shutting down)."""
        self.port = port
        self.sock: socket.socket | None = None
        self.client: tuple[str, int] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}

    def boot_firmware(self, events: list[dict[str, Any]]) -> Firmware:
        firmware = super().boot_firmware(events)
        for group, name, _, default in PARAM_TOC:  # the TOC's parameters the firmware model lacks
            firmware.params.setdefault(f"{group}.{name}", default)
        return firmware

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

    def _wait(self, seconds: float) -> None:
        select.select([self.sock], [], [], seconds)

    def _stream(self, now: int) -> None:
        for block_id, block in self.blocks.items():
            if block["started"] and now >= block["due_ns"]:
                block["due_ns"] = max(block["due_ns"] + block["period_ns"], now)
                self._log_data(block_id, block, now)

    def _rebooted(self) -> None:
        self.blocks.clear()

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
    def _receive(self, now: int) -> None:
        while self.sock is not None:
            try:
                raw, address = self.sock.recvfrom(64)
            except (BlockingIOError, InterruptedError):
                return
            if raw == b"\xff":  # cflib's scan probe: any answer says a Crazyflie is here
                self.sock.sendto(b"\xff", address)
                continue
            try:
                packet = crtp.decode(raw)
            except crtp.CrtpError:
                self.report["malformed"] += 1
                continue
            self.client = address
            if self.lost(outgoing=False):
                if packet.port in (Port.COMMANDER, Port.COMMANDER_GENERIC):
                    self.report["commands_dropped"] += 1
                continue
            self._handle(packet, now)

    def _send(self, packet: Packet, now: int, stamp: int | None = None) -> None:
        """Send a packet through the faulty link; a log packet's `stamp` (ms) is recorded if lost."""
        if self.client is None or self.unplugged:
            return
        if stamp is not None:
            self.report["states_sent"] += 1
        if self.lost(outgoing=True):
            if stamp is not None:
                self.report["states_dropped"].append(stamp)
            return
        data, client = crtp.encode(packet), self.client

        def send() -> None:
            try:
                if self.sock is not None:
                    self.sock.sendto(data, client)
            except OSError:  # the client went away
                pass

        self.send_later(now, send)

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
                self.launch()
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
            if d[1]:
                self.arm_on_first(now)
            ok = self.firmware.arm(now, bool(d[1]), self.estimate[3:7])
            self._send(Packet(Port.SUPERVISOR, 1, bytes((0x81, ok, self.firmware.armed))), now)


def _as(kind: int, value: float) -> float | int:
    """A logged value in its wire type: integers rounded and held within the type's range."""
    if kind == FLOAT:
        return float(value)
    bits = struct.calcsize(LOG_TYPES[kind]) * 8
    low, high = (0, 2**bits - 1) if kind in (UINT8, UINT16, UINT32) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return int(min(high, max(low, round(value))))
