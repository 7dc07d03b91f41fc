"""A robot's channels come from its MJCF: sensors give the state, actuators the commands."""

import dataclasses

import mujoco
import numpy as np
import pytest

from sim.robots import apply_params, channels, get_robot

XML = """
<mujoco>
  <worldbody><body><joint name="wrist"/><geom size="0.1"/><site name="s"/></body></worldbody>
  <actuator><motor name="wrist" joint="wrist"/></actuator>
  <sensor>{sensors}</sensor>
</mujoco>
"""


def test_the_pendulum_familys_channels_are_its_sensors_and_motors_with_the_robots_limits():
    for name, effort in (("pendubot", [6.0, 0.5]), ("acrobot", [0.5, 6.0]), ("pendulum", [1.5])):
        robot = get_robot(name)
        spec = robot.spec(robot.load_params("model_1.0"))
        joints = list(robot.joints)
        assert [c.name for c in spec.state] == [f"{j}.position" for j in joints] + [f"{j}.velocity" for j in joints]
        assert [c.kind for c in spec.state] == ["joint.position"] * len(joints) + ["joint.velocity"] * len(joints)
        assert [(c.name, c.unit, c.kind) for c in spec.command] == [
            (f"{j}.effort", "N m", "joint.effort") for j in joints
        ]
        assert [c.high for c in spec.command] == effort and [c.low for c in spec.command] == [-e for e in effort]


def test_a_sensor_no_state_channel_comes_from_is_refused_by_name():
    model = mujoco.MjModel.from_xml_string(XML.format(sensors='<accelerometer name="imu.acc" site="s"/>'))
    with pytest.raises(ValueError, match="sensor 'imu.acc': its type is not one a state channel comes from"):
        channels.state_channels(model, {})
    model = mujoco.MjModel.from_xml_string(XML.format(sensors='<jointpos name="wrist.position" joint="wrist"/>'))
    with pytest.raises(ValueError, match="2 command limits for 1 actuators"):
        channels.command_channels(model, ".effort", "N m", "joint.effort", [(-1, 1)] * 2, 10.0)


def test_the_motors_gear_is_the_parameter_sets_torque_constant_scale():
    robot = get_robot("pendubot")
    params = dataclasses.replace(robot.load_params("model_1.1"), km=0.8)
    model = robot.build_model(params)
    data = mujoco.MjData(model)
    data.ctrl[:] = [2.0, 0.0]
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.qfrc_actuator, [1.6, 0.0])
    apply_params(model, robot.load_params("model_1.1"))
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.qfrc_actuator, [2.0, 0.0])
