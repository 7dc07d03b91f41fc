"""Simulation: robots, tasks, Gymnasium environments, domain randomisation.

Importing this package registers the environments:
`s2r/Pendulum-v0`, `s2r/Acrobot-v0`, `s2r/Pendubot-v0`, `s2r/DoublePendulum-v0`.
"""

import gymnasium as gym

ENV_IDS = {
    "s2r/Pendulum-v0": "pendulum",
    "s2r/Acrobot-v0": "acrobot",
    "s2r/Pendubot-v0": "pendubot",
    "s2r/DoublePendulum-v0": "double_pendulum",
}

for _id, _robot in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="sim.env:SwingUpEnv", kwargs={"robot": _robot})
