"""The MuJoCo model against the spec's equations of motion (RK4, 0.002 s, 2 s)."""

import mujoco
import numpy as np
import pytest

from sim.dynamics import pendulum
from sim.robots import get_robot

DT = 0.002
STEPS = 1000  # 2 s
INITIAL_STATES = [
    np.array([0.5, -0.3, 0.0, 0.0]),
    np.array([2.0, 1.0, 0.5, -1.0]),
    np.array([3.0, 0.1, 0.0, 0.0]),
    np.array([-1.2, 2.5, 1.0, 0.0]),
]


def driven(k: int) -> np.ndarray:
    """A driven motion: a shoulder torque sweep and an elbow sine, N m."""
    t = k * DT
    return np.array([2.0 * np.sin(3.0 * t + 0.5 * t * t), 0.8 * np.sin(5.0 * t)])


def max_angle_error(params_name: str, x0: np.ndarray, torque, rotor_coupling: bool = True) -> float:
    robot = get_robot("double_pendulum")
    p = robot.load_params(params_name)
    model = robot.build_model(p)
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = x0[:2], x0[2:]
    x = x0.copy()
    worst = 0.0
    for k in range(STEPS):
        tau = torque(k)
        data.qfrc_applied[:] = tau - np.asarray(p.cf) * np.arctan(100.0 * data.qvel)
        mujoco.mj_step(model, data)
        x = pendulum.rk4_step(p, x, tau, DT, rotor_coupling)
        worst = max(worst, float(np.max(np.abs(data.qpos - x[:2]))))
    return worst


@pytest.mark.parametrize("x0", INITIAL_STATES)
def test_model_1_1_passive_motion_matches_equations(x0):
    assert max_angle_error("model_1.1", x0, lambda k: np.zeros(2)) < 1e-3


def test_model_1_1_driven_motion_matches_equations():
    assert max_angle_error("model_1.1", np.zeros(4), driven) < 1e-3


# Model 1.0 (measured over 2 s, worst state): passive 0.006 to 0.12 rad, driven
# 0.57 rad against the full equations; 0.003 to 0.011 rad passive and 0.04 rad
# driven once the rotor's cross term is dropped from the reference.
MODEL_1_0_PASSIVE_TOLERANCE = 0.15
MODEL_1_0_DRIVEN_TOLERANCE = 0.7
WITHOUT_CROSS_TERM_TOLERANCE = 0.05


@pytest.mark.parametrize("x0", INITIAL_STATES)
def test_model_1_0_matches_equations_within_stated_tolerance(x0):
    """Model 1.0 agrees within 0.15 rad passive and 0.7 rad driven over 2 s, not 1e-3.

    Two terms of the spec have no exact MuJoCo counterpart. The elbow rotor's
    cross term -gr Ir in M01 (3.8e-4 kg m^2, under 1% of M01) is dropped:
    MuJoCo's armature is diagonal. The double pendulum is chaotic, so this small
    inertia difference grows to tenths of a radian within 2 s; the test below
    shows it is the cause. Coulomb friction cf atan(100 dq) is applied as a
    force held over each 0.002 s step, while the reference re-evaluates it in
    every RK4 stage; near dq = 0 its slope is 100 cf = 16 N m s, stiff at this
    step, which accounts for the remaining few hundredths of a radian.
    """
    assert max_angle_error("model_1.0", x0, lambda k: np.zeros(2)) < MODEL_1_0_PASSIVE_TOLERANCE


def test_model_1_0_driven_motion_within_stated_tolerance():
    assert max_angle_error("model_1.0", np.zeros(4), driven) < MODEL_1_0_DRIVEN_TOLERANCE


@pytest.mark.parametrize("x0", [*INITIAL_STATES, None])
def test_model_1_0_gap_is_the_rotor_cross_term(x0):
    """Without the cross term in the reference, only the friction discretisation remains."""
    if x0 is None:
        err = max_angle_error("model_1.0", np.zeros(4), driven, rotor_coupling=False)
    else:
        err = max_angle_error("model_1.0", x0, lambda k: np.zeros(2), rotor_coupling=False)
    assert err < WITHOUT_CROSS_TERM_TOLERANCE


def test_single_pendulum_matches_equations():
    robot = get_robot("pendulum")
    p = robot.load_params("model_1.1")
    model = robot.build_model(p)
    data = mujoco.MjData(model)
    data.qpos[0], x = 2.5, np.array([2.5, 0.0])
    for _ in range(STEPS):
        mujoco.mj_step(model, data)
        x = pendulum.rk4_step(p, x, np.zeros(1), DT)
    assert abs(data.qpos[0] - x[0]) < 1e-6


def test_energy_is_conserved_without_friction():
    p = get_robot("double_pendulum").load_params("model_1.1")
    x = np.array([2.0, 1.0, 0.5, -1.0])
    e0 = pendulum.energy(p, x[:2], x[2:])
    for _ in range(STEPS):
        x = pendulum.rk4_step(p, x, np.zeros(2), DT)
    assert abs(pendulum.energy(p, x[:2], x[2:]) - e0) < 1e-4
