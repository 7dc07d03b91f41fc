"""The Gymnasium environments over the whole registry, and the swing-up task's contract."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim.env import RobotEnv
from sim.plant import PHYSICS_DT
from sim.robots import get_robot
from sim.tasks import swingup

IDS = list(sim.ENV_IDS)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("imperfections", [False, True])
def test_passes_gymnasium_env_checker(env_id, imperfections):
    env = gym.make(env_id, imperfections=imperfections)
    check_env(env.unwrapped, skip_render_check=True)


def rollout(env: gym.Env, seed: int, steps: int = 150) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        out.append(np.append(obs, reward))
        if terminated or truncated:
            break
    return np.concatenate(out)


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_gives_the_identical_trajectory(env_id):
    kind = get_robot(sim.ENV_IDS[env_id]).kind
    kwargs = dict(imperfections=True, randomization=kind, init_noise=0.1)
    a = rollout(gym.make(env_id, **kwargs), seed=7)
    b = rollout(gym.make(env_id, **kwargs), seed=7)
    c = rollout(gym.make(env_id, **kwargs), seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_observation_is_the_task_function_of_the_measured_state():
    env = RobotEnv("pendubot", action_history=2)
    obs, _ = env.reset(seed=0)
    actions = [np.array([0.5]), np.array([-0.25])]
    for a in actions:
        obs, *_ = env.step(a)
    x = env.plant.state()  # no imperfections: measured == true
    expected = swingup.observation(x[:2], x[2:], np.array(actions))
    np.testing.assert_array_equal(obs, expected)
    np.testing.assert_allclose(swingup.state_from_observation(obs, 2)[2:], x[2:], rtol=1e-6)


def test_the_winding_tells_how_many_turns_the_joints_have_made():
    # cos and sin are the same after a full turn; the stops at +-540 degrees are not.
    env = RobotEnv("pendubot", action_history=1, observe_winding=True, upright_starts=1.0)
    obs, _ = env.reset(seed=0)
    x = env.plant.state()
    np.testing.assert_allclose(obs[-2:], x[:2] / (3 * np.pi), rtol=1e-6)
    assert obs.shape == env.observation_space.shape == (9,) and env.observation_space.contains(obs)
    turned = swingup.observation(x[:2] + [2 * np.pi, 0.0], x[2:], np.zeros(1), winding=True)
    np.testing.assert_allclose(turned[:6], obs[:6], atol=1e-6)
    assert turned[7] == pytest.approx(obs[7] + 2 / 3)


def test_policy_rate_sets_the_physics_substeps_and_episode_length():
    env = RobotEnv("pendulum", control_rate_hz=500.0, t_final=0.1)
    env.reset(seed=0)
    steps = 0
    while True:
        *_, terminated, truncated, info = env.step(np.zeros(1))
        steps += 1
        if terminated or truncated:
            break
    assert steps == 50 and info["time"] == pytest.approx(0.1)
    T, X, U = env.plant.trajectory()
    assert len(T) == 51 and T[1] == pytest.approx(PHYSICS_DT)


@pytest.mark.parametrize("rate", [0.0, 300.0, 1000.0])
def test_rate_that_is_not_a_multiple_of_the_physics_step_is_refused(rate):
    with pytest.raises(ValueError, match="Hz"):
        RobotEnv("pendubot", control_rate_hz=rate)


def test_nan_action_is_refused():
    env = RobotEnv("pendubot")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan]))


def test_wrong_action_shape_is_refused():
    env = RobotEnv("pendubot")
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.zeros(2))


def test_actions_are_clipped_to_the_torque_limit():
    env = RobotEnv("pendubot")
    env.reset(seed=0)
    env.step(np.array([5.0]))
    _, _, U = env.plant.trajectory()
    assert U[0, 0] == 6.0 and U[0, 1] == 0.0  # passive elbow gets nothing


def test_leaving_the_safety_envelope_ends_the_episode_as_a_failure():
    env = RobotEnv("pendulum", params="model_1.1")
    env.reset(seed=0)
    env.plant.reset(np.array([0.0, 25.0]), np.random.default_rng(0), 10.0)  # spinning at 25 rad/s
    _, reward, terminated, truncated, info = env.step(np.zeros(1))
    assert terminated and not truncated
    assert "20" in info["failure"] and reward < -swingup.FAILURE_PENALTY + 2
    assert info["success"] is False and info["metrics"]["score"] == 0.0


def test_without_safety_stops_the_episode_runs_past_the_envelope_to_t_final():
    env = RobotEnv("pendulum", params="model_1.1", control_rate_hz=50, safety_stops=False)
    env.reset(seed=0)
    env.plant.reset(np.array([0.0, 25.0]), np.random.default_rng(0), 10.0)  # spinning at 25 rad/s
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(np.zeros(1))
        steps += 1
    assert not terminated and steps == 500 and "failure" not in info
    assert abs(env.plant.state()[0]) > 3 * np.pi, "wound past 540 degrees"


def test_doing_nothing_scores_zero_and_says_so_at_the_end():
    env = RobotEnv("pendubot")
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(1))
        done = terminated or truncated
    assert truncated and info["time"] == pytest.approx(10.0)
    assert info["success"] is False and info["metrics"]["swingup_time"] == 10.0


def test_reward_prefers_up_and_still_to_down():
    up = swingup.reward(0.5, 0.5, [0.0, 0.0], [0.0], [0.0])
    up_fast = swingup.reward(0.5, 0.5, [5.0, 5.0], [0.0], [0.0])
    down = swingup.reward(-0.5, 0.5, [0.0, 0.0], [0.0], [0.0])
    pushing = swingup.reward(-0.5, 0.5, [0.0, 0.0], [1.0], [-1.0])
    assert up > up_fast > down > pushing
    assert down == 0.0 and up == pytest.approx(2.0)
    # Swinging through the top at 1.5 rad/s earns a tenth of a hold's bonus: rolling over the top
    # is no substitute for balancing.
    passing = swingup.reward(0.5, 0.5, [1.5, 0.0], [0.0], [0.0])
    assert passing - 1.0 < 0.15 * (up - 1.0)


def test_friction_compensation_drives_the_passive_joint_within_its_allowance():
    env = RobotEnv("pendubot", params="model_1.0", friction_compensation=True)
    env.reset(seed=0)
    env.plant.reset(np.array([0.0, 0.0, 0.0, 3.0]), np.random.default_rng(0), 10.0)
    env._measured = env.plant.measure()
    env.step(np.zeros(1))
    _, _, U = env.plant.trajectory()
    assert 0.15 < U[0, 1] <= 0.5  # cf2 atan(300) + b2 * 3 = 0.19 N m


def test_friction_compensation_is_off_in_ideal_episodes_which_have_no_friction():
    env = RobotEnv("pendubot", params="model_1.0", friction_compensation=True, ideal_episodes=1.0)
    env.reset(seed=0)
    env.plant.reset(np.array([0.0, 0.0, 0.0, 3.0]), np.random.default_rng(0), 10.0)
    env._measured = env.plant.measure()
    env.step(np.zeros(1))
    _, _, U = env.plant.trajectory()
    assert U[0, 1] == 0.0


def test_upright_starts_begin_near_the_top_and_leave_hanging_episodes_as_they_were():
    up = RobotEnv("pendubot", upright_starts=1.0)
    for seed in range(5):
        obs, _ = up.reset(seed=seed)
        q, dq = np.split(up.plant.state(), 2)
        assert abs(q[0] - np.pi) <= swingup.UPRIGHT_POSITION_NOISE and abs(q[1]) <= swingup.UPRIGHT_POSITION_NOISE
        assert np.abs(dq).max() <= swingup.UPRIGHT_VELOCITY_NOISE
        assert swingup.tip_height(up.plant.params.l, q) > swingup.UP_FRACTION * up.plant.params.reach
    some = RobotEnv("pendubot", upright_starts=0.5)
    starts = [some.reset(seed=s)[0][0] for s in range(40)]  # cos q1: -1 upright, +1 hanging
    assert 5 < sum(c < 0 for c in starts) < 35
    with pytest.raises(ValueError, match="upright_starts"):
        RobotEnv("pendubot", upright_starts=1.5)


def test_ideal_episodes_drop_friction_rotor_inertia_and_imperfections_and_nothing_else():
    options = dict(params="model_1.0", imperfections=True, randomization="double_pendulum")
    ideal = RobotEnv("pendubot", **options, ideal_episodes=1.0)
    ideal.reset(seed=0)
    p = ideal.plant.params
    assert p.Ir == 0.0 and max(p.b) <= 0.01 and max(p.cf) <= 0.1  # randomisation's offsets on top of none
    imp = ideal.plant.imperfections
    assert imp.velocity_noise_std == imp.torque_noise_std == imp.extra_coulomb == imp.pulses_per_joint == 0
    exact = RobotEnv("pendubot", params="model_1.0", ideal_episodes=1.0)
    exact.reset(seed=0)
    assert exact.plant.params == RobotEnv("pendubot", params="model_1.1").params
    # Without ideal episodes the seeded episodes are those of before.
    plain, zero = RobotEnv("pendubot", **options), RobotEnv("pendubot", **options, ideal_episodes=0.0)
    assert plain.reset(seed=3)[1]["randomization"] == zero.reset(seed=3)[1]["randomization"]
    some = RobotEnv("pendubot", **options, ideal_episodes=0.5)
    ideal_count = 0
    for seed in range(40):
        some.reset(seed=seed)
        ideal_count += some.plant.imperfections.extra_coulomb == 0.0
    assert 5 < ideal_count < 35
    with pytest.raises(ValueError, match="ideal_episodes"):
        RobotEnv("pendubot", ideal_episodes=-0.1)
