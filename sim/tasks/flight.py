"""The quadrotor's tasks (`Flight`): hover (Learning to Fly's) and the figure-eight, each a `Route`.

Everything a policy sees or sends goes through the pure functions here
(`observation`, `rotor_command`), of what the vehicle measures, the actions
sent and the task's memory (`integrate_error`), so the real-time loop computes
exactly what the policy was trained on.
Frames as in `sim.robots.quadrotor`: world z up, body FLU; a measurement m is
(13,) = [position 3, quaternion 4, velocity 3, body rates 3].
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.dynamics.quadrotor import rotation
from sim.robots.quadrotor import MAX_BODY_RATE, ROTORS, QuadrotorParams
from sim.tasks.task import Task

if TYPE_CHECKING:
    from sim.tasks.binding import Binding

POSITION_CLIP = 0.5
"""Position error enters the observation clipped to +-this, m (Learning to Fly's deployment)."""
VELOCITY_CLIP = 2.0
"""Velocity error enters the observation clipped to +-this, m/s."""
RATE_SCALE = 10.0
"""Body rates enter the observation divided by this, rad/s..."""
RATE_CLIP = 3.0
"""...and clipped to +-this."""
INTEGRAL_CLIP = 0.1
"""With `Flight`'s observe_error_integral the position error's integral is held within +-this,
m s, and enters the observation divided by it."""
INTEGRATE_WITHIN = 0.15
"""The position error is integrated only within this distance of the reference, m: no wind-up while
recovering from afar."""
PREVIEW_STEP_S = 0.1
"""With `Flight`'s observe_preview the reference ahead is seen at this spacing, s..."""
PREVIEW_CLIP = 1.0
"""...as its displacement from the reference now, clipped to +-this, m."""
MAX_ERROR = 0.6
"""An episode ends, failed, beyond this distance from the reference, m."""
RATE_GAIN = 20.0
"""The inner rate controller's proportional gain, 1/s: torque = J RATE_GAIN (w_set - w)."""
ACTION_LEVELS = ("rotors", "rates")
START = np.array([0.0, 0.0, 1.0])
"""Where the vehicle hovers and the figure-eight is centred, world m (the floor is z = 0)."""


@dataclasses.dataclass(frozen=True)
class Route:
    """A reference to follow and the episode around it."""

    name: str
    duration_s: float
    """Episode length, s."""
    settle_s: float
    """Metrics count from here on, s."""
    eval_spread: float = 0.25
    """The start distribution's spread (`initial_state`) unless a task asks for another; training
    uses 1, Learning to Fly's, whose widest starts (tilted up to 90 degrees, moving at up to 1.7 m/s)
    the geometric baseline recovers from within MAX_ERROR in 19 of 30 episodes (seeds 0-29)."""
    size: tuple[float, float] = (0.0, 0.0)
    """The figure-eight's extent along x and y, m (zero: hover)."""
    period_s: float = math.inf

    def reference(self, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference position and velocity (..., 3), m and m/s, at times t (...,) s."""
        t = np.asarray(t, dtype=float)
        if not math.isfinite(self.period_s):
            return np.broadcast_to(START, (*t.shape, 3)).copy(), np.zeros((*t.shape, 3))
        w = 2 * math.pi / self.period_s
        ax, ay = self.size[0] / 2, self.size[1] / 2
        zero = np.zeros_like(t)
        position = START + np.stack([ax * np.sin(w * t), ay * np.sin(2 * w * t), zero], axis=-1)
        velocity = np.stack([ax * w * np.cos(w * t), 2 * ay * w * np.cos(2 * w * t), zero], axis=-1)
        return position, velocity

    def initial_state(self, hover: np.ndarray, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
        """A start state (17,) near the reference's start, from `hover` (17,), the vehicle at rest
        at START with its rotors at hover speed. Hover: Learning to Fly's distribution at `spread`
        1 (+-0.2 m, attitude up to 90 degrees, +-1 m/s, +-1 rad/s); the figure-eight starts on its
        reference with a tenth of that."""
        scale = spread * (1.0 if self.name == "hover" else 0.1)
        position, velocity = self.reference(0.0)
        x = hover.copy()
        x[:3] = position + rng.uniform(-0.2, 0.2, 3) * scale
        axis = rng.normal(size=3)
        angle = rng.uniform(0.0, math.pi / 2) * scale
        x[3:7] = np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis / np.linalg.norm(axis)])
        x[7:10] = velocity + rng.uniform(-1.0, 1.0, 3) * scale
        x[10:13] = rng.uniform(-1.0, 1.0, 3) * scale
        return x


TASKS = {
    "hover": Route("hover", duration_s=5.0, settle_s=2.0),
    # Learning to Fly's figure-eight: 2 m x 1 m, 5.5 s a lap, two laps.
    "figure8": Route("figure8", duration_s=11.0, settle_s=1.0, size=(2.0, 1.0), period_s=5.5),
}


def get_route(name: str) -> Route:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown quadrotor task {name!r}; expected one of {', '.join(TASKS)}") from None


def observation_size(action_history: int, error_integral: bool = False, preview: int = 0) -> int:
    return 18 + 3 * error_integral + ROTORS * action_history + 3 * preview


def observation(
    measured: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray],
    past_actions: np.ndarray,
    integral: np.ndarray | None = None,
    preview: np.ndarray | None = None,
) -> np.ndarray:
    """Policy input, float32 (..., 18 [+ 3] + 4 k [+ 3 p]), for measurements (..., 13), references
    (..., 3), past actions (..., k, 4) and optionally the position error's integral (..., 3) m s and
    the reference ahead (..., p, 3) m: [position error (3) clipped to +-POSITION_CLIP m, rotation
    matrix body to world (9, row-major), velocity error (3) clipped to +-VELOCITY_CLIP m/s, body
    rates / RATE_SCALE clipped to +-RATE_CLIP (3), the integral / INTEGRAL_CLIP (3) if given, the k
    most recent actions oldest first, the reference ahead clipped to +-PREVIEW_CLIP (3 p) if given]."""
    position, velocity = reference
    batch = measured.shape[:-1]
    parts = [
        np.clip(measured[..., :3] - position, -POSITION_CLIP, POSITION_CLIP),
        rotation(measured[..., 3:7]).reshape(*batch, 9),
        np.clip(measured[..., 7:10] - velocity, -VELOCITY_CLIP, VELOCITY_CLIP),
        np.clip(measured[..., 10:13] / RATE_SCALE, -RATE_CLIP, RATE_CLIP),
        *([] if integral is None else [integral / INTEGRAL_CLIP]),
        np.reshape(past_actions, (*batch, -1)),
        *([] if preview is None else [np.clip(preview, -PREVIEW_CLIP, PREVIEW_CLIP).reshape(*batch, -1)]),
    ]
    return np.concatenate(parts, axis=-1, dtype=np.float32)


def integrate_error(memory: np.ndarray, error: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Advance the integral memory (..., 4) = [time of its last update s, integral of the position
    error (3) m s] to time t (...,) s with the position error (..., 3) m, in place, and return the
    integral (..., 3). Only errors within INTEGRATE_WITHIN count; the integral stays within
    +-INTEGRAL_CLIP."""
    dt = np.maximum(np.asarray(t) - memory[..., 0], 0.0)[..., None]
    near = np.linalg.norm(error, axis=-1, keepdims=True) < INTEGRATE_WITHIN
    memory[..., 1:] = np.clip(memory[..., 1:] + np.where(near, error * dt, 0.0), -INTEGRAL_CLIP, INTEGRAL_CLIP)
    memory[..., 0] = t
    return memory[..., 1:]


def allocation(params: QuadrotorParams) -> np.ndarray:
    """(4, 4): rotor thrusts (N) -> [collective thrust N, torque about body x, y, z N m]."""
    positions = np.asarray(params.rotor_positions)
    return np.stack(
        [
            np.ones(ROTORS),
            positions[:, 1],  # torque about x from a thrust at y
            -positions[:, 0],  # about y from a thrust at x
            params.yaw_torque_constant * np.asarray(params.rotor_spin, dtype=float),
        ]
    )


def speeds_for(params: QuadrotorParams, thrusts: np.ndarray) -> np.ndarray:
    """Normalised rotor speeds (4,) in [0, 1] that give `thrusts` (4,) N, saturated."""
    c0, c1, c2 = params.thrust_curve
    f = np.clip(thrusts, c0, params.max_thrust)
    return np.clip((-c1 + np.sqrt(c1 * c1 - 4 * c2 * (c0 - f))) / (2 * c2), 0.0, 1.0)


def rates_setpoint(action: np.ndarray) -> np.ndarray:
    """[collective thrust (fraction of the four rotors' maximum, [0, 1]), body-rate set-points (3)
    rad/s] (..., 4) of `rates`-level actions (..., 4) in [-1, 1]: what a flight controller's rate
    loop is given."""
    action = np.clip(action, -1.0, 1.0)
    return np.concatenate([(action[..., :1] + 1.0) / 2.0, action[..., 1:] * MAX_BODY_RATE], axis=-1)


def rate_controller(setpoint: np.ndarray, rates: np.ndarray, params: QuadrotorParams) -> np.ndarray:
    """Rotor-speed set-points (..., 4) in [0, 1] that follow `setpoint` (..., 4) (`rates_setpoint`)
    from the body rates (..., 3) rad/s: a proportional rate controller with the gyroscopic term,
    torque = J RATE_GAIN (w_set - w) + w x J w, on the nominal vehicle `params`."""
    thrust = setpoint[..., :1] * ROTORS * params.max_thrust
    inertia = np.asarray(params.inertia)
    torque = inertia * RATE_GAIN * (setpoint[..., 1:] - rates) + np.cross(rates, inertia * rates)
    wrench = np.concatenate([thrust, torque], axis=-1)
    thrusts = np.linalg.solve(allocation(params), wrench[..., None])[..., 0]
    return speeds_for(params, thrusts)


def rotor_command(level: str, action: np.ndarray, measured: np.ndarray, params: QuadrotorParams) -> np.ndarray:
    """Rotor-speed set-points (..., 4) in [0, 1] for actions (..., 4) in [-1, 1] at action `level`:
    `rotors`, each rotor's speed; `rates`, collective thrust and body rates (`rates_setpoint`)
    through `rate_controller` on the measured rates (measurements (..., 13))."""
    action = np.clip(action, -1.0, 1.0)
    if level == "rotors":
        return (action + 1.0) / 2.0
    return rate_controller(rates_setpoint(action), measured[..., 10:13], params)


def hover_action(level: str, params: QuadrotorParams) -> np.ndarray:
    """The action that hovers (4,): what the reward's action term pulls towards."""
    if level == "rotors":
        return np.full(ROTORS, 2 * params.hover_speed - 1)
    return np.array([2 * params.mass * params.g / (ROTORS * params.max_thrust) - 1, 0.0, 0.0, 0.0])


@dataclasses.dataclass
class RewardWeights:
    """Learning to Fly's reward weights, and its curriculum: position x1.2 and velocity and action
    x1.4 every 100k steps, capped at 40 and 1."""

    position: float = 10.0
    velocity: float = 0.01
    action: float = 0.01

    def at(self, steps: int) -> RewardWeights:
        k = steps // 100_000
        return RewardWeights(
            min(40.0, self.position * 1.2**k), min(1.0, self.velocity * 1.4**k), min(1.0, self.action * 1.4**k)
        )


def reward(
    x: np.ndarray, reference: tuple[np.ndarray, np.ndarray], action: np.ndarray, hover: np.ndarray, w: RewardWeights
) -> np.ndarray:
    """2 - 0.5 (w_p |e_p|^2 + 5 (1 - q_w^2) + w_v |e_v|^2 + w_a |a - a_hover|^2), on true states
    (..., 17), references (..., 3) and actions (..., 4): (...,)."""
    e_p, e_v = x[..., :3] - reference[0], x[..., 7:10] - reference[1]
    cost = w.position * np.sum(e_p**2, axis=-1) + 5.0 * (1.0 - x[..., 3] ** 2) + w.velocity * np.sum(e_v**2, axis=-1)
    cost = cost + w.action * np.sum((action - hover) ** 2, axis=-1)
    return 2.0 - 0.5 * cost


def failed(x: np.ndarray, reference_position: np.ndarray) -> np.ndarray:
    """Whether true states (..., 17) end their episodes (on the floor, or beyond MAX_ERROR from the
    reference positions (..., 3) m): (...,) bool. `failure` says why."""
    return (x[..., 2] <= 0.0) | (np.linalg.norm(x[..., :3] - reference_position, axis=-1) > MAX_ERROR)


def failure(x: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> str | None:
    """Why the episode ends failed at true state x (17,), or None."""
    if not failed(x, reference[0]):
        return None
    if x[2] <= 0.0:
        return f"crashed: hit the floor at ({x[0]:.2f}, {x[1]:.2f}) m"
    error = float(np.linalg.norm(x[:3] - reference[0]))
    return f"{error:.2f} m from the reference, beyond {MAX_ERROR} m"


def metrics(route: Route, times: np.ndarray, positions: np.ndarray, failed: str | None) -> dict[str, float]:
    """Position error after the settling time over a trajectory (times (N,) s, positions (N, 3) m):
    RMSE and max in cm, and success (1: stayed within MAX_ERROR, never crashed, lasted the episode).
    A moving route also splits the error along its direction of travel: `along_track_cm`, the mean
    signed error along it (negative: behind the reference), and `cross_track_cm`, the RMS of the
    rest."""
    references, velocities = route.reference(times)
    offsets = positions - references
    error = np.linalg.norm(offsets, axis=1)
    settled = times >= route.settle_s
    lasted = len(times) > 0 and times[-1] >= route.duration_s - 1e-9
    out = {
        "rmse_cm": float(np.sqrt(np.mean(error[settled] ** 2)) * 100) if settled.any() else math.nan,
        "max_error_cm": float(error[settled].max() * 100) if settled.any() else math.nan,
        "success": float(failed is None and lasted),
    }
    if math.isfinite(route.period_s):
        direction = velocities / np.maximum(np.linalg.norm(velocities, axis=1, keepdims=True), 1e-9)
        along = np.sum(offsets * direction, axis=1)
        across = np.linalg.norm(offsets - along[:, None] * direction, axis=1)
        out["along_track_cm"] = float(along[settled].mean() * 100) if settled.any() else math.nan
        out["cross_track_cm"] = float(np.sqrt(np.mean(across[settled] ** 2)) * 100) if settled.any() else math.nan
    return out


class Flight(Task):
    """Fly the quadrotor along a route (`TASKS`) from Learning to Fly's start distribution at
    `init_spread` (None: the route's `eval_spread`, where evaluations start; 1: Learning to Fly's
    training starts).

    Observation: `observation` of the measured state, the reference and the last `action_history`
    actions, with `observe_error_integral` the position error's integral too (`integrate_error`,
    the task's memory): a constant force, such as the per-episode disturbance, otherwise leaves a
    constant offset, as it would for any controller without an integral; with `observe_preview`
    p > 0 the reference's displacement 0.1, 0.2, ... p/10 s ahead, appended (a tracking
    controller's feedforward). Action (4,) in [-1, 1]
    at `action_level`: `rotors` (rotor speeds) or `rates` (collective thrust and body rates,
    `rotor_command`); the rate controller and the hover action use the nominal vehicle. Reward:
    `reward` on the true state with `weights`, with `reward_curriculum` at `training_steps`
    (Learning to Fly's curriculum; off by default: at its final weights a step more than about
    0.3 m from the reference earns less than nothing, so from wide starts ending the episode early
    pays better than flying back, and PPO learned no hover in 7M steps, where without it 90% of the
    training starts succeed by 7M). An episode fails beyond MAX_ERROR from the reference or on the
    floor. Metrics: `metrics` (position RMSE and max error after the route's settling time,
    success; on a moving route the error along and across it).
    """

    score, score_label, score_sign = "rmse_cm", "RMSE (cm)", -1.0
    conditions = ("action_level", "observe_error_integral", "observe_preview")
    observation_extensions = ("observe_preview",)

    def __init__(
        self,
        route: str,
        params: QuadrotorParams,
        action_level: str = "rotors",
        action_history: int = 32,
        init_spread: float | None = None,
        reward_curriculum: bool = False,
        observe_error_integral: bool = False,
        observe_preview: int = 0,
    ):
        if action_level not in ACTION_LEVELS:
            raise ValueError(f"unknown action level {action_level!r}; expected one of {', '.join(ACTION_LEVELS)}")
        if isinstance(observe_preview, bool) or not isinstance(observe_preview, int) or not 0 <= observe_preview <= 10:
            raise ValueError(f"observe_preview must be a whole number of points in [0, 10], got {observe_preview!r}")
        if not 0 <= action_history <= 64:
            raise ValueError(f"action_history must be in [0, 64], got {action_history}")
        self.route = get_route(route)
        init_spread = self.route.eval_spread if init_spread is None else init_spread
        if not 0.0 <= init_spread <= 1.0:
            raise ValueError(f"init_spread must be in [0, 1], got {init_spread}")
        self.name, self.duration_s = self.route.name, self.route.duration_s
        self.params, self.action_level = params, action_level
        self.action_history, self.init_spread = action_history, float(init_spread)
        self.action_size = ROTORS
        self.observe_error_integral = bool(observe_error_integral)
        self.memory_size = 4 if observe_error_integral else 0
        self.observe_preview = int(observe_preview)
        self.weights, self.reward_curriculum = RewardWeights(), bool(reward_curriculum)
        self.observation_high = np.concatenate(
            [
                np.full(3, POSITION_CLIP),
                np.ones(9),
                np.full(3, VELOCITY_CLIP),
                np.full(3, RATE_CLIP),
                np.ones(3 if observe_error_integral else 0),
                np.ones(ROTORS * action_history),
                np.full(3 * observe_preview, PREVIEW_CLIP),
            ]
        )
        self._hover = hover_action(action_level, params)

    def initial_action(self) -> np.ndarray:
        return self._hover.copy()

    def initial_state(self, plant: Any, rng: np.random.Generator) -> np.ndarray:
        return self.route.initial_state(plant.hover_state(START), rng, self.init_spread)

    def observe(self, measured: np.ndarray, past: np.ndarray, t: float, memory: np.ndarray) -> np.ndarray:
        reference = self.route.reference(t)
        integral = None
        if self.observe_error_integral:
            integral = integrate_error(memory, measured[..., :3] - reference[0], t)
        preview = None
        if self.observe_preview:
            ahead = np.asarray(t)[..., None] + PREVIEW_STEP_S * np.arange(1, self.observe_preview + 1)
            preview = self.route.reference(ahead)[0] - reference[0][..., None, :]
        return observation(measured, reference, past, integral, preview)

    def to_command(self, action: np.ndarray, measured: np.ndarray, params: QuadrotorParams) -> np.ndarray:
        """Rotor-speed set-points (4,) in [0, 1]."""
        return rotor_command(self.action_level, action, measured, params)

    def reward(self, x: np.ndarray, action: np.ndarray, previous: np.ndarray, t: float, params: Any) -> float:
        return float(reward(x, self.route.reference(t), action, self._hover, self.reward_weights()))

    def reward_weights(self) -> RewardWeights:
        """The reward's weights now: `weights`, or with `reward_curriculum` where training has taken them."""
        return self.weights.at(self.training_steps) if self.reward_curriculum else self.weights

    def failure(self, x: np.ndarray, t: float) -> str | None:
        return failure(x, self.route.reference(t))

    def metrics(
        self, T: np.ndarray, X: np.ndarray, U: np.ndarray, params: Any, failure: str | None
    ) -> dict[str, float]:
        return metrics(self.route, T, X[:, :3], failure)

    def describe(self) -> dict[str, dict[str, Any]]:
        axes, k = ("x", "y", "z"), self.action_history
        layout = [f"position_error.{a}" for a in axes] + [f"R[{i}][{j}]" for i in range(3) for j in range(3)]
        layout += [f"velocity_error.{a}" for a in axes] + [f"rates.{a}/{RATE_SCALE:g}" for a in axes]
        if self.observe_error_integral:
            layout += [f"position_error_integral.{a}/{INTEGRAL_CLIP:g}" for a in axes]
        layout += [f"action[t-{k - i}][{a}]" for i in range(k) for a in range(ROTORS)]
        p = self.observe_preview
        layout += [f"reference_ahead[{(i + 1) * PREVIEW_STEP_S:g} s].{a}" for i in range(p) for a in axes]
        channels = (
            [f"rotor{i + 1}.speed" for i in range(ROTORS)]
            if self.action_level == "rotors"
            else ["thrust", *(f"rates.{a}" for a in axes)]
        )
        return {"observation": {"layout": layout}, "action": {"level": self.action_level, "channels": channels}}

    def binding(self, rate_hz: float, damping: float, commands: str | None = None) -> Binding:
        from sim.tasks import flight_binding

        return flight_binding.binding(self, rate_hz, commands=commands or "rotors")
