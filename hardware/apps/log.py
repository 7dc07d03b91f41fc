"""Run logs: MCAP with ROS 2 message schemas, written by a separate process from a bounded queue.

Topics (ROS 2 types, CDR, so a log opens in Foxglove and `ros2 bag`), by the
kinds of the robot spec's channels (`sim.robots.spec.KINDS`), one message each per tick:
    /joint_states     sensor_msgs/msg/JointState           joints: measured position, velocity; effort = the
                                                           joint's command sent
    /pose             geometry_msgs/msg/PoseStamped        a free body: measured pose in `world`
    /odom             nav_msgs/msg/Odometry                ...pose in `world`, twist in `base_link`
    /imu              sensor_msgs/msg/Imu                  ...orientation and body rates (no acceleration)
and for every robot:
    /state            std_msgs/msg/Float64MultiArray       measured state, spec state order (the whole reading)
    /policy/action    std_msgs/msg/Float64MultiArray       the policy's action in [-1, 1]
    /command          std_msgs/msg/Float64MultiArray       command sent, spec command order
    /diagnostics      diagnostic_msgs/msg/DiagnosticArray  loop timing (10 Hz), every fault and every change of
                                                           the device's link counters (a lost frame), at once
Metadata records hold the run's configuration, the policy's sha256 and the robot parameters.

A separate writer process encodes and writes, so logging costs the loop only
a queue put. Chunks reach the OS whole as they fill: if the loop's process is
killed, the writer finishes the file; if the writer is killed too, the file
reads back up to its last complete 32 KiB chunk (`read_log`).
"""

from __future__ import annotations

import io
import json
import logging
import math
import mmap
import multiprocessing
import os
import queue
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import Writer
from mcap_ros2.decoder import DecoderFactory

from hardware.apps import mcap_records
from hardware.links import cdr
from sim.robots.spec import RobotSpec

if TYPE_CHECKING:
    from hardware.loop import TickRecord

log = logging.getLogger(__name__)

_SEP = "=" * 80 + "\n"
_TIME = "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
_HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n"
_QUATERNION = _SEP + "MSG: geometry_msgs/Quaternion\nfloat64 x\nfloat64 y\nfloat64 z\nfloat64 w\n"
_VECTOR3 = _SEP + "MSG: geometry_msgs/Vector3\nfloat64 x\nfloat64 y\nfloat64 z\n"
_POSE = (
    _SEP
    + "MSG: geometry_msgs/Pose\ngeometry_msgs/Point position\ngeometry_msgs/Quaternion orientation\n"
    + _SEP
    + "MSG: geometry_msgs/Point\nfloat64 x\nfloat64 y\nfloat64 z\n"
    + _QUATERNION
)
WORLD_FRAME, BODY_FRAME = "world", "base_link"
MSGDEFS = {
    "sensor_msgs/msg/JointState": (
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n"
        + _SEP
        + _HEADER
        + _SEP
        + _TIME
    ),
    "std_msgs/msg/Float64MultiArray": (
        "std_msgs/MultiArrayLayout layout\nfloat64[] data\n"
        + _SEP
        + "MSG: std_msgs/MultiArrayLayout\nstd_msgs/MultiArrayDimension[] dim\nuint32 data_offset\n"
        + _SEP
        + "MSG: std_msgs/MultiArrayDimension\nstring label\nuint32 size\nuint32 stride\n"
    ),
    "geometry_msgs/msg/PoseStamped": "std_msgs/Header header\ngeometry_msgs/Pose pose\n"
    + _SEP
    + _HEADER
    + _SEP
    + _TIME
    + _POSE,
    "nav_msgs/msg/Odometry": (
        "std_msgs/Header header\nstring child_frame_id\ngeometry_msgs/PoseWithCovariance pose\n"
        "geometry_msgs/TwistWithCovariance twist\n"
        + _SEP
        + _HEADER
        + _SEP
        + _TIME
        + _SEP
        + "MSG: geometry_msgs/PoseWithCovariance\ngeometry_msgs/Pose pose\nfloat64[36] covariance\n"
        + _POSE
        + _SEP
        + "MSG: geometry_msgs/TwistWithCovariance\ngeometry_msgs/Twist twist\nfloat64[36] covariance\n"
        + _SEP
        + "MSG: geometry_msgs/Twist\ngeometry_msgs/Vector3 linear\ngeometry_msgs/Vector3 angular\n"
        + _VECTOR3
    ),
    "sensor_msgs/msg/Imu": (
        "std_msgs/Header header\ngeometry_msgs/Quaternion orientation\nfloat64[9] orientation_covariance\n"
        "geometry_msgs/Vector3 angular_velocity\nfloat64[9] angular_velocity_covariance\n"
        "geometry_msgs/Vector3 linear_acceleration\nfloat64[9] linear_acceleration_covariance\n"
        + _SEP
        + _HEADER
        + _SEP
        + _TIME
        + _QUATERNION
        + _VECTOR3
    ),
    "diagnostic_msgs/msg/DiagnosticArray": (
        "std_msgs/Header header\ndiagnostic_msgs/DiagnosticStatus[] status\n"
        + _SEP
        + _HEADER
        + _SEP
        + _TIME
        + _SEP
        + "MSG: diagnostic_msgs/DiagnosticStatus\nbyte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\n"
        "byte level\nstring name\nstring message\nstring hardware_id\ndiagnostic_msgs/KeyValue[] values\n"
        + _SEP
        + "MSG: diagnostic_msgs/KeyValue\nstring key\nstring value\n"
    ),
}
CHUNK_BYTES = 32 * 1024
"""Chunk size: the most a killed process can lose."""
DIAGNOSTICS_EVERY_S = 0.1
WRITER_CHECK_S = 0.02
"""How often (loop time) the log asks whether its writer still lives, s."""
OK, WARN, ERROR = 0, 1, 2


class _Unbuffered(io.IOBase):
    """A file whose writes reach the OS at once. The MCAP writer builds each chunk in memory
    and writes it whole, so after a SIGKILL the file holds every chunk but the one in progress.
    (It wraps a raw file in a buffer of its own that finish() does not flush: hence not RawIOBase.)"""

    def __init__(self, path: Path):
        self._raw = open(path, "wb", buffering=0)  # noqa: SIM115 (closed in close())

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[self._raw.write(view) :]
        return len(data)

    def tell(self) -> int:
        return self._raw.tell()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()


def _strings(mapping: dict[str, Any]) -> dict[str, str]:
    """MCAP metadata holds strings: anything else as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in mapping.items()}


class RunLog:
    """Writes TickRecords to MCAP from a writer process.

    A process, not a thread: encoding and writing then never hold the loop's interpreter lock.
    If the loop's process dies, the writer notices and finishes the file.
    In real time `on_tick` never blocks: a full queue drops the tick and counts it. With `block`
    (lockstep, where time is simulated and no deadline can be missed) it waits for the writer,
    so no tick is lost however fast the loop runs. A writer that dies is noticed within
    WRITER_CHECK_S:
    `failure` says so, `on_tick` returns it (the loop goes to its safe state: the run is no longer
    recorded), and close() reads back how many ticks the file holds.
    """

    def __init__(
        self,
        path: str | Path,
        spec: RobotSpec,
        metadata: dict[str, Any],
        queue_size: int = 4096,
        block: bool = False,
    ):
        self.path = Path(path)
        self.block = block
        self.spec = spec
        self.dropped = 0
        self.written = 0
        self.ticks = 0
        """Ticks handed to the log."""
        self.failure: str | None = None
        """Why the log is incomplete, once it is."""
        self._checked_ns = -(2**62)
        ctx = multiprocessing.get_context("spawn")
        self._queue = ctx.Queue(maxsize=queue_size)
        self._result = ctx.Queue()
        self._process = ctx.Process(
            target=_writer_main,
            args=(str(self.path), spec, metadata, self._queue, self._result, os.getpid()),
            name="s2r-log-writer",
            daemon=True,
        )
        self._process.start()
        # Wait for the writer to be up: its start (imports, opening the file) must not compete with the
        # loop's first ticks, and a file that cannot be written is an error before the robot moves.
        try:
            status = self._result.get(timeout=120)
        except queue.Empty:
            status = "the log writer did not start within 120 s"
        if status != "ready":
            self._process.join(timeout=5)
            raise OSError(f"cannot write the log {self.path}: {status}")

    def on_tick(self, record: TickRecord) -> str | None:
        """Queue one tick; returns `failure` once the writer is gone."""
        self.ticks += 1
        # Whether the writer lives costs a system call: asked every WRITER_CHECK_S of loop time.
        if self.failure is None and record.start_ns - self._checked_ns >= WRITER_CHECK_S * 1e9:
            self._checked_ns = record.start_ns
            if not self._process.is_alive():
                code = self._process.exitcode
                self.failure = f"the log writer died (exit code {code}): the run is no longer recorded"
                log.error("%s: %s", self.path, self.failure)
        if self.failure is not None:
            self.dropped += 1
            return self.failure
        fault = None if record.fault is None else (record.fault.tick, record.fault.reason)
        item = (
            record.tick,
            record.deadline_ns,
            record.start_ns,
            record.compute_ns,
            record.missed,
            record.state.values.tolist(),
            record.action.tolist(),
            record.command.tolist(),
            fault,
            record.link,
        )
        try:
            if self.block:
                self._queue.put(item, timeout=1.0)
            else:
                self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
        return None

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Drain the queue, write the summary (including drops) and the MCAP footer."""
        close = ("close", {"dropped_ticks": self.dropped, **(summary or {})})
        deadline = time.monotonic() + 60
        while self._process.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.put(close, timeout=0.2)
                break
            except queue.Full:
                continue
        if not self._process.is_alive():
            self._queue.cancel_join_thread()  # nobody will read what is still queued: do not wait on it at exit
        while time.monotonic() < deadline:
            try:
                self.written = self._result.get(timeout=0.2)
                break
            except queue.Empty:
                if not self._process.is_alive():
                    break
        else:
            log.error("the log writer did not finish %s in 60 s", self.path)
        self._process.join(timeout=10)
        if self._process.exitcode not in (0, None) and self.failure is None:
            self.failure = f"the log writer failed (exit code {self._process.exitcode})"
        if self.failure is not None:
            # What reached the file is all there is: count it rather than trust any tally.
            self.written = len(read_log(self.path).messages.get("/command", []))
            log.error("%s: %s; it holds %d of %d ticks", self.path, self.failure, self.written, self.ticks)
        elif self.dropped:
            log.warning("the log dropped %d ticks: its queue overflowed", self.dropped)


def _writer_main(path: str, spec: RobotSpec, metadata: dict[str, Any], items, result, parent: int) -> None:
    """The writer process: encode and write until told to close, or until the parent is gone."""
    try:
        writer = _McapRun(Path(path), spec, metadata)
    except Exception as exc:
        result.put(f"{type(exc).__name__}: {exc}")
        return
    result.put("ready")
    while True:
        try:
            item = items.get(timeout=0.2)
        except queue.Empty:
            if os.getppid() != parent:  # the loop's process died: keep what it sent
                writer.finish({"ended": "the deploying process died"})
                return
            continue
        if item[0] == "close":
            writer.finish(item[1])
            result.put(writer.written)
            return
        try:
            writer.write(item)
        except Exception:  # a log failure must never stop the robot: report it and go on
            log.exception("could not log tick %d", item[0])


class _Layout:
    """Where each kind of channel sits in a tick's state and command values, and the messages of
    those kinds (`sim.robots.spec.KINDS`)."""

    def __init__(self, spec: RobotSpec):
        self.position = spec.indices("joint.position")
        self.velocity = spec.indices("joint.velocity")
        self.effort = spec.indices("joint.effort", "command")
        self.joints = [spec.state[i].name.split(".")[0] for i in self.position]
        if len(self.velocity) not in (0, len(self.joints)) or len(self.effort) not in (0, len(self.joints)):
            raise ValueError(f"{spec.name}: joint channels must give every joint's position, velocity and effort alike")
        body = [
            spec.indices(k)
            for k in ("body.position", "body.orientation", "body.linear_velocity", "body.angular_velocity")
        ]
        self.body = body if [len(b) for b in body] == [3, 4, 3, 3] else None
        if self.body is None and any(body):
            raise ValueError(f"{spec.name}: a free body needs position (3), orientation (4) and velocities (3, 3)")

    def messages(self, t: int, values: list[float], command: list[float]) -> list[tuple[str, bytes]]:
        out = []
        if self.joints:
            q = [values[i] for i in self.position]
            dq = [values[i] for i in self.velocity]
            effort = [command[i] for i in self.effort]
            out.append(("/joint_states", cdr.joint_state(t, self.joints, q, dq, effort)))
        if self.body is not None:
            position, quaternion, linear, angular = ([values[i] for i in b] for b in self.body)
            # The twist is the child frame's (REP 105): the world-frame velocity turned into the body.
            w, x, y, z = quaternion
            norm = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
            rotation = _rotation(w / norm, x / norm, y / norm, z / norm)
            body_linear = [sum(rotation[r][c] * linear[r] for r in range(3)) for c in range(3)]
            out.append(("/pose", cdr.pose_stamped(t, WORLD_FRAME, position, quaternion)))
            out.append(("/odom", cdr.odometry(t, WORLD_FRAME, BODY_FRAME, position, quaternion, body_linear, angular)))
            out.append(("/imu", cdr.imu(t, BODY_FRAME, quaternion, angular)))
        return out


def _rotation(w: float, x: float, y: float, z: float) -> list[list[float]]:
    """The rotation matrix (body to world, rows) of a unit quaternion."""
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]


class _McapRun:
    """The MCAP file of one run: schemas, channels, metadata, per-tick messages, diagnostics."""

    def __init__(self, path: Path, spec: RobotSpec, metadata: dict[str, Any]):
        self.layout = _Layout(spec)
        self.written = 0
        self._file = _Unbuffered(path)
        # Data CRCs let a reader tell a damaged chunk from a good one.
        self._writer = Writer(self._file, chunk_size=CHUNK_BYTES, enable_data_crcs=True)
        self._writer.start(profile=Profile.ROS2, library="s2r")
        schemas = {
            name: self._writer.register_schema(name, SchemaEncoding.ROS2, text.encode())
            for name, text in MSGDEFS.items()
        }
        topics = {
            **({"/joint_states": "sensor_msgs/msg/JointState"} if self.layout.joints else {}),
            **(
                {
                    "/pose": "geometry_msgs/msg/PoseStamped",
                    "/odom": "nav_msgs/msg/Odometry",
                    "/imu": "sensor_msgs/msg/Imu",
                }
                if self.layout.body
                else {}
            ),
            "/state": "std_msgs/msg/Float64MultiArray",
            "/policy/action": "std_msgs/msg/Float64MultiArray",
            "/command": "std_msgs/msg/Float64MultiArray",
            "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
        }
        self._channels = {
            topic: self._writer.register_channel(topic, MessageEncoding.CDR, schemas[kind])
            for topic, kind in topics.items()
        }
        for name, value in metadata.items():
            self._writer.add_metadata(name, _strings(value))
        self._wall0 = time.time_ns()
        self._clock0: int | None = None
        self._next_diag = 0
        self._window: list[int] = []

    def write(self, item: tuple) -> None:
        tick, deadline_ns, start_ns, compute_ns, missed, values, action, command, fault, link = item
        if self._clock0 is None:
            self._clock0 = start_ns
        t = self._wall0 + start_ns - self._clock0
        add = self._writer.add_message
        for topic, data in self.layout.messages(t, values, command):
            add(self._channels[topic], log_time=t, data=data, publish_time=t, sequence=tick)
        data = cdr.float64_multi_array(values, "state")
        add(self._channels["/state"], log_time=t, data=data, publish_time=t, sequence=tick)
        data = cdr.float64_multi_array(action, "action")
        add(self._channels["/policy/action"], log_time=t, data=data, publish_time=t, sequence=tick)
        data = cdr.float64_multi_array(command, "effort")
        add(self._channels["/command"], log_time=t, data=data, publish_time=t, sequence=tick)
        self._window.append(compute_ns)
        if fault is not None:
            self._diagnostic(t, ERROR, "s2r/loop", fault[1], {"tick": str(fault[0])})
        if link is not None:
            self._diagnostic(t, WARN, "s2r/link", "link counters", {"tick": str(tick), **_strings(link)})
        if t >= self._next_diag:
            self._next_diag = t + int(DIAGNOSTICS_EVERY_S * 1e9)
            compute = np.asarray(self._window) / 1e3
            self._window = []
            timing = {
                "tick": str(tick),
                "compute_p50_us": f"{np.percentile(compute, 50):.1f}",
                "compute_max_us": f"{compute.max():.1f}",
                "jitter_us": f"{(start_ns - deadline_ns) / 1e3:.1f}",
                "missed": str(missed),
            }
            self._diagnostic(t, OK, "s2r/loop", "loop timing", timing)
        self.written += 1

    def _diagnostic(self, t: int, level: int, name: str, message: str, values: dict[str, str]) -> None:
        data = cdr.diagnostic_array(t, [(level, name, message, "", values)])
        self._writer.add_message(self._channels["/diagnostics"], log_time=t, data=data, publish_time=t)

    def finish(self, summary: dict[str, Any]) -> None:
        self._writer.add_metadata("summary", _strings({"written_ticks": self.written, **summary}))
        self._writer.finish()
        self._file.close()


class LogContents(NamedTuple):
    """A log as read back: messages by topic as (log_time ns, decoded message), metadata by name,
    whether the file was finished, and one line per damaged part that was skipped."""

    messages: dict[str, list[tuple[int, Any]]]
    metadata: dict[str, dict[str, str]]
    complete: bool
    damage: list[str]

    @property
    def robot(self) -> str | None:
        """The robot the run was of, as its metadata says."""
        return self.metadata.get("run", {}).get("robot")

    def trajectory(self, path: str | Path = "the log") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """/joint_states as a trajectory (T, X, U): T (N,) s from the first message, X = [position,
        velocity] as measured, U = the effort command sent. Raises ValueError when fewer than 2 messages."""
        states = self.messages.get("/joint_states")
        if not states or len(states) < 2:
            raise ValueError(f"{path}: fewer than 2 /joint_states messages; no trajectory in this log")
        t0 = states[0][0]
        T = np.array([(t - t0) / 1e9 for t, _ in states])
        X = np.array([list(m.position) + list(m.velocity) for _, m in states])
        U = np.array([list(m.effort) for _, m in states])
        return T, X, U


def read_log(path: str | Path) -> LogContents:
    """Read a log. A truncated file (a killed process) reads up to its last complete chunk; a
    damaged chunk (its CRC fails) is skipped and named in `damage`, and later chunks still read."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # Mapped, not read: a long run's log is read where it lies.
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as exc:
        raise OSError(f"cannot read the log {path}: {exc.strerror or exc}") from exc
    try:
        scan = mcap_records.scan(data)
    finally:
        if size:
            data.close()
    damage = list(scan.damage)
    schemas = {r.id: r for r in scan.summary if type(r).__name__ == "Schema"}
    channels = {r.id: r for r in scan.summary if type(r).__name__ == "Channel"}
    decoders = DecoderFactory()
    messages: dict[str, list[tuple[int, Any]]] = {}
    metadata: dict[str, dict[str, str]] = {}
    orphans = undecodable = 0
    for record in scan.records:
        kind = type(record).__name__
        if kind == "Schema":
            schemas[record.id] = record
        elif kind == "Channel":
            channels[record.id] = record
        elif kind == "Metadata":
            metadata[record.name] = dict(record.metadata)
        elif kind == "Message":
            channel = channels.get(record.channel_id)
            if channel is None or channel.schema_id not in schemas:
                orphans += 1
                continue
            try:
                decode = decoders.decoder_for(channel.message_encoding, schemas[channel.schema_id])
                messages.setdefault(channel.topic, []).append((record.log_time, decode(record.data)))
            except Exception:  # the decoder raises whatever damaged bytes make it meet
                undecodable += 1
    if orphans:
        damage.append(f"{orphans} messages skipped: their channel was defined in a damaged chunk")
    if undecodable:
        damage.append(f"{undecodable} messages skipped: they do not decode")
    for line in damage:
        log.warning("%s: %s", path, line)
    return LogContents(messages, metadata, scan.complete, damage)


def summarise_log(path: str | Path) -> dict[str, Any]:
    """Topics with message counts, duration, metadata, faults, the device link's last counters and drops
    of a log."""
    messages, metadata, complete, damage = read_log(path)
    times = [t for msgs in messages.values() for t, _ in msgs]
    faults = [
        {"message": s.message, **{kv.key: kv.value for kv in s.values}}
        for _, m in messages.get("/diagnostics", [])
        for s in m.status
        if s.level == ERROR
    ]
    links = [
        {kv.key: kv.value for kv in s.values}
        for _, m in messages.get("/diagnostics", [])
        for s in m.status
        if s.name == "s2r/link"
    ]
    return {
        "file": str(path),
        "complete": complete,
        "damage": damage,
        "duration_s": (max(times) - min(times)) / 1e9 if times else 0.0,
        "topics": {topic: len(msgs) for topic, msgs in sorted(messages.items())},
        "faults": faults,
        "link": links[-1] if links else {},
        "metadata": metadata,
    }
