"""Training runs, resume, export equivalence, the deploy runtime's isolation and its refusals."""

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("stable_baselines3", reason='training needs the train extra: pip install -e ".[train]"')

import torch
from stable_baselines3 import PPO

from policies import runtime
from policies import train as train_module
from policies.config import load_config
from policies.evaluate import SIM_CONDITIONS, run_episodes
from policies.export import export
from policies.train import (
    ALGORITHMS,
    EVAL_SEED,
    TrainingProgress,
    load_normalization,
    make_env,
    make_vec_env,
    normalize,
    save_checkpoint,
    train,
)
from sim.config import ConfigError
from sim.env import RobotEnv
from sim.imperfections import Imperfections
from sim.robots import get_robot

TINY = {
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [16, 16]}},
    "sac": {"learning_starts": 50, "batch_size": 32, "buffer_size": 1000, "policy_kwargs": {"net_arch": [16, 16]}},
    "td3": {"learning_starts": 50, "batch_size": 32, "buffer_size": 1000, "policy_kwargs": {"net_arch": [16, 16]}},
    "crossq": {"learning_starts": 50, "batch_size": 32, "buffer_size": 1000, "policy_kwargs": {"net_arch": [16, 16]}},
}


def tiny_config(tmp_path, algo: str, normalize_obs: bool = False, steps: int = 128):
    data = {
        "algo": algo,
        "n_timesteps": steps,
        "n_envs": 2 if algo == "ppo" else 1,
        "normalize": normalize_obs,
        "env": {"control_rate_hz": 50, "imperfections": True, "randomization": "double_pendulum"},
        "eval": {"freq": 64, "episodes": 1},
        "hyperparams": TINY[algo],
    }
    path = tmp_path / f"{algo}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config("pendubot", path, algo)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run per algorithm (PPO with observation normalisation), exported."""
    out = {}
    for algo in TINY:
        tmp = tmp_path_factory.mktemp(algo)
        run = train(tiny_config(tmp, algo, normalize_obs=algo == "ppo"), tmp / "run", progress=False)
        out[algo] = (run, export(run, tmp / "artifact" / "policy"))
    return out


@pytest.mark.parametrize("algo", list(TINY))
def test_runtime_matches_sb3_predict(trained, algo):
    run, meta = trained[algo]
    model = ALGORITHMS[algo].load(run / "checkpoints" / "best.zip", device="cpu")
    stats = load_normalization(run, "best")
    assert (stats is not None) == (algo == "ppo")
    policy = runtime.load_policy(meta)
    rng = np.random.default_rng(0)
    size = model.observation_space.shape[0]
    obs = rng.uniform(-1.5, 1.5, (1000, size)).astype(np.float32)
    expected = model.predict(normalize(obs, stats), deterministic=True)[0]
    got = np.array([policy.act(o) for o in obs])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_sacs_graph_is_the_mean_path_alone(trained):
    import onnx

    graph = onnx.load(trained["sac"][1].with_suffix(".onnx")).graph
    # The deterministic action needs no standard deviation: a graph that computes one pays
    # for it on every control tick.
    assert [n.op_type for n in graph.node if n.op_type not in ("Cast", "Flatten")] == [
        "Gemm",
        "Relu",
        "Gemm",
        "Relu",
        "Gemm",
        "Tanh",
    ]


def test_run_directory_holds_what_reproduces_the_run(trained):
    run, meta = trained["sac"]
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 0 and info["steps"] >= 128 and info["git_commit"]
    assert {"torch", "stable-baselines3", "mujoco"} <= set(info["versions"])
    assert yaml.safe_load((run / "config.yaml").read_text())["robot"] == "pendubot"
    assert (run / "checkpoints" / "last.zip").exists() and (run / "checkpoints" / "best.zip").exists()
    assert any((run / "tb").rglob("events.out.tfevents*"))
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert evals and {"steps", "wall_s", "success_rate", "score"} <= set(evals[0]) and evals[0]["score_label"] == "v2"
    m = json.loads(meta.read_text())
    assert m["robot"] == "pendubot" and m["control_rate_hz"] == 50.0
    assert m["action"]["joints"] == ["shoulder"] and m["action"]["torque_limit_nm"] == [6.0]
    assert len(m["observation"]["layout"]) == m["observation"]["size"] == 7
    assert m["provenance"]["seed"] == 0 and m["env"]["randomization"] == "double_pendulum"


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, "sac", steps=100)
    run = train(cfg, tmp_path / "run", progress=False)
    first = json.loads((run / "run.json").read_text())["steps"]
    cfg.n_timesteps = 200
    train(cfg, run, resume=True, progress=False)
    info = json.loads((run / "run.json").read_text())
    model = ALGORITHMS["sac"].load(run / "checkpoints" / "last.zip", device="cpu")
    assert first == 100 and info["steps"] == 200 and model.num_timesteps == 200
    # Evaluations every 64 steps and at each end: 64, 100 | 128, 192, 200.
    evals = [json.loads(line)["steps"] for line in (run / "eval.jsonl").read_text().splitlines()]
    assert evals == [64, 100, 128, 192, 200]
    # SAC goes on learning from the transitions it had, not from an empty replay buffer.
    model.load_replay_buffer(run / "checkpoints" / "last_replay_buffer.pkl")
    assert model.replay_buffer.size() == 200


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_resume_without_a_usable_replay_buffer_goes_on_with_an_empty_one(tmp_path, caplog, damage):
    cfg = tiny_config(tmp_path, "td3", steps=100)
    run = train(cfg, tmp_path / "run", progress=False)
    buffer = run / "checkpoints" / "last_replay_buffer.pkl"
    if damage == "missing":
        buffer.unlink()
    else:
        buffer.write_bytes(buffer.read_bytes()[:1000])
    cfg.n_timesteps = 150
    with caplog.at_level("WARNING", logger="policies.train"):
        train(cfg, run, resume=True, progress=False)
    assert f"{buffer}" in caplog.text and "resuming with an empty replay buffer" in caplog.text
    model = ALGORITHMS["td3"].load(run / "checkpoints" / "last.zip", device="cpu")
    model.load_replay_buffer(buffer)
    assert model.num_timesteps == 150 and model.replay_buffer.size() == 50


def test_init_starts_a_new_run_from_another_runs_best_checkpoint(trained, tmp_path):
    source, _ = trained["ppo"]
    cfg = tiny_config(tmp_path, "ppo", normalize_obs=True)
    cfg.hyperparams["learning_rate"] = 0.0  # no update: the new run's policy is the source's
    cfg.curriculum = {"upright_starts": 0.5}
    run = train(cfg, tmp_path / "run", progress=False, init=source)
    info = json.loads((run / "run.json").read_text())
    assert info["init"]["run"] == str(source) and info["steps"] == 128
    assert info["init"]["sha256"] == hashlib.sha256((source / "checkpoints" / "best.zip").read_bytes()).hexdigest()
    before = ALGORITHMS["ppo"].load(source / "checkpoints" / "best.zip", device="cpu")
    after = ALGORITHMS["ppo"].load(run / "checkpoints" / "last.zip", device="cpu")
    for a, b in zip(before.policy.parameters(), after.policy.parameters(), strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    # The observation statistics carry over and keep being updated.
    start, now = load_normalization(source, "best"), load_normalization(run, "last")
    assert now["count"] > start["count"]
    # The artifact names the run it was fine-tuned from.
    meta = json.loads(export(run, tmp_path / "tuned").read_text())
    assert meta["provenance"]["init"] == info["init"]


def test_init_carries_sacs_entropy_coefficient_over(trained, tmp_path):
    # Reset to its initial 1.0, the entropy bonus would unlearn a trained policy within minutes.
    source, _ = trained["sac"]
    trained_coef = ALGORITHMS["sac"].load(source / "checkpoints" / "best.zip", device="cpu").log_ent_coef.item()
    assert trained_coef != 0.0
    cfg = tiny_config(tmp_path, "sac", steps=1)
    cfg.hyperparams["learning_starts"] = 10  # no update: the new run's coefficient is the source's
    run = train(cfg, tmp_path / "run", progress=False, init=source)
    after = ALGORITHMS["sac"].load(run / "checkpoints" / "last.zip", device="cpu")
    assert after.log_ent_coef.item() == trained_coef


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_init_adds_the_winding_to_the_observation_without_changing_what_the_policy_does(trained, tmp_path, algo):
    # A swing-up stage trained without the winding hands on to one that sees it: the new inputs
    # start with zero weights, so actor and critics compute what they computed before.
    source, _ = trained[algo]
    cfg = tiny_config(tmp_path, algo, steps=1)
    cfg.env["observe_winding"] = True
    cfg.hyperparams["learning_starts"] = 10
    run = train(cfg, tmp_path / "run", progress=False, init=source)
    before = ALGORITHMS[algo].load(source / "checkpoints" / "best.zip", device="cpu")
    after = ALGORITHMS[algo].load(run / "checkpoints" / "last.zip", device="cpu")
    assert after.observation_space.shape[0] == before.observation_space.shape[0] + 2
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (50, before.observation_space.shape[0])).astype(np.float32)
    wound = np.concatenate([obs, rng.uniform(-1, 1, (50, 2)).astype(np.float32)], axis=1)
    np.testing.assert_allclose(
        after.predict(wound, deterministic=True)[0], before.predict(obs, deterministic=True)[0], atol=1e-6
    )
    actions = torch.as_tensor(rng.uniform(-1, 1, (50, 1)), dtype=torch.float32)
    with torch.no_grad():
        for old, new in ((before.critic, after.critic), (before.critic_target, after.critic_target)):
            for q_old, q_new in zip(
                old(torch.as_tensor(obs), actions), new(torch.as_tensor(wound), actions), strict=True
            ):
                np.testing.assert_allclose(q_new.numpy(), q_old.numpy(), atol=1e-5)
    # The artifact says so, its runtime asks the loop for the winding, and deploy gives it.
    meta = export(run, tmp_path / "artifact" / "policy")
    policy = runtime.load_policy(meta)
    layout = policy.meta["observation"]["layout"]
    assert (
        policy.conditions["observe_winding"]
        and len(layout) == 9
        and layout[-2:] == ["shoulder.position/(3 pi)", "elbow.position/(3 pi)"]
    )
    np.testing.assert_allclose(policy.act(wound[0]), after.predict(wound[0], deterministic=True)[0], atol=1e-5)
    from s2r.cli import main

    deploy = ["deploy", "--robot", "pendubot", "--policy", str(meta), "--lockstep", "--duration", "0.5"]
    assert main(deploy) == 0
    # Metadata that hides the winding: the loop's observation no longer fits the graph, which the
    # probe before arming finds; nothing is armed and the command says why.
    data = json.loads(meta.read_text())
    data["env"]["observe_winding"] = False
    meta.write_text(json.dumps(data))
    assert main(deploy) == 2


def test_init_adds_a_flights_reference_preview_and_refuses_any_other_new_entry(tmp_path):
    def flight(**env):
        data = {
            "algo": "ppo",
            "n_timesteps": 64,
            "n_envs": 2,
            "normalize": False,
            "env": {"task": "figure8", "action_history": 2, **env},
            "eval": {"freq": 64, "episodes": 1},
            "hyperparams": TINY["ppo"],
        }
        path = tmp_path / f"flight{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_config("crazyflie", path, "ppo")

    source = train(flight(), tmp_path / "hover", progress=False)
    run = train(flight(observe_preview=2), tmp_path / "preview", progress=False, init=source)
    before = PPO.load(source / "checkpoints" / "best.zip", device="cpu")
    # Its first evaluation comes before its first update: the checkpoint it saved is the start.
    after = PPO.load(run / "checkpoints" / "best.zip", device="cpu")
    # The preview's six entries come last and start with zero weights: the same actions as before.
    obs = np.random.default_rng(0).uniform(-1, 1, (20, before.observation_space.shape[0])).astype(np.float32)
    ahead = np.concatenate([obs, np.full((20, 6), 0.5, np.float32)], axis=1)
    np.testing.assert_allclose(
        after.predict(ahead, deterministic=True)[0], before.predict(obs, deterministic=True)[0], atol=1e-6
    )
    # The integral sits before the action history: adding it would shift what the weights read.
    with pytest.raises(ValueError, match="has 26 entries, this one 29; only observe_preview may add to it"):
        train(flight(observe_error_integral=True), tmp_path / "integral", progress=False, init=source)
    with pytest.raises(ValueError, match="holds more .observe_preview 2, here 0"):
        train(flight(), tmp_path / "fewer", progress=False, init=run)


def test_init_adds_the_winding_to_a_normalised_observation(trained, tmp_path):
    # PPO with observation normalisation: the new entries get mean 0 and variance 1, so the
    # normalised winding, too, meets zero weights.
    source, _ = trained["ppo"]
    cfg = tiny_config(tmp_path, "ppo", normalize_obs=True)
    cfg.env["observe_winding"] = True
    venv = train_module.make_vec_env(cfg)
    model = ALGORITHMS["ppo"](cfg.policy, venv, seed=0, device="cpu", **cfg.hyperparams)
    train_module._warm_start(model, venv, cfg, source)
    np.testing.assert_array_equal(venv.obs_rms.mean[-2:], [0.0, 0.0])
    np.testing.assert_array_equal(venv.obs_rms.var[-2:], [1.0, 1.0])
    before = ALGORITHMS["ppo"].load(source / "checkpoints" / "best.zip", device="cpu")
    stats = load_normalization(source, "best")
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (50, 7)).astype(np.float32)
    wound = np.concatenate([obs, rng.uniform(-1, 1, (50, 2)).astype(np.float32)], axis=1)
    np.testing.assert_allclose(
        model.predict(venv.normalize_obs(wound), deterministic=True)[0],
        before.predict(normalize(obs, stats), deterministic=True)[0],
        atol=1e-5,
    )
    venv.close()


def test_init_refuses_to_drop_the_winding(trained, tmp_path):
    wound = tiny_config(tmp_path, "sac", steps=1)
    wound.env["observe_winding"] = True
    wound.hyperparams["learning_starts"] = 10
    run = train(wound, tmp_path / "b", progress=False, init=trained["sac"][0])
    with pytest.raises(ValueError, match="its observation holds more .observe_winding True, here False"):
        train(tiny_config(tmp_path, "sac", steps=1), tmp_path / "c", progress=False, init=run)


def test_init_can_start_from_the_last_checkpoint(trained, tmp_path):
    # A stage whose evaluation cannot rank its checkpoints (balancing, evaluated from hanging)
    # hands on its last one.
    source, _ = trained["ppo"]
    cfg = tiny_config(tmp_path, "ppo", normalize_obs=True)
    cfg.hyperparams["learning_rate"] = 0.0
    run = train(cfg, tmp_path / "run", progress=False, init=source, init_checkpoint="last")
    info = json.loads((run / "run.json").read_text())
    assert info["init"]["checkpoint"] == "last"
    assert info["init"]["sha256"] == hashlib.sha256((source / "checkpoints" / "last.zip").read_bytes()).hexdigest()
    before = ALGORITHMS["ppo"].load(source / "checkpoints" / "last.zip", device="cpu")
    after = ALGORITHMS["ppo"].load(run / "checkpoints" / "last.zip", device="cpu")
    for a, b in zip(before.policy.parameters(), after.policy.parameters(), strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_upright_starts_and_ideal_episodes_are_for_training_episodes_only(tmp_path):
    cfg = tiny_config(tmp_path, "ppo")
    cfg.curriculum = {"upright_starts": 1.0, "ideal_episodes": 1.0}
    env = make_env(cfg, 0)()
    obs, _ = env.reset(seed=0)
    assert obs[0] < 0  # cos q1: upright
    assert env.unwrapped.plant.imperfections.velocity_noise_std == 0.0
    first = []
    run_episodes(lambda o: first.append(o) or np.zeros(1), cfg.robot, cfg.env, 1, seed=EVAL_SEED)
    assert first[0][0] == 1.0  # evaluation hangs, as the task's score assumes


def test_each_evaluation_episode_runs_once():
    steps = []
    episodes = run_episodes(lambda obs: steps.append(obs) or np.zeros(1), "pendulum", {"control_rate_hz": 20}, 2)
    assert len(episodes) == 2 and len(steps) == 2 * 200  # 10 s at 20 Hz, hanging without a torque


def test_curriculum_imperfections_replace_the_envs_in_training_episodes_only(tmp_path):
    cfg = tiny_config(tmp_path, "ppo")  # env.imperfections: true
    cfg.curriculum = {"imperfections": {"pulses_per_joint": 3, "pulse_amplitude": [1.0, 3.0]}}
    training = make_env(cfg, 0)().unwrapped.imperfections
    assert training.pulses_per_joint == 3 and training.pulse_amplitude == (1.0, 3.0)
    assert training.delay_s == Imperfections.defaults().delay_s  # the other fields keep their defaults
    evaluation = RobotEnv(cfg.robot, **cfg.env).imperfections
    assert evaluation == Imperfections.defaults()


def test_evaluation_in_simulation_conditions_is_logged_and_ranks_the_best_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "sac", steps=128)
    cfg.eval["sim_conditions"] = True
    seen = []

    def fake_episodes(act, robot, env, episodes, seed):
        # Succeeds in simulation conditions at the second evaluation only.
        seen.append(env)
        sims = [e for e in seen if e.get("params") == "model_1.1"]
        success = float(len(sims) == 2 and sims[-1] is env)
        return [{"success": success, "score": 0.5 * success}] * episodes

    monkeypatch.setattr(train_module, "run_episodes", fake_episodes)
    run = train(cfg, tmp_path / "run", progress=False)
    assert seen[:2] == [cfg.env, {**cfg.env, **SIM_CONDITIONS}]
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["sim_success_rate"] for e in evals] == [0.0, 1.0, 0.0]  # at 64, 128 and the end
    assert all(e["success_rate"] == 0.0 for e in evals)
    info = json.loads((run / "run.json").read_text())
    assert info["best_rank"] == [1.0, 0.5] and info["best_steps"] == 128  # success rate, then v2 score


def test_init_from_an_incompatible_run_is_refused_before_the_run_directory_exists(trained, tmp_path):
    source, _ = trained["sac"]
    with pytest.raises(ValueError, match="a pendubot/sac run"):
        train(tiny_config(tmp_path, "td3"), tmp_path / "run", progress=False, init=source)
    cfg = tiny_config(tmp_path, "sac")
    cfg.env["action_history"] = 2
    with pytest.raises(ValueError, match="past actions"):
        train(cfg, tmp_path / "run", progress=False, init=source)
    assert not (tmp_path / "run").exists()


def test_new_run_refuses_to_overwrite_an_existing_one(tmp_path):
    cfg = tiny_config(tmp_path, "td3", steps=60)
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, tmp_path / "run", progress=False)


def test_runtime_never_imports_torch_or_sb3(trained):
    _, meta = trained["sac"]
    code = (
        "import sys, numpy as np\n"
        "from policies.runtime import load_policy\n"
        f"p = load_policy({str(meta)!r})\n"
        "a = p.act(np.zeros(7, dtype=np.float32))\n"
        "assert a.shape == (1,) and np.all(np.abs(a) <= 1)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'stable_baselines3')]\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def copy_artifact(trained, tmp_path):
    _, meta = trained["sac"]
    (tmp_path / "policy.onnx").write_bytes(meta.with_suffix(".onnx").read_bytes())
    (tmp_path / "policy.json").write_text(meta.read_text())
    return tmp_path / "policy.json"


@pytest.mark.parametrize("compensate", [False, True])
def test_an_artifact_trained_with_friction_compensation_is_deployed_with_it(trained, tmp_path, compensate):
    from hardware.apps.log import read_log
    from s2r.cli import main

    meta = copy_artifact(trained, tmp_path)
    data = json.loads(meta.read_text())
    data["env"]["friction_compensation"] = compensate
    meta.write_text(json.dumps(data))
    log = tmp_path / "run.mcap"
    deploy = ["deploy", "--robot", "pendubot", "--policy", str(meta), "--lockstep", "--duration", "1"]
    assert main([*deploy, "--log", str(log)]) == 0
    _, _, U = read_log(log).trajectory()
    elbow = U[:, 1]
    # The elbow's motor cancels its friction wherever it moves, within the passive allowance.
    assert (np.abs(elbow).max() > 0.05) == compensate and np.abs(elbow).max() <= 0.5


def test_tampered_graph_is_refused(trained, tmp_path):
    meta = copy_artifact(trained, tmp_path)
    graph = meta.with_suffix(".onnx")
    data = bytearray(graph.read_bytes())
    data[-10] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(runtime.ArtifactError, match="sha256 .* does not match"):
        runtime.load_policy(meta)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m.pop("graph"), "lacks 'graph'"),
        (lambda m: m.update(format="other/9"), "format"),
        (lambda m: m.update(action="six"), "wrong type"),
        (lambda m: m["action"].pop("low"), "action lacks 'low'"),
        (lambda m: m["action"].update(low=[-1, -1]), "action low must be a list of 1 numbers"),
        (lambda m: m["action"].update(low=[2.0]), "low < high"),
        (lambda m: m["action"].update(high=[float("nan")]), "action high must be finite"),
        (lambda m: m["action"].update(size=0), r"action size must be an integer in \[1, 4096\]"),
        (lambda m: m["observation"].update(size=10**9), "observation size must be an integer"),
        (lambda m: m["observation"].update(action_history=10**12), "action_history must be an integer in"),
        (lambda m: m.update(task="hover"), r"the pendubot has no task 'hover' \(its tasks: swingup\)"),
        (lambda m: m.update(robot="submarine"), "unknown robot 'submarine'"),
        (lambda m: (m.update(robot="submarine"), m.pop("task")), "unknown robot 'submarine'"),  # an older artifact
        (
            lambda m: m.update(normalization={"mean": [0.0], "var": [1.0], "clip": 10, "epsilon": 1e-8}),
            "normalization mean must be a list of 7 numbers",
        ),
        (
            lambda m: m.update(normalization={"mean": [0.0] * 7, "var": [-1.0] * 7, "clip": 10, "epsilon": 1e-8}),
            "var must not be negative",
        ),
    ],
)
def test_malformed_metadata_is_refused(trained, tmp_path, mutate, message):
    meta = copy_artifact(trained, tmp_path)
    m = json.loads(meta.read_text())
    mutate(m)
    meta.write_text(json.dumps(m))
    with pytest.raises(runtime.ArtifactError, match=message):
        runtime.load_policy(meta)


def test_missing_or_unreadable_artifacts_are_refused(trained, tmp_path):
    meta = copy_artifact(trained, tmp_path)
    meta.with_suffix(".onnx").unlink()
    with pytest.raises(runtime.ArtifactError, match="graph .* not found|not found"):
        runtime.load_policy(meta)
    meta.write_text("{not json")
    with pytest.raises(runtime.ArtifactError, match="unreadable"):
        runtime.load_policy(meta)
    with pytest.raises(runtime.ArtifactError, match="not found"):
        runtime.load_policy(tmp_path / "absent.json")
    with pytest.raises(runtime.ArtifactError, match="no shipped policy 'zoo:nothing'"):
        runtime.load_policy("zoo:nothing")


def test_observation_of_the_wrong_size_is_refused(trained):
    policy = runtime.load_policy(trained["td3"][1])
    with pytest.raises(ValueError, match="expects 7"):
        policy.act(np.zeros(5))


@pytest.mark.parametrize(
    "change, key",
    [
        ({"algo": "dqn"}, "algo"),
        ({"n_timesteps": -5}, "n_timesteps"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"env": {"rate": 100}}, "env.rate"),
        ({"env": {"control_rate_hz": 300}}, "env.control_rate_hz"),
        ({"env": {"imperfections": {"delay": 1}}}, "env.imperfections.delay"),
        ({"env": {"safety_stops": "off"}}, "env.safety_stops"),
        ({"hyperparams": {"learning_rat": 0.1}}, "hyperparams.learning_rat"),
        ({"hyperparams": {"batch_size": "big"}}, "hyperparams.batch_size"),
        ({"hyperparams": {"train_freq": [4, "minute"]}}, "hyperparams.train_freq"),
        ({"eval": {"freq": 0}}, "eval.freq"),
        ({"eval": {"sim_conditions": "yes"}}, "eval.sim_conditions"),
        ({"curriculum": {"start": 0.0, "steps": 10}}, "curriculum"),
        ({"curriculum": {"start": 0.5}}, "curriculum.steps"),
        ({"curriculum": {"upright_starts": 2}}, "curriculum.upright_starts"),
        ({"curriculum": {"ideal_episodes": "half"}}, "curriculum.ideal_episodes"),
        ({"curriculum": {"imperfections": {"pulses": 3}}}, "curriculum.imperfections.pulses"),
        ({"normalize": "yes"}, "normalize"),
        ({"batched": "yes"}, "batched"),
        ({"n_envs": 1000}, "n_envs"),  # one MuJoCo env each: too many
        ({"batched": True, "n_envs": 20000}, "n_envs"),
    ],
)
def test_bad_config_is_a_clear_error_before_training(tmp_path, change, key):
    data = {"algo": "sac", "n_timesteps": 100, **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config("pendubot", path)
    assert info.value.key == key and str(path) in str(info.value)


def test_hyperparameter_the_algorithm_rejects_fails_before_the_run_directory_exists(tmp_path):
    cfg = tiny_config(tmp_path, "ppo")
    cfg.n_envs, cfg.hyperparams["n_steps"] = 1, 1  # a rollout of one step: PPO refuses it when built
    with pytest.raises(ConfigError, match="hyperparams"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("robot", ["pendulum", "pendubot", "acrobot"])
def test_shipped_configs_are_valid(robot):
    from policies.config import CONFIG_DIR

    files = sorted((CONFIG_DIR / robot).glob("*.yaml"))
    assert files
    for path in files:
        load_config(robot, path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_with_the_last_checkpoint_saved_and_the_run_resumes(tmp_path, signum):
    data = tiny_config(tmp_path, "ppo", steps=10_000_000).as_dict()
    data.pop("robot")
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    command = ["train", "--robot", "pendubot", "--algo", "ppo", "--config", str(config), "--out", str(run)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2r.cli", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    evals = run / "eval.jsonl"
    deadline = time.monotonic() + 120
    while not (evals.exists() and evals.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "no evals"
        time.sleep(0.1)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert f"continue with: s2r train --resume {run}" in out and "\r" not in err, "no progress bar off a terminal"
    steps = json.loads((run / "run.json").read_text())["steps"]
    model = ALGORITHMS["ppo"].load(run / "checkpoints" / "last.zip", device="cpu")
    # Saved where it stopped, past the last evaluation, not at it.
    last_eval = json.loads(evals.read_text().splitlines()[-1])["steps"]
    assert model.num_timesteps == steps > last_eval
    assert not list((run / "checkpoints").glob("*partial*"))
    from s2r.cli import main

    assert main(["train", "--resume", str(run), "--steps", str(steps + 64), "--no-progress"]) == 0
    assert ALGORITHMS["ppo"].load(run / "checkpoints" / "last.zip", device="cpu").num_timesteps >= steps + 64


def test_a_checkpoint_save_cut_short_leaves_the_previous_checkpoint_whole(trained, tmp_path, monkeypatch):
    source, _ = trained["ppo"]
    model = ALGORITHMS["ppo"].load(source / "checkpoints" / "best.zip", device="cpu")
    stats = load_normalization(source, "best")
    save_checkpoint(model, tmp_path, "last", stats)
    before = (tmp_path / "checkpoints" / "last.zip").read_bytes()

    def interrupted(path):
        Path(path).write_bytes(b"PK half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, tmp_path, "last", {**stats, "count": -1.0})
    assert (tmp_path / "checkpoints" / "last.zip").read_bytes() == before
    assert load_normalization(tmp_path, "last") == stats
    assert (
        ALGORITHMS["ppo"].load(tmp_path / "checkpoints" / "last.zip", device="cpu").num_timesteps == model.num_timesteps
    )


def test_cli_train_export_eval(tmp_path, capsys):
    from s2r.cli import main

    cfg = tiny_config(tmp_path, "td3", steps=60)
    config = tmp_path / "cfg.yaml"
    data = cfg.as_dict()
    data.pop("robot")
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    # A parameter set by path (a calibrated one, say) replaces the config's.
    params = tmp_path / "robot.yaml"
    params.write_text((get_robot("pendubot").params_dir / "model_1.0.yaml").read_text().replace("m: [0.52", "m: [0.55"))
    assert "m: [0.55" in params.read_text()
    train = [
        "train",
        "--robot",
        "pendubot",
        "--algo",
        "td3",
        "--config",
        str(config),
        "--out",
        str(run),
        "--no-progress",
    ]
    assert main([*train, "--params", str(params)]) == 0
    trained = capsys.readouterr().out
    assert "best evaluation at" in trained and f"next: s2r export {run}" in trained
    assert yaml.safe_load((run / "config.yaml").read_text())["env"]["params"] == str(params)
    assert main(["export", str(run)]) == 0
    assert f"next: s2r eval {run / 'policy.json'}" in capsys.readouterr().out
    record = tmp_path / "eval.json"
    assert main(["eval", str(run / "policy.json"), "--episodes", "2", "--sim-conditions", "--out", str(record)]) == 0
    table = capsys.readouterr().out
    result = json.loads(record.read_text())
    assert result["env"]["params"] == "model_1.1" and result["env"]["imperfections"] is False
    # An untrained policy never swings up: no swing-up time to average, said as such, not as nan.
    assert result["metrics"]["swingup_time"] == {"mean": None, "ci95": None, "n": 0}
    assert "nan" not in table and "no episode has it" in table
    assert result["env"]["safety_stops"] is False, "the competitions' simulator has no stops"
    assert result["metrics"]["success"]["n"] == 2 and "ci95" in result["metrics"]["score"]
    assert main(["eval", str(run), "--episodes", "1", "--friction-compensation", "on", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env"]["friction_compensation"] is True
    assert main(["train", "--resume", str(run), "--steps", "80", "--no-progress"]) == 0
    assert json.loads((run / "run.json").read_text())["steps"] == 80
    # --init starts a new run; with --resume it is ambiguous and refused before anything runs.
    assert main([*train[:-3], "--out", str(tmp_path / "tuned"), "--init", str(run), "--no-progress"]) == 0
    assert json.loads((tmp_path / "tuned" / "run.json").read_text())["init"]["run"] == str(run)
    assert main(["train", "--resume", str(run), "--init", str(run), "--no-progress"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_a_batched_config_trains_on_the_batched_path_and_evaluates_on_mujoco(tmp_path):
    data = {
        "algo": "ppo",
        "n_timesteps": 2048,
        "n_envs": 32,
        "batched": True,
        "normalize": True,
        "env": {"control_rate_hz": 50, "imperfections": True, "randomization": "pendulum"},
        "curriculum": {"start": 0.0, "steps": 1000},
        "eval": {"freq": 1024, "episodes": 1},
        "hyperparams": TINY["ppo"],
    }
    path = tmp_path / "batched.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config("pendulum", path, "ppo")
    from policies.train import make_vec_env
    from policies.vec_env import BatchedVecEnv

    venv = make_vec_env(cfg)
    assert isinstance(venv.venv.venv, BatchedVecEnv) and venv.num_envs == 32
    run = train(cfg, tmp_path / "run", progress=False)
    evaluations = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["steps"] for e in evaluations][:2] == [1024, 2048] and "score" in evaluations[0]
    assert (run / "checkpoints" / "best.zip").exists()


@pytest.mark.parametrize("batched", [False, True], ids=["per-env", "batched"])
def test_the_curriculum_reaches_the_training_envs_themselves(tmp_path, batched, monkeypatch):
    # SB3's set_attr sets an attribute on the Monitor wrapper, where the env never reads it; and
    # updates are counted in env steps, not calls, which a batch makes 32 env steps each here.
    monkeypatch.setattr(TrainingProgress, "EVERY", 32)
    cfg = tiny_config(tmp_path, "ppo", steps=512)
    cfg.batched, cfg.n_envs, cfg.curriculum = batched, 32 if batched else 2, {"start": 0.0, "steps": 1024}
    venv = make_vec_env(cfg)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0)
    model.learn(512, callback=TrainingProgress((0.0, 1.0, 1024)))
    envs = [venv.batched.env] if batched else [e.unwrapped for e in venv.envs]
    for env in envs:
        # Halfway up the ramp, to within the last update (every 32 env steps).
        assert env.randomization_intensity == pytest.approx(0.5, abs=0.04)
        assert env.task.training_steps >= 480


def test_the_progress_line_shows_steps_rate_and_the_last_evaluations_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("policies.progress.REFRESH_S", 0.0)
    train(tiny_config(tmp_path, "ppo"), tmp_path / "run", progress=True)
    lines = capsys.readouterr().err.split("\r")
    assert lines[1].startswith("pendubot ppo  ") and "/128 steps" in lines[1] and "steps/s" in lines[1]
    # The last redraw (training's end) shows the final evaluation, and the line is ended.
    assert re.search(r"\| eval at 128: success \d+% v2 \d\.\d{3} *\n$", lines[-1]), lines[-1]
