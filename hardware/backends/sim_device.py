"""The simulated device: a simulated robot (`sim.simulated`) behind the Device contract.

Two modes:
- lockstep: each write() holds the command for exactly one control period of
  physics; read() returns the measurement at the current simulated time. With
  the same seed it reproduces the env's episode step for step.
- realtime: the plant runs at its physics rate in its own thread, served by
  `sim.simulated.PlantServer` as the emulators serve theirs; write() sets the
  command it holds, read() returns the latest measurement, so the loop meets
  real latency and jitter.

States and commands are in the robot spec's channel order (`sim.simulated`).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from hardware.device import Command, Device, DeviceError, State
from sim.simulated import PlantServer, SimulatedRobot

MODES = ("lockstep", "realtime")


class SimDevice(Device):
    """A simulated robot, started at `seed` as its task's episodes start."""

    def __init__(self, plant: SimulatedRobot, mode: str = "lockstep", seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"unknown SimDevice mode {mode!r}; expected one of {', '.join(MODES)}")
        super().__init__(plant.spec)
        self.plant = plant
        self.mode = mode
        self.server = PlantServer(plant, seed)
        self._idle = np.zeros(len(plant.spec.command))
        self._lock = threading.Lock()
        self._command = self._idle.copy()
        self._latest: State | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._failure: BaseException | None = None

    def _on_activate(self) -> None:
        self.server.restart()
        self._command = self._idle.copy()
        self._publish()
        if self.mode == "realtime":
            self._running.set()
            self._thread = threading.Thread(target=self._run_physics, name="sim-device-physics", daemon=True)
            self._thread.start()

    def _on_deactivate(self) -> None:
        with self._lock:
            self._command = self._idle.copy()
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
        self._latest = State(stamp, self.plant.steps, self.plant.measure())

    def _run_physics(self) -> None:
        server = self.server
        server.next_step_ns = 0  # anchor the pace now
        try:
            while self._running.is_set():
                now = time.monotonic_ns()
                if not server.due(now):
                    time.sleep((server.next_step_ns - now) / 1e9)
                    continue
                with self._lock:
                    command = self._command.copy()
                server.step(command)
                with self._lock:
                    self._publish()
        except Exception as exc:  # surfaced to the loop by the next read()
            self._failure = exc

    def _read(self) -> State:
        if self._failure is not None:
            raise DeviceError(f"simulated plant failed: {self._failure}")
        with self._lock:
            return self._latest

    def _write(self, command: Command) -> Command:
        values = np.asarray(command.values, dtype=float)
        if values.shape != self._idle.shape:
            raise DeviceError(f"command has shape {values.shape}; the {self.plant.spec.name} takes {len(self._idle)}")
        if self.mode == "lockstep":
            self.plant.advance(values, self.plant.substeps)
            self._publish()
        else:
            with self._lock:
                self._command = values.copy()
        return Command(values)
