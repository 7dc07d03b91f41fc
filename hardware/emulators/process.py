"""An emulator in a process of its own, as firmware runs on its own processor."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

TRANSPORTS = ("serial", "ros2", "msp", "crtp", "crazyswarm2")


class EmulatorProcess:
    """An emulator (serial, ROS 2 topics, a flight controller over MSP, a Crazyflie over CRTP
    or behind crazyswarm2's topics) in a process of its own,
    as firmware runs on its own processor: it never shares the loop's interpreter lock. `port` (for
    ROS 2, a description of the topics) is ready when the constructor returns."""

    def __init__(self, transport: str = "serial", **emulator_options: Any):
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown emulator transport {transport!r}; expected one of {', '.join(TRANSPORTS)}")
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(transport, emulator_options, child), name="s2r-emulator", daemon=True
        )
        self._process.start()
        if not self._conn.poll(120):
            self._process.terminate()
            raise RuntimeError("the device emulator did not start within 120 s")
        kind, value = self._conn.recv()
        if kind == "error":
            self._process.join(timeout=5)
            raise RuntimeError(f"the device emulator failed to start: {value}")
        self.port: str = value
        self.report: dict[str, Any] | None = None
        self._stopping = threading.Lock()

    def stop(self) -> dict[str, Any]:
        """Stop serving; returns the emulator's report (what it received and injected, and when).
        Safe to call more than once and from several threads (a test's timer, the context's exit)."""
        with self._stopping:
            if self.report is None:
                self._conn.send("stop")
                if not self._conn.poll(60):
                    self._process.terminate()
                    raise RuntimeError("the device emulator did not stop within 60 s")
                kind, self.report = self._conn.recv()
                self._process.join(timeout=10)
                if kind == "error":
                    raise RuntimeError(f"the device emulator failed: {self.report}")
        return self.report

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.report is None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)


def _serve(transport: str, options: dict[str, Any], conn) -> None:
    try:
        if transport == "ros2":
            from hardware.emulators.ros2_emulator import Ros2Emulator

            emulator = Ros2Emulator(**options)
        elif transport == "crazyswarm2":
            from hardware.emulators.crazyswarm2_emulator import Crazyswarm2Emulator

            emulator = Crazyswarm2Emulator(**options)
        elif transport == "crtp":
            from hardware.emulators.crtp_emulator import CrtpEmulator

            emulator = CrtpEmulator(**options)
        elif transport == "msp":
            from hardware.emulators.msp_emulator import MspEmulator

            emulator = MspEmulator(**options)
        else:
            from hardware.emulators.serial_emulator import Emulator

            emulator = Emulator(**options)
        conn.send(("port", emulator.open()))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        report = emulator.run(should_stop=conn.poll)
        conn.recv()
        conn.send(("report", report))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        emulator.close()
