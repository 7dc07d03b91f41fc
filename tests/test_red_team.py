"""The red team: the real loop against forged, reordered and malformed traffic, killed processes and
tampered files. Every attack is audited the same way: no command outside the spec's limits (what the
loop wrote and what reached the device), no torque while blind (a tick whose reading could not be
trusted moves the command to zero at the slew limit), and nothing lost without a word (each bad input
is counted, or the run says it failed). The counts are summed over the run and printed at its end."""

import json
import multiprocessing
import os
import re
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from mitm import Attack, Relay

from hardware.apps.deploy import DeployOptions, deploy
from hardware.apps.log import read_log
from hardware.backends.serial_device import SerialDevice
from hardware.device import DeviceError, SpecMismatchError
from hardware.emulators.process import EmulatorProcess
from hardware.links import cdr
from hardware.links import ros2_msgs as m
from hardware.safety import SafetyConfig, blind_torque_ticks
from policies.baselines import PendubotEnergyLQR
from s2r.cli import main
from sim.robots import get_robot

ROBOT = get_robot("pendubot")
SPEC = ROBOT.spec(ROBOT.load_params("model_1.1"))
LOW = np.array([c.low for c in SPEC.command])
HIGH = np.array([c.high for c in SPEC.command])
RATE_HZ = 250.0
SLEW = 600.0


def _options(device: str, tmp_path, duration: float = 1.6, **changes) -> DeployOptions:
    # 50 missed deadlines and a 100 ms stale timeout: what is under test is the attack, not how long
    # a shared 2-core machine may deschedule a process.
    options = {"params": "model_1.1", "imperfections": False, "action_history": 0, **changes}
    return DeployOptions(
        "pendubot",
        RATE_HZ,
        duration_s=duration,
        device=device,
        safety=SafetyConfig(max_missed_deadlines=50, stale_timeout_s=0.1, max_slew_per_s=SLEW),
        log_path=tmp_path / "run.mcap",
        **options,
    )


def outside(commands) -> int:
    commands = np.asarray(commands, dtype=float).reshape(-1, len(LOW))
    return int(((commands < LOW - 1e-9) | (commands > HIGH + 1e-9) | ~np.isfinite(commands)).any(axis=1).sum())


def audit(records, red_team, received=(), injected=0) -> None:
    """What every attack must leave true; adds the counts to the red team's."""
    commands = np.array([r.command for r in records]).reshape(-1, len(LOW))
    trusted = np.array([r.trusted for r in records], dtype=bool)
    blind = blind_torque_ticks(commands, trusted, np.zeros(len(LOW)), SLEW / RATE_HZ)
    counts = {
        "bad_inputs": injected,
        "outside_limits": outside(commands) + outside(received),
        "blind_torque": len(blind),
    }
    red_team.update(counts)
    assert counts["outside_limits"] == 0, "a command outside the limits was written or received"
    assert counts["blind_torque"] == 0, f"torque applied while blind on ticks {blind[:10].tolist()}"


def log_holds_every_tick(result, records, red_team) -> None:
    contents = read_log(result["log"]["path"])
    holds = contents.complete and not contents.damage and len(contents.messages["/joint_states"]) == len(records)
    red_team.update(lost_silently=0 if holds or result["log"]["error"] else 1)
    assert holds, (contents.complete, contents.damage, result["log"])


# The serial link, with a man in the middle. ---------------------------------------------------------

SERIAL_ATTACKS = {
    # attack: (what the link counters must show, what the loop's first fault must say or None)
    "none": ({}, None),
    "forge_ahead": ({"rejected_frames": 1}, None),
    "forge_burst": ({"sequence_resyncs": 2}, "any"),
    "infinite_velocity": ({}, "non-finite state"),
    "nan_position": ({}, "non-finite state"),
    "reorder": ({"rejected_frames": 10, "lost_states": 10}, None),
    "replay": ({"rejected_frames": 10}, None),
    "wrong_size_state": ({"rejected_frames": 5}, None),
    "garbage": ({"malformed_frames": 1}, None),
    "unknown_type": ({"rejected_frames": 5}, None),
    "bad_fault": ({}, "reports a fault"),
    "version": ({}, "speaks s2r serial protocol version 2"),
    "stall": ({}, "stale state"),
    "short_ack": ({}, None),
    "unknown_ack_status": ({}, None),
    "swap_channels": ({}, None),
    "wider_limits": ({}, None),
}


@pytest.mark.hil
@pytest.mark.parametrize("kind", list(SERIAL_ATTACKS))
def test_the_serial_link_under_a_man_in_the_middle(kind, tmp_path, red_team):
    counters, fault = SERIAL_ATTACKS[kind]
    records = []
    with EmulatorProcess(robot="pendubot", params="model_1.1", imperfections=False, start="up") as emulator:
        relay = Relay(emulator.port, Attack(kind))
        try:
            options = _options(f"serial:{relay.port}", tmp_path)
            result = deploy(PendubotEnergyLQR(), options, SerialDevice(relay.port), records)
        finally:
            seen = relay.stop()
            report = emulator.stop()
    audit(records, red_team, seen["commands"], seen["injected"])
    log_holds_every_tick(result, records, red_team)
    assert report["commands_outside_limits"] == 0
    for name, least in counters.items():
        assert result["link"][name] >= least, (name, result["link"])
    faults = result["loop"]["faults"]
    if fault is None:
        assert faults == [], faults
        q = np.array([r.state.values[:2] for r in records[-50:]])
        assert (np.abs(q - [np.pi, 0.0]) < 0.3).all(), "the pendubot stayed up through the attack"
    elif fault != "any":
        assert faults and re.search(fault, faults[0]["reason"]), faults
    if kind != "none":
        assert seen["injected"] > 0, "the attack happened"


@pytest.mark.hil
def test_a_device_with_an_actuator_the_robot_lacks_is_refused(tmp_path, red_team):
    with EmulatorProcess(robot="pendubot", params="model_1.1", imperfections=False) as emulator:
        relay = Relay(emulator.port, Attack("extra_command_channel"))
        try:
            with pytest.raises(SpecMismatchError, match="wrist.effort .* refusing to drive an actuator"):
                deploy(PendubotEnergyLQR(), _options(f"serial:{relay.port}", tmp_path), SerialDevice(relay.port))
        finally:
            seen = relay.stop()
    red_team.update(bad_inputs=seen["injected"])
    assert seen["commands"] == [], "nothing was sent to a device that was refused"


@pytest.mark.hil
def test_an_emulator_killed_mid_run_faults_the_loop_cleanly(tmp_path, red_team):
    records = []
    with EmulatorProcess(robot="pendubot", params="model_1.1", imperfections=False, start="up") as emulator:
        threading.Timer(0.8, emulator._process.kill).start()  # the board loses power
        result = deploy(PendubotEnergyLQR(), _options(f"serial:{emulator.port}", tmp_path), None, records)
    red_team.update(bad_inputs=1)
    audit(records, red_team)
    assert "serial link to" in result["loop"]["faults"][0]["reason"]
    assert len(records) < 400, "the loop stopped at the fault, not at the end of the run"


# ROS 2: malformed and forged JointStates, killed publishers. ----------------------------------------


class RawJointState(m.JointState):
    """A JointState whose bytes on the wire are given, so that they can be wrong."""

    def serialize(self, *args, **kwargs) -> bytes:
        return self.raw


def _bad_joint_state(kind: str) -> m.JointState:
    now = time.time_ns()
    names, position, velocity = ["shoulder", "elbow"], [np.pi, 0.0], [0.0, 0.0]
    if kind == "utf8":
        message = RawJointState()
        raw = cdr.joint_state(now, names, position, velocity, [0.0, 0.0])
        message.raw = raw.replace(b"shoulder", b"\xffhoulder")  # not UTF-8
        return message
    if kind == "nan":
        velocity = [float("nan"), 0.0]
    elif kind == "lengths":
        position = [np.pi]
    elif kind == "missing":
        names, position, velocity = ["shoulder"], [np.pi], [0.0]
    stamp = {"future": now + 1000 * 10**9, "stale": now - 10 * 10**9}.get(kind, now)
    return m.JointState(m.Header(m.Time.from_ns(stamp), ""), names, position, velocity, [0.0] * len(names))


def _attack_joint_states(domain_id: int, kind: str, ready, stop, sent) -> None:
    from hardware.links.dds import DdsTransport

    writer = DdsTransport(domain_id, loopback=True).publisher("/joint_states", m.JointState, reliable=False)
    ready.set()
    while not stop.is_set():
        writer.write(_bad_joint_state(kind))
        sent.value += 1
        time.sleep(0.02)


def _listen(domain_id: int, topic: str, seen: list, stop: threading.Event) -> None:
    from hardware.links.dds import DdsTransport

    reader = DdsTransport(domain_id, loopback=True).subscriber(topic, m.Float64MultiArray, reliable=True, depth=100)
    while not stop.is_set():
        seen += [list(s.data) for s in reader.take(100) if isinstance(s, m.Float64MultiArray)]
        time.sleep(0.002)
    seen += [list(s.data) for s in reader.take(100) if isinstance(s, m.Float64MultiArray)]


COMMANDS = "/effort_controller/commands"


def _ros2_emulator(domain_id: int) -> EmulatorProcess:
    return EmulatorProcess(
        transport="ros2",
        robot="pendubot",
        params="model_1.1",
        imperfections=False,
        start="up",
        domain_id=domain_id,
        loopback=True,
    )


ROS2_ATTACKS = {"utf8": "rejected_messages", "nan": "rejected_messages", "lengths": "rejected_messages"}
ROS2_ATTACKS |= {"missing": "rejected_messages", "future": "future_messages", "stale": "stale_messages"}


@pytest.mark.hil
@pytest.mark.parametrize("kind", list(ROS2_ATTACKS))
def test_malformed_and_forged_joint_states_are_counted_and_the_commands_stay_safe(kind, tmp_path, red_team):
    domain_id = 90 + list(ROS2_ATTACKS).index(kind)
    context = multiprocessing.get_context("spawn")
    ready, stop, sent = context.Event(), context.Event(), context.Value("i", 0)
    attacker = context.Process(target=_attack_joint_states, args=(domain_id, kind, ready, stop, sent), daemon=True)
    published, listening = [], threading.Event()
    records = []
    with _ros2_emulator(domain_id) as emulator:
        attacker.start()
        listener = threading.Thread(target=_listen, args=(domain_id, COMMANDS, published, listening))
        listener.start()
        try:
            assert ready.wait(60), "the attacking publisher never started"
            options = _options("ros2", tmp_path, domain_id=domain_id, loopback=True)
            result = deploy(PendubotEnergyLQR(), options, None, records)
        finally:
            stop.set()
            attacker.join(timeout=10)
            time.sleep(0.3)
            listening.set()
            listener.join(timeout=10)
            report = emulator.stop()
    audit(records, red_team, published, sent.value)
    log_holds_every_tick(result, records, red_team)
    # The device keeps only the newest message (sensor data QoS): a bad one that a genuine one replaced
    # before the loop looked is gone unseen; every one it saw is counted.
    assert sent.value >= 20 and result["link"][ROS2_ATTACKS[kind]] >= 1, result["link"]
    assert report["commands_refused"] == 0
    assert published and published[-1] == [0.0, 0.0], "the device ends on a zero command"
    # The genuine 500 Hz stream carries the loop; bad messages never reach it, never fault it.
    assert result["loop"]["faults"] == [] or "stale state" in result["loop"]["faults"][0]["reason"], result["loop"]


@pytest.mark.hil
def test_a_ros2_robot_killed_mid_swing_gets_no_torque_from_its_last_reading(tmp_path, red_team):
    domain_id = 99
    published, listening = [], threading.Event()
    records = []
    with _ros2_emulator(domain_id) as emulator:
        listener = threading.Thread(target=_listen, args=(domain_id, COMMANDS, published, listening))
        listener.start()

        def kill_mid_swing():
            # Its ros2_control dies (SIGKILL) once the loop has run a while, however slowly
            # discovery went: a kill before the first state would test configure, not the run.
            deadline = time.monotonic() + 30.0
            while len(published) < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            emulator._process.kill()

        threading.Thread(target=kill_mid_swing, daemon=True).start()
        try:
            options = _options("ros2", tmp_path, domain_id=domain_id, loopback=True)
            result = deploy(PendubotEnergyLQR(), options, None, records)
        finally:
            time.sleep(0.3)
            listening.set()
            listener.join(timeout=10)
    red_team.update(bad_inputs=1)
    audit(records, red_team, published)
    assert "stale state" in result["loop"]["faults"][0]["reason"]
    assert sum(not r.trusted for r in records) > 100, "blind from the kill to the end of the run"
    assert published[-1] == [0.0, 0.0]


def test_a_device_in_fault_still_publishes_its_safe_state(tmp_path, red_team):
    """A read that fails (here: the transport itself raises) puts the device in FAULT; deactivate
    must still publish zeros, or the last command stays on the topic."""
    from hardware.backends.ros2_device import Ros2Device
    from hardware.device import Command, Lifecycle
    from hardware.links.dds import DdsTransport

    domain_id = 89
    robot = DdsTransport(domain_id, loopback=True)
    states = robot.publisher("/joint_states", m.JointState, reliable=False)
    commands = robot.subscriber("/effort_controller/commands", m.Float64MultiArray, reliable=True, depth=100)
    device = Ros2Device(["shoulder", "elbow"], ["shoulder", "elbow"], domain_id=domain_id, loopback=True)
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            header = m.Header(m.Time.from_ns(time.time_ns()), "")
            states.write(m.JointState(header, ["shoulder", "elbow"], [3.1, 0.0], [0.0, 0.0], [0.0, 0.0]))
            time.sleep(0.005)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        device.configure(SPEC)
        device.activate()
        device.write(Command(np.array([-4.68, 0.0])))

        def broken(n):
            raise RuntimeError("the middleware failed")

        device._reader.take = broken
        with pytest.raises(DeviceError):
            device.read()
        assert device.lifecycle is Lifecycle.FAULT
        device.deactivate()
        deadline, seen = time.monotonic() + 5, []
        while time.monotonic() < deadline and (not seen or seen[-1] != [0.0, 0.0]):
            seen += [list(s.data) for s in commands.take(100) if isinstance(s, m.Float64MultiArray)]
            time.sleep(0.01)
        assert seen[-1] == [0.0, 0.0], seen
    finally:
        stop.set()
        publisher.join()
        device.close()
    red_team.update(bad_inputs=1)


# Killed log writers and tampered artifacts. -----------------------------------------------------------


def test_a_log_writer_killed_mid_run_faults_the_run_and_says_the_log_is_incomplete(tmp_path, red_team):
    import multiprocessing as mp

    records = []

    def kill_the_writer() -> bool:
        if len(records) == 300:
            for child in mp.active_children():
                if child.name == "s2r-log-writer":
                    os.kill(child.pid, signal.SIGKILL)
        return False

    options = _options("sim", tmp_path, duration=2.4, mode="lockstep")
    result = deploy(PendubotEnergyLQR(), options, records=records, should_stop=kill_the_writer)
    red_team.update(bad_inputs=1)
    audit(records, red_team)
    fault = result["loop"]["faults"][0]
    assert "the log writer died" in fault["reason"] and fault["tick"] > 300
    assert result["log"]["complete"] is False and "died" in result["log"]["error"]
    assert 0 < result["log"]["ticks"] < 300, "what the file holds, counted from the file"
    red_team.update(lost_silently=0 if result["log"]["error"] else 1)


def _artifact(tmp_path, graph=None, **meta_changes):
    """A copy of zoo:pendubot, optionally with another graph (sha256 updated) or metadata."""
    from policies.runtime import ZOO, sha256

    meta = json.loads((ZOO / "pendubot.json").read_text())
    shutil.copy(ZOO / "pendubot.onnx", tmp_path / "policy.onnx")
    if graph is not None:
        (tmp_path / "policy.onnx").write_bytes(graph)
        meta["normalization"] = None
    meta["graph"]["file"] = "policy.onnx"
    meta["graph"]["sha256"] = sha256(tmp_path / "policy.onnx")
    for section, change in meta_changes.items():
        meta[section].update(change) if isinstance(change, dict) else meta.update({section: change})
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(meta))
    return path


def _graph(*nodes, outputs: int = 1) -> bytes:
    """A graph obs (1, 7) -> action (1, outputs) made of `nodes` (onnx.helper), ending in `action`."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        list(nodes),
        "tampered",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, 7])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, outputs])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _column(index: int, out: str):
    """Nodes: `out` = obs[:, index : index + 1]."""
    from onnx import helper

    def const(name, value):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, 7, [1], [value]))

    tag = f"{out}_"
    return (
        const(tag + "lo", index),
        const(tag + "hi", index + 1),
        const(tag + "axis", 1),
        helper.make_node("Slice", ["obs", tag + "lo", tag + "hi", tag + "axis"], [out]),
    )


def _velocity_times(scale: float):
    """Nodes: action = exp(scale * obs[:, 4:5]): 1 at rest, overflowing once the shoulder moves."""
    from onnx import helper

    return (
        helper.make_node("Constant", [], ["k"], value=helper.make_tensor("k", 1, [1], [scale])),
        *_column(4, "v"),
        helper.make_node("Mul", ["v", "k"], ["kv"]),
        helper.make_node("Exp", ["kv"], ["action"]),
    )


def _deploy_cli(path, capsys, *extra) -> tuple[int, str]:
    code = main(["deploy", "--robot", "pendubot", "--policy", str(path), "--lockstep", "--duration", "1", *extra])
    out = capsys.readouterr()
    return code, out.err


def test_tampered_artifacts_are_refused_before_anything_is_armed(tmp_path, capsys, red_team):
    helper = pytest.importorskip("onnx.helper", reason="onnx builds the tampered graphs (train extra)")

    cases = {
        "graph bytes changed": lambda d: (d / "policy.onnx").write_bytes(b"\0" + (d / "policy.onnx").read_bytes()[1:]),
        "metadata cut short": lambda d: (d / "policy.json").write_text((d / "policy.json").read_text()[:200]),
        "low above high": lambda d: _artifact(d, action={"low": [1.0], "high": [-1.0]}),
        "non-finite bound": lambda d: _artifact(d, action={"high": [float("inf")]}),
        "two actions for one motor": lambda d: _artifact(
            d, _graph(*_column(0, "s"), helper.make_node("Concat", ["s", "s"], ["action"], axis=1), outputs=2)
        ),
        "observation of the wrong size": lambda d: _artifact(d, observation={"size": 9}),
        "a graph that returns 1e9": lambda d: _artifact(
            d,
            _graph(
                helper.make_node("Constant", [], ["big"], value=helper.make_tensor("big", 1, [1, 1], [1e9])),
                helper.make_node("Identity", ["big"], ["action"]),
            ),
        ),
    }
    for name, tamper in cases.items():
        directory = tmp_path / name.replace(" ", "_")
        directory.mkdir()
        _artifact(directory)
        tamper(directory)
        try:
            code, err = _deploy_cli(directory / "policy.json", capsys)
        except Exception as exc:  # an uncaught exception is a finding, counted before failing
            red_team.update(uncaught_exceptions=1)
            raise AssertionError(f"{name}: {type(exc).__name__}: {exc}") from exc
        red_team.update(bad_inputs=1)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "error" in lines[0], (name, code, err)


@pytest.mark.parametrize("scale, reason", [(1e6, "returned \\[inf\\]"), (1e4, "not an action within")])
def test_a_graph_that_returns_inf_or_huge_values_mid_run_faults_before_any_clipping(tmp_path, red_team, scale, reason):
    pytest.importorskip("onnx", reason="onnx builds the tampered graphs (train extra)")
    path = _artifact(tmp_path, _graph(*_velocity_times(scale)))
    from policies.runtime import load_policy

    records = []
    options = _options("sim", tmp_path, duration=1.0, mode="lockstep", imperfections=True, action_history=1)
    result = deploy(load_policy(path), options, records=records)
    red_team.update(bad_inputs=1)
    audit(records, red_team)
    fault = result["loop"]["faults"][0]
    assert "policy failed: PolicyOutputError" in fault["reason"] and re.search(reason, fault["reason"])
    # The faulting tick commands the safe state (damping from a fresh reading), not clipped full torque.
    assert abs(records[fault["tick"]].command[0]) < 1.0, records[fault["tick"]].command
