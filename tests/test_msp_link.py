"""The quadrotor on a flight controller over MSP: the board's firmware (arming, failsafe timings),
the device against the emulated board on a real pty with motion capture over real DDS, and HIL with
the shipped quadrotor fault plans."""

import math
import os
import tty

import numpy as np
import pytest

from hardware.apps.hil import detection_bound
from hardware.backends.msp_device import MspDevice
from hardware.device import DeviceError, SpecMismatchError
from hardware.emulators.msp_emulator import FAILSAFE_DELAY_S, RX_LOSS_S, FlightController
from hardware.emulators.process import EmulatorProcess
from hardware.emulators.rate_loop import attitude_rates
from hardware.links import msp
from s2r.cli import main
from sim.robots import load_robot_params, robot_spec
from sim.robots.quadrotor import MAX_BODY_RATE
from sim.tasks.binding import make_binding

LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
MS = 1_000_000


def _rc(setpoint=(0.0, 0.0, 0.0, 0.0), arm=True):
    return msp.sticks(np.array(setpoint), MAX_BODY_RATE, arm)


def test_sticks_carry_thrust_and_body_rates_both_ways():
    setpoint = np.array([0.45, 2.0, -3.0, 1.0])
    channels = _rc(setpoint)
    assert channels[3] == 1450 and channels[4] >= msp.ARM_THRESHOLD
    assert channels[2] < 1500  # yaw right on the stick is a negative rate about body z (FLU)
    assert np.allclose(msp.setpoint(channels, MAX_BODY_RATE), setpoint, atol=MAX_BODY_RATE / 500)
    assert max(_rc((2.0, 99.0, -99.0, 0.0))) <= msp.RC_MAX and min(_rc((-1.0, 99.0, -99.0, 0.0))) >= msp.RC_MIN


def test_attitude_round_trips_at_the_boards_resolution():
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[0])
        angles = msp.unpack_attitude(msp.pack_attitude(*msp.attitude_of(q)))
        back = msp.quaternion_of(*angles)
        if abs(angles[1]) < 80:  # away from gimbal lock
            assert abs(abs(back @ q) - 1.0) < 1e-4


def test_the_board_arms_only_level_with_the_throttle_low():
    fc = FlightController(load_robot_params("crazyflie", "l2f"))
    fc.rc(_rc((0.5, 0, 0, 0)), 0, LEVEL)
    assert not fc.armed  # throttle up
    tilted = np.array([math.cos(0.3), math.sin(0.3), 0.0, 0.0])  # 34 degrees of roll
    fc.rc(_rc(), 1 * MS, tilted)
    assert not fc.armed
    fc.rc(_rc(), 2 * MS, LEVEL)
    assert fc.armed and fc.flags & msp.ARMED_FLAG
    fc.rc(_rc(arm=False), 3 * MS, LEVEL)
    assert not fc.armed and fc.events[-1]["why"] == "AUX1 low"


def test_failsafe_levels_then_drops_with_the_firmwares_timings():
    fc = FlightController(load_robot_params("crazyflie", "l2f"))
    fc.rc(_rc(), 0, LEVEL)
    fc.rc(_rc((0.45, 0, 0, 0)), 10 * MS, LEVEL)
    gyro = np.zeros(3)
    t = 10 * MS
    while t < 10 * MS + int(RX_LOSS_S * 1e9):  # RC still fresh enough
        assert fc.update(t, LEVEL, gyro).any() and fc.failsafe_since_ns is None
        t += 2 * MS
    fc.update(t + 2 * MS, LEVEL, gyro)
    assert fc.failsafe_since_ns is not None and fc.flags & msp.FAILSAFE_FLAG
    start = fc.failsafe_since_ns
    # Stage 1 holds the last throttle and levels: a rolled vehicle is rolled back.
    rolled = np.array([math.cos(0.1), math.sin(0.1), 0.0, 0.0])
    assert attitude_rates(rolled)[0] < 0
    assert fc.update(start + int(FAILSAFE_DELAY_S * 1e9) - MS, rolled, gyro).any() and fc.armed
    assert not fc.update(start + int(FAILSAFE_DELAY_S * 1e9) + MS, LEVEL, gyro).any()
    assert not fc.armed and fc.events[-1] == {
        "kind": "disarmed",
        "at_ns": start + int(FAILSAFE_DELAY_S * 1e9) + MS,
        "why": "failsafe drop",
    }
    fc.rc(_rc(), start + 2 * int(1e9), LEVEL)
    assert not fc.armed  # the ARM switch must go off first
    fc.rc(_rc(arm=False), start + 2 * int(1e9) + MS, LEVEL)
    fc.rc(_rc(), start + 2 * int(1e9) + 2 * MS, LEVEL)
    assert fc.armed


def test_rc_back_within_stage_one_recovers():
    fc = FlightController(load_robot_params("crazyflie", "l2f"))
    fc.rc(_rc(), 0, LEVEL)
    fc.update(int(0.5e9), LEVEL, np.zeros(3))
    assert fc.failsafe_since_ns is not None
    fc.rc(_rc((0.45, 0, 0, 0)), int(0.6e9), LEVEL)
    assert fc.failsafe_since_ns is None and fc.armed and fc.events[-1]["kind"] == "failsafe_recovered"


def test_a_rotor_level_policy_is_refused_on_a_rates_device():
    params = load_robot_params("crazyflie", "l2f")
    with pytest.raises(ValueError, match="trained with action_level: rates"):
        make_binding("crazyflie", "hover", params, 100.0, {"action_level": "rotors"}, 0.5, "rates")
    binding = make_binding("crazyflie", "hover", params, 100.0, {"action_level": "rates"}, 0.5, "rates")
    command = binding.to_command(np.array([0.0, 1.0, -1.0, 0.5]), np.zeros(13))
    assert np.allclose(command, [0.5, MAX_BODY_RATE, -MAX_BODY_RATE, MAX_BODY_RATE / 2])
    assert not binding.safe_command(None, 0.0).any()  # motors off: no thrust, no rates


def test_a_port_where_no_board_answers_is_one_clear_error():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        device = MspDevice(os.ttyname(slave), timeout_s=0.2)
        with pytest.raises(DeviceError, match="no MSP reply from .* flight controller's MSP port"):
            device.configure(robot_spec("crazyflie", load_robot_params("crazyflie", "l2f"), "rates"))
        device.close()
    finally:
        os.close(master)
        os.close(slave)


def test_a_board_without_motion_capture_cannot_fly_a_position_policy():
    with EmulatorProcess(transport="msp", robot="crazyflie", params="l2f", mocap_topic=None) as emulator:
        device = MspDevice(emulator.port)
        with pytest.raises(SpecMismatchError, match="lacks state channel 'body.position.x'"):
            device.configure(robot_spec("crazyflie", load_robot_params("crazyflie", "l2f"), "rates"))
        device.close()
        emulator.stop()


@pytest.mark.hil
def test_hil_over_msp_holds_the_hover_through_loss_and_fails_safe_on_an_unplug(fly_hil):
    result, options = fly_hil("msp", "hardware/faults/quadrotor-loss-jitter-unplug.yaml", 61)
    checks = {c["name"]: c for c in result["checks"]}
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert "hover held for" in checks["task"]["detail"]
    assert checks["losses"]["injected"] > 10 and checks["losses"]["counted"] >= checks["losses"]["injected"]
    assert checks["detect unplug"]["ticks"] <= detection_bound("unplug", 0.0, options)
    assert "failsafe drop" in checks["down"]["detail"]
    flight = result["emulator"]["flight"]
    kinds = [e["kind"] for e in flight["events"]]
    # Armed, and after the unplug the failsafe then its drop (a loaded machine may add a recovered
    # failsafe in flight: the board's own 100 ms RC timeout is tighter than the host's watchdogs).
    assert kinds[0] == "armed" and kinds[-2:] == ["failsafe", "disarmed"], kinds
    assert flight["final_position"][2] < 0.1


@pytest.mark.hil
def test_hil_over_msp_catches_a_frozen_imu_and_leaves_the_vehicle_to_the_failsafe(fly_hil):
    result, options = fly_hil("msp", "hardware/faults/quadrotor-frozen-imu.yaml", 62, duration=5.0)
    checks = {c["name"]: c for c in result["checks"]}
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert "IMU frozen" in checks["detect frozen_sensor"]["detail"]
    assert checks["detect frozen_sensor"]["ticks"] <= detection_bound("frozen_sensor", 1.0, options)
    # The host that faulted sent no disarm: the board's failsafe took the vehicle down.
    assert "failsafe" in checks["down"]["detail"] and "AUX1" not in checks["down"]["detail"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--robot", "pendubot", "--device", "msp", "--emulate"], "msp is not the pendubot's link"),
        (["--robot", "pendubot", "--device", "ros2", "--emulate"], "ros2 is not the pendubot's link in hil"),
        (["--robot", "crazyflie", "--device", "serial", "--emulate"], "serial is not the crazyflie's link"),
        (["--robot", "crazyflie", "--device", "msp"], "--device msp needs --emulate"),
        (["--robot", "crazyflie", "--device", "can", "--emulate"], "hil runs over serial, msp, crtp or ros2"),
        (["--robot", "crazyflie", "--device", "msp:/dev/ttyACM0", "--emulate"], "--emulate starts the emulator"),
    ],
)
def test_hil_link_mistakes_are_one_line(capsys, argv, message):
    assert main(["hil", "--policy", "baseline", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.hil
def test_hil_over_msp_counts_damaged_replies_and_catches_a_brownout(fly_hil):
    result, options = fly_hil("msp", "hardware/faults/quadrotor-noise-brownout.yaml", 63, duration=5.0)
    checks = {c["name"]: c for c in result["checks"]}
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert result["link"]["crc_errors"] > 0 and checks["losses"]["counted"] >= checks["losses"]["injected"] > 0
    assert checks["detect brownout"]["ticks"] <= detection_bound("brownout", 0.05, options)
    assert "rebooted" in checks["down"]["detail"]


def test_a_rotor_level_policy_over_msp_is_one_line_before_any_port_opens(capsys):
    argv = ["deploy", "--robot", "crazyflie", "--policy", "zoo:crazyflie-hover", "--device", "msp:/dev/nonexistent"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "trained with action_level: rates" in err and len(err.splitlines()) == 1
