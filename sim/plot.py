"""A PNG of a trajectory: joint positions, velocities and commands over time, faults marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_trajectory(
    T: np.ndarray,
    X: np.ndarray,
    U: np.ndarray,
    joints: Sequence[str],
    path: str | Path,
    faults: Sequence[tuple[float, str]] = (),
    title: str = "",
    stops: float | None = None,
) -> Path:
    """Write a PNG of T (N,) s, X (N, 2n) [positions rad, velocities rad/s], U (N, n) commands N m of
    `joints`, with each fault (time s, reason) a red line and the position stops (+-`stops` rad)
    dotted when the run came near them; returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # files, not windows
    import matplotlib.pyplot as plt

    n = len(joints)
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(9, 7), constrained_layout=True)
    rows = ((X[:, :n], "position (rad)"), (X[:, n : 2 * n], "velocity (rad/s)"), (U, "command (N m)"))
    for ax, (values, label) in zip(axes, rows, strict=True):
        for i, joint in enumerate(joints):
            ax.plot(T, values[:, i], label=joint, linewidth=1.2)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if stops is not None and np.abs(X[:, :n]).max() > 0.5 * stops:
        for limit in (-stops, stops):
            axes[0].axhline(limit, color="0.5", linestyle=":", linewidth=1)
    for t, reason in faults:
        for ax in axes:
            ax.axvline(t, color="tab:red", linestyle="--", linewidth=1)
        label = axes[0].text(
            t, 0.97, reason[:60], transform=axes[0].get_xaxis_transform(), rotation=90, va="top", ha="right"
        )
        label.set(fontsize=7, color="tab:red", in_layout=False, clip_on=True)
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
