"""Sim2real gap metrics of one recording against one or more parameter sets.

Every number is a plain float or list in the returned mappings, so that the
report's JSON carries all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from calibration.predict import Prediction, Predictor, horizon_samples, window_starts
from calibration.recording import Recording
from sim.dynamics import pendulum
from sim.robots import Robot
from sim.robots.params import PendulumParams

REPORT_HORIZON_S = 0.5
"""Longest prediction horizon of the report, s."""
MAX_DELAY_S = 0.2
"""Longest command-to-response delay the cross-correlation looks for, s."""


@dataclasses.dataclass(frozen=True)
class ModelUnderTest:
    """A parameter set and the delay (s) its torques reach the joints with."""

    params: PendulumParams
    delay_s: float = 0.0


def channel_names(robot: Robot) -> list[str]:
    """State channel names in X's column order."""
    return [f"{j}.position" for j in robot.joints] + [f"{j}.velocity" for j in robot.joints]


def channel_scale(recordings: list[Recording]) -> np.ndarray:
    """(2n,) standard deviation of each state channel over the recordings: the unit of normalised errors."""
    scale = np.concatenate([r.X for r in recordings]).std(axis=0)
    return np.where(scale > 0, scale, 1.0)


def kstep_rmse(pred: Prediction) -> np.ndarray:
    """(K, 2n) root mean square k-step error over the windows, per horizon and channel."""
    return np.sqrt(np.mean(pred.error**2, axis=0))


def normalised_error(pred: Prediction, scale: np.ndarray) -> float:
    """One figure for a prediction: the RMS over windows, horizons and channels of error / channel scale."""
    return float(np.sqrt(np.mean((pred.error / scale) ** 2)))


@dataclasses.dataclass(frozen=True)
class DelayEstimate:
    delay_s: float
    """Lag of the best correlation between commanded and motion-implied torque, s."""
    peak_correlation: float
    lags_s: np.ndarray
    correlation: np.ndarray


def estimate_delay(
    robot: Robot, params: PendulumParams, rec: Recording, max_delay_s: float = MAX_DELAY_S
) -> DelayEstimate | None:
    """Delay between the commanded torque and the robot's response, by cross-correlation.

    The response is the torque the measured motion implies (inverse dynamics,
    M(q) ddq + C dq - G + F, with ddq the mean acceleration between samples);
    it is correlated with the recorded torque of the actuated joints at lags
    0..max_delay_s and the peak refined by a parabola through its neighbours.
    None when the actuated joints' torque or motion never changes: no delay shows.
    """
    T, X, n = rec.T, rec.X, rec.n
    dt = np.diff(T)
    ddq = np.diff(X[:, n:], axis=0) / dt[:, None]
    mid = 0.5 * (X[1:] + X[:-1])
    implied = np.array(
        [
            pendulum.mass_matrix(params, x[:n]) @ a + pendulum.bias(params, x[:n], x[n:])
            for x, a in zip(mid, ddq, strict=True)
        ]
    )
    active = np.flatnonzero(robot.actuated)
    u = rec.U[:-1, active] - rec.U[:-1, active].mean(axis=0)
    y = implied[:, active] - implied[:, active].mean(axis=0)
    period = rec.sample_period
    lags = np.arange(min(int(round(max_delay_s / period)), len(u) // 2) + 1)
    norm = np.sqrt(np.sum(u**2) * np.sum(y**2)) / len(u)
    if norm == 0:
        return None
    corr = np.array([np.sum(u[: len(u) - k] * y[k:]) / (len(u) - k) for k in lags]) / norm
    best = int(np.argmax(corr))
    offset = 0.0
    if 0 < best < len(lags) - 1:
        a, b, c = corr[best - 1 : best + 2]
        if a - 2 * b + c < 0:
            offset = 0.5 * (a - c) / (a - 2 * b + c)
    return DelayEstimate(float((best + offset) * period), float(corr[best]), lags * period, corr)


def analyse(
    robot: Robot,
    rec: Recording,
    models: Mapping[str, ModelUnderTest],
    horizon_s: float = REPORT_HORIZON_S,
    stride_s: float = 0.1,
) -> tuple[dict, dict[str, Prediction]]:
    """Gap metrics of `rec` against each model: k-step RMSE per horizon and channel, per-channel RMSE
    and normalised RMSE over all horizons, the normalised k-step error, and the estimated delay.
    Returns the metrics (JSON-ready) and each model's predictions (for plots)."""
    k = horizon_samples(rec, horizon_s)
    starts = window_starts(rec, k, stride_s)
    scale = channel_scale([rec])
    channels = channel_names(robot)
    first = next(iter(models.values()))
    predictor = Predictor(robot, first.params)
    delay = estimate_delay(robot, first.params, rec)
    result: dict = {
        "recording": rec.name,
        "samples": len(rec.T),
        "duration_s": rec.duration,
        "sample_period_s": rec.sample_period,
        "windows": len(starts),
        "horizon_s": [float(h) for h in np.mean([rec.T[i + 1 : i + k + 1] - rec.T[i] for i in starts], axis=0)],
        "channels": channels,
        "channel_scale": scale.tolist(),
        "delay": {
            "estimate_s": delay.delay_s if delay else None,
            "peak_correlation": delay.peak_correlation if delay else None,
            "method": "cross-correlation of commanded torque with the torque implied by the measured motion",
            "lags_s": delay.lags_s.tolist() if delay else [],
            "correlation": delay.correlation.tolist() if delay else [],
        },
        "models": {},
    }
    predictions = {}
    for name, model in models.items():
        pred = predictor.predict(rec, model.params, starts, k, model.delay_s)
        predictions[name] = pred
        per_horizon = kstep_rmse(pred)
        rmse = np.sqrt(np.mean(pred.error**2, axis=(0, 1)))
        result["models"][name] = {
            "delay_s": model.delay_s,
            "normalised_kstep_error": normalised_error(pred, scale),
            "kstep_rmse": {c: per_horizon[:, i].tolist() for i, c in enumerate(channels)},
            "rmse": dict(zip(channels, rmse.tolist(), strict=True)),
            "nrmse": dict(zip(channels, (rmse / scale).tolist(), strict=True)),
        }
    return result, predictions
