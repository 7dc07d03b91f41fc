"""A batch of episodes (`sim.batched.make_batched`) behind stable-baselines3's VecEnv interface.

All N episodes advance in one numpy call per step; SB3 sees N environments
that reset themselves when an episode ends, with the ended episode's last
observation in `infos[i]["terminal_observation"]` and `TimeLimit.truncated`
set when it ran out of time rather than failed, as its own VecEnvs report them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv


class BatchedVecEnv(VecEnv):
    def __init__(self, batched: Any):
        """`batched`: a `BatchedSwingUp` or `BatchedFlight`."""
        self.batched = batched
        super().__init__(batched.N, batched.observation_space, batched.action_space)
        self._actions = np.zeros((batched.N, batched.task.action_size))

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:
            self.batched.rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        return self.batched.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        observations, rewards, terminated, truncated, final = self.batched.step(self._actions)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(terminated | truncated):
            infos[i] = {"terminal_observation": final[i], "TimeLimit.truncated": bool(truncated[i])}
        return observations, rewards.astype(np.float32), terminated | truncated, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.batched.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        # Settings apply to every episode alike.
        setattr(self.batched.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        # The batch runs one env's options, task and randomiser for every episode: called once, it
        # applies to all (e.g. RobotEnv.set_training_progress).
        result = getattr(self.batched.env, method_name)(*args, **kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> Sequence[bool]:
        return [False] * len(self._get_indices(indices))
