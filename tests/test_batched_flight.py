"""The quadrotor's batched path (sim.batched.quadrotor) against the MuJoCo plant and env it stands in for."""

import numpy as np
import pytest

from policies.geometric import GeometricController
from sim.batched import make_batched
from sim.batched.quadrotor import BatchedFlight, BatchedQuadrotor
from sim.env import RobotEnv
from sim.flight import FlightImperfections, QuadrotorPlant
from sim.robots.quadrotor import load_params

DELAYS = FlightImperfections(sensor_delay_s=0.004, motor_delay_s=0.006)


def tumbling_start(plant: QuadrotorPlant) -> np.ndarray:
    x0 = plant.hover_state(np.array([0.0, 0.0, 1.0]))
    x0[3:7] = np.array([0.9, 0.1, -0.2, 0.3]) / np.linalg.norm([0.9, 0.1, -0.2, 0.3])
    x0[7:13] = [0.5, -0.3, 0.2, 1.0, -2.0, 3.0]
    return x0


@pytest.mark.parametrize("params", ["l2f", "cf21"])
@pytest.mark.parametrize(
    "imperfections", [FlightImperfections(), DELAYS, FlightImperfections.defaults()], ids=["none", "delays", "defaults"]
)
def test_the_batched_quadrotor_moves_as_mujoco_from_the_same_states_and_commands(params, imperfections):
    p = load_params(params)
    plant = QuadrotorPlant(p, imperfections)
    x0 = tumbling_start(plant)
    plant.reset(x0, np.random.default_rng(0), 1.0)
    batched = BatchedQuadrotor(3, p)
    batched.configure(np.arange(3), [p] * 3, [imperfections] * 3)
    batched.reset(np.arange(3), np.tile(x0, (3, 1)), np.random.default_rng(0))
    np.testing.assert_array_equal(batched.force[0], plant.force)  # drawn in the plant's order
    batched.force[:], batched.torque[:] = plant.force, plant.torque  # the other copies drew their own
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(40):  # 0.4 s of random rotor commands at 100 Hz, before it reaches the floor
        command = rng.uniform(0.3, 0.9, 4)
        plant.step(command, 5)
        batched.step(np.tile(command, (3, 1)), 5, rng)
        worst = max(worst, np.abs(batched.x - plant.state()).max())
    # Measured: 3e-14. MuJoCo's RK4 stages, the rotor model and the disturbance as the plant holds them.
    assert worst < 1e-10
    assert plant.state()[2] > 0.2  # the comparison never touched the floor, which the batch leaves out


def test_the_batched_quadrotors_measurements_are_delayed_and_noisy_as_configured():
    p = load_params("l2f")
    imp = FlightImperfections(position_noise_std=0.01, rate_noise_std=0.05, sensor_delay_s=0.01)
    batched = BatchedQuadrotor(4000, p)
    batched.configure(np.arange(4000), [p] * 4000, [imp] * 4000)
    rng = np.random.default_rng(0)
    x0 = QuadrotorPlant(p).hover_state(np.array([0.0, 0.0, 1.0]))
    x0[7:10] = [1.0, 0.0, 0.0]  # drifting along x at 1 m/s, so the delay shows
    batched.reset(np.arange(4000), np.tile(x0, (4000, 1)), rng)
    for _ in range(10):
        batched.step(np.full((4000, 4), p.hover_speed), 5, rng)
    error = batched.measure() - batched.x[:, :13]
    # 5 physics steps (0.01 s) behind at 1 m/s: 1 cm short along x, with 1 cm of noise.
    assert np.mean(error[:, 0]) == pytest.approx(-0.01, abs=1e-3)
    assert np.std(error[:, 1]) == pytest.approx(0.01, rel=0.05)
    assert np.std(error[:, 10]) == pytest.approx(0.05, rel=0.05) and np.allclose(error[:, 7:10], 0.0, atol=1e-12)
    assert np.allclose(np.linalg.norm(batched.measure()[:, 3:7], axis=1), 1.0)


@pytest.mark.parametrize("task, integral", [("hover", False), ("figure8", False), ("hover", True)])
def test_the_batched_flight_is_the_mujoco_envs_episode_step_for_step(task, integral):
    # No random draws in either: no noise, no disturbance, starts without spread.
    options = {"task": task, "imperfections": DELAYS, "init_spread": 0.0, "action_history": 2}
    options["observe_error_integral"] = integral
    env = RobotEnv("crazyflie", **options)
    batched = make_batched("crazyflie", 3, seed=0, **options)
    assert isinstance(batched, BatchedFlight)
    controller = GeometricController("l2f", env.control_rate_hz)
    obs, _ = env.reset(seed=0)
    batch_obs = batched.reset()
    np.testing.assert_allclose(batch_obs[0], obs, atol=1e-7)
    worst_obs = worst_reward = 0.0
    for step in range(2000):
        action = controller.act(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        batch_obs, rewards, batch_terminated, batch_truncated, final = batched.step(np.tile(action, (3, 1)))
        last = final[0] if terminated or truncated else batch_obs[0]
        worst_obs = max(worst_obs, np.abs(last - obs).max())
        worst_reward = max(worst_reward, abs(rewards[0] - reward))
        assert (batch_terminated[0], batch_truncated[0]) == (terminated, truncated), f"step {step}"
        if terminated or truncated:
            break
    assert truncated and step == round(env.task.duration_s * env.control_rate_hz) - 1
    assert worst_obs < 1e-5 and worst_reward < 1e-9  # float32 observations
    assert np.all(batched.steps == 0)  # every copy started again
    assert not batched.memory.any()  # and its memory with it


def test_the_batched_flight_is_seeded_and_draws_each_copys_vehicle_and_start():
    options = {"imperfections": True, "randomization": "crazyflie"}
    first, again = make_batched("crazyflie", 8, seed=3, **options), make_batched("crazyflie", 8, seed=3, **options)
    np.testing.assert_array_equal(first.reset(), again.reset())
    for a in np.random.default_rng(0).uniform(-1, 1, (20, 8, 4)):
        np.testing.assert_array_equal(first.step(a)[0], again.step(a)[0])
    assert len(set(first.plant.mass)) == 8 and len({tuple(f) for f in first.plant.force}) == 8


def test_the_batched_flight_refuses_what_it_cannot_run():
    batched = make_batched("crazyflie", 2)
    batched.reset()
    with pytest.raises(ValueError, match="NaN"):
        batched.step(np.array([[np.nan] * 4, [0.0] * 4]))
    with pytest.raises(ValueError, match="holds 64 steps"):
        make_batched("crazyflie", 2, imperfections={"motor_delay_s": 0.2})
