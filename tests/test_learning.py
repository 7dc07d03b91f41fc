"""The single pendulum learns to swing up and hold with the shipped SAC config (20k steps)."""

import pytest

pytest.importorskip("stable_baselines3", reason='training needs the train extra: pip install -e ".[train]"')

from policies.config import load_config
from policies.evaluate import run_episodes
from policies.train import RunPolicy, train


def test_pendulum_learns_to_swing_up_and_hold(tmp_path):
    cfg = load_config("pendulum", algo="sac")
    assert cfg.n_timesteps == 20000  # the budget the shipped config promises
    policy = RunPolicy(train(cfg, tmp_path / "run", progress=False))
    # Seeded episodes with the training conditions: imperfections and randomisation on.
    episodes = run_episodes(policy.act, "pendulum", cfg.env, episodes=10, seed=0)
    successes = sum(e["success"] for e in episodes)
    assert successes >= 9, [round(e["score"], 3) for e in episodes]
