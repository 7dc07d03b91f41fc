"""A joint-level device on a serial port, speaking the s2r serial protocol (docs/protocol.md).

configure() opens the port (retrying for `reconnect_timeout_s`, so a board
that re-enumerates after an unplug is found again), says HELLO and checks the
device's capabilities against the robot's spec; activate() arms it with a
host timeout after which the device disarms itself; read() drains whatever
arrived and returns the newest state; write() sends one COMMAND frame.

Every failure of the link (the port vanishes, a write times out, the device
reports a fault, resets or disarms itself) is a DeviceError naming the port,
so the loop goes to its safe state at once. Lost, corrupted and malformed
frames are counted, never fatal: the watchdog decides when state is too old.

Sequence numbers only move forward, by at most MAX_SEQUENCE_GAP frames: a
frame further ahead or behind is suspicious (a forged or garbled one can carry
any number) and is set aside; the stream moves there only once
RESYNC_FRAMES frames in a row continue from it, so one bad frame can neither
replace the genuine stream nor make it look old.
"""

from __future__ import annotations

import collections
import logging
import time

import numpy as np
import serial

from hardware.backends.serial_port import read_available, write_frame
from hardware.device import Command, Device, DeviceError, State
from hardware.links import protocol
from hardware.links.protocol import Frame, Type
from sim.robots.spec import Channel, RobotSpec

log = logging.getLogger(__name__)

MAX_SEQUENCE_GAP = 256
"""Most state frames that may be lost between two accepted ones (0.5 s at 500 Hz); beyond, suspicious."""
RESYNC_FRAMES = 3
"""Consecutive frames that must agree on a new sequence before the host follows it."""


class SerialDevice(Device):
    """The device behind `port`; its channels come from its CAPABILITIES at configure()."""

    def __init__(
        self,
        port: str,
        baudrate: int = 1_000_000,
        timeout_s: float = 0.5,
        host_timeout_ms: int = 100,
        reconnect_timeout_s: float = 0.0,
    ):
        super().__init__(None)
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        """How long the handshake, arming and disarming may take, s."""
        self.host_timeout_ms = host_timeout_ms
        """The device disarms itself when no COMMAND or HEARTBEAT came for this long, ms."""
        self.reconnect_timeout_s = reconnect_timeout_s
        self.capabilities: protocol.Capabilities | None = None
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._decoder = protocol.FrameDecoder()
        self._tx_seq = 0
        self._sent_ns: dict[int, int] = {}
        self._pending: list[Frame] = []
        self._latest: State | None = None
        self._last_raw_seq: int | None = None
        self._candidate: tuple[int, int] | None = None  # (raw seq, frames in a row) of a suspicious jump
        self._seq = -1
        self._armed = False
        self.lost_states = 0
        self.rejected = 0
        self.resyncs = 0
        self.rtt_us: collections.deque[float] = collections.deque(maxlen=100_000)
        """Round-trip latency of commands, us: from sending one to the arrival of the first state that echoes
        it, less the time the device held the echo. Arrival is dated by the device's clock relative to the
        newest state of the same read, so it is accurate to about one device state period."""

    # Lifecycle --------------------------------------------------------------------------------
    def _on_configure(self) -> None:
        self._armed = False  # a reconnect starts disarmed, whatever the link did before
        self._close_port()
        self._open()
        self._send(Type.HELLO)
        deadline = time.monotonic() + self.timeout_s
        resend = time.monotonic() + 0.05
        frame = None
        while frame is None:
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"no answer to HELLO from {self.port} within {self.timeout_s} s: is it an s2r device?"
                )
            if time.monotonic() > resend:  # a frame may be lost: ask again
                self._send(Type.HELLO)
                resend = time.monotonic() + 0.05
            frame = self._take(Type.CAPABILITIES)
            time.sleep(0.001)
        caps = protocol.unpack_capabilities(frame.payload)
        self.capabilities = caps
        self.provided = RobotSpec(
            caps.name,
            tuple(Channel(c.name, c.unit, c.low, c.high) for c in caps.state),
            tuple(Channel(c.name, c.unit, c.low, c.high) for c in caps.command),
            control_rate_hz=float(caps.rate_hz),
            max_control_rate_hz=float(caps.rate_hz),
        )

    def _on_activate(self) -> None:
        self._expect_ack(Type.ARM, protocol.ARM_PAYLOAD.pack(self.host_timeout_ms))
        self._armed = True
        self._latest = None
        deadline = time.monotonic() + self.timeout_s
        while self._latest is None:  # read() always has a state to return
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.port}: armed, but no state within {self.timeout_s} s")
            time.sleep(0.001)
            self._pump()

    @property
    def name(self) -> str:
        return self.port

    def _on_deactivate(self) -> None:
        self._armed = False
        if self.capabilities is None or self._serial is None:
            return  # never connected, or the port is closed: nothing can be sent
        try:
            self._send(Type.COMMAND, protocol.pack_values([0.0] * len(self.capabilities.command)))
            self._expect_ack(Type.DISARM)
        except DeviceError as exc:
            # The device's own host timeout disarms it; nothing more the host can do.
            log.warning(
                "%s: disarm not confirmed (%s); the device disarms itself after %d ms",
                self.port,
                exc,
                self.host_timeout_ms,
            )

    def _on_close(self) -> None:
        self._close_port()

    # Data ---------------------------------------------------------------------------------------
    def _read(self) -> State:
        self._pump()
        return self._latest

    def _write(self, command: Command) -> Command:
        values = np.asarray(command.values, dtype=float)
        channels = self.capabilities.command
        if values.shape != (len(channels),):
            raise DeviceError(f"command has shape {values.shape}; {self.port} takes {len(channels)} values")
        for c, v in zip(channels, values, strict=True):
            if not c.low <= v <= c.high:  # the loop clamps first; this is the last line of defence
                raise DeviceError(f"refusing command {c.name}={v} {c.unit}: outside [{c.low}, {c.high}]")
        seq = self._send(Type.COMMAND, protocol.pack_values(values))
        self._sent_ns[seq] = time.monotonic_ns()
        self._sent_ns.pop((seq - 256) & 0xFFFF, None)
        return Command(values)

    def counters(self) -> dict[str, float]:
        return {
            "rx_frames": self._decoder.frames,
            "crc_errors": self._decoder.crc_errors,
            "malformed_frames": self._decoder.malformed,
            "rejected_frames": self.rejected,
            "lost_states": self.lost_states,
            "sequence_resyncs": self.resyncs,
            "rtt_us": self.rtt_us[-1] if self.rtt_us else float("nan"),
        }

    # Link ---------------------------------------------------------------------------------------
    def _open(self) -> None:
        deadline = time.monotonic() + self.reconnect_timeout_s
        while True:
            try:
                # timeout=0: reads return what has arrived, never wait.
                # exclusive: a second host on the same board (another deploy, say) is refused, not interleaved.
                self._serial = serial.Serial(
                    self.port, self.baudrate, timeout=0, write_timeout=self.timeout_s, exclusive=True
                )
                break
            except (serial.SerialException, OSError) as exc:
                if time.monotonic() >= deadline:
                    waited = f" (retried for {self.reconnect_timeout_s} s)" if self.reconnect_timeout_s else ""
                    busy = ": another program has it open" if "exclusively lock" in str(exc) else ""
                    raise DeviceError(f"cannot open serial port {self.port}{waited}{busy}: {exc}") from exc
                time.sleep(0.05)
        self._fd = self._serial.fileno()
        self._serial.reset_input_buffer()
        self._decoder = protocol.FrameDecoder()
        self._pending.clear()
        self._last_raw_seq = None

    def _close_port(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None
            self._fd = -1  # the number may be reused by another file: never write to it again

    def _send(self, kind: Type, payload: bytes = b"") -> int:
        seq = self._tx_seq
        self._tx_seq = (seq + 1) & 0xFFFF
        frame = protocol.encode_frame(kind, seq, payload)
        try:
            write_frame(self._fd, self._serial, frame)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"serial link to {self.port} lost while writing: {exc}") from exc
        return seq

    def _expect_ack(self, kind: Type, payload: bytes = b"") -> None:
        """Send `kind` until the device acknowledges it (a lost frame is sent again), or time out."""
        sent = {self._send(kind, payload)}
        deadline = time.monotonic() + self.timeout_s
        resend = time.monotonic() + 0.05
        while True:
            frame = self._take(Type.ACK)
            if frame is not None:
                if len(frame.payload) != protocol.ACK_PAYLOAD.size:
                    self.rejected += 1
                    log.warning("%s: rejected an ACK of %d bytes", self.port, len(frame.payload))
                    continue
                acked, acked_seq, status = protocol.ACK_PAYLOAD.unpack(frame.payload)
                if acked == kind and acked_seq in sent:
                    if status:
                        raise DeviceError(f"{self.port} refused {kind.name}: {protocol.fault_name(status)}")
                    return
            now = time.monotonic()
            if now > deadline:
                raise DeviceError(f"{self.port} did not acknowledge {kind.name} within {self.timeout_s} s")
            if now > resend:
                sent.add(self._send(kind, payload))
                resend = now + 0.05
            time.sleep(0.001)

    def _take(self, kind: Type) -> Frame | None:
        """The first pending frame of a kind (handshake replies), after reading what arrived."""
        self._pump()
        for i, frame in enumerate(self._pending):
            if frame.type == kind:
                return self._pending.pop(i)
        return None

    def _pump(self) -> None:
        """Read everything that arrived and handle it: states update the latest, faults raise."""
        try:
            data = read_available(self._fd)
        except OSError as exc:
            raise DeviceError(f"serial link to {self.port} lost: {exc}") from exc
        now = time.monotonic_ns()
        frames = self._decoder.feed(data)
        # The newest STATE arrived about now; the device's clock dates the older ones in this read, so
        # a state waiting in the buffer since the last tick is not taken for a fresh one.
        newest = next(
            (
                protocol.STATE_HEAD.unpack_from(f.payload)[0]
                for f in reversed(frames)
                if f.type == Type.STATE and len(f.payload) >= protocol.STATE_HEAD.size
            ),
            None,
        )
        for frame in frames:
            if frame.version != protocol.VERSION:
                raise DeviceError(
                    f"{self.port} speaks s2r serial protocol version {frame.version}; this host speaks "
                    f"version {protocol.VERSION}: update the firmware or the host"
                )
            if frame.type not in Type._value2member_map_:
                self.rejected += 1  # a frame this protocol version has no use for: counted, never kept
            elif frame.type == Type.STATE and self.capabilities is not None:
                self._on_state(frame, now, newest)
            elif frame.type == Type.FAULT:
                try:
                    code, reason = protocol.unpack_fault(frame.payload)
                except protocol.ProtocolError as exc:  # the device says it faulted: believe that much
                    raise DeviceError(f"{self.port} reports a fault ({exc})") from exc
                raise DeviceError(f"{self.port} reports fault {protocol.fault_name(code)}: {reason}")
            else:
                self._pending.append(frame)
        del self._pending[:-16]  # replies nobody waits for

    def _on_state(self, frame: Frame, now: int, newest_device_us: int) -> None:
        try:
            msg = protocol.unpack_state(frame.payload, len(self.capabilities.state))
        except protocol.ProtocolError as exc:
            self.rejected += 1
            log.warning("%s: rejected a STATE frame: %s", self.port, exc)
            return
        arrived = now - ((newest_device_us - msg.device_time_us) & 0xFFFFFFFF) * 1000
        if self._last_raw_seq is not None:
            gap = (frame.seq - self._last_raw_seq) & 0xFFFF
            if gap > MAX_SEQUENCE_GAP and not self._resynchronised(frame.seq):
                self.rejected += 1
                return
            if gap == 0:  # a repeat: never go back in time
                self.rejected += 1
                return
            if gap <= MAX_SEQUENCE_GAP:
                self.lost_states += gap - 1
            self._candidate = None
            self._seq += 1 if gap > MAX_SEQUENCE_GAP else gap
        else:
            self._seq = frame.seq
        self._last_raw_seq = frame.seq
        sent = self._sent_ns.pop(msg.echo_seq, None)
        if sent is not None:
            self.rtt_us.append((arrived - sent) / 1e3 - msg.echo_age_us)
        if self._armed and not msg.armed:
            raise DeviceError(f"{self.port} disarmed itself (it reports disarmed while the host expects it armed)")
        self._latest = State(arrived, self._seq, np.array(msg.values, dtype=float))

    def _resynchronised(self, raw_seq: int) -> bool:
        """A frame out of the sequence's window: true once RESYNC_FRAMES in a row continue from it."""
        if self._candidate is not None and 0 < (raw_seq - self._candidate[0]) & 0xFFFF <= MAX_SEQUENCE_GAP:
            count = self._candidate[1] + 1
        else:
            count = 1
        self._candidate = (raw_seq, count)
        if count < RESYNC_FRAMES:
            return False
        self.resyncs += 1
        log.warning("%s: state sequence resynchronised at %d after %d frames in a row", self.port, raw_seq, count)
        return True
