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


class ArtifactError(ValueError):
    """A policy artifact is missing, malformed or tampered with."""


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
    m = meta["action"]["size"]
    if len(meta["action"]["low"]) != m or len(meta["action"]["high"]) != m:
        raise ArtifactError(f"{path}: action low/high must have {m} entries")
    norm = meta["normalization"]
    if norm is not None:
        size = meta["observation"]["size"]
        for key in ("mean", "var", "clip", "epsilon"):
            if key not in norm:
                raise ArtifactError(f"{path}: normalization lacks {key!r}")
        if len(norm["mean"]) != size or len(norm["var"]) != size:
            raise ArtifactError(f"{path}: normalization mean/var must have {size} entries")
    return meta


class OnnxPolicy:
    """A deployable policy: act(obs (observation size,)) -> action (action size,) in [low, high]."""

    def __init__(self, meta: dict[str, Any], graph: Path):
        self.meta = meta
        self.robot = meta["robot"]
        self.control_rate_hz = float(meta["control_rate_hz"])
        self.action_history = int(meta["observation"].get("action_history", 0))
        self.observe_winding = bool(meta["observation"].get("winding", False))
        # Trained with the passive joints' motors cancelling friction: the robot must do the same.
        self.friction_compensation = bool(meta["env"].get("friction_compensation", False))
        self.low = np.asarray(meta["action"]["low"], dtype=np.float32)
        self.high = np.asarray(meta["action"]["high"], dtype=np.float32)
        self.squashed = bool(meta["action"].get("squashed", False))
        # tanh output u in [-1, 1] maps to offset + gain * u, as SB3's predict rescales it.
        self._gain = (0.5 * (self.high - self.low)).astype(np.float32)
        self._offset = (self.low + self._gain).astype(np.float32)
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
