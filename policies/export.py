"""Export a trained run to the deployable artifact: NAME.onnx + NAME.json.

The graph maps a (normalised) observation batch (B, obs) to the policy's
deterministic action before scaling: PPO's Gaussian mean (clipped by the
runtime) or SAC's and TD3's tanh output in [-1, 1] (rescaled by the runtime).
The metadata says which, and carries everything deployment needs.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import torch

from policies import runtime
from policies.train import ALGORITHMS, load_normalization, load_run_config
from sim.env import RobotEnv


class _Actor(torch.nn.Module):
    """The deterministic action path of an SB3 policy, as one module."""

    def __init__(self, model, algo: str):
        super().__init__()
        self.policy = model.policy
        self.algo = algo

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.algo == "ppo":
            features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
            return self.policy.action_net(self.policy.mlp_extractor.forward_actor(features))
        if self.algo in ("sac", "crossq"):
            # The squashed Gaussian's mode, tanh(mean). SB3's own deterministic path also builds
            # the standard deviation, which the mode ignores but a traced graph keeps: 1.4x the
            # runtime's latency (bench/policy_latency.py).
            actor = self.policy.actor
            return torch.tanh(actor.mu(actor.latent_pi(actor.extract_features(obs, actor.features_extractor))))
        return self.policy.actor(obs)


def write_graph(actor: torch.nn.Module, size: int, graph: Path) -> None:
    """Trace `actor` (obs (B, size) -> action (B, actions)) to the ONNX graph the runtime runs,
    with the batch size free."""
    torch.onnx.export(
        actor,
        (torch.zeros(1, size),),
        str(graph),
        input_names=["obs"],
        output_names=["action"],
        dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
        dynamo=False,
    )


def export(run: Path, out: Path, checkpoint: str = "best") -> Path:
    """Write out.onnx and out.json from a run's checkpoint; returns the JSON's path."""
    cfg = load_run_config(run)
    path = run / "checkpoints" / f"{checkpoint}.zip"
    if not path.exists():
        raise ValueError(f"{run} has no checkpoints/{checkpoint}.zip to export")
    model = ALGORITHMS[cfg.algo].load(path, device="cpu")
    model.policy.set_training_mode(False)
    stats = load_normalization(run, checkpoint)
    size = int(model.observation_space.shape[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = out.with_suffix(".onnx")
    write_graph(_Actor(model, cfg.algo), size, graph)
    task = RobotEnv(cfg.robot, **cfg.env).task
    description = task.describe()
    run_info = json.loads((run / "run.json").read_text())
    meta: dict[str, Any] = {
        "format": runtime.FORMAT,
        "robot": cfg.robot,
        "task": task.name,
        "algo": cfg.algo,
        "control_rate_hz": float(cfg.env.get("control_rate_hz", 100.0)),
        "observation": {
            "size": size,
            **description["observation"],
            "action_history": task.action_history,
            "function": f"{type(task).__module__}.observation",
        },
        "action": {
            "size": task.action_size,
            "low": model.action_space.low.tolist(),
            "high": model.action_space.high.tolist(),
            **description["action"],
            "squashed": cfg.algo != "ppo",
        },
        "normalization": None if stats is None else {k: stats[k] for k in ("mean", "var", "clip", "epsilon")},
        "env": cfg.env,
        "provenance": {
            "command": run_info.get("command"),
            "git_commit": run_info.get("git_commit"),
            "resumes": run_info.get("resumes", []),
            "init": run_info.get("init"),  # the run it was fine-tuned from, if any
            "seed": cfg.seed,
            "steps": int(model.num_timesteps),
            "checkpoint": checkpoint,
            "config": cfg.as_dict(),  # what `s2r train --config` takes, resolved
            "versions": run_info.get("versions"),
            "last_eval": run_info.get("last_eval"),
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "graph": {"file": graph.name, "sha256": runtime.sha256(graph)},
    }
    meta_path = out.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta_path
