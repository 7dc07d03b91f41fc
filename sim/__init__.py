"""Simulation: robots, tasks, Gymnasium environments, domain randomisation.

Importing this package registers the environments:
`s2r/Pendulum-v0`, `s2r/Acrobot-v0`, `s2r/Pendubot-v0`, `s2r/DoublePendulum-v0`, and the
quadrotor's `s2r/CrazyflieHover-v0` and `s2r/CrazyflieFigure8-v0`; without an import,
`gymnasium.make("sim:s2r/Pendubot-v0")` does it.
"""

import ctypes.util
import os
import sys

import gymnasium as gym

# MuJoCo picks its OpenGL backend when it is first imported. Off a display, rendering
# (render_mode="rgb_array", `s2r render`) needs an offscreen one: OSMesa where it is installed
# (Debian's libosmesa6), else EGL. MUJOCO_GL, when set, decides.
if sys.platform == "linux" and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "osmesa" if ctypes.util.find_library("OSMesa") else "egl"

ENV_IDS = {
    "s2r/Pendulum-v0": "pendulum",
    "s2r/Acrobot-v0": "acrobot",
    "s2r/Pendubot-v0": "pendubot",
    "s2r/DoublePendulum-v0": "double_pendulum",
}

FLIGHT_ENV_IDS = {"s2r/CrazyflieHover-v0": "hover", "s2r/CrazyflieFigure8-v0": "figure8"}

for _id, _robot in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="sim.env:RobotEnv", kwargs={"robot": _robot})
for _id, _task in FLIGHT_ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="sim.env:RobotEnv", kwargs={"robot": "crazyflie", "task": _task})
