"""The batched training path: N episodes of a robot stepped together in numpy, one call per step.

Each robot's batch integrates what MuJoCo integrates for its MJCF, with the
MuJoCo plant's imperfections per copy, and runs its task's own pure functions
(observation, reward, termination take batch axes), so that training sees
what the MuJoCo env would show it; evaluation, scores and the robustness
benchmark stay on the MuJoCo env. `sim.batched.pendulum` holds the pendulum
family's, `sim.batched.quadrotor` the quadrotor's.
"""

from __future__ import annotations

from typing import Any

from sim.robots import QUADROTORS


def make_batched(robot: str, n_envs: int, seed: int = 0, **env_options: Any):
    """`n_envs` self-resetting episodes of `robot` with `sim.env.RobotEnv`'s options: a
    `BatchedSwingUp` or a `BatchedFlight`."""
    if robot in QUADROTORS:
        from sim.batched.quadrotor import BatchedFlight

        return BatchedFlight(robot, n_envs, seed, **env_options)
    from sim.batched.pendulum import BatchedSwingUp

    return BatchedSwingUp(robot, n_envs, seed, **env_options)
