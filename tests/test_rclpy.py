"""s2r against real ROS 2 nodes: plain rclpy (from the ros2-jazzy or ros2-kilted extra) on Fast DDS,
ROS 2's default middleware, with its stock message classes and QoS profiles.

s2r's side runs on Cyclone DDS confined to 127.0.0.1; the rclpy nodes keep to this machine with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, which is also how they find it. Each test has a domain id of
its own."""

import contextlib
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros2
if os.environ.get("S2R_REQUIRE_ROS2"):  # CI's ROS 2 runs: a missing rclpy is a failure, not a skip
    import rclpy
else:
    rclpy = pytest.importorskip(
        "rclpy", reason="rclpy is not installed: pip install -e '.[ros2-jazzy]' (or ros2-kilted), CPython 3.10-3.12"
    )
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Empty, Float64MultiArray, MultiArrayDimension  # noqa: E402

from hardware.links import ros2_msgs as m  # noqa: E402
from hardware.links.dds import DdsTransport  # noqa: E402
from sim.robots import get_robot  # noqa: E402

DEFAULT_QOS = 10  # rclpy's default profile: reliable, volatile, keep last 10
ROBOT = get_robot("pendubot")
ENV = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


@pytest.fixture(autouse=True)
def _localhost(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@contextlib.contextmanager
def _node(domain_id: int, name: str = "peer"):
    """A plain rclpy node on `domain_id` in a context of its own, spun in a background thread."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()


def _until(condition, timeout: float = 10.0, every=lambda: None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        every()
        if condition():
            return True
        time.sleep(0.02)
    return False


def _stamp(node) -> object:
    return node.get_clock().now().to_msg()


# Messages both ways: every type s2r exchanges, rclpy's default QoS on the ROS 2 side. -------------


def _cases(node):
    """(topic, ours, rclpy's, same(ours, rclpy's)) for each message s2r sends or receives."""
    stamp = _stamp(node)
    ours_stamp = m.Time(stamp.sec, stamp.nanosec)
    joint = JointState(name=["shoulder", "elbow"], position=[0.5, -1.25], velocity=[3.0, 4.5], effort=[1.5, 0.0])
    joint.header.stamp = stamp
    array = Float64MultiArray(data=[1.5, 0.0])
    array.layout.dim = [MultiArrayDimension(label="effort", size=2, stride=2)]
    status = DiagnosticStatus(level=DiagnosticStatus.ERROR, name="s2r_deploy", message="stale state")
    status.values = [KeyValue(key="tick", value="17")]
    diagnostics = DiagnosticArray(status=[status])
    diagnostics.header.stamp = stamp
    return [
        (
            "/joint_states",
            m.JointState(m.Header(ours_stamp, ""), ["shoulder", "elbow"], [0.5, -1.25], [3.0, 4.5], [1.5, 0.0]),
            joint,
            lambda a, b: list(a.position) == list(b.position) and list(a.name) == list(b.name),
        ),
        (
            "/effort_controller/commands",
            m.Float64MultiArray.vector([1.5, 0.0], "effort"),
            array,
            lambda a, b: list(a.data) == list(b.data) and a.layout.dim[0].label == b.layout.dim[0].label,
        ),
        (
            "/diagnostics",
            m.DiagnosticArray(
                m.Header(ours_stamp, ""),
                [m.DiagnosticStatus(2, "s2r_deploy", "stale state", "", [m.KeyValue("tick", "17")])],
            ),
            diagnostics,
            lambda a, b: a.status[0].message == b.status[0].message and a.status[0].values[0].value == "17",
        ),
        *[(f"/s2r/{name}", m.Empty(), Empty(), lambda a, b: True) for name in ("arm", "disarm", "estop", "reset")],
    ]


def test_every_message_crosses_from_s2r_to_a_default_qos_rclpy_subscriber():
    cyclone = DdsTransport(150, loopback=True)
    with _node(150) as node:
        cases = _cases(node)
        got: dict[str, list] = {topic: [] for topic, *_ in cases}
        writers = []
        for topic, ours, theirs, _ in cases:
            node.create_subscription(type(theirs), topic, got[topic].append, DEFAULT_QOS)
            writers.append((cyclone.publisher(topic, type(ours), reliable=True), ours))
        everything = lambda: all(got.values())  # noqa: E731
        assert _until(everything, every=lambda: [w.write(msg) for w, msg in writers]), {
            t: len(v) for t, v in got.items()
        }
        for topic, ours, _, same in cases:
            assert same(ours, got[topic][-1]), topic


def test_every_message_crosses_from_an_rclpy_publisher_to_s2r_with_either_qos():
    cyclone = DdsTransport(151, loopback=True)
    with _node(151) as node:
        cases = _cases(node)
        # s2r's subscribers are best effort, so that they match reliable publishers (the default
        # profile) and best-effort ones (sensor data) alike.
        for qos in (DEFAULT_QOS, qos_profile_sensor_data):
            readers, publishers = {}, []
            for topic, ours, theirs, _ in cases:
                readers[topic] = cyclone.subscriber(topic, type(ours), reliable=False, depth=50)
                publishers.append((node.create_publisher(type(theirs), topic, qos), theirs))
            got: dict[str, list] = {topic: [] for topic in readers}

            def poll(readers=readers, got=got, publishers=publishers):
                for publisher, message in publishers:
                    publisher.publish(message)
                for topic, reader in readers.items():
                    got[topic] += reader.take(50)

            assert _until(lambda got=got: all(got.values()), every=poll), {t: len(v) for t, v in got.items()}
            for topic, _, theirs, same in cases:
                assert not isinstance(got[topic][-1], m.Malformed), got[topic][-1]
                assert same(got[topic][-1], theirs), topic
            for publisher, _ in publishers:
                node.destroy_publisher(publisher)


# The emulator as ros2_control serves a robot. -----------------------------------------------------


def test_a_default_qos_rclpy_node_reads_the_emulators_joint_states_and_moves_it():
    from hardware.emulators.ros2_emulator import Ros2Emulator

    emulator = Ros2Emulator("pendubot", "model_1.1", False, domain_id=152, loopback=True, backend="cyclonedds")
    emulator.open()
    stop = threading.Event()
    served = threading.Thread(target=emulator.run, kwargs={"should_stop": stop.is_set})
    served.start()
    try:
        with _node(152) as node:
            states: list[JointState] = []
            node.create_subscription(JointState, "/joint_states", states.append, DEFAULT_QOS)
            commands = node.create_publisher(Float64MultiArray, "/effort_controller/commands", DEFAULT_QOS)
            assert _until(lambda: len(states) >= 50), "no JointState reached a default-QoS subscriber"
            assert list(states[-1].name) == list(ROBOT.joints)
            push = Float64MultiArray(data=[1.0, 0.0])
            assert _until(lambda: emulator.report["commands_received"] >= 50, every=lambda: commands.publish(push))
            assert _until(lambda: states[-1].velocity[0] > 0.1), "a forward effort command moves the shoulder"
    finally:
        stop.set()
        served.join(timeout=10)
    assert emulator.report["commands_refused"] == 0 and emulator.report["sessions"] == 1


def test_a_default_qos_rclpy_node_flies_the_crazyswarm2_emulator():
    """crazyswarm2's topics as a plain rclpy client sees them: Odometry and PoseStamped out (default
    QoS), cmd_vel_legacy (geometry_msgs/Twist) in, its thrust unlock and a hover thrust."""
    from geometry_msgs.msg import PoseStamped, Twist, Vector3
    from nav_msgs.msg import Odometry

    from hardware.emulators.crazyswarm2_emulator import Crazyswarm2Emulator

    emulator = Crazyswarm2Emulator(imperfections=False, domain_id=159, loopback=True, backend="cyclonedds")
    emulator.open()
    stop = threading.Event()
    served = threading.Thread(target=emulator.run, kwargs={"should_stop": stop.is_set})
    served.start()
    try:
        with _node(159, "client") as node:
            odometry: list[Odometry] = []
            poses: list[PoseStamped] = []
            node.create_subscription(Odometry, "/cf1/odom", odometry.append, DEFAULT_QOS)
            node.create_subscription(PoseStamped, "/cf1/pose", poses.append, DEFAULT_QOS)
            command = node.create_publisher(Twist, "/cf1/cmd_vel_legacy", DEFAULT_QOS)
            assert _until(lambda: len(odometry) >= 20 and len(poses) >= 20), "no odometry reached rclpy"
            assert odometry[-1].header.frame_id == "cf1" and poses[-1].header.frame_id == "world"
            assert _until(lambda: emulator.firmware.armed, every=lambda: command.publish(Twist()))  # unlock
            hover = Twist(linear=Vector3(x=0.0, y=0.0, z=30000.0))
            assert _until(lambda: emulator.report["commands_received"] >= 50, every=lambda: command.publish(hover))
            assert _until(lambda: odometry[-1].pose.pose.position.z > 0.5)
    finally:
        stop.set()
        served.join(timeout=10)
        emulator.close()
    assert not emulator.firmware.thrust_locked and emulator.report["sessions"] == 1


# s2r deploy against a plain rclpy node that plays the robot. -------------------------------------


class PlainRobot:
    """The pendubot as a plain rclpy node: JointState out as joint_state_broadcaster publishes it, effort
    commands in as forward_command_controller takes them (both default QoS), physics from s2r's plant
    at 500 Hz; zero effort when commands stop for 0.1 s. `start="up"`: balanced upright."""

    def __init__(self, node, start: str = "up"):
        from sim.simulated import SimulatedRobot

        self.sim = SimulatedRobot("pendubot", start=start, params="model_1.1", imperfections=False)
        self.sim.start(0)
        self.node, self.command, self.commanded_at, self.commands = node, np.zeros(2), 0.0, 0
        self.states = node.create_publisher(JointState, "/joint_states", DEFAULT_QOS)
        node.create_subscription(Float64MultiArray, "/effort_controller/commands", self._on_command, DEFAULT_QOS)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _on_command(self, message: Float64MultiArray) -> None:
        self.command, self.commanded_at = np.array(message.data, dtype=float), time.monotonic()
        self.commands += 1

    def _serve(self) -> None:
        next_step = time.monotonic()
        while not self.stop.is_set():
            fresh = time.monotonic() - self.commanded_at < 0.1 and self.command.shape == (2,)
            self.sim.advance(self.command if fresh else np.zeros(2), 1)
            x = self.sim.measure()
            message = JointState(name=list(ROBOT.joints), position=x[:2].tolist(), velocity=x[2:].tolist())
            message.effort = self.command.tolist() if fresh else [0.0, 0.0]
            message.header.stamp = _stamp(self.node)
            self.states.publish(message)
            next_step += 0.002
            time.sleep(max(0.0, next_step - time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _s2r(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "s2r.cli", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


@pytest.mark.hil
@pytest.mark.parametrize("backend", ["cyclonedds", "rclpy"])
def test_s2r_deploy_holds_a_plain_rclpy_robot_up_with_either_backend(backend, tmp_path):
    domain = {"cyclonedds": 153, "rclpy": 154}[backend]
    with _node(domain, "robot") as node:
        robot = PlainRobot(node)
        try:
            loopback = ["--loopback"] if backend == "cyclonedds" else []
            result = _s2r(
                "deploy", "--robot", "pendubot", "--policy", "baseline", "--device", "ros2", "--domain-id",
                str(domain), "--ros2-backend", backend, *loopback, "--params", "model_1.1", "--duration", "3",
                "--rate", "100", "--log", str(tmp_path / "run.mcap"),
            )  # fmt: skip
        finally:
            robot.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "faults 0" in result.stdout, result.stdout
    assert robot.commands >= 200, f"the robot node got {robot.commands} commands in 3 s at 100 Hz"
    assert abs(robot.sim.measure()[0] - np.pi) < 0.5, "still up"


@pytest.mark.hil
def test_s2r_deploy_on_rclpy_holds_the_emulator_up():
    """The other way round: s2r's rclpy backend (Fast DDS) against the emulator on Cyclone DDS."""
    from hardware.emulators.process import EmulatorProcess

    emulator = EmulatorProcess(
        transport="ros2", robot="pendubot", params="model_1.1", imperfections=False, start="up", domain_id=158,
        loopback=True, backend="cyclonedds",
    )  # fmt: skip
    with emulator:
        result = _s2r(
            "deploy", "--robot", "pendubot", "--policy", "baseline", "--device", "ros2", "--domain-id", "158",
            "--ros2-backend", "rclpy", "--params", "model_1.1", "--duration", "3", "--rate", "100",
        )  # fmt: skip
        report = emulator.stop()
    assert result.returncode == 0 and "faults 0" in result.stdout, result.stdout + result.stderr
    assert report["commands_received"] >= 200 and report["commands_refused"] == 0, report


# The deploy node as a ROS 2 node under rclpy. ------------------------------------------------------


def test_the_deploy_node_under_rclpy_is_armed_estopped_and_reset_by_plain_rclpy(tmp_path):
    node_env = {**ENV, "ROS_DOMAIN_ID": "155", "S2R_ROS2_BACKEND": "rclpy"}
    command = [sys.executable, "-m", "s2r.ros2_node", "--ros-args", "-p", "device:=sim", "-p", "policy:=baseline"]
    command += ["-p", "rate:=250.0", "-p", "params:=model_1.1"]
    process = subprocess.Popen(command, env=node_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with _node(155, "operator") as node:
            seen: list[DiagnosticStatus] = []
            node.create_subscription(DiagnosticArray, "/diagnostics", lambda a: seen.extend(a.status), DEFAULT_QOS)
            publish = {name: node.create_publisher(Empty, f"/s2r/{name}", DEFAULT_QOS) for name in ("arm", "estop")}
            publish["reset"] = node.create_publisher(Empty, "/s2r/reset", DEFAULT_QOS)

            def heard(text: str, send: str | None = None, timeout: float = 30.0) -> DiagnosticStatus:
                found: list[DiagnosticStatus] = []

                def check():
                    found.extend(s for s in seen if text in s.message)
                    return bool(found)

                def poke():
                    if send and not found:
                        publish[send].publish(Empty())

                assert _until(check, timeout, every=poke), f"no {text!r}; saw {[s.message for s in seen[-8:]]}"
                seen.clear()
                return found[0]

            heard("disarmed")
            assert "s2r_deploy" in node.get_node_names()
            # Its parameters, as `ros2 param get /s2r_deploy rate` reads them.
            from rclpy.parameter_client import AsyncParameterClient

            client = AsyncParameterClient(node, "s2r_deploy")
            assert client.wait_for_services(timeout_sec=10.0)
            future = client.get_parameters(["rate", "policy"])
            assert _until(future.done)
            rate, policy = future.result().values
            assert (rate.double_value, policy.string_value) == (250.0, "baseline")
            heard("armed: loop running", send="arm")
            heard("running")
            stopped = heard("stopped: e-stop from /s2r/estop", send="estop")
            assert stopped.level == DiagnosticStatus.ERROR
            heard("arm refused: e-stop latched", send="arm")
            heard("e-stop reset", send="reset")
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert process.returncode == 0, output


# Malformed traffic from a real rclpy publisher. ---------------------------------------------------


def test_malformed_joint_states_from_rclpy_are_counted_and_rejected():
    from hardware.backends.ros2_device import Ros2Device

    joints = list(ROBOT.joints)
    device = Ros2Device(joints, joints, domain_id=156, loopback=True, backend="cyclonedds", timeout_s=10.0)
    with _node(156, "robot") as node:
        states = node.create_publisher(JointState, "/joint_states", DEFAULT_QOS)
        node.create_subscription(Float64MultiArray, "/effort_controller/commands", lambda _: None, DEFAULT_QOS)

        def joint_state(names, position, velocity, age_s=0.0):
            message = JointState(name=names, position=position, velocity=velocity)
            stamp = time.time_ns() - int(age_s * 1e9)
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            return message

        configured = threading.Event()
        good = lambda: states.publish(joint_state(joints, [0.1, 0.2], [0.0, 0.0]))  # noqa: E731
        threading.Thread(target=_until, args=(configured.is_set, 15, good), daemon=True).start()
        device.configure(ROBOT.spec(ROBOT.load_params("model_1.1")))
        configured.set()
        device.activate()
        time.sleep(0.1)
        device.read()  # what was queued before
        rejected, stale = device.rejected, device.stale
        # One at a time: the device's reader keeps only the newest message (depth 1).
        for message, counter in [
            (joint_state(joints, [0.1], [0.0, 0.0]), "rejected"),  # a position missing
            (joint_state(joints, [float("nan"), 0.2], [0.0, 0.0]), "rejected"),
            (joint_state(["shoulder"], [0.1], [0.0]), "rejected"),  # the elbow missing
            (joint_state(joints, [0.1, 0.2], [0.0, 0.0], age_s=2.0), "stale"),
        ]:
            before = getattr(device, counter)
            states.publish(message)

            def counted(counter=counter, before=before) -> bool:
                device.read()
                return getattr(device, counter) > before

            assert _until(counted, 5), f"{message} not counted as {counter}"
        assert (device.rejected - rejected, device.stale - stale) == (3, 1)
        assert np.allclose(device.read().values, [0.1, 0.2, 0.0, 0.0]), "the last good state stands"
        # Ten times the emulator's rate (5 kHz): the reader keeps the newest, nothing piles up.
        received = device.received
        burst_until = time.monotonic() + 0.5
        while time.monotonic() < burst_until:
            states.publish(joint_state(joints, [0.3, 0.4], [0.0, 0.0]))
            time.sleep(0.0002)
        time.sleep(0.05)
        state = device.read()
        assert np.allclose(state.values, [0.3, 0.4, 0.0, 0.0]) and device.received > received
        assert device.rejected - rejected == 3
    device.close()


# s2r's own rclpy transport (the rclpy backend) against its Cyclone DDS one. -------------------------


def test_the_rclpy_transport_and_the_cyclone_dds_one_exchange_joint_states_and_commands():
    from hardware.links.ros2_transport import RclpyTransport

    ros = RclpyTransport(domain_id=157)
    cyclone = DdsTransport(157, loopback=True)
    try:
        reader = ros.subscriber("/joint_states", m.JointState, depth=50)
        writer = cyclone.publisher("/joint_states", m.JointState, reliable=True)
        command_reader = cyclone.subscriber("/command", m.Float64MultiArray, depth=50)
        command_writer = ros.publisher("/command", m.Float64MultiArray)
        received, commands = [], []

        def exchange():
            writer.write(m.JointState(m.Header(m.Time(1, 2), ""), ["shoulder"], [0.5], [1.0], [0.0]))
            command_writer.write(m.Float64MultiArray.vector([1.5, 0.0], "effort"))
            received.extend(reader.take(50))
            commands.extend(c for c in command_reader.take(50) if isinstance(c, m.Float64MultiArray))

        assert _until(lambda: len(received) >= 10 and len(commands) >= 10, every=exchange)
        assert received[-1].position == [0.5] and received[-1].name == ["shoulder"]
        assert commands[-1].data == [1.5, 0.0]
        assert "sensor_msgs/msg/JointState" in ros.publisher_types("/joint_states")
        assert ros.matched(reader) == 1 and ros.matched(command_writer) == 1
    finally:
        ros.close()
