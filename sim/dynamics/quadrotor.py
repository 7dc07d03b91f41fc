"""The reference equations of motion of the quadrotor, in closed form (Learning to Fly's model).

State x (17,) = [p (3) world m, q (4) body-to-world unit quaternion (w, x, y, z),
v (3) world m/s, w (3) body rad/s, u (4) normalised rotor speeds]; command
(4,) normalised rotor speed set-points in [0, 1]. A rigid body under gravity,
the rotors' thrusts along body z and their reaction torques about it:

    dp/dt = v
    dq/dt = q * (0, w) / 2
    m dv/dt = R(q) (0, 0, sum f_i) + F_ext - (0, 0, m g)
    J dw/dt = sum r_i x (0, 0, f_i) + (0, 0, sum s_i km f_i) + T_ext - w x J w
    du_i/dt = (command_i - u_i) / tau (tau rising or falling)

with f_i = c0 + c1 u_i + c2 u_i^2. Not in it (nor in the MuJoCo model): rotor
gyroscopic torques, drag, ground effect.
"""

from __future__ import annotations

import numpy as np

from sim.robots.quadrotor import QuadrotorParams


def rotation(q: np.ndarray) -> np.ndarray:
    """The rotation matrix (..., 3, 3), body to world, of unit quaternions (..., 4) (w, x, y, z)."""
    q = np.asarray(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return np.stack(r, axis=-1).reshape(*q.shape[:-1], 3, 3)


def body_wrench(p: QuadrotorParams, thrusts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotors' force and torque on the body, both (3,) in the body frame (N, N m)."""
    positions = np.asarray(p.rotor_positions)
    forces = np.zeros((len(thrusts), 3))
    forces[:, 2] = thrusts
    torque = np.cross(positions, forces).sum(axis=0)
    torque[2] += p.yaw_torque_constant * float(np.dot(p.rotor_spin, thrusts))
    return forces.sum(axis=0), torque


def derivative(
    p: QuadrotorParams,
    x: np.ndarray,
    command: np.ndarray,
    force: np.ndarray | None = None,
    torque: np.ndarray | None = None,
) -> np.ndarray:
    """dx/dt (17,) for state x (17,) and rotor set-points `command` (4,); an external `force` (world)
    and `torque` (body), both (3,), if given."""
    q, v, w, u = x[3:7], x[7:10], x[10:13], x[13:17]
    f_body, t_body = body_wrench(p, p.thrust(u))
    inertia = np.asarray(p.inertia)
    dv = rotation(q) @ f_body / p.mass - np.array([0.0, 0.0, p.g])
    dw = (t_body - np.cross(w, inertia * w)) / inertia
    if force is not None:
        dv = dv + force / p.mass
    if torque is not None:
        dw = dw + torque / inertia
    qw, qx, qy, qz = q
    wx, wy, wz = w
    dq = 0.5 * np.array(
        [
            -qx * wx - qy * wy - qz * wz,
            qw * wx + qy * wz - qz * wy,
            qw * wy - qx * wz + qz * wx,
            qw * wz + qx * wy - qy * wx,
        ]
    )
    rise, fall = p.motor_time_constant
    command = np.clip(command, 0.0, 1.0)
    du = (command - u) / np.where(command > u, rise, fall)
    return np.concatenate([v, dq, dv, dw, du])


def rk4_step(p: QuadrotorParams, x: np.ndarray, command: np.ndarray, dt: float) -> np.ndarray:
    """One classical Runge-Kutta step of length dt (s), the command held; the quaternion renormalised."""
    k1 = derivative(p, x, command)
    k2 = derivative(p, x + 0.5 * dt * k1, command)
    k3 = derivative(p, x + 0.5 * dt * k2, command)
    k4 = derivative(p, x + dt * k3, command)
    out = x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    out[3:7] /= np.linalg.norm(out[3:7])
    return out
