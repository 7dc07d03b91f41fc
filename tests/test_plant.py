"""Each imperfection does to the plant what the robustness benchmark says it does."""

import dataclasses

import numpy as np
import pytest

from sim.imperfections import Imperfections
from sim.plant import PHYSICS_DT, PULSE_GAP_S, Plant, pulse_times
from sim.robots import get_robot

OFF = Imperfections()


def plant(imperfections: Imperfections = OFF, params: str = "model_1.1", robot: str = "pendubot") -> Plant:
    r = get_robot(robot)
    p = Plant(r, r.load_params(params), imperfections)
    p.reset(np.array([1.0, 0.5, 0.0, 0.0][: 2 * len(r.joints)]), np.random.default_rng(0), 2.0)
    return p


def test_measurement_delay_returns_the_state_of_delay_seconds_ago():
    p = plant(dataclasses.replace(OFF, delay_s=0.02))
    for _ in range(20):
        p.step(np.zeros(2), 5)
    _, X, _ = p.trajectory()
    np.testing.assert_array_equal(p.measure(), X[-1 - 10])  # 0.02 s = 10 physics steps


def test_velocity_noise_has_the_configured_spread_and_leaves_positions_alone():
    p = plant(dataclasses.replace(OFF, velocity_noise_std=0.3))
    errors = []
    for _ in range(400):
        p.step(np.zeros(2), 1)
        m, x = p.measure(), p.state()
        np.testing.assert_array_equal(m[:2], x[:2])
        errors.append(m[2:] - x[2:])
    assert np.std(errors) == pytest.approx(0.3, rel=0.1)


def equivalent_torque(p: Plant, steps: int) -> np.ndarray:
    """Joint torque the physics felt each step, from M ddq + bias (no friction in model 1.1)."""
    from sim.dynamics import pendulum

    _, X, _ = p.trajectory()
    out = []
    for k in range(steps):
        dq_next, x = X[k + 1, 2:], X[k]
        ddq = (dq_next - x[2:]) / PHYSICS_DT
        out.append(pendulum.mass_matrix(p.params, x[:2]) @ ddq + pendulum.bias(p.params, x[:2], x[2:]))
    return np.array(out)


def test_torque_response_lag_follows_its_recursion():
    k = 0.3
    p = plant(dataclasses.replace(OFF, torque_response=k))
    for _ in range(2):
        p.step(np.array([2.0, 0.0]), 5)
    felt = equivalent_torque(p, 10)[:, 0]
    expected, tau = [], 0.0
    for _ in range(10):
        tau = tau + k * (2.0 - tau)
        expected.append(tau)
    np.testing.assert_allclose(felt, expected, atol=0.05)


def test_torque_noise_reaches_actuated_joints_only():
    p = plant(dataclasses.replace(OFF, torque_noise_std=0.5))
    for _ in range(100):
        p.step(np.zeros(2), 5)
    felt = equivalent_torque(p, 500)
    assert np.std(felt[:, 0]) == pytest.approx(0.5, rel=0.15)
    assert np.std(felt[:, 1]) < 0.05


def test_pulses_push_every_joint():
    imp = dataclasses.replace(OFF, pulses_per_joint=2, pulse_amplitude=(2.0, 2.0), pulse_width_s=(0.05, 0.05))
    p = plant(imp)
    for _ in range(200):
        p.step(np.zeros(2), 5)
    felt = equivalent_torque(p, 1000)
    assert np.all(np.abs(felt).max(axis=0) > 1.9) and np.all(np.abs(felt).max(axis=0) < 4.1)


@pytest.mark.parametrize("start, end, count", [(0.0, 10.0, 6), (0.0, 10.0, 2), (10.0, 30.0, 2), (0.0, 2.0, 4)])
def test_pulses_leave_time_to_recover_between_them_and_before_the_end(start, end, count):
    gap = min(PULSE_GAP_S, (end - start) / (count + 1))
    for seed in range(200):
        times = np.sort(pulse_times(start, end, count, np.random.default_rng(seed)))
        assert len(times) == count
        assert times[0] >= start + gap - 1e-9 and times[-1] <= end - gap + 1e-9
        assert np.all(np.diff(times) >= gap - 1e-9)


def test_extra_friction_slows_a_free_swing():
    free, rough = plant(), plant(dataclasses.replace(OFF, extra_viscous=0.01, extra_coulomb=0.1))
    for p in (free, rough):
        for _ in range(100):
            p.step(np.zeros(2), 5)
    from sim.dynamics import pendulum

    e = [pendulum.energy(p.params, p.state()[:2], p.state()[2:]) for p in (free, rough)]
    assert e[1] < e[0] - 0.1


def test_buffers_grow_past_the_horizon():
    p = plant()
    for _ in range(300):  # 3 s against a 2 s horizon
        p.step(np.zeros(2), 5)
    T, X, _ = p.trajectory()
    assert len(T) == 1501 and T[-1] == pytest.approx(3.0) and np.all(np.isfinite(X))
