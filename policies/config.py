"""Training configuration: one YAML file per robot and algorithm, close to the RL Zoo's format.

    # policies/configs/pendulum/sac.yaml
    algo: sac                 # ppo | sac | td3 | crossq
    n_timesteps: 20000        # total env steps (all envs together)
    policy: MlpPolicy
    n_envs: 1                 # vectorised envs
    batched: false            # true: all envs in one numpy batch (sim.batched), not one MuJoCo env each
    normalize: false          # observation normalisation; its statistics travel with the policy
    seed: 0
    env:                      # options of sim.env.RobotEnv
      params: model_1.0
      control_rate_hz: 20
      imperfections: true     # or a mapping of sim.imperfections.Imperfections fields
      randomization: pendulum # a shipped name or a YAML path; null for none
      randomization_intensity: 1.0
      action_history: 1
      observe_winding: false  # the observation also holds each joint's turns (distance to the stops)
      friction_compensation: false  # passive joints' motors cancel friction, as on the real robot
    curriculum:               # optional, training episodes only:
      start: 0.0              #   randomisation intensity rises linearly from this
      steps: 100000           #   to env.randomization_intensity over these steps
      upright_starts: 0.0     #   fraction of episodes starting near upright (evaluation always hangs)
      ideal_episodes: 0.0     #   fraction without friction, rotor inertia and imperfections
      imperfections: {pulses_per_joint: 3}  # replaces env.imperfections in training episodes
      init_spread: 1.0        #   a flight's start spread (evaluation: the route's own)
    eval:
      freq: 5000              # env steps between evaluations
      episodes: 10            # fixed seeded episodes, scored with the task's own score
      sim_conditions: false   # also evaluate in the competition's simulation conditions (model 1.1, no stops)
    hyperparams:              # keyword arguments of the stable-baselines3 algorithm
      learning_rate: 1.0e-3
      policy_kwargs: {net_arch: [64, 64]}

Unknown keys, wrong types and bad ranges are errors naming the file and key.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from pathlib import Path
from typing import Any

from sim.config import ConfigError, as_float, check_keys, load_yaml
from sim.env import RobotEnv, _simulation
from sim.robots import ROBOTS, load_robot_params, robot_names
from sim.tasks.task import default_task, task_options, tasks_of

ALGOS = ("ppo", "sac", "td3", "crossq")
"""SB3's PPO, SAC and TD3; sb3-contrib's CrossQ."""
CONFIG_DIR = Path(__file__).parent / "configs"
ENV_KEYS = ("task", "params", "control_rate_hz", "imperfections", "randomization", "randomization_intensity")
"""`env:` keys every robot takes; its task's options (`sim.tasks.task.task_options`) join them."""
TOP_KEYS = (
    "algo",
    "n_timesteps",
    "policy",
    "n_envs",
    "batched",
    "normalize",
    "seed",
    "env",
    "curriculum",
    "eval",
    "hyperparams",
)

TRAINING_EPISODE_OPTIONS = ("upright_starts", "ideal_episodes", "imperfections", "init_spread")
"""`curriculum:` keys passed to the training envs' RobotEnv, never to the evaluation envs."""


@dataclasses.dataclass
class TrainConfig:
    """A validated training configuration."""

    robot: str
    algo: str
    n_timesteps: int
    policy: str = "MlpPolicy"
    n_envs: int = 1
    batched: bool = False
    """Train on `sim.batched.make_batched` (every env in one numpy batch); evaluation stays on MuJoCo."""
    normalize: bool = False
    seed: int = 0
    env: dict[str, Any] = dataclasses.field(default_factory=dict)
    curriculum: dict[str, Any] | None = None
    eval: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"freq": 10000, "episodes": 10, "sim_conditions": False}
    )
    hyperparams: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The resolved configuration, as written into a run directory (robot included)."""
        return copy.deepcopy(dataclasses.asdict(self))


MAX_ENVS = 256
"""Most per-process MuJoCo envs a run may ask for: each holds a model and data, and hundreds of
thousands fill the machine's memory before training starts."""
MAX_BATCHED_ENVS = 16384
"""Most envs of one batch: beyond it the batch's arrays outgrow the caches for no gain."""
MAX_ACTION_HISTORY = 64
MAX_TIMESTEPS = 10**10

HYPERPARAM_RANGES: dict[str, tuple[float, float]] = {
    "learning_rate": (0.0, 1.0),
    "gamma": (0.0, 1.0),
    "gae_lambda": (0.0, 1.0),
    "tau": (0.0, 1.0),
    "batch_size": (1, 2**20),
    "n_steps": (1, 2**20),
    "n_epochs": (1, 1000),
    "buffer_size": (1, 10**7),
    "learning_starts": (0, 10**9),
    "clip_range": (0.0, 10.0),
    "ent_coef": (0.0, 10.0),
    "vf_coef": (0.0, 100.0),
    "max_grad_norm": (0.0, 1e6),
    "policy_delay": (1, 1000),
    "target_policy_noise": (0.0, 10.0),
    "target_noise_clip": (0.0, 10.0),
    "target_update_interval": (1, 10**6),
}
"""Ranges of the SB3 arguments a config sets most (inclusive): a gamma of 2 or a batch of 0 fails
only minutes into training, or never does and trains nothing."""


def _int(value: Any, source: str | Path, key: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
        raise ConfigError(source, key, f"expected an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(source, key, f"expected an integer in [{low}, {high}], got {value!r}")
    return int(value)


def default_config_path(robot: str, algo: str) -> Path:
    return CONFIG_DIR / robot / f"{algo}.yaml"


def load_config(robot: str, path: str | Path | None = None, algo: str | None = None) -> TrainConfig:
    """Load and validate a training config; by default policies/configs/<robot>/<algo>.yaml."""
    if robot not in robot_names():
        raise ValueError(f"unknown robot {robot!r}; expected one of {', '.join(robot_names())}")
    if path is None:
        if algo is None:
            raise ValueError("give an algorithm or a config file")
        path = default_config_path(robot, algo)
        if not path.exists():
            raise ConfigError(path, "", f"no shipped config for {robot} with {algo}; pass --config FILE")
    return config_from_dict(robot, load_yaml(path), path, algo)


def config_from_dict(robot: str, data: dict[str, Any], source: str | Path, algo: str | None = None) -> TrainConfig:
    """Validate a parsed config. `algo`, when given, must agree with the file's."""
    check_keys(data, TOP_KEYS, source)
    file_algo = data.get("algo", algo)
    if file_algo not in ALGOS:
        raise ConfigError(source, "algo", f"expected one of {', '.join(ALGOS)}, got {file_algo!r}")
    if algo is not None and algo != file_algo:
        raise ConfigError(source, "algo", f"the file is for {file_algo}, but --algo {algo} was asked for")
    if "n_timesteps" not in data:
        raise ConfigError(source, "n_timesteps", "missing; expected the number of env steps to train for")
    cfg = TrainConfig(
        robot=robot, algo=file_algo, n_timesteps=_int(data["n_timesteps"], source, "n_timesteps", 1, MAX_TIMESTEPS)
    )
    cfg.policy = data.get("policy", cfg.policy)
    if cfg.policy != "MlpPolicy":
        raise ConfigError(source, "policy", f"expected MlpPolicy (the exportable policy), got {cfg.policy!r}")
    batched = data.get("batched", False)
    if not isinstance(batched, bool):
        raise ConfigError(source, "batched", f"expected true or false, got {batched!r}")
    cfg.batched = batched
    cfg.n_envs = _int(data.get("n_envs", 1), source, "n_envs", 1, MAX_BATCHED_ENVS if batched else MAX_ENVS)
    cfg.seed = _int(data.get("seed", 0), source, "seed", 0, 2**32 - 1)
    normalize = data.get("normalize", False)
    if not isinstance(normalize, bool):
        raise ConfigError(source, "normalize", f"expected true or false, got {normalize!r}")
    cfg.normalize = normalize

    env = data.get("env", {}) or {}
    if not isinstance(env, dict):
        raise ConfigError(source, "env", f"expected a mapping of env options, got {env!r}")
    task = env.get("task") or default_task(robot)
    if task not in tasks_of(robot):
        raise ConfigError(source, "env.task", f"{robot} has no task {task!r}; its tasks: {', '.join(tasks_of(robot))}")
    check_keys(env, [*ENV_KEYS, *task_options(robot, task)], source, prefix="env.")
    _, imperfection_type, load_randomization = _simulation(robot)
    if "params" in env:
        try:
            load_robot_params(robot, env["params"])
        except ConfigError as exc:
            raise ConfigError(source, "env.params", exc.problem or str(exc)) from exc
    if "control_rate_hz" in env:
        rate = as_float(env["control_rate_hz"], source, "env.control_rate_hz", low=1.0, high=500.0)
        if abs(round(500.0 / rate) * rate - 500.0) > 1e-6:
            raise ConfigError(source, "env.control_rate_hz", f"expected 500 Hz divided by a whole number, got {rate}")
    if "imperfections" in env:
        _imperfections(imperfection_type, env["imperfections"], source, "env.imperfections")
    if env.get("randomization") is not None:
        try:
            load_randomization(env["randomization"])
        except ConfigError as exc:
            raise ConfigError(source, "env.randomization", f"{env['randomization']!r}: {exc}") from exc
    if "randomization_intensity" in env:
        as_float(env["randomization_intensity"], source, "env.randomization_intensity", 0.0, 1.0)
    if "action_history" in env:
        _int(env["action_history"], source, "env.action_history", 0, MAX_ACTION_HISTORY)
    for key in ("observe_winding", "friction_compensation", "safety_stops"):
        if key in env and not isinstance(env[key], bool):
            raise ConfigError(source, f"env.{key}", f"expected true or false, got {env[key]!r}")
    try:  # what only the task knows to check (its option values), checked where it is built
        RobotEnv(robot, **env)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, "env", str(exc)) from exc
    cfg.env = dict(env)

    curriculum = data.get("curriculum")
    if curriculum is not None:
        if not isinstance(curriculum, dict):
            raise ConfigError(
                source,
                "curriculum",
                f"expected a mapping of {', '.join(['start', 'steps', *TRAINING_EPISODE_OPTIONS])}, got {curriculum!r}",
            )
        check_keys(curriculum, ["start", "steps", *TRAINING_EPISODE_OPTIONS], source, prefix="curriculum.")
        cfg.curriculum = {}
        if "steps" in curriculum:
            if env.get("randomization") is None:
                raise ConfigError(
                    source, "curriculum", "a curriculum raises the randomisation intensity: set env.randomization"
                )
            cfg.curriculum["start"] = as_float(curriculum.get("start", 0.0), source, "curriculum.start", 0.0, 1.0)
            cfg.curriculum["steps"] = _int(curriculum["steps"], source, "curriculum.steps", 1)
        elif "start" in curriculum:
            raise ConfigError(source, "curriculum.steps", "missing; the intensity rises from start over these steps")
        for key in ("upright_starts", "ideal_episodes", "init_spread"):
            if key in curriculum:
                cfg.curriculum[key] = as_float(curriculum[key], source, f"curriculum.{key}", 0.0, 1.0)
        if "imperfections" in curriculum:
            _imperfections(imperfection_type, curriculum["imperfections"], source, "curriculum.imperfections")
            cfg.curriculum["imperfections"] = curriculum["imperfections"]

    evaluation = data.get("eval", {}) or {}
    if not isinstance(evaluation, dict):
        raise ConfigError(source, "eval", f"expected a mapping with freq and episodes, got {evaluation!r}")
    check_keys(evaluation, ["freq", "episodes", "sim_conditions"], source, prefix="eval.")
    sim_conditions = evaluation.get("sim_conditions", False)
    if not isinstance(sim_conditions, bool):
        raise ConfigError(source, "eval.sim_conditions", f"expected true or false, got {sim_conditions!r}")
    if sim_conditions and robot not in ROBOTS:
        raise ConfigError(source, "eval.sim_conditions", "the competitions' conditions are the pendulum family's")
    cfg.eval = {
        "freq": _int(evaluation.get("freq", 10000), source, "eval.freq", 1),
        "episodes": _int(evaluation.get("episodes", 10), source, "eval.episodes", 1),
        "sim_conditions": sim_conditions,
    }

    hyperparams = data.get("hyperparams", {}) or {}
    if not isinstance(hyperparams, dict):
        raise ConfigError(source, "hyperparams", f"expected a mapping of algorithm arguments, got {hyperparams!r}")
    defaults = _algorithm_arguments(cfg.algo)
    check_keys(hyperparams, list(defaults), source, prefix="hyperparams.")
    for key, value in hyperparams.items():
        _check_like_default(value, defaults[key], source, f"hyperparams.{key}")
        if key in HYPERPARAM_RANGES and isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = HYPERPARAM_RANGES[key]
            if not low <= value <= high:
                raise ConfigError(
                    source, f"hyperparams.{key}", f"expected a value in [{low:g}, {high:g}], got {value!r}"
                )
    cfg.hyperparams = dict(hyperparams)
    return cfg


def _imperfections(kind: type, value: Any, source: str | Path, key: str) -> None:
    """Check a robot's imperfections entry (True, False or a mapping of its fields)."""
    try:
        kind.resolve(value)
    except ConfigError as exc:
        raise ConfigError(source, f"{key}.{exc.key}" if exc.key else key, exc.problem) from exc


def algorithm_class(algo: str) -> type:
    """The algorithm class of `algo` (one of ALGOS)."""
    if algo == "crossq":
        from sb3_contrib import CrossQ

        return CrossQ
    import stable_baselines3

    return getattr(stable_baselines3, algo.upper())


def _algorithm_arguments(algo: str) -> dict[str, Any]:
    """Constructor arguments of the SB3 algorithm that a config may set, with their defaults."""
    cls = algorithm_class(algo)
    reserved = {"self", "policy", "env", "seed", "tensorboard_log", "verbose", "device", "_init_setup_model"}
    params = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in params.items() if name not in reserved}


def _check_like_default(value: Any, default: Any, source: str | Path, key: str) -> None:
    """Numbers and flags must have their default's type; SB3 would only fail mid-training."""
    if key.endswith("train_freq") and isinstance(value, list):
        if len(value) != 2 or not isinstance(value[0], int) or value[1] not in ("step", "episode"):
            raise ConfigError(source, key, f"expected N or [N, step|episode], got {value!r}")
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, got {value!r}")
    elif isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(source, key, f"expected a number, got {value!r}")
