"""The deploy-time policy runtime: an ONNX graph and its JSON metadata, run with onnxruntime.

It imports neither torch nor stable-baselines3 and never unpickles: an
artifact is `NAME.onnx` plus `NAME.json` (see `policies.export`), and the
graph's sha256 must match the metadata's before anything runs.

    policy = load_policy("zoo:pendubot")      # or a path to NAME.json / NAME.onnx
    action = policy.act(obs)                  # obs from sim.tasks.swingup.observation
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sim.tasks.task import conditions_of, tasks_of

FORMAT = "s2r-policy/1"
ZOO = Path(__file__).parent / "zoo"
REQUIRED = {
    "format": str,
    "robot": str,
    "algo": str,
    "control_rate_hz": (int, float),
    "observation": dict,
    "action": dict,
    "normalization": (dict, type(None)),
    "env": dict,
    "provenance": dict,
    "graph": dict,
}


MAX_OVERSHOOT = 10.0
"""An unsquashed action beyond this many half-widths of its bounds from their centre is not a
policy's output but a broken graph's (PPO's means stay within about 2 on the shipped policies)."""


class ArtifactError(ValueError):
    """A policy artifact is missing, malformed or tampered with."""


class PolicyOutputError(ValueError):
    """The graph returned something no trained policy returns: non-finite, or far out of bounds."""


def resolve(spec: str | Path) -> Path:
    """Path of an artifact's metadata JSON: `zoo:NAME`, NAME.json or NAME.onnx."""
    text = str(spec)
    if text.startswith("zoo:"):
        path = ZOO / f"{text[4:]}.json"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in ZOO.glob("*.json"))) or "none"
            raise ArtifactError(f"no shipped policy {text!r}; shipped: {shipped}")
        return path
    path = Path(spec)
    if path.suffix == ".onnx":
        path = path.with_suffix(".json")
    if not path.exists():
        raise ArtifactError(f"{path}: policy metadata not found")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_metadata(path: Path) -> dict[str, Any]:
    """Load and check the metadata JSON; raises ArtifactError naming what is wrong."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable policy metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path}: policy metadata must be a JSON object")
    for key, kind in REQUIRED.items():
        if key not in meta:
            raise ArtifactError(f"{path}: metadata lacks {key!r}")
        if not isinstance(meta[key], kind):
            raise ArtifactError(f"{path}: metadata {key!r} has the wrong type ({type(meta[key]).__name__})")
    if meta["format"] != FORMAT:
        raise ArtifactError(f"{path}: format {meta['format']!r}; this runtime reads {FORMAT!r}")
    for section, keys in (
        ("observation", ("size",)),
        ("action", ("size", "low", "high")),
        ("graph", ("file", "sha256")),
    ):
        for key in keys:
            if key not in meta[section]:
                raise ArtifactError(f"{path}: metadata {section} lacks {key!r}")
    size, m = meta["observation"]["size"], meta["action"]["size"]
    for what, value in (("observation size", size), ("action size", m)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
            raise ArtifactError(f"{path}: {what} must be an integer in [1, 4096], got {value!r}")
    low, high = (
        _numbers(path, "action low", meta["action"]["low"], m),
        _numbers(path, "action high", meta["action"]["high"], m),
    )
    if not (low < high).all():
        raise ArtifactError(f"{path}: action bounds must have low < high, got low {low.tolist()}, high {high.tolist()}")
    robot, task = meta["robot"], meta.get("task")
    try:
        known = tasks_of(robot)
    except ValueError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    if task is not None and task not in known:
        raise ArtifactError(f"{path}: the {robot} has no task {task!r} (its tasks: {', '.join(known)})")
    history = meta["observation"].get("action_history", 0)
    if isinstance(history, bool) or not isinstance(history, int) or not 0 <= history <= 64:
        raise ArtifactError(f"{path}: observation action_history must be an integer in [0, 64], got {history!r}")
    norm = meta["normalization"]
    if norm is not None:
        for key in ("mean", "var", "clip", "epsilon"):
            if key not in norm:
                raise ArtifactError(f"{path}: normalization lacks {key!r}")
        _numbers(path, "normalization mean", norm["mean"], size)
        if (_numbers(path, "normalization var", norm["var"], size) < 0).any():
            raise ArtifactError(f"{path}: normalization var must not be negative")
        for key in ("clip", "epsilon"):
            if (_numbers(path, f"normalization {key}", [norm[key]], 1) <= 0).any():
                raise ArtifactError(f"{path}: normalization {key} must be positive, got {norm[key]!r}")
    return meta


def _numbers(path: Path, what: str, values: Any, n: int) -> np.ndarray:
    """`values` as n finite floats, else ArtifactError naming `what`."""
    if not isinstance(values, list) or len(values) != n:
        raise ArtifactError(f"{path}: {what} must be a list of {n} numbers, got {values!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ArtifactError(f"{path}: {what} must hold numbers, got {values!r}")
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).all():
        raise ArtifactError(f"{path}: {what} must be finite, got {values!r}")
    return array


class OnnxPolicy:
    """A deployable policy: act(obs (observation size,)) -> action (action size,) in [low, high]."""

    def __init__(self, meta: dict[str, Any], graph: Path):
        self.meta = meta
        self.robot = meta["robot"]
        self.task: str | None = meta.get("task")
        """The task it was trained for; artifacts before tasks were named leave it out (the robot's only one)."""
        self.control_rate_hz = float(meta["control_rate_hz"])
        self.action_history = int(meta["observation"].get("action_history", 0))
        # What the observation and commands were made with (winding, friction compensation, action
        # level...): the robot must do the same.
        self.conditions = conditions_of(self.robot, self.task, meta["env"])
        self.low = np.asarray(meta["action"]["low"], dtype=np.float32)
        self.high = np.asarray(meta["action"]["high"], dtype=np.float32)
        self.squashed = bool(meta["action"].get("squashed", False))
        # tanh output u in [-1, 1] maps to offset + gain * u, as SB3's predict rescales it.
        self._gain = (0.5 * (self.high - self.low)).astype(np.float32)
        self._offset = (self.low + self._gain).astype(np.float32)
        # What the graph may return: tanh's [-1, 1] (a float32 ulp over), or near the bounds.
        self._centre = np.zeros_like(self._gain) if self.squashed else self._offset
        self._reach = np.full_like(self._gain, 1.0 + 1e-6) if self.squashed else MAX_OVERSHOOT * self._gain
        norm = meta["normalization"]
        self._mean = self._scale = None
        if norm is not None:
            self._mean = np.asarray(norm["mean"], dtype=np.float64)
            self._scale = 1.0 / np.sqrt(np.asarray(norm["var"], dtype=np.float64) + norm["epsilon"])
            self._clip = float(norm["clip"])
        options = ort.SessionOptions()
        # One thread that sleeps between calls: a control loop wants low, steady latency
        # and must not steal a core from the robot's other processes.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArtifactError(f"{graph}: not a loadable ONNX graph ({exc})") from exc
        self._size = int(meta["observation"]["size"])
        for arg, what, size in (
            (self._session.get_inputs()[0], "observation", self._size),
            (self._session.get_outputs()[0], "action", int(meta["action"]["size"])),
        ):
            if arg.shape and isinstance(arg.shape[-1], int) and arg.shape[-1] != size:
                raise ArtifactError(f"{graph}: the graph's {what} has {arg.shape[-1]} values; its metadata says {size}")
        # Input and output bound once to buffers we own: a call copies the observation in
        # and runs, with no allocation on the way (so one caller at a time).
        self._in = np.zeros((1, self._size), np.float32)
        self._out = np.zeros((1, int(meta["action"]["size"])), np.float32)
        self._binding = self._session.io_binding()
        for arg, buf, bind in (
            (self._session.get_inputs()[0], self._in, self._binding.bind_input),
            (self._session.get_outputs()[0], self._out, self._binding.bind_output),
        ):
            bind(arg.name, "cpu", 0, np.float32, buf.shape, buf.ctypes.data)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action (action size,) float32 for one observation (observation size,)."""
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        if obs.shape[0] != self._size:
            raise ValueError(f"observation has {obs.shape[0]} entries; the policy expects {self._size}")
        if self._mean is not None:
            obs = np.clip((obs - self._mean) * self._scale, -self._clip, self._clip)
        self._in[0] = obs
        self._session.run_with_iobinding(self._binding)
        raw = self._out[0]
        # Checked before any clipping or rescaling, which would turn inf or 1e9 into full torque.
        if not (np.isfinite(raw).all() and (np.abs(raw - self._centre) <= self._reach).all()):
            raise PolicyOutputError(
                f"the policy's graph returned {raw.tolist()}, not an action within "
                f"{'[-1, 1] (tanh)' if self.squashed else f'{MAX_OVERSHOOT:g} half-widths of its bounds'}"
            )
        if self.squashed:
            return self._offset + self._gain * raw
        return np.clip(raw, self.low, self.high)


def load_policy(spec: str | Path) -> OnnxPolicy:
    """Load `zoo:NAME` or an artifact path, checking metadata and the graph's sha256."""
    meta_path = resolve(spec)
    meta = read_metadata(meta_path)
    graph = meta_path.parent / meta["graph"]["file"]
    if not graph.exists():
        raise ArtifactError(f"{graph}: ONNX graph named by {meta_path} not found")
    digest = sha256(graph)
    if digest != meta["graph"]["sha256"]:
        raise ArtifactError(
            f"{graph}: sha256 {digest} does not match the metadata's {meta['graph']['sha256']}; refusing to load"
        )
    return OnnxPolicy(meta, graph)
