"""The quadrotor's model: parameter sets, and MuJoCo's motion against the closed-form rigid-body and
rotor model (sim.dynamics.quadrotor), to stated tolerances, with the one term that differs named."""

import mujoco
import numpy as np
import pytest

from sim.config import ConfigError
from sim.dynamics import quadrotor as closed_form
from sim.robots import quadrotor

DT = 0.002
Q0 = np.array([np.cos(0.3), 0.6 * np.sin(0.3), 0.8 * np.sin(0.3), 0.0])  # tilted 34 degrees
X0 = np.concatenate([[0.1, -0.2, 1.0], Q0, [0.5, -0.3, 0.2], [1.0, -0.5, 0.8], [0.6, 0.7, 0.65, 0.72]])


def _mujoco(params, x0, dt=DT):
    model = quadrotor.build_model(params)
    model.opt.timestep = dt
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT  # the closed form has no floor
    data = mujoco.MjData(model)
    data.qpos[:7], data.qvel[:6] = x0[:7], x0[7:13]
    return model, data


def _state(data, rotors) -> np.ndarray:
    return np.concatenate([data.qpos[:7], data.qvel[:6], rotors.u])


def test_the_shipped_sets_fly_as_their_sources_say():
    l2f, cf21 = quadrotor.load_params("l2f"), quadrotor.load_params("cf21")
    # Learning to Fly: hover at 14476 of 21702 rpm (0.334 as an action in [-1, 1]), thrust-to-weight ~2.25.
    assert l2f.hover_speed == pytest.approx(14476 / 21702, abs=1e-3)
    assert l2f.thrust_to_weight == pytest.approx(2.25, abs=0.01)
    assert cf21.motor_time_constant == (0.069, 0.114) and 1.3 < cf21.thrust_to_weight < 1.5
    assert quadrotor.param_sets() == ["cf21", "l2f"]


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"thrust_curve": [0.0, 0.0, 0.5]}, "exceeds the hard limit of 0.2 N"),
        ({"thrust_curve": [0.0, 0.0, 0.05]}, "it cannot fly"),
        ({"rotor_spin": [1, 1, -1, 1]}, "two rotors spin each way"),
        ({"rotor_positions": [[0.028, 0.028, 0.0]]}, "expected 4 [x, y, z] rows"),
        ({"mass": -1.0}, "mass"),
        ({"speed": 3}, "unknown key"),
    ],
)
def test_a_bad_parameter_set_is_refused_naming_what_is_wrong(change, problem):
    data = quadrotor.load_params("l2f").as_dict() | change
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        quadrotor.QuadrotorParams.from_dict(data)


@pytest.mark.parametrize("name", ["l2f", "cf21"])
def test_level_at_hover_speed_it_stays_put(name):
    params = quadrotor.load_params(name)
    x0 = np.zeros(17)
    x0[2], x0[3], x0[13:] = 1.0, 1.0, params.hover_speed
    model, data = _mujoco(params, x0)
    rotors = quadrotor.RotorModel(params, DT)
    for _ in range(500):
        data.ctrl[:] = rotors.step(np.full(4, params.hover_speed))
        mujoco.mj_step(model, data)
    assert np.abs(data.qpos[:3] - [0.0, 0.0, 1.0]).max() < 1e-9 and np.abs(data.qvel).max() < 1e-9


def test_the_sensors_read_the_body_state_in_its_frames():
    params = quadrotor.load_params("l2f")
    model, data = _mujoco(params, X0)
    mujoco.mj_forward(model, data)
    sensor = {model.sensor(i).name: data.sensor(i).data.copy() for i in range(model.nsensor)}
    assert np.allclose(sensor["body.position"], X0[:3]) and np.allclose(sensor["body.orientation"], X0[3:7])
    assert np.allclose(sensor["body.velocity"], X0[7:10])  # world frame
    assert np.allclose(sensor["body.rates"], X0[10:13])  # body frame
    # The spec's state channels are these sensors' values, in this order: the state x[:13].
    names = [c.name for c in quadrotor.spec(params).state]
    assert names[:4] == ["body.position.x", "body.position.y", "body.position.z", "body.orientation.w"]
    assert names[-1] == "body.rates.z" and len(names) == 13


def test_mujoco_matches_the_closed_form_rigid_body_with_the_rotors_held():
    """Thrusts held: the accelerations agree to rounding; what differs is integration. MuJoCo's RK4
    integrates the free joint's orientation to second order (the error falls 4x when dt halves),
    the closed form's RK4 to fourth: a measured 5.5e-5 in the quaternion over 0.5 s at 2 ms while
    spinning at 1.4 rad/s and accelerating at 98 rad/s^2."""
    params = quadrotor.load_params("l2f")
    model, data = _mujoco(params, X0)
    data.ctrl[:] = params.thrust(X0[13:])
    mujoco.mj_forward(model, data)
    assert np.allclose(data.qacc, closed_form.derivative(params, X0, X0[13:])[7:13], rtol=1e-12, atol=1e-12)
    errors = []
    for dt in (0.002, 0.001):
        model, data = _mujoco(params, X0, dt)
        x = X0.copy()
        for _ in range(int(round(0.5 / dt))):
            data.ctrl[:] = params.thrust(X0[13:])
            mujoco.mj_step(model, data)
            x = closed_form.rk4_step(params, x, x[13:], dt)
        assert np.abs(data.qvel[3:6] - x[10:13]).max() < 1e-9, "the body rates agree"
        errors.append(np.abs(data.qpos[:7] - x[:7]).max())
    assert errors[0] < 1e-4
    assert 3.0 < errors[0] / errors[1] < 5.0, f"second order in dt: {errors}"


@pytest.mark.parametrize("name", ["l2f", "cf21"])
def test_mujoco_with_the_rotor_model_tracks_the_closed_form_under_changing_commands(name):
    """1 s of random rotor set-points held 50 ms each, from a tilted spinning state: the rotor speeds
    agree to rounding (the lag is solved exactly per step) and the body within the tolerances below,
    although the attitude is open-loop unstable and the rates reach tens of rad/s."""
    params = quadrotor.load_params(name)
    commands = np.repeat(np.random.default_rng(0).uniform(0.4, 0.9, (20, 4)), 25, axis=0)
    model, data = _mujoco(params, X0)
    rotors = quadrotor.RotorModel(params, DT, X0[13:])
    x = X0.copy()
    worst = np.zeros(4)
    for command in commands:
        data.ctrl[:] = rotors.step(command)
        mujoco.mj_step(model, data)
        x = closed_form.rk4_step(params, x, command, DT)
        error = np.abs(_state(data, rotors) - x)
        worst = np.maximum(worst, [error[:3].max(), error[3:7].max(), error[10:13].max(), error[13:].max()])
    position_m, quaternion, rates_rad_s, rotor_speed = worst
    assert position_m < 1e-3 and quaternion < 1e-3 and rates_rad_s < 2e-3 and rotor_speed < 1e-9, worst
