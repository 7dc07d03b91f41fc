"""System identification of pendulum parameters from recorded runs, with mujoco.sysid.

The residual is the k-step prediction error (calibration.predict) over short
windows that tile every recording, each channel divided by its spread in the
data: multiple shooting, since one rollout of a whole chaotic run would not
fit anything. mujoco.sysid supplies the parameter bookkeeping (`Parameter`,
`ParameterDict`), the bounded Gauss-Newton solver (`optimize`, MuJoCo's
least squares) and the confidence intervals (`calculate_intervals`).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from calibration.gap import channel_scale, estimate_delay
from calibration.predict import Predictor, horizon_samples, window_starts
from calibration.recording import Recording
from sim.robots import Robot
from sim.robots.params import PendulumParams

log = logging.getLogger(__name__)

FIT_HORIZON_S = 0.3
"""Length of one shooting window, s: long enough for the parameters to show, short enough not to diverge."""
FIT_STRIDE_S = 0.15
"""Time between window starts, s."""
MAX_DELAY_S = 0.1


def _sysid() -> Any:
    missing = ModuleNotFoundError("calibration needs mujoco's sysid extra: pip install 's2r[calibrate]'")
    try:
        import mujoco.sysid as sysid
    except ImportError:
        raise missing from None
    # mujoco.sysid swallows its missing optional dependencies and then lacks its API.
    if not hasattr(sysid, "optimize"):
        raise missing
    return sysid


def fittable(robot: Robot) -> list[str]:
    """Names `calibrate` accepts for this robot: its parameters (`Robot.parameter_names`: per joint
    `JOINT.m`, `.r`, `.I`, `.b`, `.cf`; `Ir`, `km`) and `delay`."""
    return robot.parameter_names() + ["delay"]


def _bounds(name: str, nominal: float) -> tuple[float, float]:
    """Search range of a parameter around its starting value."""
    kind = name.rpartition(".")[2]
    if kind in ("m", "r", "I"):
        return 0.5 * nominal, 1.5 * nominal
    if kind == "b":
        return 0.0, max(0.5, 2 * nominal)
    if kind == "cf":
        return 0.0, max(1.0, 2 * nominal)
    if kind == "Ir":
        return 0.0, max(1e-3, 2 * nominal)
    if kind == "km":
        return 0.5, 1.5
    return 0.0, MAX_DELAY_S  # delay


def _value(robot: Robot, params: PendulumParams, delay_s: float, name: str) -> float:
    return delay_s if name == "delay" else robot.parameter(params, name)


def with_values(robot: Robot, params: PendulumParams, values: dict[str, float]) -> tuple[PendulumParams, float]:
    """`params` with the named values changed, and the delay (s) among them (0 if not named).

    A link's inertia about its joint is kept at least m r^2 (+0.1 %), so that
    every candidate is a physical body.
    """
    changed = robot.with_parameters(params, {k: v for k, v in values.items() if k != "delay"})
    inertia = tuple(max(i, 1.001 * m * r**2) for i, m, r in zip(changed.I, changed.m, changed.r, strict=True))
    return changed.replace(I=inertia), values.get("delay", 0.0)


@dataclasses.dataclass(frozen=True)
class Estimate:
    name: str
    start: float
    value: float
    ci95: float
    """Half width of the 95 % confidence interval (inf: the data do not constrain it)."""
    low: float
    high: float
    identified: bool
    note: str


@dataclasses.dataclass(frozen=True)
class Calibration:
    robot: str
    params: PendulumParams
    delay_s: float
    estimates: list[Estimate]
    recordings: list[str]
    error_before: float
    """Normalised k-step error of the fitted windows at the start, RMS of error / channel spread."""
    error_after: float
    evaluations: int
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "robot": self.robot,
            "delay_s": self.delay_s,
            "recordings": self.recordings,
            "normalised_kstep_error": {"before": self.error_before, "after": self.error_after},
            "evaluations": self.evaluations,
            "wall_s": self.wall_s,
            "estimates": {
                e.name: {k: v for k, v in dataclasses.asdict(e).items() if k != "name"} for e in self.estimates
            },
        }


def calibrate(
    robot: Robot,
    start: PendulumParams,
    recordings: Sequence[Recording],
    fit: Sequence[str],
    start_delay_s: float | None = None,
    horizon_s: float = FIT_HORIZON_S,
    stride_s: float = FIT_STRIDE_S,
    max_iters: int = 30,
    progress: Callable[[int, float], None] | None = None,
) -> Calibration:
    """Fit the named parameters (`fittable`) to the recordings, starting from `start` and
    `start_delay_s` (default: the median cross-correlation estimate of the recordings, so that the
    fit refines the delay rather than searches for it).

    progress(evaluations, normalised error) is called after every rollout batch.
    Raises ValueError for an unknown name or recordings too short for one window.
    """
    sysid = _sysid()
    allowed = fittable(robot)
    unknown = [f for f in fit if f not in allowed]
    if unknown or not fit:
        raise ValueError(f"cannot fit {unknown or 'nothing'}; {robot.name} offers {', '.join(allowed)}")
    fit = list(dict.fromkeys(fit))
    began = time.perf_counter()
    if start_delay_s is None:
        delays = [e.delay_s for rec in recordings if (e := estimate_delay(robot, start, rec))]
        start_delay_s = float(np.median(delays)) if delays else 0.0

    plan = []
    for rec in recordings:
        k = horizon_samples(rec, horizon_s)
        plan.append((rec, window_starts(rec, k, stride_s), k))
    scale = channel_scale(list(recordings))
    predictor = Predictor(robot, start)

    pdict = sysid.ParameterDict()
    for name in fit:
        value = _value(robot, start, start_delay_s, name)
        low, high = _bounds(name, value)
        pdict.add(sysid.Parameter(name, nominal=value, min_value=low, max_value=high))

    evaluations = 0

    def residual_at(x: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        params, delay = with_values(robot, start, dict(zip(fit, x.tolist(), strict=True)))
        parts = [(predictor.predict(rec, params, starts, k, delay).error / scale).ravel() for rec, starts, k in plan]
        r = np.concatenate(parts)
        # A candidate that blew the simulation up is a bad fit, not a crash.
        r[~np.isfinite(r)] = 1e3
        evaluations += 1
        if progress:
            progress(evaluations, float(np.sqrt(np.mean(r**2))))
        return r

    def residual_fn(x: np.ndarray, _params: Any) -> tuple[list[np.ndarray], None, None]:
        if x.ndim == 1:
            return [residual_at(x)], None, None
        # Finite-difference batches arrive as columns.
        return [np.stack([residual_at(x[:, j]) for j in range(x.shape[1])], axis=1)], None, None

    x0 = pdict.as_vector()
    r0 = residual_at(x0)
    trace = io.StringIO()
    fitted, result = sysid.optimize(
        pdict,
        residual_fn,
        optimizer="mujoco",
        verbose=False,
        max_iters=max_iters,
        x_scale="jac",
        xtol=1e-4,
        output=trace,
    )
    log.debug("solver trace:\n%s", trace.getvalue())
    x = fitted.as_vector()
    r = residual_at(x)
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero Jacobian column gives nan: unidentifiable
        _, ci = sysid.calculate_intervals([r], np.asarray(result.jac))
    low, high = pdict.get_bounds()
    params, delay = with_values(robot, start, dict(zip(fit, x.tolist(), strict=True)))
    estimates = []
    for i, name in enumerate(fit):
        half = float(ci[i]) if len(ci) else math.inf
        span = high[i] - low[i]
        at_bound = min(x[i] - low[i], high[i] - x[i]) <= 1e-3 * span
        used = _value(robot, params, delay, name)
        if used != x[i]:
            note = f"held at {used:.6g} = m r^2 (+0.1 %): the fitted m and r leave no room for less"
        elif not math.isfinite(half):
            note = "not identifiable from these recordings (no information in the data)"
        elif half > max(abs(x[i]), 1e-12):
            note = "poorly identified: the 95 % interval is wider than the estimate"
        elif at_bound:
            note = "at the edge of its search range"
        else:
            note = ""
        estimates.append(Estimate(name, float(x0[i]), used, half, float(low[i]), float(high[i]), not note, note))
    return Calibration(
        robot=robot.name,
        params=params,
        delay_s=delay if "delay" in fit else start_delay_s,
        estimates=estimates,
        recordings=[rec.name for rec in recordings],
        error_before=float(np.sqrt(np.mean(r0**2))),
        error_after=float(np.sqrt(np.mean(r**2))),
        evaluations=evaluations,
        wall_s=time.perf_counter() - began,
    )
