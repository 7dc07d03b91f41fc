"""Serial link: command round trip over a pseudo-terminal, and the highest loop rate without misses.

Round trip: SerialDevice sends COMMAND frames to the device emulator (its own
process) and times each until the first STATE that echoes it, minus the time
the emulator held the echo (so the wait for its next physics step is not
counted). The peer, measured alternately in the same run, is the floor of the
transport: a raw 20-byte write to a process that echoes it back unchanged
(no framing, no CRC, no protocol). The ratio is the cost of the protocol.

Loop rate: the real loop with the pendubot's LQR stabiliser over serial against
the emulator, at rising rates, for a few seconds each; the highest rate with no
missed deadline and no fault is reported.

    python bench/serial_latency.py [--samples 2000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import select
import time
import tty
from pathlib import Path

import numpy as np

from hardware.backends.serial_device import SerialDevice
from hardware.clock import MonotonicClock
from hardware.device import Command
from hardware.emulators.process import EmulatorProcess
from hardware.loop import ControlLoop
from policies.baselines import PendubotEnergyLQR
from sim.robots import get_robot
from sim.tasks import swingup_binding

RATES_HZ = (250, 500, 1000)
EMULATOR = {"robot": "pendubot", "params": "model_1.1", "imperfections": False, "start": "up"}


def percentiles(us: list[float]) -> dict[str, float]:
    x = np.asarray(us)
    return {"p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)), "max": float(x.max())}


def _echo(master: int) -> None:
    """The peer's far side: every byte straight back."""
    while True:
        select.select([master], [], [])
        data = os.read(master, 4096)
        if not data:
            return
        os.write(master, data)


def raw_echo_rtt(samples: int) -> list[float]:
    master, slave = os.openpty()
    tty.setraw(slave)
    echo = multiprocessing.get_context("fork").Process(target=_echo, args=(master,), daemon=True)
    echo.start()
    message = bytes(range(1, 21))
    out = []
    try:
        for _ in range(samples):
            t0 = time.monotonic_ns()
            os.write(slave, message)
            got = b""
            while len(got) < len(message):
                select.select([slave], [], [])
                got += os.read(slave, 4096)
            out.append((time.monotonic_ns() - t0) / 1e3)
            time.sleep(0.002)
    finally:
        echo.terminate()
        os.close(master)
        os.close(slave)
    return out


def protocol_rtt(port: str, spec, samples: int) -> list[float]:
    with SerialDevice(port) as device:
        device.configure(spec)
        device.activate()
        for _ in range(samples):
            device.write(Command(np.zeros(2)))
            seen = len(device.rtt_us)
            deadline = time.monotonic() + 0.1
            while len(device.rtt_us) == seen and time.monotonic() < deadline:
                device.read()
            time.sleep(0.002)
        return list(device.rtt_us)


def highest_rate(spec, params, seconds: float) -> dict[str, dict]:
    robot = get_robot("pendubot")
    runs = {}
    for rate in RATES_HZ:
        # A fresh emulator per rate, balanced upright, so the stabiliser has the robot to hold.
        with EmulatorProcess(**EMULATOR) as emulator, SerialDevice(emulator.port) as device:
            device.configure(spec)
            device.activate()
            loop = ControlLoop(
                device,
                PendubotEnergyLQR(),
                swingup_binding.binding(robot, params, 0.5),
                rate,
                MonotonicClock(),
                action_history=0,
            )
            stats = loop.run(duration_s=seconds)
            device.deactivate()
            emulator.stop()
            runs[str(rate)] = {
                "faults": [f["reason"] for f in stats["faults"]],
                "missed_deadlines": stats["missed_deadlines"],
                "compute_us": stats["compute_us"],
                "jitter_us": stats["jitter_us"],
            }
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serial_latency.json")
    args = parser.parse_args()
    robot = get_robot("pendubot")
    params = robot.load_params("model_1.1")
    spec = robot.spec(params)
    with EmulatorProcess(**EMULATOR) as emulator:
        # Alternate the two in blocks so that the machine's load hits both alike.
        s2r, raw = [], []
        block = max(1, args.samples // 10)
        for _ in range(10):
            s2r += protocol_rtt(emulator.port, spec, block)
            raw += raw_echo_rtt(block)
        emulator.stop()
    rates = highest_rate(spec, params, args.seconds)
    clean = [int(r) for r, run in rates.items() if run["missed_deadlines"] == 0 and not run["faults"]]
    result = {
        "round_trip_us": {"s2r_protocol_via_emulator": percentiles(s2r), "raw_pty_echo": percentiles(raw)},
        "ratio_p50": float(np.percentile(s2r, 50) / np.percentile(raw, 50)),
        "ratio_p99": float(np.percentile(s2r, 99) / np.percentile(raw, 99)),
        "loop_rates": rates,
        "highest_rate_without_misses_hz": max(clean) if clean else None,
        "samples": len(s2r),
        "seconds_per_rate": args.seconds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(f"{'round trip, us':<34} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, v in result["round_trip_us"].items():
        print(f"{name:<34} {v['p50']:8.1f} {v['p99']:8.1f} {v['max']:8.1f}")
    print(f"protocol / raw echo: p50 {result['ratio_p50']:.2f}x, p99 {result['ratio_p99']:.2f}x")
    for rate, r in rates.items():
        print(
            f"loop at {rate:>5} Hz: {r['missed_deadlines']} missed deadlines, {len(r['faults'])} faults, "
            f"compute p99 {r['compute_us']['p99']:.0f} us"
        )
    print(f"highest loop rate without misses: {result['highest_rate_without_misses_hz']} Hz")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
