"""The quadrotor on a Crazyflie over CRTP: the firmware's commander and supervisor (thrust lock, rate
mode, the 0.5 s and 2 s timeouts), cflib's own client against the emulator over its UDP link, and
HIL with the shipped quadrotor fault plans."""

import math
import socket
import threading
import time

import numpy as np
import pytest

from hardware.apps.hil import detection_bound
from hardware.emulators.crazyflie import DEADMAN_S, LEVEL_TIMEOUT_S, SHUTDOWN_TIMEOUT_S, Firmware
from hardware.emulators.crtp_emulator import CrtpEmulator
from hardware.links import crtp
from sim.robots import load_robot_params

pytest.importorskip("cflib", reason="cflib (the crazyflie extra) is absent")
from cflib.crazyflie import Crazyflie  # noqa: E402
from cflib.crazyflie.commander import Commander  # noqa: E402

from hardware.backends.crtp_device import CrtpDevice  # noqa: E402

LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
MS = 1_000_000


def _estimate(quaternion):
    """A state estimate (13,): at 1 m, at rest, with this attitude."""
    return np.concatenate([[0.0, 0.0, 1.0], quaternion, np.zeros(6)])


def _firmware():
    firmware = Firmware(load_robot_params("crazyflie", "l2f"))
    firmware.params["flightmode.stabModeRoll"] = firmware.params["flightmode.stabModePitch"] = 0
    firmware.arm(0, True, LEVEL)
    return firmware


def test_rate_set_points_are_what_cflibs_commander_sends():
    sent = []

    class Link:
        def send_packet(self, pk):
            sent.append(bytes((pk.header,)) + bytes(pk.data))

    commander = Commander(type("Cf", (), {"send_packet": Link().send_packet})())
    setpoint = crtp.rates_setpoint([0.45, 1.0, -2.0, 0.5])
    commander.send_setpoint(setpoint.roll_deg, setpoint.pitch_deg, setpoint.yaw_rate_deg_s, setpoint.thrust)
    assert sent[0] == crtp.encode(crtp.pack_rpyt(setpoint))
    back = crtp.rates_of(crtp.unpack_setpoint(crtp.decode(sent[0])))
    assert np.allclose(back, [0.45, 1.0, -2.0, 0.5], atol=1e-5)


def test_thrust_stays_locked_until_a_zero_thrust_set_point():
    firmware = _firmware()
    firmware.rpyt(1 * MS, crtp.rates_setpoint([0.5, 0, 0, 0]))
    assert not firmware.update(2 * MS, _estimate(LEVEL)).any()
    firmware.rpyt(3 * MS, crtp.rates_setpoint([0.0, 0, 0, 0]))
    firmware.rpyt(4 * MS, crtp.rates_setpoint([0.5, 0, 0, 0]))
    assert firmware.update(5 * MS, _estimate(LEVEL)).all()


def test_rate_mode_follows_rates_and_angle_mode_levels():
    rolled = np.array([math.cos(0.1), math.sin(0.1), 0.0, 0.0])
    speeds = {}
    for mode in (0, 1):
        firmware = _firmware()
        firmware.params["flightmode.stabModeRoll"] = mode
        firmware.rpyt(0, crtp.rates_setpoint([0.0, 0, 0, 0]))
        firmware.rpyt(1 * MS, crtp.rates_setpoint([0.5, 0, 0, 0]))
        speeds[mode] = firmware.update(2 * MS, _estimate(rolled))
    # Rate mode holds the roll (no differential); angle mode rolls back: the left rotors (1 and 4 on
    # the right, FLU: y > 0 is left) differ from the right.
    assert np.ptp(speeds[0]) < 1e-9 and np.ptp(speeds[1]) > 1e-3


def test_the_supervisor_levels_after_half_a_second_and_cuts_the_motors_after_two():
    firmware = _firmware()
    firmware.params["flightmode.stabModeRoll"] = firmware.params["flightmode.stabModePitch"] = 1  # angle mode
    firmware.rpyt(0, crtp.rates_setpoint([0.0, 0, 0, 0]))
    firmware.rpyt(1 * MS, crtp.rates_setpoint([0.45, 0.1, 0, 0]))
    assert firmware.update(1 * MS + int(LEVEL_TIMEOUT_S * 1e9) - MS, _estimate(LEVEL)).any() and firmware.stage == "fly"
    firmware.update(1 * MS + int(LEVEL_TIMEOUT_S * 1e9) + MS, _estimate(LEVEL))
    assert firmware.stage == "level" and firmware.armed
    firmware.rpyt(int(0.9e9), crtp.rates_setpoint([0.45, 0, 0, 0]))  # set-points back: flying again
    assert firmware.stage == "fly"
    last = int(0.9e9)
    assert firmware.update(last + int(SHUTDOWN_TIMEOUT_S * 1e9) - MS, _estimate(LEVEL)).any()
    assert not firmware.update(last + int(SHUTDOWN_TIMEOUT_S * 1e9) + MS, _estimate(LEVEL)).any()
    assert not firmware.armed and [e["kind"] for e in firmware.events][-3:] == ["level", "off", "disarmed"]


def test_body_rates_that_stop_level_out_after_the_dead_man_time():
    firmware = _firmware()  # rate mode: a policy streams body rates
    firmware.rpyt(0, crtp.rates_setpoint([0.0, 0, 0, 0]))
    firmware.rpyt(1 * MS, crtp.rates_setpoint([0.45, 0.5, 0, 0]))
    firmware.update(1 * MS + int(DEADMAN_S * 1e9) - MS, _estimate(LEVEL))
    assert firmware.stage == "fly"
    firmware.update(1 * MS + int(DEADMAN_S * 1e9) + MS, _estimate(LEVEL))
    assert firmware.stage == "level" and DEADMAN_S < LEVEL_TIMEOUT_S


@pytest.fixture
def emulator():
    em = CrtpEmulator(imperfections=False)
    uri = em.open()
    stop = threading.Event()
    thread = threading.Thread(target=em.run, kwargs={"should_stop": stop.is_set}, daemon=True)
    thread.start()
    yield em, uri
    stop.set()
    thread.join(timeout=10)
    em.close()


def test_cflibs_own_client_connects_reads_writes_and_arms(emulator):
    """cflib, unmodified, over its UDP link: the connection set-up (protocol version, log and param
    TOCs, memories, every parameter's value), a parameter written and read back, a log block, the
    supervisor's arming."""
    em, uri = emulator
    import cflib.crtp
    from cflib.crazyflie.log import LogConfig

    cflib.crtp.init_drivers()
    cf = Crazyflie(rw_cache=None)
    connected = threading.Event()
    cf.fully_connected.add_callback(lambda uri: connected.set())
    cf.open_link(uri)
    try:
        assert connected.wait(10), "cflib did not finish connecting"
        assert cf.platform.get_protocol_version() == 12
        assert "stateEstimateZ" in cf.log.toc.toc and "quat" in cf.log.toc.toc["stateEstimateZ"]
        assert cf.param.values["flightmode"]["stabModeRoll"] == "1"
        cf.param.set_value("flightmode.stabModeRoll", 0)
        deadline = time.monotonic() + 5
        while cf.param.values["flightmode"]["stabModeRoll"] != "0" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert em.firmware.params["flightmode.stabModeRoll"] == 0
        samples = []
        config = LogConfig("z", period_in_ms=10)
        config.add_variable("stateEstimateZ.z", "int16_t")
        cf.log.add_config(config)
        config.data_received_cb.add_callback(lambda t, data, c: samples.append((t, data)))
        config.start()
        deadline = time.monotonic() + 5
        while len(samples) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(samples) >= 10 and 8 <= np.diff([t for t, _ in samples]).mean() <= 12  # 100 Hz, stamped in ms
        cf.supervisor.send_arming_request(True)
        deadline = time.monotonic() + 5
        while not cf.supervisor.is_armed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert em.firmware.armed
    finally:
        cf.close_link()


def test_nothing_answering_is_one_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        device = CrtpDevice(f"udp://127.0.0.1:{quiet.getsockname()[1]}", timeout_s=0.5)
        from hardware.device import DeviceError
        from sim.robots import robot_spec

        with pytest.raises(DeviceError, match="no Crazyflie answered within 0.5 s"):
            device.configure(robot_spec("crazyflie", load_robot_params("crazyflie", "l2f"), "rates"))
        device.close()


def test_a_low_battery_is_not_armed(emulator):
    em, uri = emulator
    em.battery_state = 3  # low power
    device = CrtpDevice(uri)
    from hardware.device import DeviceError
    from sim.robots import robot_spec

    device.configure(robot_spec("crazyflie", load_robot_params("crazyflie", "l2f"), "rates"))
    with pytest.raises(DeviceError, match="battery low"):
        device.activate()
    assert not em.firmware.armed
    device.close()


@pytest.mark.hil
def test_hil_over_crtp_holds_the_hover_through_loss_and_the_supervisor_lands_it_after_an_unplug(fly_hil):
    result, options = fly_hil("crtp", "hardware/faults/quadrotor-loss-jitter-unplug.yaml")
    checks = {c["name"]: c for c in result["checks"]}
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert checks["losses"]["injected"] > 5 and checks["losses"]["counted"] >= checks["losses"]["injected"]
    assert checks["detect unplug"]["ticks"] <= detection_bound("unplug", 0.0, options) == 7
    kinds = [e["kind"] for e in result["emulator"]["flight"]["events"]]
    assert kinds == ["armed", "level", "off", "disarmed"], kinds


@pytest.mark.hil
def test_hil_over_crtp_catches_a_frozen_estimate_and_hands_the_vehicle_to_the_supervisor(fly_hil):
    result, _ = fly_hil("crtp", "hardware/faults/quadrotor-frozen-imu.yaml", duration=5.0)
    checks = {c["name"]: c for c in result["checks"]}
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert "frozen sensor" in checks["detect frozen_sensor"]["detail"]
    assert "disarm request" not in checks["down"]["detail"]  # the host sent nothing after going blind
