"""Quadrotor env control steps per second, with resets: s2r/CrazyflieHover-v0 against Learning to Fly's own
simulator (the `l2f` package, C++ with Python bindings), side by side; and how far s2r's models are
from l2f's over 1 s from the same states and rotor commands, on l2f's default vehicle.

Both at a 100 Hz policy: s2r with its default imperfections, 0.002 s RK4 MuJoCo physics (5 steps
per control step) and the rotor model per physics step; l2f with its defaults, one 0.01 s RK4 step
per control step. Actions are the hover command with noise; s2r resets when an episode ends, l2f
every 500 steps (its episode). Rounds alternate between the two in one process and the figure is
the median over rounds, so a noisy machine slows both alike; the result is the ratio.

    pip install -e ".[bench]"     # l2f compiles its simulator from source: a few minutes
    python bench/quadrotor_env.py [--rounds 9] [--steps 2000] [--out bench/results/quadrotor_env.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path

import gymnasium as gym
import l2f
import mujoco
import numpy as np

import sim  # noqa: F401  (registers the envs)
from sim.dynamics import quadrotor as closed_form
from sim.flight import QuadrotorPlant
from sim.robots import quadrotor
from sim.robots.quadrotor import QuadrotorParams
from sim.tasks import flight

EPISODE_STEPS = 500


def time_s2r(env: gym.Env, steps: int, rng: np.random.Generator) -> tuple[float, int]:
    hover = flight.hover_action("rotors", quadrotor.load_params("l2f"))
    actions = (hover + rng.normal(0.0, 0.05, (steps, 4))).clip(-1, 1).astype(np.float32)
    env.reset(seed=int(rng.integers(1 << 31)))
    resets = 0
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
            resets += 1
    return (time.perf_counter() - start) / steps, resets


class L2F:
    """l2f's simulator with its default parameters, driven as its example drives it."""

    def __init__(self, seed: int):
        self.device, self.rng = l2f.Device(), l2f.Rng()
        self.env, self.params = l2f.Environment(), l2f.Parameters()
        self.state, self.next_state = l2f.State(), l2f.State()
        l2f.initialize_environment(self.device, self.env)
        l2f.initialize_rng(self.device, self.rng, seed)
        l2f.initial_parameters(self.device, self.env, self.params)

    def reset(self) -> None:
        l2f.sample_initial_state(self.device, self.env, self.params, self.state, self.rng)

    def step(self, action: np.ndarray) -> None:
        """`action` (4,) in [-1, 1]: rotor-speed set-points (a + 1) / 2 of l2f's range [0, 1]."""
        l2f.step(self.device, self.env, self.params, self.state, action, self.next_state, self.rng)
        self.state.assign(self.next_state)

    def x(self) -> np.ndarray:
        """The state as s2r orders it (17,)."""
        s = self.state
        return np.concatenate([s.position, s.orientation, s.linear_velocity, s.angular_velocity, s.rpm])

    def quadrotor_params(self) -> QuadrotorParams:
        """l2f's default vehicle as an s2r parameter set (the same thrust polynomial of the normalised
        rotor speed, rising and falling time constants)."""
        dyn = json.loads(l2f.parameters_to_json(self.device, self.env, self.params))["dynamics"]
        return QuadrotorParams.from_dict(
            {
                "mass": dyn["mass"],
                # l2f integrates with J_inv, which in its defaults is not J's inverse (up to 6% off): the
                # vehicle it simulates has the inertia 1 / J_inv.
                "inertia": [1.0 / dyn["J_inv"][i][i] for i in range(3)],
                "rotor_positions": dyn["rotor_positions"],
                "rotor_spin": [int(t[2]) for t in dyn["rotor_torque_directions"]],
                "thrust_curve": dyn["rotor_thrust_coefficients"][0],
                "yaw_torque_constant": dyn["rotor_torque_constants"][0],
                "motor_time_constant": [
                    dyn["rotor_time_constants_rising"][0],
                    dyn["rotor_time_constants_falling"][0],
                ],
                "g": -dyn["gravity"][2],
            },
            "l2f defaults",
        )


def agreement(peer: L2F, episodes: int, rng: np.random.Generator) -> dict[str, float]:
    """Worst position (m) and body-rate (rad/s) difference over 1 s from l2f's own start states, with
    rotor set-points drawn around hover and held 50 ms each: s2r's closed-form model (one 0.01 s RK4
    step, as l2f) and s2r's MuJoCo plant (five 0.002 s steps), each against l2f."""
    params = peer.quadrotor_params()
    plant = QuadrotorPlant(params)
    # l2f has no floor and starts around z = 0: neither may the plant.
    plant.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    worst = {"closed_form_position_m": 0.0, "closed_form_rates": 0.0, "mujoco_position_m": 0.0, "mujoco_rates": 0.0}
    hover = 2 * params.hover_speed - 1
    for _ in range(episodes):
        peer.reset()
        x = peer.x()
        plant.reset(x, rng, 5.0)
        commands = np.repeat(np.clip(hover + rng.normal(0.0, 0.1, (20, 4)), -1, 1), 5, axis=0)
        for action in commands:
            peer.step(action)
            x = closed_form.rk4_step(params, x, (action + 1) / 2, 0.01)
            plant.step((action + 1) / 2, 5)
            theirs, mine = peer.x(), plant.state()
            worst["closed_form_position_m"] = max(worst["closed_form_position_m"], np.abs(x[:3] - theirs[:3]).max())
            worst["closed_form_rates"] = max(worst["closed_form_rates"], np.abs(x[10:13] - theirs[10:13]).max())
            worst["mujoco_position_m"] = max(worst["mujoco_position_m"], np.abs(mine[:3] - theirs[:3]).max())
            worst["mujoco_rates"] = max(worst["mujoco_rates"], np.abs(mine[10:13] - theirs[10:13]).max())
    return {k: float(v) for k, v in worst.items()}


def time_l2f(sim_: L2F, steps: int, rng: np.random.Generator) -> float:
    hover = flight.hover_action("rotors", quadrotor.load_params("l2f"))
    actions = (hover + rng.normal(0.0, 0.05, (steps, 4))).clip(-1, 1)
    sim_.reset()
    start = time.perf_counter()
    for i, a in enumerate(actions):
        sim_.step(a)
        if (i + 1) % EPISODE_STEPS == 0:
            sim_.reset()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=2000, help="control steps per round and simulator")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quadrotor_env.json")
    args = parser.parse_args()

    s2r_env = gym.make("s2r/CrazyflieHover-v0", imperfections=True)
    peer = L2F(seed=0)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"s2r": [], "l2f": []}
    resets = 0
    for _ in range(args.rounds):
        elapsed, n = time_s2r(s2r_env, args.steps, rng)
        times["s2r"].append(elapsed)
        resets += n
        times["l2f"].append(time_l2f(peer, args.steps, rng))
    median = {k: statistics.median(v) for k, v in times.items()}
    per_round = [s / p for s, p in zip(times["s2r"], times["l2f"], strict=True)]
    result = {
        "benchmark": "quadrotor_env",
        "control_dt_s": 0.01,
        "s2r_env": "s2r/CrazyflieHover-v0, default imperfections, 0.002 s MuJoCo RK4 x 5",
        "peer_env": "l2f (Learning to Fly's simulator), defaults, one 0.01 s RK4 step",
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "s2r_resets": resets,
        "steps_per_s": {k: 1.0 / v for k, v in median.items()},
        "us_per_step": {k: v * 1e6 for k, v in median.items()},
        "ratio_l2f_over_s2r": median["s2r"] / median["l2f"],
        "ratio_per_round": {"min": min(per_round), "median": statistics.median(per_round), "max": max(per_round)},
        "agreement_episodes": 20,
        "agreement": agreement(L2F(seed=1), 20, rng),
        "versions": {"mujoco": mujoco.__version__, "l2f": version("l2f"), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k in times:
        print(f"{k:<6} {result['steps_per_s'][k]:9.0f} steps/s  {result['us_per_step'][k]:7.1f} us/step")
    print(f"l2f is {result['ratio_l2f_over_s2r']:.1f}x s2r's env ({resets} s2r resets)")
    print("worst differences from l2f over 1 s:", json.dumps(result["agreement"]))


if __name__ == "__main__":
    main()
