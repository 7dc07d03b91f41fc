"""The quadrotor's safe behaviour (sim.tasks.flight_safety): each path on a clock the test drives, and
a landing flown in MuJoCo."""

import math

import numpy as np
import pytest

from policies.geometric import GeometricController
from sim.tasks import flight
from sim.tasks.flight_safety import FLY, LAND, OFF, FlightLimits, FlightSupervisor


def _level(position=(0.0, 0.0, 1.0), rates=(0.0, 0.0, 0.0)) -> np.ndarray:
    return np.concatenate([position, [1.0, 0.0, 0.0, 0.0], np.zeros(3), rates])


def _tilted(degrees: float) -> np.ndarray:
    m = _level()
    half = math.radians(degrees) / 2
    m[3:7] = [math.cos(half), math.sin(half), 0.0, 0.0]
    return m


def test_a_trusted_state_with_fresh_commands_flies():
    supervisor = FlightSupervisor()
    assert supervisor.update(1.0, _level(), 0.99, 0.99) == FLY and supervisor.reason == ""


@pytest.mark.parametrize(
    "measured, state_age_s, reason",
    [
        (None, 0.0, "lost state: no finite measurement"),
        (np.full(13, np.nan), 0.0, "lost state: no finite measurement"),
        (_level(), 0.15, "lost state: 150 ms old"),
        (_level(position=(2.0, 0.0, 1.0)), 0.0, "outside the geofence at [2.0, 0.0, 1.0] m"),
        (_level(position=(0.0, 0.0, -0.1)), 0.0, "outside the geofence"),
        (_tilted(75.0), 0.0, "tilted 75 degrees (limit 60)"),
        (_level(rates=(0.0, 25.0, 0.0)), 0.0, "body rate 25.0 rad/s (limit 20.0)"),
    ],
)
def test_an_untrusted_or_lost_vehicle_turns_its_motors_off_and_stays_off(measured, state_age_s, reason):
    supervisor = FlightSupervisor()
    assert supervisor.update(5.0, measured, 5.0 - state_age_s, 5.0) == OFF
    assert reason in supervisor.reason
    # Latched: a good state afterwards does not restart the motors.
    assert supervisor.update(5.1, _level(), 5.1, 5.1) == OFF


def test_commands_that_stop_for_200_ms_land_it_and_touchdown_turns_the_motors_off():
    supervisor = FlightSupervisor()
    assert supervisor.update(1.19, _level(), 1.19, 1.0) == FLY  # 190 ms: still flying
    assert supervisor.update(1.21, _level(), 1.21, 1.0) == LAND
    assert supervisor.reason == "no command for 210 ms"
    position, velocity = supervisor.landing_reference(2.21)
    assert position == pytest.approx([0.0, 0.0, 0.7]) and velocity == pytest.approx([0.0, 0.0, -0.3])
    assert supervisor.update(2.5, _level(), 2.5, 2.5) == LAND, "a late command does not end a landing"
    assert supervisor.landing_reference(9.0)[0][2] == 0.0 and supervisor.landing_reference(9.0)[1][2] == 0.0
    assert supervisor.update(5.0, _level(position=(0.0, 0.0, 0.03)), 5.0, 5.0) == OFF
    assert supervisor.reason == "landed"


def test_an_estop_from_a_trusted_state_lands_rather_than_drops():
    supervisor = FlightSupervisor()
    supervisor.land(3.0, np.array([0.2, -0.1, 1.2]), "e-stop")
    assert supervisor.update(3.01, _level(position=(0.2, -0.1, 1.2)), 3.01, 3.01) == LAND
    assert supervisor.reason == "e-stop"


def test_limits_that_make_no_sense_are_refused():
    with pytest.raises(ValueError, match="geofence low"):
        FlightLimits(geofence_low=(0.0, 0.0, 3.0))
    with pytest.raises(ValueError, match="invalid flight limits"):
        FlightLimits(command_timeout_s=0.0)


@pytest.mark.hil
def test_a_vehicle_whose_commands_stop_lands_in_mujoco_and_switches_off():
    from sim.flight import FlightImperfections, QuadrotorPlant
    from sim.robots import quadrotor

    params = quadrotor.load_params("l2f")
    plant = QuadrotorPlant(params, FlightImperfections.defaults())
    rng = np.random.default_rng(0)
    plant.reset(plant.hover_state(flight.START), rng, 10.0)
    policy, lander = GeometricController(params), GeometricController(params)
    supervisor = FlightSupervisor()
    hover = (flight.START, np.zeros(3))
    heights, modes, command_time = [], [], 0.0
    for _ in range(1000):  # 10 s at 100 Hz
        now, measured = plant.time, plant.measure()
        if now < 2.0:  # the policy flies for 2 s, then falls silent
            command, command_time = policy.act(flight.observation(measured, hover, np.zeros((0, 4)))), now
        mode = supervisor.update(now, measured, now, command_time)
        modes.append(mode)
        if mode == OFF:
            break
        if mode == LAND:
            reference = supervisor.landing_reference(now)
            command = lander.act(flight.observation(measured, reference, np.zeros((0, 4))))
        plant.step((command + 1.0) / 2.0, 5)
        heights.append(plant.state()[2])
    assert modes[-1] == OFF and supervisor.reason == "landed"
    land_start = modes.index(LAND) / 100.0
    assert 2.2 <= land_start <= 2.22, f"landing began at {land_start} s, 200 ms after the last command"
    descent_s = len(modes) / 100.0 - land_start
    assert 0.95 / 0.3 <= descent_s <= 0.95 / 0.3 + 0.5, f"1 m to touchdown at 0.3 m/s took {descent_s:.2f} s"
    assert min(heights) > 0.0, "it never hit the floor"
