"""The quadrotor's env and tasks (sim.env on the crazyflie, sim.tasks.flight, sim.flight) and its classical
baseline (policies.geometric), on real MuJoCo physics."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from policies.geometric import GeometricController
from sim.config import ConfigError
from sim.env import RobotEnv
from sim.flight import FlightImperfections
from sim.tasks import flight


@pytest.mark.parametrize("env_id", list(sim.FLIGHT_ENV_IDS))
@pytest.mark.parametrize("level", flight.ACTION_LEVELS)
def test_the_envs_pass_gymnasiums_checker(env_id, level):
    env = gym.make(env_id, action_level=level, imperfections=True)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (flight.observation_size(32),)


def _rollout(env, seed, steps=60):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-0.2, 0.6, 4))
        out.append(np.append(obs, reward))
        if terminated or truncated:
            break
    return out


def test_a_seed_gives_the_same_episode_and_another_seed_another():
    env = RobotEnv("crazyflie", "hover", imperfections=True)
    first, again, other = _rollout(env, 3), _rollout(env, 3), _rollout(env, 4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_the_observation_is_the_pure_function_of_what_is_measured():
    env = RobotEnv("crazyflie", "figure8", imperfections=True, action_history=4)
    env.reset(seed=0)
    action = np.array([0.3, 0.3, 0.35, 0.3])
    obs, *_ = env.step(action)
    past = np.tile(flight.hover_action("rotors", env.params), (4, 1))
    past[-1] = action
    expected = flight.observation(env._measured, env.task.route.reference(env.plant.time), past)
    assert np.array_equal(obs, expected)


def test_the_error_integral_sums_near_errors_over_time_and_is_bounded():
    memory = np.zeros(4)
    for k in range(101):  # 1 s at 100 Hz, 5 cm off along x: the first tick (t = 0) adds nothing
        integral = flight.integrate_error(memory, np.array([0.05, 0.0, -0.02]), k / 100)
    np.testing.assert_allclose(integral, [0.05, 0.0, -0.02], atol=1e-12)
    flight.integrate_error(memory, np.array([0.3, 0.0, 0.0]), 2.0)  # far off: recovering, no wind-up
    np.testing.assert_allclose(memory, [2.0, 0.05, 0.0, -0.02], atol=1e-12)
    flight.integrate_error(memory, np.array([0.1, 0.0, 0.0]), 10.0)
    assert memory[1] == flight.INTEGRAL_CLIP
    batch = np.zeros((2, 4))  # a batch with its own times
    flight.integrate_error(batch, np.array([[0.1, 0, 0], [0.1, 0, 0]]), np.array([0.5, 0.25]))
    np.testing.assert_allclose(batch[:, 1], [0.05, 0.025])


def test_the_observed_error_integral_is_the_episodes_own_and_starts_at_zero():
    env = RobotEnv("crazyflie", "hover", imperfections=True, action_history=0, observe_error_integral=True)
    assert env.observation_space.shape == (flight.observation_size(0, error_integral=True),)
    assert env.task.describe()["observation"]["layout"][18] == f"position_error_integral.x/{flight.INTEGRAL_CLIP:g}"
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        assert not obs[18:21].any()
        expected = np.zeros(3)
        for _ in range(50):
            obs, *_ = env.step(flight.hover_action("rotors", env.params))
            error = env._measured[:3] - env.task.route.reference(env.plant.time)[0]
            if np.linalg.norm(error) < flight.INTEGRATE_WITHIN:
                expected = np.clip(expected + error / env.control_rate_hz, -flight.INTEGRAL_CLIP, flight.INTEGRAL_CLIP)
        np.testing.assert_allclose(obs[18:21] * flight.INTEGRAL_CLIP, expected, atol=1e-6)
        assert np.abs(expected).max() > 1e-3


def test_the_preview_is_the_reference_ahead_and_nothing_on_a_hover():
    env = RobotEnv("crazyflie", "figure8", action_history=1, observe_preview=3)
    assert env.observation_space.shape == (flight.observation_size(1, preview=3),)
    assert env.task.describe()["observation"]["layout"][-3] == "reference_ahead[0.3 s].x"
    env.reset(seed=0)
    for _ in range(120):
        obs, *_ = env.step(np.zeros(4) + 0.1)
        if env.plant.time >= 1.0:
            break
    route, t = env.task.route, env.plant.time
    expected = [route.reference(t + 0.1 * i)[0] - route.reference(t)[0] for i in (1, 2, 3)]
    np.testing.assert_allclose(obs[-9:], np.concatenate(expected), atol=1e-6)
    hover = RobotEnv("crazyflie", "hover", action_history=1, observe_preview=3)
    obs, _ = hover.reset(seed=0)
    assert not obs[-9:].any()


def test_a_moving_routes_error_is_split_into_lag_and_cross_track():
    route = flight.get_route("figure8")
    times = np.arange(0.0, route.duration_s + 1e-9, 0.01)
    late, _ = route.reference(times - 0.1)  # 0.1 s behind, on the path
    m = flight.metrics(route, times, late, None)
    _, velocity = route.reference(times[times >= route.settle_s])
    speed = np.linalg.norm(velocity, axis=1).mean()
    assert m["along_track_cm"] == pytest.approx(-10 * speed, rel=0.05)  # cm: 0.1 s x m/s x 100
    assert m["cross_track_cm"] < 0.3 * m["rmse_cm"]
    above, _ = route.reference(times)
    m = flight.metrics(route, times, above + [0.0, 0.0, 0.05], None)  # 5 cm above, on time
    assert abs(m["along_track_cm"]) < 1e-9 and m["cross_track_cm"] == pytest.approx(5.0)
    assert "along_track_cm" not in flight.metrics(flight.get_route("hover"), times, above, None)


def test_the_reward_is_highest_on_the_reference_at_hover():
    env = RobotEnv("crazyflie", "hover")
    hover = flight.hover_action("rotors", env.params)
    x = env.plant.hover_state(flight.START)
    reference = env.task.route.reference(0.0)
    weights = flight.RewardWeights()
    assert flight.reward(x, reference, hover, hover, weights) == pytest.approx(2.0)
    off = x.copy()
    off[0] += 0.1
    assert flight.reward(off, reference, hover, hover, weights) < 2.0
    assert flight.RewardWeights().at(10_000_000) == flight.RewardWeights(40.0, 1.0, 1.0)


def test_an_episode_ends_failed_beyond_the_error_bound_with_its_metrics():
    env = RobotEnv("crazyflie", "hover")
    env.reset(seed=0)
    for _ in range(500):
        *_, terminated, truncated, info = env.step(np.full(4, -1.0))  # rotors off: it falls
        if terminated or truncated:
            break
    assert terminated and "beyond 0.6 m" in info["failure"]
    assert info["success"] is False and info["metrics"]["success"] == 0.0


def test_the_rate_level_holds_a_level_vehicle_with_the_hover_action():
    env = RobotEnv("crazyflie", "hover", action_level="rates", init_spread=0.0)
    env.reset(seed=0)
    hover = flight.hover_action("rates", env.params)
    for _ in range(100):
        env.step(hover)
    assert np.linalg.norm(env.plant.state()[:3] - flight.START) < 1e-6


def test_the_imperfections_are_named_and_drawn_per_episode():
    assert FlightImperfections.resolve({"motor_delay_s": 0.01}).motor_delay_s == 0.01
    with pytest.raises(ConfigError, match="unknown key"):
        FlightImperfections.resolve({"wind": 1.0})
    env = RobotEnv("crazyflie", "hover", imperfections=True)
    env.reset(seed=0)
    first = env.plant.force.copy()
    env.reset(seed=1)
    weight = env.params.mass * env.params.g
    assert not np.array_equal(first, env.plant.force) and np.abs(env.plant.force).max() < weight / 4


def test_a_motor_delay_delays_the_response_by_its_steps():
    def climb(delay_s):
        env = RobotEnv("crazyflie", "hover", init_spread=0.0, imperfections={"motor_delay_s": delay_s} | _NONE)
        env.reset(seed=0)
        heights = []
        for _ in range(10):
            env.step(np.ones(4))
            heights.append(env.plant.state()[2])
        return np.array(heights) - flight.START[2]

    prompt, late = climb(0.0), climb(0.02)
    assert late[0] == pytest.approx(0.0, abs=1e-12) and prompt[0] > 0  # 20 ms = two 10 ms steps
    assert late[2] == pytest.approx(prompt[0], rel=0.2)


_NONE = {f: 0.0 for f in ("position_noise_std", "attitude_noise_std", "velocity_noise_std", "rate_noise_std")} | {
    "sensor_delay_s": 0.0,
    "disturbance_weight_fraction": 0.0,
}


def _fly(task: str, seeds: range) -> list[dict]:
    env = RobotEnv(
        "crazyflie", task, imperfections=True, action_history=0, init_spread=flight.get_route(task).eval_spread
    )
    results = []
    for seed in seeds:
        controller = GeometricController(env.params, env.control_rate_hz)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(controller.act(obs))
            done = terminated or truncated
        results.append(info["metrics"])
    return results


@pytest.mark.hil
def test_the_geometric_baseline_hovers_within_2_cm_under_default_imperfections():
    results = _fly("hover", range(20))
    assert all(r["success"] == 1.0 for r in results)
    rmse = [r["rmse_cm"] for r in results]
    assert max(rmse) <= 2.0, rmse  # measured: mean 0.23, max 0.50 cm over seeds 0-29


@pytest.mark.hil
def test_the_geometric_baseline_tracks_the_figure_eight():
    results = _fly("figure8", range(5))
    assert all(r["success"] == 1.0 for r in results)
    assert max(r["rmse_cm"] for r in results) <= 8.0  # measured 5.9-6.1 cm: feedback only, no feedforward


def test_the_randomisation_file_is_validated_and_keeps_the_vehicle_flyable(tmp_path):
    from sim.flight import THRUST_TO_WEIGHT, FlightRandomization
    from sim.robots import quadrotor

    randomization = FlightRandomization.load("crazyflie")
    params = quadrotor.load_params("l2f")
    rng = np.random.default_rng(0)
    draws = [randomization.sample(rng, params, None, 1.0)[0] for _ in range(300)]
    ratios = [d.thrust_to_weight for d in draws]
    assert THRUST_TO_WEIGHT[0] - 1e-9 <= min(ratios) and max(ratios) <= THRUST_TO_WEIGHT[1] + 1e-9
    assert max(d.max_thrust for d in draws) <= quadrotor.MAX_ROTOR_THRUST + 1e-12
    assert len({d.mass for d in draws}) == 300
    assert randomization.sample(rng, params, None, 0.0)[0] == params  # intensity 0: the nominal vehicle
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters:\n  mass: {offset: [0.0, 0.01]}\n")
    with pytest.raises(ConfigError, match="parameters.mass: the quadrotor's parameters take scale ranges only"):
        FlightRandomization.load(bad)
    bad.write_text("parameters:\n  arm_length: {scale: [0.9, 1.1]}\n")
    with pytest.raises(ConfigError, match="parameters.arm_length: unknown key"):
        FlightRandomization.load(bad)


def test_a_randomised_episode_is_drawn_from_its_seed():
    env = RobotEnv("crazyflie", "hover", randomization="crazyflie")
    _, info = env.reset(seed=5)
    first = env.plant.params
    _, again = env.reset(seed=5)
    assert env.plant.params == first and again["randomization"] == info["randomization"]
    env.reset(seed=6)
    assert env.plant.params != first


@pytest.mark.parametrize("task, bound_cm", [("hover", 2.0), ("figure8", 8.0)])
def test_s2r_rollout_flies_the_crazyflie_and_prints_its_metrics(task, bound_cm, capsys):
    import json

    from s2r.cli import main

    args = ["rollout", "crazyflie", "--task", task, "--controller", "baseline", "--imperfections"]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"crazyflie {task}, baseline at 100 Hz, seed 0: position RMSE") and "success yes" in line
    assert main([*args, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["metrics"]["success"] == 1.0 and record["metrics"]["rmse_cm"] <= bound_cm
