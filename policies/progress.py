"""The training progress line: steps, throughput, time left and the task's own figures.

    pendubot ppo  3.20M/40.0M steps  12.4k steps/s  49 min left | eval at 2.00M: success 45% v2 0.312

Redrawn in place on a terminal; a redirected log gets the evaluation lines the
training logs instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from stable_baselines3.common.callbacks import BaseCallback

REFRESH_S = 0.5
"""Seconds between redraws."""


def count(steps: float) -> str:
    """Steps as people read them: 950, 12.3k, 3.20M."""
    if steps >= 1e6:
        return f"{steps / 1e6:.2f}M"
    if steps >= 1e4:
        return f"{steps / 1e3:.1f}k"
    return f"{steps:.0f}"


def duration(seconds: float) -> str:
    """A wall time as people read it: 42 s, 7 min, 1 h 05 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def figures(record: dict[str, Any]) -> str:
    """An evaluation record (eval.jsonl's line) as 'success 45% v2 0.312, sim conditions 20% v2 0.120'."""
    # Runs trained before evaluations named their score kept the swing-up's v2 under v2_score.
    label = record.get("score_label", "v2")

    def one(prefix: str) -> str:
        score = record.get(prefix + "score", record.get(prefix + "v2_score"))
        return f"{record[prefix + 'success_rate']:.0%} {label} {'-' if score is None else f'{score:.3f}'}"

    text = f"success {one('')}"
    if "sim_success_rate" in record:
        text += f", sim conditions {one('sim_')}"
    return text


class ProgressLine(BaseCallback):
    """Redraw the progress line at most every REFRESH_S; `last_eval` returns the latest evaluation
    record or None."""

    def __init__(self, label: str, total: int, last_eval, stream: TextIO | None = None):
        super().__init__()
        self.label, self.total, self.last_eval = label, total, last_eval
        self.stream = stream or sys.stderr
        self.drawn = 0.0
        self.width = 0

    def _on_training_start(self) -> None:
        self.started, self.start_steps = time.monotonic(), self.num_timesteps

    def _on_step(self) -> bool:
        now = time.monotonic()
        if now - self.drawn >= REFRESH_S:
            self.drawn = now
            self.draw(now)
        return True

    def draw(self, now: float) -> None:
        done = self.num_timesteps - self.start_steps
        rate = done / max(now - self.started, 1e-9)
        line = f"{self.label}  {count(self.num_timesteps)}/{count(self.total)} steps  {count(rate)} steps/s"
        if rate > 0 and self.num_timesteps < self.total:
            line += f"  {duration((self.total - self.num_timesteps) / rate)} left"
        record = self.last_eval()
        if record is not None:
            line += f" | eval at {count(record['steps'])}: {figures(record)}"
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def _on_training_end(self) -> None:
        self.draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()
