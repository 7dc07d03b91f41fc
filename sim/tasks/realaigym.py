"""RealAIGym scores (v1, v2, v3) and the competition's trajectory CSV format.

Definitions follow the competition's specification, which matches the official
leaderboard code (dfki-ric-underactuated-lab/double_pendulum,
analysis/leaderboard.py): a trajectory is T (N,) s, X (N, 2n) = [q, dq] and
U (N, n) commanded torques in N m; U[k] acts from T[k] to T[k+1].
"""

from __future__ import annotations

import array
import csv
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

T_FINAL = 10.0
"""Length of a swing-up run, s."""
UP_FRACTION = 0.9
"""The tip is "up" above this fraction of the reach (the scorer's height method)."""

# (weight, normalisation) of v1, in the spec's order.
V1 = {
    "swingup_time": (0.2, 10.0),
    "max_tau": (0.1, 6.0),
    "energy": (0.1, 100.0),
    "integ_tau": (0.1, 60.0),
    "tau_cost": (0.1, 360.0),
    "tau_smoothness": (0.2, 12.0),
    "velocity_cost": (0.2, 1000.0),
}
V2_NORMALISATION = {
    "sim": {"swingup_time": 20.0, "energy": 60.0, "tau_cost": 20.0, "tau_smoothness": 0.1, "velocity_cost": 400.0},
    "real": {"swingup_time": 20.0, "energy": 60.0, "tau_cost": 100.0, "tau_smoothness": 4.0, "velocity_cost": 400.0},
}
V3_T_FINAL = 60.0
"""Length of a v3 run (random resets), s."""
DOUBLE_PENDULUM_LENGTHS = (0.2, 0.3)
"""Link lengths of design C.1, m: what the scorer's height test uses by default."""


class Trajectory(NamedTuple):
    """A recorded run: T (N,) s, X (N, 2n) [q rad, dq rad/s], U (N, n) commanded torques, N m."""

    T: np.ndarray
    X: np.ndarray
    U: np.ndarray


class TrajectoryError(ValueError):
    """A trajectory file or array is unusable for scoring."""


def up_mask(X: np.ndarray, lengths: tuple[float, ...]) -> np.ndarray:
    """Per sample: is the tip above UP_FRACTION of the reach? (N,) bool."""
    n = len(lengths)
    angle = np.cumsum(X[:, :n], axis=1)
    height = -np.sum(np.asarray(lengths) * np.cos(angle), axis=1)
    return height > UP_FRACTION * sum(lengths)


def swingup_time(T: np.ndarray, X: np.ndarray, lengths: tuple[float, ...], t_final: float = T_FINAL) -> float:
    """Start of the final unbroken "up" run, s; inf if the run ended before 0.99 t_final.

    Walks back from the second-to-last sample as the official scorer does; if
    that sample is not up, the result is T[-1] (no success).
    """
    if T[-1] < 0.99 * t_final:
        return math.inf
    up = up_mask(X, lengths)
    index = len(T) - 1
    for i in range(len(up) - 2, 0, -1):
        if not up[i]:
            break
        index = i
    return float(T[index])


def criteria(
    traj: Trajectory, lengths: tuple[float, ...] = DOUBLE_PENDULUM_LENGTHS, t_final: float = T_FINAL
) -> dict[str, float]:
    """Every performance criterion of the spec for one trajectory."""
    T, X, U = traj
    n = U.shape[1]
    dt = np.diff(T)
    q, dq = X[:, :n], X[:, n:]
    t_up = swingup_time(T, X, lengths, t_final)
    up = up_mask(X, lengths)
    steps = np.diff(np.concatenate([[0.0], T]))
    return {
        "swingup_time": t_up,
        "success": float(t_up < T[-1]),
        "energy": float(np.sum(np.abs(np.diff(q, axis=0) * U[:-1]))),
        "max_tau": float(np.max(np.abs(U))),
        "integ_tau": float(np.sum(np.abs(U[:-1]) * dt[:, None])),
        "tau_cost": float(np.sum(np.sum(U[:-1] ** 2, axis=1) * dt)),
        "tau_smoothness": float(np.sum(np.std(np.diff(U, axis=0), axis=0))),
        "velocity_cost": float(np.sum(np.sum(dq[:-1] ** 2, axis=1) * dt)),
        "uptime": float(np.sum(steps[up])),
    }


def score_v1(c: dict[str, float]) -> float:
    if not c["success"]:
        return 0.0
    return 1.0 - sum(w * c[k] / norm for k, (w, norm) in V1.items())


def score_v2(c: dict[str, float], stage: str = "sim") -> float:
    """v2 (IROS 2024); stage 'sim' or 'real' picks the normalisation."""
    if stage not in V2_NORMALISATION:
        raise ValueError(f"unknown stage {stage!r}; expected 'sim' or 'real'")
    if not c["success"]:
        return 0.0
    norms = V2_NORMALISATION[stage]
    return 1.0 - sum(np.tanh(np.pi * c[k] / norm) for k, norm in norms.items()) / len(norms)


def score_v3(c: dict[str, float], t_final: float = V3_T_FINAL) -> float:
    """v3 (ICRA 2025): fraction of the run spent up."""
    return c["uptime"] / t_final


def score(
    traj: Trajectory, version: str = "v2", stage: str = "sim", lengths: tuple[float, ...] = DOUBLE_PENDULUM_LENGTHS
) -> dict[str, float]:
    """Criteria plus `score` for one trajectory, as the competition computes them."""
    t_final = V3_T_FINAL if version == "v3" else T_FINAL
    c = criteria(traj, lengths, t_final)
    if version == "v1":
        c["score"] = score_v1(c)
    elif version == "v2":
        c["score"] = float(score_v2(c, stage))
    elif version == "v3":
        c["score"] = score_v3(c, t_final)
    else:
        raise ValueError(f"unknown score version {version!r}; expected v1, v2 or v3")
    return c


def load_trajectory_csv(path: str | Path) -> Trajectory:
    """Read RealAIGym's trajectory CSV: time, pos_meas1.., vel_meas1.., tau_con1..

    Raises TrajectoryError naming the file and the column or row at fault.
    """
    path = Path(path)
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as f:
            data = _read_csv(path, csv.reader(f))
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise TrajectoryError(f"{path}: not a text CSV ({exc.reason} at byte {exc.start})") from None
    n = (data.shape[1] - 1) // 3
    T = data[:, 0]
    if np.any(np.diff(T) <= 0):
        r = int(np.argmax(np.diff(T) <= 0)) + 3
        raise TrajectoryError(f"{path}: line {r}: time does not increase")
    return Trajectory(T, data[:, 1 : 1 + 2 * n], data[:, 1 + 2 * n :])


def _read_csv(path: Path, reader) -> np.ndarray:
    """The wanted columns of a trajectory CSV, (N, columns), parsed row by row so that a malformed
    file fails at its first bad line rather than after being read whole."""
    try:
        header = [h.strip() for h in next(reader, [])]
        n = 2 if "pos_meas2" in header else 1
        wanted = ["time"] + [f"{kind}{i}" for kind in ("pos_meas", "vel_meas", "tau_con") for i in range(1, n + 1)]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise TrajectoryError(
                f"{path}: missing column(s) {', '.join(missing)}; RealAIGym CSVs have {', '.join(wanted)}"
            )
        index = [header.index(c) for c in wanted]
        values = array.array("d")
        for r, row in enumerate(reader, start=2):
            try:
                sample = [float(row[i]) for i in index]
            except (ValueError, IndexError):
                raise TrajectoryError(
                    f"{path}: line {r}: expected {len(header)} numeric fields, got {row!r:.200}"
                ) from None
            if not all(math.isfinite(v) for v in sample):
                bad = [c for c, v in zip(wanted, sample, strict=True) if not math.isfinite(v)]
                raise TrajectoryError(f"{path}: line {r}: non-finite value in {', '.join(bad)}")
            values.extend(sample)
    except csv.Error as exc:
        raise TrajectoryError(f"{path}: line {reader.line_num}: not a CSV row ({exc})") from None
    data = np.frombuffer(values, dtype=float).reshape(-1, len(wanted)).copy()
    if len(data) < 2:
        raise TrajectoryError(f"{path}: expected a header and at least 2 samples, got {len(data)} samples")
    return data


def write_trajectory_csv(path: str | Path, traj: Trajectory) -> None:
    """Write a trajectory in RealAIGym's CSV columns (measured = true state in simulation)."""
    T, X, U = traj
    n = U.shape[1]
    header = ["time"] + [f"{kind}{i}" for kind in ("pos_meas", "vel_meas", "tau_con") for i in range(1, n + 1)]
    np.savetxt(path, np.column_stack([T, X, U]), delimiter=",", header=",".join(header), comments="", fmt="%.18e")
