"""Training with stable-baselines3: one run directory per run, resumable.

A run directory holds:

    config.yaml                 the resolved configuration (robot included)
    run.json                    command, seed, git commit, package versions, steps done, each resume
    tb/                         TensorBoard logs (training and evaluation curves)
    eval.jsonl                  one line per evaluation: steps, wall time, success rate, the task's score
    checkpoints/last.zip        latest SB3 checkpoint (a training checkpoint, not a deployable artifact)
    checkpoints/last_replay_buffer.pkl   SAC's and TD3's replay buffer at that checkpoint, for --resume
    checkpoints/best.zip        checkpoint with the best evaluation
    checkpoints/*_normalization.json   observation statistics, when normalisation is on
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file, recursive_setattr
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, VecNormalize

from policies import evaluate
from policies.config import ALGOS, TRAINING_EPISODE_OPTIONS, TrainConfig, algorithm_class, config_from_dict
from policies.evaluate import SIM_CONDITIONS, run_episodes
from policies.progress import ProgressLine, figures
from policies.vec_env import BatchedVecEnv
from sim.batched import make_batched
from sim.config import ConfigError
from sim.env import RobotEnv
from sim.tasks.task import conditions_of

log = logging.getLogger(__name__)

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {algo: algorithm_class(algo) for algo in ALGOS}
EVAL_SEED = 1_000_000
"""Evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...: never the training seeds."""


def make_env(cfg: TrainConfig, rank: int):
    """A thunk for one training env, seeded per rank."""

    training_only = {k: v for k, v in (cfg.curriculum or {}).items() if k in TRAINING_EPISODE_OPTIONS}

    def thunk():
        env = Monitor(RobotEnv(cfg.robot, **{**cfg.env, **training_only}))
        env.reset(seed=cfg.seed * 1000 + rank)
        return env

    return thunk


def make_vec_env(cfg: TrainConfig) -> VecEnv:
    if cfg.batched:
        training_only = {k: v for k, v in (cfg.curriculum or {}).items() if k in TRAINING_EPISODE_OPTIONS}
        batch = make_batched(cfg.robot, cfg.n_envs, seed=cfg.seed, **{**cfg.env, **training_only})
        venv: VecEnv = VecMonitor(BatchedVecEnv(batch))
    else:
        venv = DummyVecEnv([make_env(cfg, i) for i in range(cfg.n_envs)])
    venv.seed(cfg.seed)
    if cfg.normalize:
        # Rewards are normalised for training only; the observation statistics travel with the policy.
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True)
    return venv


def normalization_stats(venv: VecEnv) -> dict[str, Any] | None:
    """Observation statistics of a VecNormalize (JSON-ready), or None without normalisation."""
    if not isinstance(venv, VecNormalize):
        return None
    return {
        "mean": venv.obs_rms.mean.tolist(),
        "var": venv.obs_rms.var.tolist(),
        "count": float(venv.obs_rms.count),
        "clip": float(venv.clip_obs),
        "epsilon": float(venv.epsilon),
    }


def normalize(obs: np.ndarray, stats: dict[str, Any] | None) -> np.ndarray:
    """Apply saved observation statistics as VecNormalize does."""
    if stats is None:
        return obs
    z = (obs - np.asarray(stats["mean"])) / np.sqrt(np.asarray(stats["var"]) + stats["epsilon"])
    return np.clip(z, -stats["clip"], stats["clip"]).astype(np.float32)


def _restore_normalization(venv: VecEnv, stats: dict[str, Any] | None) -> None:
    if stats is not None and isinstance(venv, VecNormalize):
        venv.obs_rms.mean = np.asarray(stats["mean"])
        venv.obs_rms.var = np.asarray(stats["var"])
        venv.obs_rms.count = stats["count"]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("s2r", "numpy", "mujoco", "gymnasium", "torch", "stable-baselines3", "onnxruntime"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


SOURCE = ("sim", "policies", "hardware", "calibration", "s2r", "pyproject.toml", ":(exclude)policies/zoo")
"""What decides a run's behaviour: changes here make a commit -dirty (run outputs, shipped policies
among them, do not)."""


def git_commit() -> str:
    """The source tree's commit (with -dirty when its source has changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *SOURCE], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


class Evaluation(BaseCallback):
    """Every `freq` env steps: seeded episodes with the deterministic policy, scored with
    the task's own score; logs them, saves the last and the best checkpoint.

    Once `stop` is set, training ends at the next env step with the last checkpoint saved
    (no evaluation), so that the run resumes from there."""

    def __init__(
        self,
        cfg: TrainConfig,
        run: Path,
        best: list[float] | None = None,
        stop: threading.Event | None = None,
        wall_s: float = 0.0,
    ):
        super().__init__()
        self.cfg = cfg
        self.run = run
        self.freq = cfg.eval["freq"]
        self.best = best or [-math.inf, -math.inf]
        self.task = RobotEnv(cfg.robot, **cfg.env).task
        self.next_eval = 0
        self.stop = stop or threading.Event()
        self.wall_before = wall_s
        self.started = time.monotonic()
        self.last_record: dict[str, float | int] | None = None

    def _init_callback(self) -> None:
        # The model's count, not the callback's (0 until the first step): a resumed run
        # must not evaluate at every step until it catches up.
        self.next_eval = (self.model.num_timesteps // self.freq + 1) * self.freq
        self.started = time.monotonic()

    @property
    def wall_s(self) -> float:
        """Wall time the run has trained, s, over all its sessions (evaluations included)."""
        return self.wall_before + time.monotonic() - self.started

    def _on_step(self) -> bool:
        if self.stop.is_set():
            return False
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.freq
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.stop.is_set():
            self.evaluate()
            return
        save_checkpoint(self.model, self.run, "last", normalization_stats(self.model.get_env()))
        update_run_info(self.run, steps=int(self.num_timesteps), wall_s=round(self.wall_s, 1))
        log.info("stopped at %d steps; checkpoints/last.zip saved", self.num_timesteps)

    def evaluate(self) -> None:
        stats = normalization_stats(self.model.get_env())
        model = self.model

        def act(obs: np.ndarray) -> np.ndarray:
            return model.predict(normalize(obs, stats), deterministic=True)[0]

        conditions = {"": self.cfg.env}
        if self.cfg.eval["sim_conditions"]:
            conditions["sim_"] = {**self.cfg.env, **SIM_CONDITIONS}
        record: dict[str, Any] = {"steps": int(self.num_timesteps), "score_label": self.task.score_label}
        for prefix, env in conditions.items():
            episodes = run_episodes(act, self.cfg.robot, env, self.cfg.eval["episodes"], seed=EVAL_SEED)
            record[prefix + "success_rate"] = float(np.mean([e["success"] for e in episodes]))
            scores = [e[self.task.score] for e in episodes if math.isfinite(e[self.task.score])]
            # None (JSON's null) when no episode has the score, e.g. a flight that never settles.
            record[prefix + "score"] = float(np.mean(scores)) if scores else None
            self.logger.record(f"eval/{prefix}success_rate", record[prefix + "success_rate"])
            if scores:
                self.logger.record(f"eval/{prefix}{self.task.score}", record[prefix + "score"])
        self.logger.dump(self.num_timesteps)
        record["wall_s"] = round(self.wall_s, 1)
        self.last_record = record
        with (self.run / "eval.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        save_checkpoint(model, self.run, "last", stats)
        # Summed over the evaluated conditions.
        ranks = [evaluate.rank(self.task, record[p + "success_rate"], record[p + "score"]) for p in conditions]
        rank = [sum(r) for r in zip(*ranks, strict=True)]
        if rank > self.best:
            self.best = rank
            save_checkpoint(model, self.run, "best", stats)
            update_run_info(self.run, best_steps=record["steps"])
        update_run_info(
            self.run, steps=int(self.num_timesteps), wall_s=record["wall_s"], best_rank=self.best, last_eval=record
        )
        log.info("eval at %d steps: %s", self.num_timesteps, figures(record))


class TrainingProgress(BaseCallback):
    """Tell the training envs how far training has gone (`RobotEnv.set_training_progress`): the
    steps so far, for a task's reward curriculum, and with `ramp` = (start, end, steps) the
    randomisation intensity, raised linearly from start to end over those steps."""

    EVERY = 10_000
    """Env steps between updates (a call is n_envs steps: 1024 on a batched path)."""

    def __init__(self, ramp: tuple[float, float, int] | None = None):
        super().__init__()
        self.ramp = ramp
        self._updated = 0

    def intensity(self, t: int) -> float | None:
        if self.ramp is None:
            return None
        start, end, steps = self.ramp
        return start + (end - start) * min(1.0, t / steps)

    def _on_training_start(self) -> None:
        self.update()

    def _on_step(self) -> bool:
        if self.num_timesteps - self._updated >= self.EVERY:
            self.update()
        return True

    def update(self) -> None:
        self._updated = self.num_timesteps
        value = self.intensity(self.num_timesteps)
        # A method, not set_attr: SB3's set_attr would set it on the Monitor wrapper, not the env.
        self.training_env.env_method("set_training_progress", self.num_timesteps, value)
        if value is not None:
            self.logger.record("train/randomization_intensity", value)


def save_checkpoint(model: BaseAlgorithm, run: Path, name: str, stats: dict[str, Any] | None) -> None:
    folder = run / "checkpoints"
    folder.mkdir(exist_ok=True)
    # Written beside and then renamed: a save cut short (a second Ctrl-C, a full disk)
    # leaves the previous checkpoint whole.
    partial = folder / f"{name}.partial.zip"
    model.save(partial)
    if name == "last" and isinstance(model, OffPolicyAlgorithm):
        # So that SAC and TD3 resume learning from the transitions they had, not from scratch.
        partial_buffer = folder / "last_replay_buffer.partial.pkl"
        model.save_replay_buffer(partial_buffer)
        os.replace(partial_buffer, folder / "last_replay_buffer.pkl")
    if stats is not None:
        norm = folder / f"{name}_normalization.json"
        norm.with_suffix(".partial").write_text(json.dumps(stats))
        os.replace(norm.with_suffix(".partial"), norm)
    os.replace(partial, folder / f"{name}.zip")


def load_normalization(run: Path, name: str) -> dict[str, Any] | None:
    path = run / "checkpoints" / f"{name}_normalization.json"
    return json.loads(path.read_text()) if path.exists() else None


def update_run_info(run: Path, **changes: Any) -> None:
    path = run / "run.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    info.update(changes)
    path.write_text(json.dumps(info, indent=2) + "\n")


def load_run_config(run: Path) -> TrainConfig:
    """The resolved configuration of an existing run directory."""
    path = run / "config.yaml"
    if not path.exists():
        raise ValueError(f"{run} is not a run directory: no config.yaml")
    data = yaml.safe_load(path.read_text())
    robot = data.pop("robot", None)
    if robot is None:
        raise ConfigError(path, "robot", "missing; a run's config names its robot")
    return config_from_dict(robot, data, path)


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.robot}-{cfg.algo}-{stamp}"


def train(
    cfg: TrainConfig,
    run: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    init: Path | None = None,
    stop: threading.Event | None = None,
    init_checkpoint: str = "best",
) -> Path:
    """Train (or resume) and return the run directory. Builds everything, and so fails on a
    bad configuration, before the first step.

    `init`: a run directory whose `init_checkpoint` (best or last: weights, optimiser state and
    observation statistics) a new run starts from, under its own configuration: fine-tuning.
    `stop`: set it (from a signal handler, another thread) to end the run early with its
    last checkpoint saved; `--resume` continues it. `progress`: redraw the progress line
    (`policies.progress`) on stderr."""
    run = run or default_run_dir(cfg)
    algorithm = ALGORITHMS[cfg.algo]
    venv = make_vec_env(cfg)
    if resume:
        last = run / "checkpoints" / "last.zip"
        if not last.exists():
            raise ValueError(f"cannot resume {run}: no checkpoints/last.zip")
        model = algorithm.load(last, env=venv, device="cpu", tensorboard_log=str(run / "tb"))
        _restore_normalization(venv, load_normalization(run, "last"))
        if isinstance(model, OffPolicyAlgorithm):
            _restore_replay_buffer(model, run / "checkpoints" / "last_replay_buffer.pkl")
        info = json.loads((run / "run.json").read_text())
        # Ranks were a single number before they were (success rate, score): such a run's next evaluation is its best.
        best = info["best_rank"] if isinstance(info.get("best_rank"), list) else None
        wall_s, last_eval = float(info.get("wall_s", 0.0)), info.get("last_eval")
        log.info("resuming %s at %d steps", run, model.num_timesteps)
        # Each resume is part of the run's provenance: the code may have changed in between.
        resumed = {
            "command": " ".join(shlex.quote(a) for a in ["s2r", *sys.argv[1:]]),
            "git_commit": git_commit(),
            "at_steps": int(model.num_timesteps),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        update_run_info(run, resumes=[*info.get("resumes", []), resumed])
    else:
        if (run / "config.yaml").exists():
            raise ValueError(f"{run} already holds a run; resume it with --resume {run} or choose another --out")
        try:
            model = algorithm(
                cfg.policy,
                venv,
                seed=cfg.seed,
                tensorboard_log=str(run / "tb"),
                device="cpu",
                verbose=0,
                **cfg.hyperparams,
            )
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError(
                f"{cfg.robot}/{cfg.algo} config", "hyperparams", f"rejected by {algorithm.__name__}: {exc}"
            ) from exc
        started_from = _warm_start(model, venv, cfg, init, init_checkpoint) if init is not None else None
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False))
        update_run_info(
            run,
            command=" ".join(shlex.quote(a) for a in ["s2r", *sys.argv[1:]]),
            seed=cfg.seed,
            git_commit=git_commit(),
            versions=package_versions(),
            started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            steps=0,
            **({"init": started_from} if started_from else {}),
        )
        best, wall_s, last_eval = None, 0.0, None
    evaluation = Evaluation(cfg, run, best, stop, wall_s)
    evaluation.last_record = last_eval
    callbacks: list[BaseCallback] = [evaluation]
    if progress:
        callbacks.append(ProgressLine(f"{cfg.robot} {cfg.algo}", cfg.n_timesteps, lambda: evaluation.last_record))
    ramp = None
    if cfg.curriculum is not None and "steps" in cfg.curriculum:
        end = cfg.env.get("randomization_intensity", 1.0)
        ramp = (cfg.curriculum["start"], end, cfg.curriculum["steps"])
    callbacks.append(TrainingProgress(ramp))
    remaining = cfg.n_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(
            remaining,
            callback=CallbackList(callbacks),
            reset_num_timesteps=not resume,
            tb_log_name="train",
        )
    venv.close()
    return run


def _restore_replay_buffer(model: OffPolicyAlgorithm, path: Path) -> None:
    """Load the replay buffer saved with the last checkpoint; without it (a run copied without
    its buffers, a buffer that does not load or does not fit) the run resumes with an empty one
    and says so."""
    if not path.exists():
        log.warning("no %s: resuming with an empty replay buffer", path)
        return
    empty = model.replay_buffer
    try:
        model.load_replay_buffer(path)
        loaded = model.replay_buffer
        if loaded.observations.shape[1:] != empty.observations.shape[1:] or loaded.buffer_size != empty.buffer_size:
            raise ValueError(f"observations {loaded.observations.shape}, the run needs {empty.observations.shape}")
    except Exception as exc:  # whatever unpickling raises, the run can go on without the buffer
        model.replay_buffer = empty
        log.warning("cannot load %s (%s): resuming with an empty replay buffer", path, exc)
        return
    log.info("replay buffer restored: %d transitions", model.replay_buffer.size())


def _warm_start(
    model: BaseAlgorithm, venv: VecEnv, cfg: TrainConfig, init: Path, checkpoint: str = "best"
) -> dict[str, Any]:
    """Load checkpoint `checkpoint` (best or last) of run `init` into `model`; returns its provenance."""
    source = load_run_config(init)
    if (source.robot, source.algo) != (cfg.robot, cfg.algo):
        raise ValueError(f"cannot start a {cfg.robot}/{cfg.algo} run from {init}: a {source.robot}/{source.algo} run")
    history = (source.env.get("action_history", 1), cfg.env.get("action_history", 1))
    if history[0] != history[1]:
        raise ValueError(
            f"cannot start from {init}: its observation holds {history[0]} past actions, this one {history[1]}"
        )
    if source.normalize != cfg.normalize:
        raise ValueError(
            f"cannot start from {init}: observation normalisation {source.normalize}, here {cfg.normalize}"
        )
    old_task, new_task = RobotEnv(source.robot, **source.env).task, RobotEnv(cfg.robot, **cfg.env).task
    extensions = {o: getattr(new_task, o) for o in new_task.observation_extensions}
    for option, new in extensions.items():
        if (old := getattr(old_task, option)) > new:
            raise ValueError(f"cannot start from {init}: its observation holds more ({option} {old}, here {new})")
    # Only the extensions may tell the two observations apart: the new entries are then trailing ones.
    grown = RobotEnv(source.robot, **{**source.env, **extensions}).task.observation_high.size
    size, extra = old_task.observation_high.size, new_task.observation_high.size - old_task.observation_high.size
    if grown != size + extra:
        raise ValueError(
            f"cannot start from {init}: its observation has {size} entries, this one {size + extra}; "
            f"only {', '.join(extensions) or 'nothing'} may add to it"
        )
    path = init / "checkpoints" / f"{checkpoint}.zip"
    if not path.exists():
        raise ValueError(f"cannot start from {init}: no checkpoints/{checkpoint}.zip")
    _, params, variables = load_from_zip_file(path, device="cpu")
    stats = load_normalization(init, checkpoint)
    if extra:
        # Fresh optimiser states: the old ones' moments do not fit the wider layers.
        policy = _widen_input(params["policy"], model.policy.state_dict(), size, extra)
        model.set_parameters({"policy": policy}, exact_match=False, device="cpu")
        if stats is not None:
            # The new entries are of order 1 already: they enter as they are, until the running
            # statistics take them in.
            stats = {**stats, "mean": [*stats["mean"], *[0.0] * extra], "var": [*stats["var"], *[1.0] * extra]}
    else:
        model.set_parameters(params, exact_match=True, device="cpu")
    # set_parameters loads state dicts only; SAC's entropy coefficient is a bare tensor, and left at
    # its initial 1.0 (ten times a trained one) its bonus unlearns the policy in a few thousand updates.
    for name, value in (variables or {}).items():
        recursive_setattr(model, f"{name}.data", value.data)
    _restore_normalization(venv, stats)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    log.info("starting from %s (sha256 %s)", path, digest[:12])
    return {"run": str(init), "checkpoint": checkpoint, "sha256": digest}


def _widen_input(old: dict[str, Any], new: dict[str, Any], size: int, extra: int) -> dict[str, Any]:
    """`old` state dict for a model whose observation of `size` entries gained `extra` trailing
    ones (`Task.observation_extensions`): each first layer gets zero weights for them, inserted
    after the old observation's columns (a critic's action columns follow), so the widened network
    computes what the old one did."""
    out = {}
    for key, weight in old.items():
        target = new[key].shape
        if weight.shape == target:
            out[key] = weight
            continue
        if weight.ndim != 2 or target[0] != weight.shape[0] or target[1] != weight.shape[1] + extra:
            raise ValueError(f"cannot widen {key} from {tuple(weight.shape)} to {tuple(target)}")
        zeros = weight.new_zeros(weight.shape[0], extra)
        out[key] = torch.cat([weight[:, :size], zeros, weight[:, size:]], dim=1)
    return out


class RunPolicy:
    """A run's best checkpoint as a controller (SB3 predict, deterministic, with its normalisation)."""

    def __init__(self, run: Path, checkpoint: str = "best"):
        self.config = load_run_config(run)
        path = run / "checkpoints" / f"{checkpoint}.zip"
        if not path.exists():
            raise ValueError(f"{run} has no checkpoints/{checkpoint}.zip yet")
        self.model = ALGORITHMS[self.config.algo].load(path, device="cpu")
        self.stats = load_normalization(run, checkpoint)
        self.control_rate_hz = float(self.config.env.get("control_rate_hz", 100.0))
        self.action_history = int(self.config.env.get("action_history", 1))
        self.conditions = conditions_of(self.config.robot, self.config.env.get("task"), self.config.env)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.model.predict(normalize(obs, self.stats), deterministic=True)[0]
