"""The quadrotor through the real-time loop: deployed on the simulated device with the baseline, its
log in the message types a 3D viewer shows, and its safe behaviour (land, motors off) in the loop."""

import json
import math
import shutil

import numpy as np
import pytest

from hardware.apps.deploy import DeployOptions, binding_of, deploy
from hardware.apps.log import read_log
from hardware.backends.sim_device import SimDevice
from hardware.clock import FakeClock
from hardware.loop import ControlLoop
from hardware.safety import Fault, SafetyConfig, max_steps
from policies.geometric import GeometricController
from sim.robots import quadrotor
from sim.simulated import SimulatedRobot
from sim.tasks import flight
from sim.tasks.flight_safety import tilt

SPEC = quadrotor.spec(quadrotor.load_params("l2f"))


def test_the_baseline_hovers_through_the_loop_lands_at_the_end_and_the_log_holds_a_pose_a_viewer_shows(tmp_path):
    options = DeployOptions("crazyflie", 100.0, duration_s=5.0, mode="lockstep", log_path=tmp_path / "q.mcap")
    assert options.task == "hover" and options.params == "l2f"
    result = deploy(GeometricController(), options)
    assert not result["loop"]["faults"] and result["task"] == "hover"
    assert result["metrics"]["success"] == 1.0 and result["metrics"]["rmse_cm"] <= 2.0, result["metrics"]
    assert result["summary"].startswith("position RMSE")
    # The run over, the vehicle lands (about 3.3 s from 1 m) before its motors are disarmed.
    assert result["settled"] and 800 < result["loop"]["ticks"] < 900
    contents = read_log(tmp_path / "q.mcap")
    assert contents.complete and not contents.damage
    ticks = result["loop"]["ticks"]
    for topic in ("/pose", "/odom", "/imu", "/state", "/command"):
        assert len(contents.messages[topic]) == ticks, topic
    assert contents.messages["/pose"][-1][1].pose.position.z < 0.06
    assert not any(contents.messages["/command"][-1][1].data), "motors off"
    assert "/joint_states" not in contents.messages
    _, pose = contents.messages["/pose"][400]
    _, state = contents.messages["/state"][400]
    assert pose.header.frame_id == "world"
    p, q = pose.pose.position, pose.pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z, q.w, q.x, q.y, q.z], state.data[:7])  # ROS's x, y, z, w order
    _, odom = contents.messages["/odom"][400]
    assert odom.child_frame_id == "base_link"
    np.testing.assert_allclose(
        [odom.twist.twist.angular.x, odom.twist.twist.angular.z], [state.data[10], state.data[12]]
    )
    _, imu = contents.messages["/imu"][400]
    assert imu.linear_acceleration_covariance[0] == -1.0


def test_a_stop_request_mid_flight_lands_the_vehicle_before_its_motors_are_disarmed():
    asked = []
    records = []

    def stop() -> bool:  # Ctrl-C, or the ROS 2 node's disarm, after 2 s
        asked.append(1)
        return len(asked) > 200

    options = DeployOptions("crazyflie", 100.0, duration_s=None, mode="lockstep")
    result = deploy(GeometricController(), options, records=records, should_stop=stop)
    assert result["interrupted"] and result["settled"] and not result["loop"]["faults"]
    heights = np.array([r.state.values[2] for r in records])
    assert heights[199] > 0.9 and heights[-1] < 0.06 and not records[-1].command.any()
    assert result["metrics"]["success"] == 1.0, "judged on the flight, not the landing"


def test_the_figure_eight_is_tracked_through_the_loop_at_500_hz():
    options = DeployOptions("crazyflie", 500.0, task="figure8", duration_s=6.0, mode="lockstep")
    result = deploy(GeometricController(control_rate_hz=500.0), options)
    assert result["metrics"]["success"] == 1.0 and result["metrics"]["rmse_cm"] < 10.0, result["metrics"]


def test_the_loop_carries_the_tasks_memory_from_tick_to_tick():
    class Recording(GeometricController):
        conditions = {"observe_error_integral": True}

        def act(self, obs):
            seen.append(obs.copy())
            return super().act(obs)

    seen = []
    options = DeployOptions("crazyflie", 100.0, duration_s=3.0, mode="lockstep", conditions=Recording.conditions)
    result = deploy(Recording(), options)
    assert result["metrics"]["success"] == 1.0, result["metrics"]
    observations = np.array(seen[1:])  # after the probe's
    integral = np.zeros(3)
    for k, obs in enumerate(observations):
        error = obs[:3].astype(float)
        if k and np.linalg.norm(error) < flight.INTEGRATE_WITHIN:
            integral = np.clip(integral + error / 100.0, -flight.INTEGRAL_CLIP, flight.INTEGRAL_CLIP)
        np.testing.assert_allclose(obs[18:21] * flight.INTEGRAL_CLIP, integral, atol=1e-6, err_msg=f"tick {k}")
    assert np.abs(integral).max() > 1e-4


def _flying_loop(seed: int = 0) -> ControlLoop:
    options = DeployOptions("crazyflie", 100.0, mode="lockstep", seed=seed)
    device = SimDevice(SimulatedRobot("crazyflie", 100.0, "hover", imperfections=True), mode="lockstep", seed=seed)
    device.configure(SPEC)
    device.activate()
    return ControlLoop(device, GeometricController(), binding_of(options), 100.0, FakeClock(), SafetyConfig())


def test_an_estop_from_a_trusted_state_lands_at_the_stated_rate_then_cuts_the_motors():
    loop = _flying_loop()
    loop.run(ticks=200)
    loop.estop.trip(Fault(200, "operator e-stop"))
    heights, commands = [], []

    def on_tick(record):
        heights.append(loop.device.plant.env.plant.state()[2])
        commands.append(record.command)

    loop.on_tick = on_tick
    loop.run(ticks=500)
    heights, commands = np.array(heights), np.array(commands)
    # Down at 0.3 m/s from about 1 m: 0.4 m after 2 s, never a drop.
    assert heights[200] == pytest.approx(heights[0] - 0.6, abs=0.05)
    off = int(np.flatnonzero((commands == 0).all(axis=1))[0])
    assert 3.0 < off / 100 < 3.7 and heights[off] < 0.06, "motors off at touchdown, about 3.3 s down"
    assert np.diff(heights[:off]).min() > -0.5 / 100, "no faster than 0.5 m/s on the way"
    assert (commands[off:] == 0).all(), "and they stay off"
    assert 0.0 < heights[-1] < 0.01, "resting on the floor"


def test_the_safe_state_cuts_the_motors_when_blind_flipped_or_outside_the_geofence_and_stays_off():
    level = np.concatenate([[0.0, 0.0, 1.0, 1.0], np.zeros(9)])
    flipped = level.copy()
    flipped[3:7] = [math.cos(math.radians(35)), math.sin(math.radians(35)), 0.0, 0.0]  # 70 degrees
    outside = level.copy()
    outside[0] = 2.0
    options = DeployOptions("crazyflie", 100.0, mode="lockstep")
    for reading in (None, flipped, outside):
        binding = binding_of(options)
        assert (binding.safe_command(reading, 0.0) == 0).all()
        assert (binding.safe_command(level, 0.01) == 0).all(), "latched: a good reading later does not restart"
    assert tilt(flipped[3:7]) == pytest.approx(math.radians(70))
    binding = binding_of(options)
    assert binding.safe_command(level, 0.0).min() > 0.3, "from a trusted level state it flies the landing"
    assert binding.envelope(flipped) and binding.envelope(outside) and binding.envelope(level) is None


def test_rate_limits_are_per_channel_and_a_safety_config_only_lowers_them():
    from sim.robots import get_robot

    pendubot = get_robot("pendubot")
    torque = pendubot.spec(pendubot.load_params("model_1.0"))
    np.testing.assert_allclose(max_steps(torque, SafetyConfig(), 100.0), [6.0, 6.0])
    np.testing.assert_allclose(max_steps(torque, SafetyConfig(max_slew_per_s=1e9), 100.0), [6.0, 6.0])
    np.testing.assert_allclose(max_steps(torque, SafetyConfig(max_slew_per_s=100.0), 100.0), [1.0, 1.0])
    assert np.isinf(max_steps(SPEC, SafetyConfig(), 100.0)).all(), "rotor set-points step: the motors lag"


def test_deploy_options_come_from_the_policy_unless_a_setting_says_otherwise():
    from hardware.apps.deploy import options_for

    class Policy:
        control_rate_hz, action_history, task = 250.0, 3, "figure8"
        conditions = {"action_level": "rates", "observe_error_integral": True}

    o = options_for(Policy(), "crazyflie")
    assert (o.task, o.rate_hz, o.action_history, o.params) == ("figure8", 250.0, 3, "l2f")
    assert o.conditions == Policy.conditions
    o = options_for(Policy(), "crazyflie", rate_hz=None, task="hover", duration_s=None, params="cf21")
    assert (o.task, o.rate_hz, o.duration_s, o.params) == ("hover", 250.0, None, "cf21")


def test_an_artifact_is_deployed_at_the_action_level_and_with_the_integral_it_was_trained_with(tmp_path):
    from hardware.apps.deploy import options_for
    from policies.runtime import ZOO, load_policy

    for suffix in (".json", ".onnx"):
        shutil.copy(ZOO / f"crazyflie-hover{suffix}", tmp_path)
    path = tmp_path / "crazyflie-hover.json"
    assert load_policy(path).conditions == {"action_level": "rotors", "observe_error_integral": True}
    meta = json.loads(path.read_text())
    meta["env"]["action_level"] = "rates"
    path.write_text(json.dumps(meta))
    binding = binding_of(options_for(load_policy(path), "crazyflie"))
    level, action, params = np.zeros(13), np.array([0.2, 0.5, 0.0, 0.0]), quadrotor.load_params("l2f")
    level[2], level[3] = 1.0, 1.0
    rates = flight.rotor_command("rates", action, level, params)
    np.testing.assert_array_equal(binding.to_command(action, level), rates)
    assert not np.allclose(rates, flight.rotor_command("rotors", action, level, params))
    assert binding.memory_size == 4


def test_deploy_refuses_a_task_the_robot_does_not_have_and_links_it_is_not_on_yet():
    with pytest.raises(ValueError, match="the crazyflie has no task 'swingup'"):
        DeployOptions("crazyflie", 100.0, task="swingup")
    with pytest.raises(ValueError, match="the pendubot has no task 'hover'"):
        DeployOptions("pendubot", 100.0, task="hover")
    with pytest.raises(ValueError, match="no condition observe_winding .only action_level, observe_error_integral"):
        DeployOptions("crazyflie", 100.0, conditions={"observe_winding": True})
    from hardware.apps.deploy import make_device

    with pytest.raises(ValueError, match="serial protocol carries joints"):
        make_device(DeployOptions("crazyflie", 100.0, device="serial:/dev/ttyACM0"))
