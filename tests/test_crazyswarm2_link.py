"""The quadrotor behind crazyswarm2's topics on ROS 2 (Cyclone DDS on loopback): cmd_vel_legacy as
the server reads it, the on-board position controller behind cmd_position, the device's refusals,
and HIL with the shipped quadrotor plans. `tests/test_ros2.py` checks the message definitions against
rosbags; `tests/test_rclpy.py` flies the emulator from a plain rclpy node."""

import threading
import time

import numpy as np
import pytest

from hardware.apps.hil import detection_bound
from hardware.backends.crazyswarm2_device import Crazyswarm2Device
from hardware.device import DeviceError
from hardware.emulators.crazyswarm2_emulator import Crazyswarm2Emulator
from hardware.links import crtp
from hardware.links import ros2_msgs as m
from hardware.links.crazyswarm2 import THRUST_CAP, rpyt_of, twist_of
from hardware.links.dds import DdsTransport
from sim.robots import load_robot_params, robot_spec


def test_cmd_vel_legacy_is_the_rpyt_set_point_the_server_sends():
    setpoint = crtp.rates_setpoint([0.5, 1.0, -2.0, 0.3])
    twist = twist_of(setpoint)
    assert twist.linear.y == pytest.approx(setpoint.roll_deg) and twist.linear.x == pytest.approx(-setpoint.pitch_deg)
    back = rpyt_of(twist)
    assert np.allclose(crtp.rates_of(back), crtp.rates_of(setpoint), atol=1e-4)
    assert rpyt_of(twist_of(crtp.Rpyt(0, 0, 0, 65535))).thrust == THRUST_CAP  # the server's cap
    assert rpyt_of(m.Twist(m.Vector3(0.0, 0.0, float("nan")))).thrust == 0


@pytest.fixture
def emulator():
    em = Crazyswarm2Emulator(imperfections=False, domain_id=71)
    em.open()
    stop = threading.Event()
    thread = threading.Thread(target=em.run, kwargs={"should_stop": stop.is_set}, daemon=True)
    thread.start()
    yield em
    stop.set()
    thread.join(timeout=10)
    em.close()


def test_cmd_position_is_flown_by_the_onboard_controller(emulator):
    transport = DdsTransport(71, loopback=True)
    try:
        position = transport.publisher("/cf1/cmd_position", m.Position)
        odom = transport.subscriber("/cf1/odom", m.Odometry, depth=64)
        target = m.Position(m.Header(), 0.3, -0.2, 1.2, 0.0)
        deadline = time.monotonic() + 6
        latest = None
        while time.monotonic() < deadline:
            position.write(target)
            for sample in odom.take(64):
                latest = sample
            if latest is not None and time.monotonic() > deadline - 2:
                p = latest.pose.pose.position
                if np.linalg.norm([p.x - 0.3, p.y + 0.2, p.z - 1.2]) < 0.05:
                    break
            time.sleep(0.01)
        p = latest.pose.pose.position
        assert np.linalg.norm([p.x - 0.3, p.y + 0.2, p.z - 1.2]) < 0.05, (p.x, p.y, p.z)
        assert emulator.firmware.armed and emulator.firmware.reference is not None
    finally:
        transport.close()


def test_no_crazyswarm2_server_is_one_clear_error():
    device = Crazyswarm2Device("cf9", domain_id=72, loopback=True, backend="cyclonedds", timeout_s=1.0)
    with pytest.raises(DeviceError, match="/cf9: no odom, rates within 1.0 s .* is crazyswarm2's server running"):
        device.configure(robot_spec("crazyflie", load_robot_params("crazyflie", "l2f"), "rates"))
    device.close()


@pytest.mark.hil
def test_hil_over_crazyswarm2_holds_the_hover_through_loss_and_the_supervisor_lands_it_after_an_unplug(fly_hil):
    result, options = fly_hil("ros2", "hardware/faults/quadrotor-loss-jitter-unplug.yaml", 73)
    checks = {c["name"]: c for c in result["checks"]}
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert checks["losses"]["injected"] > 5 and checks["losses"]["counted"] >= checks["losses"]["injected"]
    assert checks["detect unplug"]["ticks"] <= detection_bound("unplug", 0.0, options) == 7
    assert [e["kind"] for e in result["emulator"]["flight"]["events"]] == ["armed", "level", "off", "disarmed"]


@pytest.mark.hil
def test_hil_over_crazyswarm2_catches_a_frozen_estimate(fly_hil):
    result, _ = fly_hil("ros2", "hardware/faults/quadrotor-frozen-imu.yaml", 74, duration=5.0)
    checks = {c["name"]: c for c in result["checks"]}
    assert result["verdict"] == "pass", [c for c in result["checks"] if not c["ok"]]
    assert "frozen sensor" in checks["detect frozen_sensor"]["detail"]
