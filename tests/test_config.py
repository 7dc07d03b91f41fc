"""Parameter sets, imperfections and randomisation files: valid ones load, bad ones say what is wrong."""

import numpy as np
import pytest
import yaml

from sim.config import ConfigError
from sim.env import RobotEnv
from sim.imperfections import Imperfections
from sim.randomization import DomainRandomization
from sim.robots import ROBOTS, get_robot
from sim.robots.params import PendulumParams


@pytest.mark.parametrize("robot", list(ROBOTS))
@pytest.mark.parametrize("name", ["model_1.0", "model_1.1"])
def test_shipped_parameter_sets_load(robot, name):
    p = get_robot(robot).load_params(name)
    assert p.n == len(get_robot(robot).joints)


def test_model_1_1_is_model_1_0_without_friction_and_rotor():
    robot = get_robot("pendubot")
    a, b = robot.load_params("model_1.0"), robot.load_params("model_1.1")
    assert b == a.replace(b=(0.0, 0.0), cf=(0.0, 0.0), Ir=0.0)
    assert a.m == (0.5234602302310271, 0.6255677234174437) and a.cf == (0.16, 0.12)


def write(tmp_path, data, name="f.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def valid_params() -> dict:
    return get_robot("pendubot").load_params("model_1.1").as_dict()


@pytest.mark.parametrize(
    "change, key, expected",
    [
        ({"mass": [1, 1]}, "mass", "unknown key"),
        ({"m": [1, "a"]}, "m[1]", "expected a number"),
        ({"m": [1, 2, 3]}, "m", "1 or 2 link masses"),
        ({"l": [0.2]}, "l", "list of 2 numbers"),
        ({"I": [0.001, 0.05]}, "I[0]", "at least m r^2"),
        ({"torque_limit": [6, 0]}, "torque_limit", "positive"),
        ({"g": float("nan")}, "g", "finite number"),
    ],
)
def test_malformed_parameter_set_names_file_key_and_expectation(tmp_path, change, key, expected):
    path = write(tmp_path, {**valid_params(), **change})
    with pytest.raises(ConfigError) as info:
        get_robot("pendubot").load_params(path)
    assert info.value.key == key and expected in info.value.problem and str(path) in str(info.value)


def test_missing_and_unparsable_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="no parameter set of that name"):
        get_robot("pendubot").load_params("model_9")
    with pytest.raises(ConfigError, match="not valid YAML"):
        get_robot("pendubot").load_params(write(tmp_path, "m: [1, 2\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        get_robot("pendubot").load_params(tmp_path / "absent.yaml")


def test_parameter_set_of_the_wrong_robot_is_refused(tmp_path):
    path = write(tmp_path, get_robot("pendulum").load_params("model_1.1").as_dict())
    with pytest.raises(ConfigError, match="2 links"):
        get_robot("pendubot").load_params(path)


def test_imperfections_single_switch():
    assert Imperfections.resolve(False) == Imperfections()
    assert Imperfections.resolve(True) == Imperfections.defaults()
    changed = Imperfections.resolve({"delay_s": 0.02})
    assert changed.delay_s == 0.02 and changed.torque_noise_std == Imperfections.defaults().torque_noise_std


@pytest.mark.parametrize(
    "value, key",
    [
        ({"delay": 0.1}, "delay"),
        ({"torque_response": 3.0}, "torque_response"),
        ({"torque_response": 0}, "torque_response"),
        ({"pulses_per_joint": 1.5}, "pulses_per_joint"),
        ({"pulse_amplitude": [3, 1]}, "pulse_amplitude"),
        ({"velocity_noise_std": -1}, "velocity_noise_std"),
    ],
)
def test_bad_imperfections_are_refused(value, key):
    with pytest.raises(ConfigError) as info:
        Imperfections.resolve(value)
    assert info.value.key == key


@pytest.mark.parametrize(
    "parameters, key, expected",
    [
        ({"mass1": {"scale": [0.9, 1.1]}}, "parameters.mass1", "unknown key"),
        ({"m3": {"scale": [0.9, 1.1]}}, "parameters.m3", "unknown key"),
        ({"shoulder.m": {"scale": [1.1, 0.9]}}, "parameters.shoulder.m.scale", "low <= high"),
        ({"shoulder.m": {"scale": [0.0, 1.1]}}, "parameters.shoulder.m.scale", "positive multipliers"),
        ({"shoulder.m": {"scale": "wide"}}, "parameters.shoulder.m.scale", "list of 2 numbers"),
        ({"shoulder.m": {"scale": [0.9, 1.1], "offset": [0, 1]}}, "parameters.shoulder.m", "exactly one"),
        ({"shoulder.m": {"scale": [0.9, 1.1], "dist": "gauss"}}, "parameters.shoulder.m.dist", "uniform, loguniform"),
        ({"shoulder.cf": {"offset": [0, 1], "dist": "loguniform"}}, "parameters.shoulder.cf.dist", "scale ranges only"),
        ({"shoulder.m": [0.9, 1.1]}, "parameters.shoulder.m", "expected a mapping"),
    ],
)
def test_malformed_randomisation_file_names_file_key_and_expectation(tmp_path, parameters, key, expected):
    path = write(tmp_path, {"parameters": parameters})
    with pytest.raises(ConfigError) as info:
        DomainRandomization.load(path, get_robot("pendubot"))
    assert info.value.key == key and expected in info.value.problem and str(path) in str(info.value)


def test_randomisation_names_the_robots_joints_and_is_refused_for_another_robot(tmp_path):
    with pytest.raises(ConfigError, match="elbow.m"):
        DomainRandomization.load("double_pendulum", get_robot("pendulum"))
    # A parameter by joint index, as the competition's files write it, is not a name here.
    path = write(tmp_path, {"parameters": {"m2": {"scale": [0.9, 1.1]}}})
    with pytest.raises(ConfigError, match=r"parameters\.m2: unknown key.*elbow\.m"):
        DomainRandomization.load(path, get_robot("pendubot"))


def test_intensity_scales_every_range_and_zero_changes_nothing():
    dr = DomainRandomization.load("double_pendulum", get_robot("pendubot"))
    p = get_robot("pendubot").load_params("model_1.0")
    imp = Imperfections.defaults()
    same, same_imp, drawn = dr.sample(np.random.default_rng(0), p, imp, intensity=0.0)
    assert same == p and same_imp == imp and set(drawn) == set(dr.parameters)
    spread = {}
    for intensity in (0.5, 1.0):
        rng = np.random.default_rng(1)
        draws = [dr.sample(rng, p, imp, intensity)[2]["elbow.m"] / p.m[1] for _ in range(400)]
        spread[intensity] = (min(draws), max(draws))
    assert 0.94 < spread[0.5][0] and spread[0.5][1] < 1.06  # half of [0.9, 1.1]
    assert spread[1.0][0] < 0.92 and spread[1.0][1] > 1.08
    with pytest.raises(ValueError, match="intensity"):
        dr.sample(np.random.default_rng(0), p, imp, intensity=1.5)


def test_drawn_values_are_in_info_and_reach_the_physics():
    env = RobotEnv("pendubot", params="model_1.0", imperfections=True, randomization="double_pendulum")
    _, info = env.reset(seed=3)
    drawn = info["randomization"]
    assert env.plant.params.m[1] == drawn["elbow.m"] != env.params.m[1]
    assert env.plant.imperfections.delay_s == drawn["delay"]
    link2 = env.plant.model.body("link2").id
    assert env.plant.model.body_mass[link2] == drawn["elbow.m"]
    _, info2 = env.reset(seed=4)
    assert info2["randomization"]["elbow.m"] != drawn["elbow.m"]


def test_env_refuses_intensity_outside_unit_interval():
    with pytest.raises(ValueError, match="intensity"):
        RobotEnv("pendubot", randomization="double_pendulum", randomization_intensity=2.0)


def test_params_round_trip_through_a_mapping():
    p = get_robot("pendubot").load_params("model_1.0")
    assert PendulumParams.from_dict(p.as_dict()) == p
