"""The quadrotor's links: request round trip against the bare transport, and the highest loop rate without misses.

Round trip, each link against its emulator in a process of its own, measured
alternately with its bare transport's echo in the same run:
- msp: an MSP request (API_VERSION) and its reply through `hardware.links.msp`,
  over a pseudo-terminal; peer: the same bytes echoed raw by a process on a pty;
- crtp: a CRTP link-service echo (cflib's ping layout) through cflib's own
  client over its UDP link; peer: one datagram echoed raw by a process on UDP;
- ros2: a geometry_msgs/Twist through s2r's Cyclone DDS transport to an echo
  participant and back (the DDS stack crazyswarm2's topics ride on); peer: the
  raw UDP echo.
The ratio is what each protocol stack costs over its wire.

Loop rate: the real loop flying the geometric baseline (rates level) over each
link against its emulator at rising rates, a few seconds each; the highest
rate with no missed deadline and no fault is reported.

    python bench/flight_links.py [--samples 1000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import select
import socket
import struct
import threading
import time
import tty
from pathlib import Path

import numpy as np

from hardware.apps.deploy import DeployOptions, binding_of
from hardware.apps.hil import emulated_device
from hardware.clock import MonotonicClock
from hardware.emulators.faults import FaultPlan
from hardware.emulators.process import EmulatorProcess
from hardware.links import msp
from hardware.links import ros2_msgs as m
from hardware.loop import ControlLoop
from policies import make_controller
from sim.robots import load_robot_params, robot_spec

RATES_HZ = (100, 250, 500)
DOMAIN = 91


def percentiles(us: list[float]) -> dict[str, float]:
    x = np.asarray(us)
    return {"p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)), "max": float(x.max())}


# Peers: the bare transports ----------------------------------------------------------------------
def _pty_echo(master: int) -> None:
    while True:
        select.select([master], [], [])
        data = os.read(master, 4096)
        if not data:
            return
        os.write(master, data)


def pty_echo_rtt(message: bytes, samples: int) -> list[float]:
    master, slave = os.openpty()
    tty.setraw(slave)
    echo = multiprocessing.get_context("fork").Process(target=_pty_echo, args=(master,), daemon=True)
    echo.start()
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


def _udp_echo(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        while True:
            data, address = sock.recvfrom(2048)
            sock.sendto(data, address)


def udp_echo_rtt(size: int, samples: int) -> list[float]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    echo = multiprocessing.get_context("fork").Process(target=_udp_echo, args=(port,), daemon=True)
    echo.start()
    time.sleep(0.2)
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        message = bytes(range(size))
        for _ in range(samples):
            t0 = time.monotonic_ns()
            sock.send(message)
            sock.recv(2048)
            out.append((time.monotonic_ns() - t0) / 1e3)
            time.sleep(0.002)
    echo.terminate()
    return out


# The links -------------------------------------------------------------------------------------
def msp_rtt(port: str, samples: int) -> list[float]:
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    decoder = msp.Decoder()
    request = msp.encode(msp.Message(msp.Command.API_VERSION))
    out = []
    try:
        for _ in range(samples):
            t0 = time.monotonic_ns()
            os.write(fd, request)
            replies = []
            while not any(r.command == msp.Command.API_VERSION for r in replies):
                select.select([fd], [], [], 0.1)
                replies += decoder.feed(os.read(fd, 4096))
            out.append((time.monotonic_ns() - t0) / 1e3)
            time.sleep(0.002)
    finally:
        os.close(fd)
    return out


def crtp_rtt(uri: str, samples: int) -> list[float]:
    import cflib.crtp
    from cflib.crazyflie import Crazyflie
    from cflib.crtp.crtpstack import CRTPPacket, CRTPPort

    cflib.crtp.init_drivers()
    cf = Crazyflie(rw_cache=None)
    connected, echoed = threading.Event(), threading.Event()
    cf.fully_connected.add_callback(lambda uri: connected.set())
    cf.add_port_callback(CRTPPort.LINKCTRL, lambda pk: pk.channel == 0 and echoed.set())
    cf.open_link(uri)
    if not connected.wait(10):
        raise RuntimeError(f"cflib did not connect to {uri}")
    out = []
    try:
        for _ in range(samples):
            packet = CRTPPacket()
            packet.set_header(CRTPPort.LINKCTRL, 0)
            packet.data = struct.pack("<Bd", 1, 0.0)  # cflib's own ping layout; header 1 is not its ping
            echoed.clear()
            t0 = time.monotonic_ns()
            cf.send_packet(packet)
            echoed.wait(0.1)
            out.append((time.monotonic_ns() - t0) / 1e3)
            time.sleep(0.002)
    finally:
        cf.close_link()
    return out


def _dds_echo(ready) -> None:
    from hardware.links.dds import DdsTransport

    transport = DdsTransport(DOMAIN, loopback=True)
    reader = transport.subscriber("/bench/ping", m.Twist, reliable=False, depth=64)
    writer = transport.publisher("/bench/pong", m.Twist)
    ready.set()
    while True:
        for sample in reader.take(64):
            if isinstance(sample, m.Twist):
                writer.write(sample)
        time.sleep(0.0001)


def dds_rtt(samples: int) -> list[float]:
    from hardware.links.dds import DdsTransport

    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    echo = ctx.Process(target=_dds_echo, args=(ready,), daemon=True)
    echo.start()
    ready.wait(60)
    transport = DdsTransport(DOMAIN, loopback=True)
    writer = transport.publisher("/bench/ping", m.Twist)
    reader = transport.subscriber("/bench/pong", m.Twist, reliable=False, depth=64)
    deadline = time.monotonic() + 10
    while not (transport.matched(writer) and transport.matched(reader)) and time.monotonic() < deadline:
        time.sleep(0.01)
    out = []
    try:
        for i in range(samples):
            message = m.Twist(m.Vector3(float(i), 0.0, 0.0))
            t0 = time.monotonic_ns()
            writer.write(message)
            got = False
            while not got and time.monotonic_ns() - t0 < 100_000_000:
                got = any(isinstance(s, m.Twist) and s.linear.x == float(i) for s in reader.take(64))
            out.append((time.monotonic_ns() - t0) / 1e3)
            time.sleep(0.002)
    finally:
        transport.close()
        echo.terminate()
    return out


def _emulator(link: str) -> EmulatorProcess:
    options = {"robot": "crazyflie", "params": "l2f", "imperfections": False, "faults": FaultPlan()}
    if link in ("msp", "ros2"):
        options["domain_id"] = DOMAIN + 1
    return EmulatorProcess(transport="crazyswarm2" if link == "ros2" else link, **options)


def highest_rate(link: str, seconds: float) -> dict[str, dict]:
    runs = {}
    for rate in RATES_HZ:
        policy = make_controller("baseline", "crazyflie", rate, "rates")
        options = DeployOptions(
            robot="crazyflie", rate_hz=rate, device=link, domain_id=DOMAIN + 1, conditions=dict(policy.conditions),
            action_history=0,
        )  # fmt: skip
        with _emulator(link) as emulator:
            device = emulated_device(link, emulator.port, options)
            device.configure(robot_spec("crazyflie", load_robot_params("crazyflie", "l2f"), "rates"))
            device.activate()
            loop = ControlLoop(device, policy, binding_of(options), rate, MonotonicClock(), action_history=0)
            stats = loop.run(duration_s=seconds)
            device.close()
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
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "flight_links.json")
    args = parser.parse_args()
    block = max(1, args.samples // 10)
    request = msp.encode(msp.Message(msp.Command.API_VERSION))
    links: dict[str, dict] = {}
    for link in ("msp", "crtp", "ros2"):
        ours, bare = [], []
        if link == "ros2":
            for _ in range(10):
                ours += dds_rtt(block)
                bare += udp_echo_rtt(64, block)
        else:
            with _emulator(link) as emulator:
                for _ in range(10):
                    ours += msp_rtt(emulator.port, block) if link == "msp" else crtp_rtt(emulator.port, block)
                    bare += pty_echo_rtt(request, block) if link == "msp" else udp_echo_rtt(10, block)
                emulator.stop()
        rates = highest_rate(link, args.seconds)
        clean = [int(r) for r, run in rates.items() if run["missed_deadlines"] == 0 and not run["faults"]]
        links[link] = {
            "round_trip_us": {"link": percentiles(ours), "bare_transport": percentiles(bare)},
            "ratio_p50": float(np.percentile(ours, 50) / np.percentile(bare, 50)),
            "ratio_p99": float(np.percentile(ours, 99) / np.percentile(bare, 99)),
            "loop_rates": rates,
            "highest_rate_without_misses_hz": max(clean) if clean else None,
        }
        r = links[link]
        rt = r["round_trip_us"]
        print(
            f"{link}: round trip p50 {rt['link']['p50']:.0f} us against {rt['bare_transport']['p50']:.0f} bare "
            f"({r['ratio_p50']:.1f}x; p99 {r['ratio_p99']:.1f}x); "
            f"highest loop rate without misses {r['highest_rate_without_misses_hz']} Hz"
        )
    result = {
        "links": links,
        "samples": block * 10,
        "seconds_per_rate": args.seconds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
