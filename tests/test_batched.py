"""The batched training path (sim.batched, policies.vec_env) against the MuJoCo plant and env it stands in for."""

import numpy as np
import pytest

from policies.baselines import PendubotEnergyLQR
from sim.batched.pendulum import BatchedPendulum, BatchedSwingUp
from sim.env import RobotEnv
from sim.imperfections import Imperfections
from sim.plant import PHYSICS_DT, Plant
from sim.robots import get_robot

DETERMINISTIC = Imperfections(delay_s=0.008, torque_response=0.8, extra_viscous=0.002, extra_coulomb=0.04)


@pytest.mark.parametrize("robot", ["pendulum", "pendubot", "acrobot"])
@pytest.mark.parametrize("params", ["model_1.0", "model_1.1"])
@pytest.mark.parametrize("imperfections", [Imperfections(), DETERMINISTIC], ids=["none", "delay-lag-friction"])
def test_the_batched_plant_moves_as_mujoco_from_the_same_states_and_torques(robot, params, imperfections):
    r = get_robot(robot)
    p, n = r.load_params(params), len(r.joints)
    x0 = np.array([0.3, -0.2, 0.5, 1.0]) if n == 2 else np.array([0.3, 0.5])
    plant = Plant(r, p, imperfections)
    plant.reset(x0, np.random.default_rng(0), 2.0)
    batched = BatchedPendulum(r, 3, p)
    batched.configure(np.arange(3), [p] * 3, [imperfections] * 3)
    batched.reset(np.arange(3), np.tile(x0, (3, 1)), np.random.default_rng(0), 2.0)
    rng = np.random.default_rng(1)
    worst_state = worst_measured = 0.0
    for _ in range(200):  # 2 s at 100 Hz
        tau = rng.uniform(-3.0, 3.0, n) * np.array(r.actuated)
        plant.step(tau, 5)
        batched.step(np.tile(tau, (3, 1)), 5, rng)
        worst_state = max(worst_state, np.abs(batched.x - plant.state()).max())
        worst_measured = max(worst_measured, np.abs(batched.measure() - plant.measure()).max())
    # Measured: 1.5e-14 at worst. The same equations and integrator; rounding only.
    assert worst_state < 1e-10 and worst_measured < 1e-10


def test_the_batched_plants_noise_has_the_configured_spread_and_lag():
    r = get_robot("pendubot")
    p = r.load_params("model_1.1")
    imp = Imperfections(velocity_noise_std=0.3, torque_noise_std=0.5, torque_response=0.5)
    batched = BatchedPendulum(r, 2000, p)
    batched.configure(np.arange(2000), [p] * 2000, [imp] * 2000)
    rng = np.random.default_rng(0)
    batched.reset(np.arange(2000), np.zeros((2000, 4)), rng, 1.0)
    for _ in range(50):
        batched.step(np.zeros((2000, 2)), 1, rng)
    error = batched.measure() - batched.x
    assert np.all(error[:, :2] == 0.0) and np.std(error[:, 2:]) == pytest.approx(0.3, rel=0.05)
    # Lagged white noise y = k raw + (1 - k) y_prev has variance k / (2 - k) of the raw noise's.
    assert np.std(batched.noise[:, 0]) == pytest.approx(0.5 * np.sqrt(0.5 / 1.5), rel=0.05)
    assert np.all(batched.noise[:, 1] == 0.0)  # the pendubot's elbow has no motor to be noisy


def test_a_push_is_the_gaussian_pulse_the_plant_applies():
    r = get_robot("pendulum")
    p = r.load_params("model_1.1")
    imp = Imperfections(pulses_per_joint=1, pulse_amplitude=(2.0, 2.0), pulse_width_s=(0.05, 0.05))
    batched = BatchedPendulum(r, 1, p)
    batched.configure(np.arange(1), [p], [imp])
    batched.reset(np.arange(1), np.zeros((1, 2)), np.random.default_rng(0), 10.0)
    centre, sign = batched.pulse_t[0, 0], np.sign(batched.pulse_a[0, 0])
    assert 1.0 <= centre <= 9.0  # at least PULSE_GAP_S from either end of the episode
    at = [batched._pushes(np.array([t]))[0, 0] for t in (centre, centre + 0.05, centre + 0.3)]
    np.testing.assert_allclose(at, sign * 2.0 * np.array([1.0, np.exp(-0.5), 0.0]))  # 0.3 s is 6 sigma: none


def test_the_batched_swingup_is_the_mujoco_envs_episode_step_for_step():
    # From the same start under the same controller, the two part only by rounding, which the
    # swing-up then amplifies as any chaotic system does (about tenfold every half second): 2 s agree
    # to 1e-9, the rest of the episode by its statistics, not sample by sample.
    controller = PendubotEnergyLQR()
    options = {"params": "model_1.0", "friction_compensation": True, "imperfections": DETERMINISTIC}
    options |= {"control_rate_hz": controller.control_rate_hz, "action_history": 0, "t_final": 2.0}
    env = RobotEnv("pendubot", **options)
    batched = BatchedSwingUp("pendubot", 4, seed=0, **options)
    obs, _ = env.reset(seed=0)
    batch_obs = batched.reset()
    np.testing.assert_array_equal(batch_obs[0], obs)
    worst_obs = worst_reward = 0.0
    for step in range(1000):
        action = controller.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        batch_obs, rewards, batch_terminated, batch_truncated, final = batched.step(np.tile(action, (4, 1)))
        last = final[0] if terminated or truncated else batch_obs[0]
        worst_obs = max(worst_obs, np.abs(last - obs).max())
        worst_reward = max(worst_reward, abs(rewards[0] - reward))
        assert (batch_terminated[0], batch_truncated[0]) == (terminated, truncated), f"step {step}"
        if terminated or truncated:
            break
    assert worst_obs < 1e-6 and worst_reward < 1e-9  # float32 observations; the states differ by 1e-12
    assert truncated and step == 999 and np.all(batched.steps == 0)  # every copy started again


def test_the_batched_swingup_is_seeded_and_draws_each_copys_episode():
    options = {"params": "model_1.0", "imperfections": True, "randomization": "double_pendulum", "upright_starts": 0.5}
    first, again = BatchedSwingUp("pendubot", 8, seed=3, **options), BatchedSwingUp("pendubot", 8, seed=3, **options)
    np.testing.assert_array_equal(first.reset(), again.reset())
    actions = np.random.default_rng(0).uniform(-1, 1, (50, 8, 1))
    for a in actions:
        np.testing.assert_array_equal(first.step(a)[0], again.step(a)[0])
    assert len({m[1] for m in first.plant.m}) == 8  # each copy its own elbow mass
    upright = np.abs(np.cos(first.plant.x[:, 0]) + 1) < 0.3
    assert 0 < upright.sum() < 8


def test_the_batched_swingup_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="pendulum family"):
        BatchedSwingUp("crazyflie", 4)
    batched = BatchedSwingUp("pendubot", 2)
    batched.reset()
    with pytest.raises(ValueError, match="NaN"):
        batched.step(np.array([[np.nan], [0.0]]))
    with pytest.raises(ValueError, match="delay 0.2 s"):
        BatchedSwingUp("pendubot", 2, imperfections={"delay_s": 0.2})


def test_sb3_trains_on_the_batched_vec_env_and_sees_whole_episodes():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from policies.vec_env import BatchedVecEnv

    venv = VecMonitor(BatchedVecEnv(BatchedSwingUp("pendulum", 16, seed=0, t_final=1.0)))
    venv.seed(0)
    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=512, n_epochs=1, seed=0)
    model.learn(16 * 128 * 2)
    lengths = [e["l"] for e in model.ep_info_buffer]
    assert len(lengths) >= 16 and set(lengths) == {round(1.0 / PHYSICS_DT / 5)}  # 100 steps at 100 Hz
