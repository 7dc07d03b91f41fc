"""SerialDevice against the device emulator over a real pseudo-terminal: handshake, arming, firmware
safety, unplug and reconnect, and the hardware-in-the-loop runs with injected faults.

The `hil` tests run against the emulator; with S2R_HIL_PORT set, the device tests run against the
real device on that port instead (it must be a pendubot speaking the s2r serial protocol)."""

import os
import threading
import time

import numpy as np
import pytest
import serial

from hardware.apps.deploy import DeployOptions
from hardware.apps.hil import detection_bound, run_hil
from hardware.apps.log import read_log, summarise_log
from hardware.backends.serial_device import SerialDevice
from hardware.device import Command, DeviceError, Lifecycle, SpecMismatchError
from hardware.emulators.faults import FaultPlan
from hardware.emulators.serial_emulator import Emulator
from hardware.links import protocol
from hardware.links.protocol import FaultCode, Type
from hardware.safety import SafetyConfig
from policies.baselines import PendubotEnergyLQR
from sim.config import ConfigError
from sim.robots import get_robot

ROBOT = get_robot("pendubot")
PARAMS = ROBOT.load_params("model_1.1")
SPEC = ROBOT.spec(PARAMS)
REAL_PORT = os.environ.get("S2R_HIL_PORT")


class ThreadedEmulator:
    """An emulator serving in a thread of the test process (for the short device tests)."""

    def __init__(self, **options):
        self.emulator = Emulator("pendubot", params="model_1.1", imperfections=False, **options)
        self.port = self.emulator.open()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.emulator.run, kwargs={"should_stop": self._stop.is_set})
        self._thread.start()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.emulator.close()


@pytest.fixture
def emulator():
    emu = ThreadedEmulator()
    yield emu
    emu.close()


@pytest.fixture
def port(emulator):
    return REAL_PORT or emulator.port


def test_handshake_arm_read_write(port):
    with SerialDevice(port) as device:
        device.configure(SPEC)
        assert device.provided.name == "pendubot"
        assert [c.name for c in device.provided.command] == ["shoulder.effort", "elbow.effort"]
        device.activate()
        first = device.read()
        assert first.values.shape == (4,) and np.isfinite(first.values).all()
        for _ in range(20):
            device.write(Command(np.array([0.5, 0.0])))
            time.sleep(0.002)
        later = device.read()
        assert later.seq > first.seq and later.stamp_ns > first.stamp_ns
        assert device.rtt_us, "commands are echoed: the round trip is measured"
        device.deactivate()
        assert device.lifecycle is Lifecycle.INACTIVE


def test_device_refuses_what_the_loop_never_sends(port):
    with SerialDevice(port) as device:
        device.configure(SPEC)
        device.activate()
        with pytest.raises(DeviceError, match=r"refusing command shoulder.effort=100.0 N m: outside \[-6.0, 6.0\]"):
            device.write(Command(np.array([100.0, 0.0])))
        assert device.lifecycle is Lifecycle.FAULT


def test_spec_mismatch_is_refused_at_configure(port):
    pendulum = get_robot("pendulum")
    spec = pendulum.spec(pendulum.load_params("model_1.1"))
    robot_spec = type(spec)(
        "pendulum", spec.state, (spec.command[0].__class__("wrist.effort", "N m", -1, 1),), 100, 500
    )
    device = SerialDevice(port)
    with pytest.raises(SpecMismatchError, match="lacks command channel 'wrist.effort'"):
        device.configure(robot_spec)
    assert device.lifecycle is Lifecycle.FAULT
    device.close()


def test_missing_port_and_silent_port_are_clear_errors(tmp_path):
    with pytest.raises(DeviceError, match="cannot open serial port .*nowhere"):
        SerialDevice(str(tmp_path / "nowhere")).configure(SPEC)
    master, slave = os.openpty()  # a port with nobody behind it
    try:
        with pytest.raises(DeviceError, match="no answer to HELLO .* within 0.2 s"):
            SerialDevice(os.ttyname(slave), timeout_s=0.2).configure(SPEC)
    finally:
        os.close(master)
        os.close(slave)


def test_wrong_protocol_version_is_refused_at_the_handshake():
    master, slave = os.openpty()
    os.set_blocking(master, False)
    stop = threading.Event()

    def future_firmware():  # answers every HELLO in protocol version 2
        while not stop.is_set():
            try:
                if os.read(master, 1024):
                    caps = protocol.pack_capabilities(protocol.Capabilities("pendubot", 500, (), ()))
                    os.write(master, protocol.encode_frame(Type.CAPABILITIES, 0, caps, version=2))
            except BlockingIOError:
                time.sleep(0.001)

    thread = threading.Thread(target=future_firmware)
    thread.start()
    try:
        device = SerialDevice(os.ttyname(slave), timeout_s=1.0)
        with pytest.raises(DeviceError, match="speaks s2r serial protocol version 2; this host speaks version 1"):
            device.configure(SPEC)
        device.close()
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)


def _raw(port: str) -> tuple[serial.Serial, protocol.FrameDecoder]:
    link = serial.Serial(port, timeout=0)
    link.write(protocol.encode_frame(Type.HELLO, 0))
    link.write(protocol.encode_frame(Type.ARM, 1, protocol.ARM_PAYLOAD.pack(50)))
    return link, protocol.FrameDecoder()


def _wait_for(link, decoder, kind, timeout=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in decoder.feed(link.read(4096)):
            if frame.type == kind:
                return frame
        time.sleep(0.001)
    raise AssertionError(f"no {kind.name} within {timeout} s")


def test_firmware_refuses_a_command_outside_its_limits_and_disarms(emulator):
    link, decoder = _raw(emulator.port)
    _wait_for(link, decoder, Type.ACK)
    link.write(protocol.encode_frame(Type.COMMAND, 2, protocol.pack_values([50.0, 0.0])))
    code, _ = protocol.unpack_fault(_wait_for(link, decoder, Type.FAULT).payload)
    assert code == FaultCode.LIMIT
    state = protocol.unpack_state(_wait_for(link, decoder, Type.STATE).payload, 4)
    assert not state.armed
    assert emulator.emulator.report["commands_outside_limits"] == 1
    link.close()


def test_firmware_disarms_when_the_host_goes_quiet(emulator):
    link, decoder = _raw(emulator.port)  # armed with a 50 ms host timeout, then silence
    code, reason = protocol.unpack_fault(_wait_for(link, decoder, Type.FAULT).payload)
    assert code == FaultCode.HOST_TIMEOUT and "disarmed" in reason
    assert not emulator.emulator.armed and not emulator.emulator.command.any()
    link.close()


def test_unplug_then_reconnect(tmp_path):
    link = tmp_path / "pendubot-port"
    emu = ThreadedEmulator(
        link=link, replug_s=0.3, faults=FaultPlan.from_dict({"events": [{"kind": "unplug", "at_s": 0.2}]})
    )
    try:
        device = SerialDevice(str(link), reconnect_timeout_s=3.0)
        device.configure(SPEC)
        device.activate()
        with pytest.raises(DeviceError, match=f"serial link to {link} lost"):
            for _ in range(1000):
                device.read()
                device.write(Command(np.zeros(2)))
                time.sleep(0.002)
        assert device.lifecycle is Lifecycle.FAULT
        device.configure(SPEC)  # the port comes back behind the same path: found again
        device.activate()
        assert np.isfinite(device.read().values).all()
        device.close()
    finally:
        emu.close()


def test_fault_plan_errors_name_the_key(tmp_path):
    bad = tmp_path / "faults.yaml"
    bad.write_text("drop: 1.5\n")
    with pytest.raises(ConfigError, match=r"faults.yaml: drop: expected a finite number in \[0.0, 1.0\]"):
        FaultPlan.from_yaml(bad)
    bad.write_text("events:\n  - {kind: meteor, at_s: 1}\n")
    with pytest.raises(ConfigError, match=r"events\[0\].kind: expected one of frozen_sensor, brownout, unplug"):
        FaultPlan.from_yaml(bad)
    bad.write_text("events:\n  - {kind: brownout, at_s: 1}\n")
    with pytest.raises(ConfigError, match="a brown-out needs a duration"):
        FaultPlan.from_yaml(bad)


# Hardware-in-the-loop: the real loop, a real pty, the emulator in its own process. ----------------


def _hil(tmp_path, faults: dict, duration=10.0):
    # A 100 ms stale-state timeout and 50 missed deadlines rather than 50 ms and 5: what is under test
    # is the link, not how long this shared CI machine may deschedule either process.
    options = DeployOptions(
        "pendubot",
        500.0,
        duration_s=duration,
        device="serial",
        params="model_1.1",
        imperfections=False,
        action_history=0,
        safety=SafetyConfig(max_missed_deadlines=50, stale_timeout_s=0.1),
        log_path=tmp_path / "hil.mcap",
    )
    result = run_hil(PendubotEnergyLQR(), options, FaultPlan.from_dict(faults), start="up")
    return result, options


def _checks(result):
    return {c["name"]: c for c in result["checks"]}


@pytest.mark.hil
def test_hil_500hz_keeps_the_pendubot_up_through_loss_and_jitter_and_logs_every_loss(tmp_path):
    result, options = _hil(tmp_path, {"drop": 0.05, "jitter_ms": 1.0, "seed": 3})
    checks = _checks(result)
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert checks["task"]["ok"] and "swing-up held for" in checks["task"]["detail"]
    assert checks["losses"]["injected"] > 100  # 5 % of ~5000 frames
    assert checks["losses"]["counted"] >= checks["losses"]["injected"]
    messages, _, complete, _ = read_log(options.log_path)
    link = [
        {kv.key: kv.value for kv in s.values}
        for _, m in messages["/diagnostics"]
        for s in m.status
        if s.name == "s2r/link"
    ]
    assert complete and int(link[-1]["lost_states"]) == result["link"]["lost_states"]
    increments = np.diff([0] + [int(d["lost_states"]) for d in link])
    assert increments.sum() == result["link"]["lost_states"] and (increments >= 0).all()
    assert int(summarise_log(options.log_path)["link"]["lost_states"]) == result["link"]["lost_states"]


@pytest.mark.hil
def test_hil_unplug_reaches_the_safe_state_within_two_periods(tmp_path):
    result, options = _hil(
        tmp_path, {"drop": 0.05, "jitter_ms": 1.0, "events": [{"kind": "unplug", "at_s": 3.0}]}, duration=5.0
    )
    checks = _checks(result)
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert detection_bound("unplug", 0.0, options) == 2
    assert "serial link to" in checks["detect unplug"]["detail"] and "lost" in checks["detect unplug"]["detail"]
    fault = result["loop"]["faults"][0]
    assert result["loop"]["estop"] and "lost" in fault["reason"]


@pytest.mark.hil
@pytest.mark.parametrize(
    "event",
    [{"kind": "frozen_sensor", "at_s": 2.0, "duration_s": 1.0}, {"kind": "brownout", "at_s": 2.0, "duration_s": 0.02}],
)
def test_hil_catches_a_frozen_sensor_and_a_brownout_within_the_stated_ticks(tmp_path, event):
    result, options = _hil(tmp_path, {"corrupt": 0.01, "bitflip": 0.01, "events": [event]}, duration=4.0)
    check = _checks(result)[f"detect {event['kind']}"]
    assert check["ok"], check
    assert result["link"]["crc_errors"] + result["link"]["malformed_frames"] > 0
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]


def test_the_verdict_credits_a_fault_caught_by_the_tick_running_at_the_injection():
    from hardware.apps.hil import judge
    from hardware.device import State
    from hardware.loop import TickRecord
    from hardware.safety import Fault

    options = DeployOptions("pendubot", 500.0, device="serial", params="model_1.1")
    up = np.array([np.pi, 0.0, 0.0, 0.0])

    def tick(k, fault=None):  # 2 ms apart, 0.5 ms of work each
        start = 1_000_000_000 + k * 2_000_000
        return TickRecord(k, start, start, 500_000, State(start, k, up), np.zeros(1), np.zeros(2), 0, [], fault)

    # The unplug lands 0.2 ms into the last tick, whose write then fails: the loop stops there.
    records = [tick(k) for k in range(99)] + [tick(99, Fault(99, "device write failed: serial link lost"))]
    at = records[-1].start_ns + 200_000
    report = {
        "events": [{"kind": "unplug", "at_ns": at, "duration_s": 0.0}],
        "commands_outside_limits": 0,
        "states_dropped": [],
        "states_corrupted": [],
    }
    link = {"lost_states": 0, "crc_errors": 0, "malformed_frames": 0}
    checks = {c["name"]: c for c in judge(records, options, {"link": link}, report)}
    assert checks["no spurious fault"]["ok"], checks
    assert checks["detect unplug"]["ok"] and checks["detect unplug"]["ticks"] == 1


@pytest.mark.hil
@pytest.mark.parametrize("keep_state", [False, True])
def test_back_to_back_runs_against_one_emulator_start_alike_unless_it_keeps_its_state(keep_state):
    """A second deploy against a running emulator starts where the first did (a new session restarts
    the plant), or, with keep_state, where the first left it."""
    from hardware.apps.deploy import deploy
    from hardware.emulators.process import EmulatorProcess

    options = DeployOptions("pendubot", 250.0, duration_s=1.5, device="serial", params="model_1.1", action_history=0)
    firsts, lasts = [], []
    with EmulatorProcess(robot="pendubot", params="model_1.1", imperfections=False, keep_state=keep_state) as emulator:
        for _ in range(2):
            records = []
            deploy(PendubotEnergyLQR(), options, SerialDevice(emulator.port), records)
            firsts.append(records[0].state.values)
            lasts.append(records[-1].state.values)
        report = emulator.stop()
    assert report["sessions"] == 2
    assert np.abs(lasts[0][:2]).max() > 0.5, "the first run moved the pendubot"
    if keep_state:  # the plant went on swinging between the runs, from where the first left it
        assert np.abs(firsts[1] - firsts[0]).max() > 0.5
    else:
        np.testing.assert_allclose(firsts[1], firsts[0], atol=1e-3)
