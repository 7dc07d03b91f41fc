"""The simulated device: the env's MuJoCo plant, parameters and imperfections behind the Device contract.

Two modes:
- lockstep: each write() holds the command for exactly one control period of
  physics; read() returns the measurement at the current simulated time. With
  the same seed it reproduces the env's episode step for step.
- realtime: the plant runs at its physics rate (0.002 s) in its own thread,
  paced by the wall clock; write() sets the command it holds, read() returns
  the latest measurement, so the loop meets real latency and jitter.

Commands are joint torques in N m, in spec order; states are [q, dq].
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from hardware.device import Command, Device, DeviceError, State
from sim.env import SwingUpEnv
from sim.plant import PHYSICS_DT

MODES = ("lockstep", "realtime")


class SimDevice(Device):
    """A simulated pendulum robot. `env_options` are SwingUpEnv options (params, imperfections, ...)."""

    def __init__(
        self,
        robot: str,
        control_rate_hz: float = 100.0,
        mode: str = "lockstep",
        seed: int = 0,
        **env_options: Any,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown SimDevice mode {mode!r}; expected one of {', '.join(MODES)}")
        # The env builds (and validates) the same plant the policy was trained on; it never steps here.
        env_options.setdefault("t_final", math.inf)
        self.env = SwingUpEnv(robot, control_rate_hz=control_rate_hz, **env_options)
        super().__init__(self.env.robot.spec(self.env.nominal_params))
        self.mode = mode
        self.seed = seed
        self._lock = threading.Lock()
        self._command = np.zeros(self.env.n)
        self._latest: State | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._failure: BaseException | None = None

    @property
    def plant(self):
        return self.env.plant

    def _on_activate(self) -> None:
        self.env.reset(seed=self.seed)
        self._command = np.zeros(self.env.n)
        self._publish()
        if self.mode == "realtime":
            self._running.set()
            self._thread = threading.Thread(target=self._run_physics, name="sim-device-physics", daemon=True)
            self._thread.start()

    def _on_deactivate(self) -> None:
        with self._lock:
            self._command = np.zeros(self.env.n)
        self._stop_thread()

    def _on_close(self) -> None:
        self._stop_thread()

    def _stop_thread(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _publish(self) -> None:
        """Make the plant's current measurement the latest state (sequence = physics step)."""
        stamp = int(round(self.plant.time * 1e9)) if self.mode == "lockstep" else time.monotonic_ns()
        self._latest = State(stamp, self.plant._steps, self.plant.measure())

    def _run_physics(self) -> None:
        period = int(PHYSICS_DT * 1e9)
        deadline = time.monotonic_ns()
        rng = self.env.np_random
        try:
            while self._running.is_set():
                with self._lock:
                    command = self._command.copy()
                self.plant.step(command, 1, rng)
                with self._lock:
                    self._publish()
                deadline += period
                remaining = deadline - time.monotonic_ns()
                if remaining > 0:
                    time.sleep(remaining / 1e9)
                else:
                    deadline = time.monotonic_ns()  # overran: re-anchor rather than race to catch up
        except Exception as exc:  # surfaced to the loop by the next read()
            self._failure = exc

    def _read(self) -> State:
        if self._failure is not None:
            raise DeviceError(f"simulated plant failed: {self._failure}")
        with self._lock:
            return self._latest

    def _write(self, command: Command) -> Command:
        values = np.asarray(command.values, dtype=float)
        if values.shape != (self.env.n,):
            raise DeviceError(f"command has shape {values.shape}; the {self.env.robot.name} takes {self.env.n} torques")
        if self.mode == "lockstep":
            self.plant.step(values, self.env.substeps, self.env.np_random)
            self._publish()
        else:
            with self._lock:
                self._command = values.copy()
        return Command(values)

    def trajectory(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The plant's true trajectory since activation (T, X, U), as the env records it."""
        return self.plant.trajectory()
