"""Classical baseline for the pendubot: energy-shaping swing-up, then LQR at the top.

The swing-up is the energy-based law of Fantoni, Lozano and Spong ("Energy
based control of the Pendubot", IEEE TAC 2000): with E the total energy,
E_top its value upright and q1~ = q1 - pi, the Lyapunov function

    V = kE/2 (E - E_top)^2 + kD/2 dq1^2 + kP/2 q1~^2

decreases (dV/dt = -kV dq1^2) under

    tau1 = -(kV dq1 + kP q1~ + kD b) / (kE (E - E_top) + kD a),

where ddq1 = a tau1 + b are the pendubot's dynamics. It drives link 1 upright
and the total energy to E_top, so link 2 swings up towards the top, where an
LQR designed on the linearised dynamics catches and holds it.

Like every policy, it acts on the observation (`sim.tasks.swingup`) and
returns an action in [-1, 1]; it knows only the model the user gives it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.linalg

from sim.dynamics import pendulum
from sim.robots import get_robot
from sim.robots.params import PendulumParams
from sim.tasks.swingup import state_from_observation

GOAL = np.array([np.pi, 0.0, 0.0, 0.0])


def wrap(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi), rad."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def upright_error(x: np.ndarray) -> np.ndarray:
    """State error from the nearest upright pose that keeps the shoulder within one turn
    (q1 = +-pi, q2 = 0 mod 2 pi): unwinding towards it keeps the joints inside the
    hardware's 540 degree stops after a push. (4,), rad and rad/s."""
    q1_err = x[0] - np.pi if x[0] >= 0 else x[0] + np.pi
    return np.array([q1_err, wrap(x[1]), x[2], x[3]])


def linearise(p: PendulumParams, x0: np.ndarray, u0: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Continuous-time A (2n, 2n) and B (2n, n) of dx/dt = f(x, tau) at (x0, u0), by central differences."""
    n2, n = len(x0), len(u0)
    A, B = np.zeros((n2, n2)), np.zeros((n2, n))
    for i in range(n2):
        d = np.zeros(n2)
        d[i] = eps
        A[:, i] = (pendulum.derivative(p, x0 + d, u0) - pendulum.derivative(p, x0 - d, u0)) / (2 * eps)
    for i in range(n):
        d = np.zeros(n)
        d[i] = eps
        B[:, i] = (pendulum.derivative(p, x0, u0 + d) - pendulum.derivative(p, x0, u0 - d)) / (2 * eps)
    return A, B


class PendubotEnergyLQR:
    """Energy-shaping swing-up plus LQR stabilisation of the pendubot.

    act(obs) -> action (1,) in [-1, 1] (shoulder torque / torque limit).
    """

    control_rate_hz = 500.0
    """The rate it is designed for: the competition's controller rate."""
    action_history = 0
    """It needs no past actions in its observation..."""
    conditions: ClassVar[dict[str, Any]] = {}
    """...nor the joints' winding; designed on the frictionless model, it leaves the passive
    elbow's motor off (no friction compensation): the swing-up's defaults."""

    def __init__(
        self,
        params: PendulumParams | str = "model_1.1",
        k_energy: float = 1.0,
        k_damping: float = 0.3,
        k_position: float = 0.3,
        k_velocity: float = 0.1,
        Q: tuple[float, ...] = (10.0, 10.0, 1.0, 1.0),
        R: float = 1.0,
        catch_cost: float = 30.0,
    ):
        robot = get_robot("pendubot")
        self.params = robot.load_params(params) if isinstance(params, str) else params
        self.limit = robot.command_limits(self.params)[0]
        self.gains = (k_energy, k_damping, k_position, k_velocity)
        self.e_top = pendulum.energy(self.params, GOAL[:2], GOAL[2:])
        A, B = linearise(self.params, GOAL, np.zeros(2))
        B = B[:, :1]
        S = scipy.linalg.solve_continuous_are(A, B, np.diag(Q), np.array([[R]]))
        self.K = (B.T @ S / R).ravel()
        self.S = S
        self.catch_cost = catch_cost
        self.lqr_active = False

    def reset(self) -> None:
        self.lqr_active = False

    def torque(self, x: np.ndarray) -> float:
        """Shoulder torque for the measured state x = [q1, q2, dq1, dq2], N m."""
        err = upright_error(x)
        cost = err @ self.S @ err
        # Hysteresis: catch inside the LQR's basin, give up only well outside it.
        if cost < self.catch_cost or (self.lqr_active and cost < 4 * self.catch_cost):
            self.lqr_active = True
            return float(-self.K @ err)
        self.lqr_active = False
        return self._swing_up(x)

    def _swing_up(self, x: np.ndarray) -> float:
        p = self.params
        k_e, k_d, k_p, k_v = self.gains
        q, dq = x[:2], x[2:]
        m_inv = np.linalg.inv(pendulum.mass_matrix(p, q))
        a = m_inv[0, 0]
        b = -(m_inv @ pendulum.bias(p, q, dq))[0]
        e_err = pendulum.energy(p, q, dq) - self.e_top
        q1_err = upright_error(x)[0]
        denominator = k_e * e_err + k_d * a
        return float(-(k_v * dq[0] + k_p * q1_err + k_d * b) / denominator)

    def act(self, obs: np.ndarray) -> np.ndarray:
        x = state_from_observation(obs, 2)
        return np.array([np.clip(self.torque(x) / self.limit, -1.0, 1.0)], dtype=np.float32)
