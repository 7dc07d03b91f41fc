"""The swing-up task (`SwingUp`): start hanging, swing up, stay above 0.9 of the reach until 10 s.

Everything here is a pure function of what the real robot measures (joint
positions and velocities) and of the actions the policy sent, so the
real-time loop computes exactly the observation the policy was trained on.
The functions take leading batch axes (one env, or many stepped together:
`sim.batched`), so every path computes them with the same code.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.robots import POSITION_LIMIT, VELOCITY_LIMIT, Robot
from sim.robots.params import PendulumParams
from sim.tasks import realaigym
from sim.tasks.realaigym import T_FINAL, UP_FRACTION
from sim.tasks.task import Task

if TYPE_CHECKING:
    from sim.tasks.binding import Binding

VELOCITY_SCALE = VELOCITY_LIMIT
"""Velocities enter the observation divided by this, rad/s."""
VELOCITY_CLIP = 2.0
"""...and clipped to +-this (40 rad/s, twice the hardware's stop)."""
WINDING_SCALE = POSITION_LIMIT
"""Joint positions enter the observation (with `winding`) divided by this, rad: +-1 at the stops..."""
WINDING_CLIP = 2.0
"""...and clipped to +-this (where no stops end an episode)."""


def observation(q: np.ndarray, dq: np.ndarray, past_actions: np.ndarray, winding: bool = False) -> np.ndarray:
    """Policy input, float32 of shape (..., 3n + k m), or (..., 4n + k m) with `winding`, for q and dq
    (..., n) and past actions (..., k, m).

    Layout: [cos q (n), sin q (n), dq / VELOCITY_SCALE clipped to +-VELOCITY_CLIP (n), past actions
    (k most recent actions of size m, oldest first, each in [-1, 1]), and with `winding`
    q / WINDING_SCALE clipped to +-WINDING_CLIP (n)]. cos and sin forget how many turns a joint
    has made; the winding tells the policy how far it is from the +-540 degree stops.
    q in rad and dq in rad/s are measured joint positions and velocities.
    """
    q = np.asarray(q)
    dq = np.clip(np.asarray(dq) / VELOCITY_SCALE, -VELOCITY_CLIP, VELOCITY_CLIP)
    parts = [np.cos(q), np.sin(q), dq, np.reshape(past_actions, (*q.shape[:-1], -1))]
    if winding:
        parts.append(np.clip(q / WINDING_SCALE, -WINDING_CLIP, WINDING_CLIP))
    return np.concatenate(parts, axis=-1, dtype=np.float32)


def state_from_observation(obs: np.ndarray, n: int) -> np.ndarray:
    """Recover the measured state [q (wrapped to (-pi, pi]), dq] from an observation."""
    q = np.arctan2(obs[n : 2 * n], obs[:n])
    return np.concatenate([q, obs[2 * n : 3 * n] * VELOCITY_SCALE]).astype(float)


UPRIGHT_POSITION_NOISE = 0.2
"""Upright starts: joint positions within +-this of upright, rad..."""
UPRIGHT_VELOCITY_NOISE = 1.0
"""...and joint velocities within +-this, rad/s."""


def upright_start(n: int, rng: np.random.Generator) -> np.ndarray:
    """A state [q, dq] of shape (2n,) near the upright equilibrium (q = [pi, 0, ...]), drawn uniformly."""
    x = np.concatenate(
        [
            rng.uniform(-UPRIGHT_POSITION_NOISE, UPRIGHT_POSITION_NOISE, n),
            rng.uniform(-UPRIGHT_VELOCITY_NOISE, UPRIGHT_VELOCITY_NOISE, n),
        ]
    )
    x[0] += math.pi
    return x


def tip_height(lengths: tuple[float, ...] | np.ndarray, q: np.ndarray) -> np.ndarray:
    """Height of the tip above the shoulder, m (...,), for joint angles q (..., n) rad (relative) and
    link lengths (n,) or (..., n) m."""
    return -np.sum(np.asarray(lengths) * np.cos(np.cumsum(q, axis=-1)), axis=-1)


def outside(q: np.ndarray, dq: np.ndarray) -> np.ndarray:
    """Whether the state (q, dq (..., n)) is beyond the hardware's safety stops, (...,) bool."""
    return (np.abs(q).max(axis=-1) > POSITION_LIMIT) | (np.abs(dq).max(axis=-1) > VELOCITY_LIMIT)


def outside_envelope(q: np.ndarray, dq: np.ndarray) -> str | None:
    """The hardware's safety stops: |q| > 540 degrees or |dq| > 20 rad/s. Returns the reason or None."""
    if np.abs(q).max() > POSITION_LIMIT:
        return f"joint position {np.round(q, 3).tolist()} rad beyond +-{POSITION_LIMIT:.3f} rad (540 deg)"
    if np.abs(dq).max() > VELOCITY_LIMIT:
        return f"joint velocity {np.round(dq, 3).tolist()} rad/s beyond +-{VELOCITY_LIMIT} rad/s"
    return None


# Reward weights. The terms are chosen so that a policy that swings up fast and
# holds still at the top with little torque earns the most, mirroring the v2
# score's criteria (swing-up time, torque cost, smoothness, velocity cost).
HEIGHT_WEIGHT = 1.0
UP_BONUS = 1.0
UP_SPEED = 1.0
"""Joint speed (rad/s) at which the up bonus falls to 1/e: a slow pass through the top earns
little of it, a hold all of it."""
TORQUE_WEIGHT = 0.05
SMOOTHNESS_WEIGHT = 0.05
VELOCITY_WEIGHT = 0.05
FAILURE_PENALTY = 10.0


def reward(
    tip_height: np.ndarray, reach: np.ndarray, dq: np.ndarray, action: np.ndarray, previous_action: np.ndarray
) -> np.ndarray:
    """Reward of one control step (...,), term by term, for tip heights and reaches (...,) m, joint
    velocities dq (..., n) rad/s and actions (..., m):

    - height:      HEIGHT_WEIGHT * (h / reach + 1) / 2, in [0, 1], h the tip height (m);
    - up bonus:    UP_BONUS * exp(-(|dq| / UP_SPEED)^2) while h > 0.9 reach, i.e. up and still;
    - torque:      -TORQUE_WEIGHT * mean(action^2), actions in [-1, 1];
    - smoothness:  -SMOOTHNESS_WEIGHT * mean((action - previous_action)^2);
    - velocity:    -VELOCITY_WEIGHT * |dq|^2 / VELOCITY_SCALE^2, dq in rad/s.

    Leaving the safety envelope ends the episode with -FAILURE_PENALTY instead
    (see `FAILURE_PENALTY`); the env adds it, not this function.
    """
    speed2 = np.sum(np.square(dq), axis=-1)
    r = HEIGHT_WEIGHT * 0.5 * (tip_height / reach + 1.0)
    r = r + np.where(tip_height > UP_FRACTION * reach, UP_BONUS * np.exp(-speed2 / UP_SPEED**2), 0.0)
    effort = np.sum(np.square(action), axis=-1)
    change = np.sum(np.square(np.subtract(action, previous_action)), axis=-1)
    r = r - (TORQUE_WEIGHT * effort + SMOOTHNESS_WEIGHT * change) / np.shape(action)[-1]
    return r - VELOCITY_WEIGHT * speed2 / VELOCITY_SCALE**2


class SwingUp(Task):
    """Swing a pendulum robot up from hanging and hold it above 0.9 of its reach until `t_final` s.

    Observation: `observation` of the measured joint positions and velocities and the last
    `action_history` actions, with `observe_winding` the joints' winding too. Action: torque of
    each actuated joint as a fraction of its limit, in [-1, 1]. Reward: `reward`, minus
    FAILURE_PENALTY when the hardware's safety envelope is left (which ends the episode); with
    `safety_stops` off the envelope is not checked (the competitions' simulator has no stops, the
    real robot does). A fraction `upright_starts` of the episodes starts near the upright
    equilibrium (`upright_start`), the others within +-`init_noise` of hanging. With
    `friction_compensation` the passive joints' motors cancel the friction the believed parameter
    set models (`Robot.friction_compensation`), as on the real robot. Metrics: the RealAIGym v2
    score (simulation normalisation) and its criteria.
    """

    name = "swingup"
    failure_penalty = FAILURE_PENALTY
    score, score_label = "score", "v2"
    conditions = ("observe_winding", "friction_compensation")
    observation_extensions = ("observe_winding",)

    def __init__(
        self,
        robot: Robot,
        params: PendulumParams,
        action_history: int = 1,
        observe_winding: bool = False,
        friction_compensation: bool = False,
        init_noise: float = 0.0,
        upright_starts: float = 0.0,
        safety_stops: bool = True,
        t_final: float = T_FINAL,
    ):
        if action_history < 0:
            raise ValueError(f"action_history must be >= 0, got {action_history}")
        if not 0.0 <= upright_starts <= 1.0:
            raise ValueError(f"upright_starts must be a probability in [0, 1], got {upright_starts}")
        self.robot, self.params, self.n = robot, params, params.n
        self.action_history = action_history
        self.observe_winding, self.friction_compensation = bool(observe_winding), bool(friction_compensation)
        self.init_noise, self.upright_starts = float(init_noise), float(upright_starts)
        self.safety_stops, self.duration_s = bool(safety_stops), float(t_final)
        self._matrix = robot.action_matrix(params)
        self.action_size = m = self._matrix.shape[1]
        self.observation_high = np.concatenate(
            [
                np.ones(2 * self.n),
                np.full(self.n, VELOCITY_CLIP),
                np.ones(m * action_history),
                np.full(self.n if self.observe_winding else 0, WINDING_CLIP),
            ]
        )

    def initial_action(self) -> np.ndarray:
        return np.zeros(self.action_size)

    def initial_state(self, plant: Any, rng: np.random.Generator) -> np.ndarray:
        n = self.n
        x0 = rng.uniform(-self.init_noise, self.init_noise, 2 * n) if self.init_noise else np.zeros(2 * n)
        # Drawn only when asked for, so that the seeded evaluation episodes stay as they were.
        if self.upright_starts and rng.uniform() < self.upright_starts:
            x0 = upright_start(n, rng)
        return x0

    def observe(self, measured: np.ndarray, past: np.ndarray, t: float, memory: np.ndarray) -> np.ndarray:
        """Also of a batch: measured (N, 2n) and past (N, k, m) give (N, O). No memory."""
        n = self.n
        return observation(measured[..., :n], measured[..., n:], past, self.observe_winding)

    def to_command(self, action: np.ndarray, measured: np.ndarray, params: PendulumParams) -> np.ndarray:
        """Joint torques (n,) N m; of a batch of actions (N, m) and measurements (N, 2n), (N, n)."""
        torques = action @ self._matrix.T
        if self.friction_compensation:
            torques = torques + self.robot.friction_compensation(params, measured[..., self.n :])
        return torques

    def reward(
        self, x: np.ndarray, action: np.ndarray, previous: np.ndarray, t: float, params: PendulumParams
    ) -> float:
        q, dq = x[: self.n], x[self.n :]
        return float(reward(tip_height(params.l, q), params.reach, dq, action, previous))

    def failure(self, x: np.ndarray, t: float) -> str | None:
        if not self.safety_stops:
            return None
        return outside_envelope(x[: self.n], x[self.n :])

    def metrics(
        self, T: np.ndarray, X: np.ndarray, U: np.ndarray, params: PendulumParams, failure: str | None
    ) -> dict[str, float]:
        n = self.n
        return realaigym.score(realaigym.Trajectory(T, X[:, : 2 * n], U), "v2", "sim", lengths=params.l)

    def describe(self) -> dict[str, dict[str, Any]]:
        joints, k = self.robot.joints, self.action_history
        active = [j for j, a in zip(joints, self.robot.actuated, strict=True) if a]
        layout = [f"cos({j})" for j in joints] + [f"sin({j})" for j in joints]
        layout += [f"{j}.velocity/{VELOCITY_SCALE:g}" for j in joints]
        layout += [f"action[t-{k - i}][{a}]" for i in range(k) for a in range(self.action_size)]
        layout += [f"{j}.position/(3 pi)" for j in joints] if self.observe_winding else []
        limits = [float(t) for t, a in zip(self.params.torque_limit, self.robot.actuated, strict=True) if a]
        return {
            "observation": {"layout": layout, "winding": self.observe_winding},
            "action": {"joints": active, "torque_limit_nm": limits},
        }

    def binding(self, rate_hz: float, damping: float, commands: str | None = None) -> Binding:
        if commands is not None:
            raise ValueError(f"the swing-up commands joint torques, not {commands!r}")
        from sim.tasks import swingup_binding

        return swingup_binding.binding(self, damping)
