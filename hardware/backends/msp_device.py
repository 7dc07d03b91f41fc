"""A Betaflight-class flight controller over MSP, with the vehicle's position from motion capture.

The board runs the rate loop; the host sends collective thrust and body-rate
set-points as RC sticks (SET_RAW_RC, the RC override, AUX1 arming) and reads
the board's attitude (ATTITUDE) and gyro (RAW_IMU). A Betaflight board has no
position: the state's position and velocity come from a motion-capture
system's `nav_msgs/Odometry` (`MocapOdometry`), as indoor flying with a
flight controller has it. Without one, the device offers attitude and rates
only, and a flight policy is refused at configure.

Every tick the host writes one SET_RAW_RC and asks for ATTITUDE, RAW_IMU and
STATUS; their replies are there at the next tick's read. A request whose reply
never came (lost or damaged on the wire, either way) is counted lost. Faults
the host catches here: the board disarmed itself (failsafe, reboot), its IMU
frozen (RAW_IMU bit-identical, noise included, for `imu_frozen_s`), the port
gone. (A frozen IMU is judged on replies that came: no reply at all is the
loop's stale state.) Motion capture that is late makes position and velocity NaN: the loop
is blind, not the device faulted.

On a fault, and whenever the loop cannot trust the state, the host stops
sending (`firmware_failsafe`): the board's own failsafe (level, then motors
off) takes over. Deactivating disarms (AUX1 low, throttle low) where the link
still carries it and the device did not fault.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import serial

from hardware.backends.serial_port import read_available, write_frame
from hardware.device import Command, Device, DeviceError, Lifecycle, State
from hardware.links import msp
from sim.dynamics.quadrotor import rotation
from sim.robots.quadrotor import MAX_BODY_RATE, load_params, spec
from sim.robots.spec import RobotSpec

log = logging.getLogger(__name__)

POLLED = (msp.Command.ATTITUDE, msp.Command.RAW_IMU, msp.Command.STATUS)


class MocapOdometry:
    """The latest pose and velocity of one tracked vehicle, from `nav_msgs/Odometry` on `topic`
    (ROS 2; Cyclone DDS on loopback with `loopback`). `latest(max_age_s)` -> (position (3,) m,
    velocity (3,) m/s, both world) or None when nothing that fresh arrived."""

    def __init__(self, topic: str, domain_id: int = 0, loopback: bool = False, backend: str = "auto"):
        from hardware.links import ros2_msgs
        from hardware.links.ros2_transport import make_transport

        self.topic = topic
        self.transport = make_transport(domain_id, loopback, backend)
        self.reader = self.transport.subscriber(topic, ros2_msgs.Odometry, reliable=False)
        self._latest: tuple[int, np.ndarray, np.ndarray] | None = None
        self.malformed = 0

    def latest(self, max_age_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        from hardware.links.ros2_msgs import Malformed, Odometry

        for sample in self.reader.take(64):
            if isinstance(sample, Malformed):
                self.malformed += 1
                continue
            if not isinstance(sample, Odometry):
                continue  # a publisher went away: DDS says so with an invalid sample
            p, q, v = sample.pose.pose.position, sample.pose.pose.orientation, sample.twist.twist.linear
            position = np.array([p.x, p.y, p.z])
            quaternion = np.array([q.w, q.x, q.y, q.z])
            velocity = rotation(quaternion) @ np.array([v.x, v.y, v.z])  # the twist is in the body frame
            if not (np.isfinite(position).all() and np.isfinite(velocity).all()):
                self.malformed += 1
                continue
            self._latest = (time.monotonic_ns(), position, velocity)
        if self._latest is None or time.monotonic_ns() - self._latest[0] > max_age_s * 1e9:
            return None
        return self._latest[1], self._latest[2]

    def close(self) -> None:
        self.transport.close()


def provided_spec(with_position: bool) -> RobotSpec:
    """What the board offers: rates-level commands; attitude and rates, and position and velocity
    only with motion capture."""
    full = spec(load_params("l2f"), commands="rates")
    keep = [c for c in full.state if with_position or c.kind in ("body.orientation", "body.angular_velocity")]
    return RobotSpec("msp", tuple(keep), full.command, full.control_rate_hz, full.max_control_rate_hz)


class MspDevice(Device):
    """The board on `port` at `baudrate`, position and velocity from `mocap` (None: none)."""

    firmware_failsafe = "without RC the board levels out, then its motors go off (its failsafe procedure)"

    def __init__(
        self,
        port: str,
        mocap: MocapOdometry | None = None,
        baudrate: int = 115200,
        timeout_s: float = 1.0,
        imu_frozen_s: float = 0.05,
        mocap_timeout_s: float = 0.05,
    ):
        super().__init__(provided_spec(mocap is not None))
        self.port, self.mocap, self.baudrate = port, mocap, baudrate
        self.timeout_s, self.imu_frozen_s, self.mocap_timeout_s = timeout_s, imu_frozen_s, mocap_timeout_s
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._decoder = msp.Decoder()
        self._outstanding: set[int] = set()
        self._attitude: np.ndarray | None = None
        self._rates: np.ndarray | None = None
        self._flags = 0
        self._imu_raw = b""
        self._imu_since_ns = self._imu_last_ns = 0  # when RAW_IMU last changed, and last came
        self._seq = 0
        self._stamp_ns = 0
        self._armed = False
        self.lost_states = self.error_replies = self.rc_sent = 0
        self.variant = ""

    # Lifecycle ------------------------------------------------------------------------------------
    def _on_configure(self) -> None:
        self._close_port()
        try:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"cannot open serial port {self.port}: {exc}") from exc
        self._fd = self._serial.fileno()
        self._decoder = msp.Decoder()
        self._outstanding.clear()
        self._request(msp.Command.FC_VARIANT)
        deadline = time.monotonic() + self.timeout_s
        while not self.variant:
            self._pump()
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"no MSP reply from {self.port} within {self.timeout_s} s: is it a flight controller's MSP "
                    f"port at {self.baudrate} baud?"
                )
            time.sleep(0.005)
        self._outstanding.clear()
        if self.mocap is not None:
            deadline = time.monotonic() + 3.0
            while self.mocap.latest(self.mocap_timeout_s) is None:
                if time.monotonic() > deadline:
                    raise DeviceError(f"no motion capture on {self.mocap.topic} within 3 s: is the bridge running?")
                time.sleep(0.01)

    def _on_activate(self) -> None:
        """Arm as the board requires: AUX1 high with the throttle low, until STATUS says armed; the
        host's own checks first (a fresh attitude and, with motion capture, a fresh pose)."""
        deadline = time.monotonic() + self.timeout_s
        self._armed = False
        while True:
            self._poll(np.zeros(4), arm=True)
            time.sleep(0.02)
            self._pump()
            if self._flags & msp.ARMED_FLAG and self._attitude is not None:
                break
            if time.monotonic() > deadline:
                why = "no attitude from the board" if self._attitude is None else f"STATUS flags {self._flags:#x}"
                raise DeviceError(
                    f"the board on {self.port} did not arm within {self.timeout_s} s ({why}): it arms only level, "
                    "with the throttle low and its ARM mode on AUX1"
                )
        self._armed = True
        self._outstanding.clear()

    def _on_deactivate(self) -> None:
        self._armed = False
        if self._fd < 0 or self.lifecycle is Lifecycle.FAULT:
            return  # the board's failsafe, not a disarm from a host that faulted, brings it down
        for _ in range(3):  # disarm survives a lost frame
            self._send_rc(np.zeros(4), arm=False)
        # The last tick's replies: count what never came.
        deadline = time.monotonic() + 0.05
        while self._outstanding & set(POLLED) and time.monotonic() < deadline:
            self._pump()
            time.sleep(0.002)
        self.lost_states += len(self._outstanding & {msp.Command.ATTITUDE, msp.Command.RAW_IMU})
        self._outstanding.clear()

    def _on_close(self) -> None:
        self._close_port()
        if self.mocap is not None:
            self.mocap.close()

    # Data -----------------------------------------------------------------------------------------
    def _read(self) -> State:
        self._pump()
        if self._armed and not self._flags & msp.ARMED_FLAG:
            failsafe = " in failsafe" if self._flags & msp.FAILSAFE_FLAG else ""
            raise DeviceError(
                f"the board disarmed itself{failsafe} (flags {self._flags:#x}): failsafe, reboot or its own check"
            )
        if self._imu_last_ns - self._imu_since_ns > self.imu_frozen_s * 1e9:  # replies, all alike
            raise DeviceError(
                f"IMU frozen: RAW_IMU unchanged, noise included, for over {self.imu_frozen_s * 1e3:.0f} ms"
            )
        values = np.full(len(self.provided.state), np.nan)
        if self._attitude is not None:
            offset = 0 if self.mocap is None else 3
            values[offset : offset + 4] = self._attitude
            values[-3:] = self._rates
            if self.mocap is not None:
                pose = self.mocap.latest(self.mocap_timeout_s)
                if pose is not None:
                    values[:3], values[7:10] = pose
        return State(self._stamp_ns, self._seq, values)

    def _write(self, command: Command) -> Command:
        values = np.clip(
            np.asarray(command.values, dtype=float), [0.0, *[-MAX_BODY_RATE] * 3], [1.0, *[MAX_BODY_RATE] * 3]
        )
        self._poll(values, arm=True)
        return Command(msp.setpoint(msp.sticks(values, MAX_BODY_RATE, True), MAX_BODY_RATE))

    def counters(self) -> dict[str, float]:
        return {
            "lost_states": self.lost_states,
            "crc_errors": self._decoder.checksum_errors,
            "malformed_frames": self._decoder.malformed + self._decoder.oversized,
            "error_replies": self.error_replies,
            "rc_sent": self.rc_sent,
            "mocap_malformed": self.mocap.malformed if self.mocap is not None else 0,
        }

    # Link -----------------------------------------------------------------------------------------
    def _poll(self, setpoint: np.ndarray, arm: bool) -> None:
        self._send_rc(setpoint, arm)
        for command in POLLED:
            if command in self._outstanding and command != msp.Command.STATUS:
                self.lost_states += 1  # the last request of this kind was never answered
            self._request(command)

    def _send_rc(self, setpoint: np.ndarray, arm: bool) -> None:
        self._send(msp.Message(msp.Command.SET_RAW_RC, msp.pack_rc(msp.sticks(setpoint, MAX_BODY_RATE, arm))))
        self.rc_sent += 1

    def _request(self, command: int) -> None:
        self._outstanding.add(command)
        self._send(msp.Message(command))

    def _send(self, message: msp.Message) -> None:
        frame = msp.encode(message)
        try:
            write_frame(self._fd, self._serial, frame)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"MSP link to {self.port} lost while writing: {exc}") from exc

    def _pump(self) -> None:
        try:
            data = read_available(self._fd)
        except OSError as exc:
            raise DeviceError(f"MSP link to {self.port} lost: {exc}") from exc
        for message in self._decoder.feed(data):
            self._handle(message)

    def _handle(self, message: msp.Message) -> None:
        self._outstanding.discard(message.command)
        if message.direction is msp.Direction.ERROR:
            self.error_replies += 1
            return
        try:
            if message.command == msp.Command.ATTITUDE:
                self._attitude = msp.quaternion_of(*msp.unpack_attitude(message.payload))
            elif message.command == msp.Command.RAW_IMU:
                raw = msp.unpack_raw_imu(message.payload)
                now = time.monotonic_ns()
                if message.payload != self._imu_raw:
                    self._imu_raw, self._imu_since_ns = message.payload, now
                self._imu_last_ns = now
                self._rates = np.radians(np.array(raw[3:6], dtype=float) * msp.GYRO_SCALE) * np.array([1.0, -1.0, -1.0])
                self._seq += 1
                self._stamp_ns = now
            elif message.command == msp.Command.STATUS:
                self._flags = msp.unpack_status(message.payload)[1]
            elif message.command == msp.Command.FC_VARIANT:
                self.variant = message.payload.decode("ascii", "replace")
        except msp.MspError as exc:
            self.error_replies += 1
            log.warning("%s: %s", self.port, exc)

    def _close_port(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial, self._fd = None, -1
