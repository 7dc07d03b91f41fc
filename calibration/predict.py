"""k-step prediction: the simulator started from recorded states and driven by recorded torques.

A double pendulum is chaotic, so replaying a whole run open loop diverges
within a second whatever the model. Instead the simulator starts afresh from
the measured state at many points of the run (windows), applies the torques
the robot received for a short horizon, and is compared with what was
measured. Gap metrics and calibration both stand on this.

The simulator is `sim.plant.Plant` without imperfections: the same MuJoCo
model, friction law and physics step the envs train on.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calibration.recording import Recording
from sim.imperfections import Imperfections
from sim.plant import PHYSICS_DT, Plant
from sim.robots import Robot
from sim.robots.params import PendulumParams


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted and measured states of W windows at the K samples after each window's start."""

    starts: np.ndarray
    """(W,) sample index where each window starts."""
    horizon_s: np.ndarray
    """(K,) mean time from a window's start to its k-th sample, s."""
    predicted: np.ndarray
    """(W, K, 2n) simulated [q rad, dq rad/s]."""
    measured: np.ndarray
    """(W, K, 2n) recorded [q rad, dq rad/s]."""

    @property
    def error(self) -> np.ndarray:
        """(W, K, 2n) predicted - measured."""
        return self.predicted - self.measured


def applied_torque(rec: Recording, t: np.ndarray, delay_s: float) -> np.ndarray:
    """Torque the robot felt over each physics step [t, t + 0.002) s, (len(t), n), N m.

    The recorded torque is held from one sample to the next and reaches the
    joints `delay_s` late; nothing acts before the recording starts. The mean
    over the step, not a sample, is used: it is continuous in the delay, so a
    fit can differentiate it.
    """
    T, U = rec.T, rec.U
    # Integral of the held torque at the sample times.
    knots = np.concatenate([np.zeros((1, rec.n)), np.cumsum(U[:-1] * np.diff(T)[:, None], axis=0)])

    def integral(x: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(T, x, side="right") - 1, 0, len(T) - 1)
        value = knots[i] + U[i] * (x - T[i])[:, None]
        value[x < T[0]] = 0.0
        return value

    a = np.asarray(t, dtype=float) - delay_s
    return (integral(a + PHYSICS_DT) - integral(a)) / PHYSICS_DT


def window_starts(rec: Recording, horizon_samples: int, stride_s: float) -> np.ndarray:
    """Sample indices where windows of `horizon_samples` samples start, about `stride_s` apart."""
    last = len(rec.T) - 1 - horizon_samples
    if last < 0:
        raise ValueError(f"{rec.name}: {len(rec.T)} samples, shorter than one {horizon_samples}-sample window")
    step = max(1, int(round(stride_s / rec.sample_period)))
    return np.arange(0, last + 1, step)


def horizon_samples(rec: Recording, horizon_s: float) -> int:
    """Samples of `rec` in a horizon of `horizon_s` seconds (at least one)."""
    return max(1, int(round(horizon_s / rec.sample_period)))


class Predictor:
    """Runs k-step predictions of one robot for any parameter set and delay."""

    def __init__(self, robot: Robot, params: PendulumParams):
        self.robot = robot
        self.plant = Plant(robot, params, Imperfections())
        self._rng = np.random.default_rng(0)  # nothing is random without imperfections

    def predict(
        self, rec: Recording, params: PendulumParams, starts: np.ndarray, k: int, delay_s: float = 0.0
    ) -> Prediction:
        """Simulate `k` samples from each start in `starts`, with torques `delay_s` s late."""
        plant, T = self.plant, rec.T
        plant.configure(params, Imperfections())
        predicted = np.empty((len(starts), k, 2 * rec.n))
        for w, i in enumerate(starts):
            offsets = T[i + 1 : i + k + 1] - T[i]
            steps = int(np.ceil(offsets[-1] / PHYSICS_DT - 1e-9))
            torques = applied_torque(rec, T[i] + PHYSICS_DT * np.arange(steps), delay_s)
            plant.reset(rec.X[i], self._rng, horizon_s=steps * PHYSICS_DT)
            # One plant.step per run of equal torques: one per sample period of a slow controller.
            edges = np.concatenate([[0], np.flatnonzero(np.any(np.diff(torques, axis=0) != 0, axis=1)) + 1, [steps]])
            for a, b in zip(edges[:-1], edges[1:], strict=False):
                plant.step(torques[a], int(b - a))
            X = plant.trajectory()[1]
            s = offsets / PHYSICS_DT
            lo = np.minimum(np.floor(s).astype(int), steps - 1)
            frac = (s - lo)[:, None]
            predicted[w] = X[lo] * (1.0 - frac) + X[lo + 1] * frac
        measured = np.stack([rec.X[i + 1 : i + k + 1] for i in starts])
        horizon = np.mean([T[i + 1 : i + k + 1] - T[i] for i in starts], axis=0)
        return Prediction(np.asarray(starts), horizon, predicted, measured)
