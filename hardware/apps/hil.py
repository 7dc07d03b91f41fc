"""Hardware-in-the-loop: the real loop over a real serial port, against the emulator or a device, judged.

The links: the s2r serial protocol (`serial`, the pendulum family); for the
quadrotor MSP to a flight controller (`msp`; motion capture beside it on DDS),
CRTP to a Crazyflie (`crtp`, through cflib over the emulator's UDP link) and
crazyswarm2's topics (`ros2`, on loopback DDS).

The verdict's checks:
- task:      the task was being done well (the task's own `held`: for the swing-up, up and
             staying up) until the first injected disruptive fault, or the end;
- limits:    no command outside the spec's limits was written (and, emulated, none arrived);
- blind:     on every tick whose state could not be trusted, the command moved to the blind safe
             command (zero torque) at the rate limit: no torque from a stale or broken reading;
- losses:    every state frame the emulator dropped or corrupted was counted by the host;
- no spurious fault: the loop faulted only after an injected fault;
- detection: every injected fault (unplug, brown-out, frozen sensor) was caught by the loop
             within its stated number of ticks (`detection_bound`);
- log:       the MCAP log is complete and holds every tick;
- down (a flying robot, emulated): the vehicle ended disarmed on the floor, and after an injected
             fault the flight controller's failsafe (or its reboot) brought it there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hardware.apps.deploy import DeployOptions, binding_of, deploy, trajectory_of
from hardware.apps.log import read_log
from hardware.backends.serial_device import SerialDevice
from hardware.device import Device
from hardware.emulators.faults import FaultPlan
from hardware.emulators.process import EmulatorProcess
from hardware.loop import Policy, TickRecord
from hardware.safety import blind_torque_ticks, max_steps
from sim.robots import QUADROTORS, load_robot_params, robot_spec

LINKS = ("serial", "msp", "crtp", "ros2")
FAILSAFES = ("failsafe", "level", "off", "rebooted")
"""What the emulated flight firmware reports of its failsafe: MSP's failsafe, the Crazyflie's
supervisor levelling out and cutting the motors, a reboot."""
FLOOR_M = 0.1
"""A vehicle below this height has come down, m."""


def detection_bound(kind: str, duration_s: float, options: DeployOptions) -> int:
    """Ticks within which the loop must catch an injected fault, counted from the injection (a tick
    still running at the injection counts).

    - unplug: the next read or write fails: 2 ticks; over a radio or a network (crtp, ros2)
      nothing fails, the state goes stale: the stale-state timeout, plus 2;
    - frozen sensor: the watchdog's frozen timeout, plus 3 ticks: the one running at the injection,
      the one that reads the last fresh frame (still on the link at the injection), and the first
      whose age of the values is over the timeout;
    - brown-out: the device's RESET fault when it reboots, or the stale-state timeout if sooner, plus 2.
    """
    rate, safety = options.rate_hz, options.safety
    if kind == "unplug" and options.device.startswith(("crtp", "ros2")):
        return math.ceil(safety.stale_timeout_s * rate) + 2
    if kind == "unplug":
        return 2
    if kind == "frozen_sensor":
        return math.ceil(safety.frozen_timeout_s * rate) + 3
    if kind == "brownout":
        return math.ceil(min(duration_s, safety.stale_timeout_s) * rate) + 2
    raise ValueError(f"no detection bound for fault {kind!r}")


def run_hil(
    policy: Policy,
    options: DeployOptions,
    faults: FaultPlan | None = None,
    start: str = "down",
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Deploy over a link and judge the run: against the link's emulator, started with `faults`
    (FaultPlan() for none), the options' parameters and imperfections and, for a pendulum, hanging
    or upright as `start` says; or, with `faults` None, against the device `options.device` names
    (serial:PORT, msp:PORT, crtp:URI, or ros2: a crazyswarm2 vehicle). `should_stop` is asked
    before every tick."""
    records: list[TickRecord] = []
    report = None
    link = options.device.split(":")[0]
    if link not in LINKS:
        raise ValueError(f"hil runs over {', '.join(LINKS)}, not {options.device!r}")
    if link == "ros2" and options.robot not in QUADROTORS:
        raise ValueError("hil runs the pendulums over serial; over ros2, the quadrotor's crazyswarm2 topics")
    if faults is None:
        if ":" not in options.device and link != "ros2":
            raise ValueError(f"--device {link} needs a port ({link}:PORT) or the emulator (--emulate)")
        device = None  # deploy opens the one the options name
        result = deploy(policy, options, device, records, should_stop)
    else:
        emulated = {"robot": options.robot, "params": options.params, "imperfections": options.imperfections}
        emulated |= {"seed": options.seed, "faults": faults}
        if link == "msp":
            emulated |= {"domain_id": options.domain_id, "mocap_topic": options.mocap_topic}
        elif link == "ros2":
            emulated |= {"domain_id": options.domain_id, "name": options.vehicle}
        elif link == "serial":
            emulated["start"] = start
        transport = "crazyswarm2" if link == "ros2" else link
        with EmulatorProcess(transport=transport, **emulated) as emulator:
            device = emulated_device(link, emulator.port, options)
            result = deploy(policy, options, device, records, should_stop)
            if link != "serial" and any(r.fault for r in records):
                time.sleep(FAILSAFE_WAIT_S)  # the board's failsafe brings the vehicle down on its own
            report = emulator.stop()
    if link == "serial":  # its commands are echoed: a round trip per command
        rtt = np.array(getattr(device, "rtt_us", []))
        result["link"]["rtt_p50_us"] = float(np.percentile(rtt, 50)) if len(rtt) else math.nan
        result["link"]["rtt_p99_us"] = float(np.percentile(rtt, 99)) if len(rtt) else math.nan
    checks = judge(records, options, result, report)
    result["checks"] = checks
    result["verdict"] = "pass" if all(c["ok"] for c in checks) else "fail"
    if report is not None:
        result["emulator"] = {
            "states_sent": report["states_sent"],
            "states_dropped": len(report["states_dropped"]),
            "states_corrupted": len(report["states_corrupted"]),
            "commands_received": report["commands_received"],
            "commands_dropped": report["commands_dropped"],
            "commands_outside_limits": report["commands_outside_limits"],
            "events": report["events"],
            **({"flight": report["flight"]} if "flight" in report else {}),
        }
    return result


FAILSAFE_WAIT_S = 3.0
"""After a faulted flight, how long the emulated vehicle is left to its firmware's failsafe (over
MSP: RC loss, 1.5 s level, the drop and the fall; over CRTP: 0.5 s, level until 2 s, motors off), s."""


def emulated_device(link: str, port: str, options: DeployOptions) -> Device:
    """The host's side of a link to its emulator at `port` (the emulators' DDS is Cyclone on loopback)."""
    if link == "serial":
        return SerialDevice(port)
    if link == "crtp":
        from hardware.backends.crtp_device import CrtpDevice

        return CrtpDevice(port)
    if link == "ros2":
        from hardware.backends.crazyswarm2_device import Crazyswarm2Device

        return Crazyswarm2Device(options.vehicle, options.domain_id, loopback=True, backend="cyclonedds")
    from hardware.backends.msp_device import MocapOdometry, MspDevice

    return MspDevice(port, MocapOdometry(options.mocap_topic, options.domain_id, loopback=True, backend="cyclonedds"))


def judge(
    records: list[TickRecord], options: DeployOptions, result: dict[str, Any], report: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The verdict's checks, each {name, ok, detail}."""
    checks = []

    def check(name: str, ok: bool, detail: str, **figures: float) -> None:
        checks.append({"name": name, "ok": bool(ok), "detail": detail, **figures})

    if not records:
        check("run", False, "the loop never ticked")
        return checks
    spec = robot_spec(options.robot, load_robot_params(options.robot, options.params), options.commands)
    binding = binding_of(options)
    starts = np.array([r.start_ns for r in records])
    # A fault belongs to the injection if its tick was still running when the fault was injected.
    ends = starts + np.array([r.compute_ns for r in records])
    # Events injected while the loop ran (the last tick may be the one that caught the last event).
    events = [e for e in (report or {}).get("events", []) if e["kind"] != "replug" and e["at_ns"] <= ends[-1]]
    first_fault = next((r for r in records if r.fault is not None), None)

    # Task: up to the first disruptive event (the run is judged on what it could control).
    end = len(records) if not events else int(np.searchsorted(starts, events[0]["at_ns"]))
    if end > 1:
        check("task", *binding.held(*trajectory_of(records[:end])))
    else:
        check("task", False, "an injected fault came before the loop ran")

    # Limits: what the loop wrote and what reached the device.
    low = np.array([c.low for c in spec.command])
    high = np.array([c.high for c in spec.command])
    commands = np.array([r.command for r in records])
    outside = int(((commands < low - 1e-12) | (commands > high + 1e-12)).any(axis=1).sum())
    received = 0 if report is None else report["commands_outside_limits"]
    check(
        "limits",
        outside == 0 and received == 0,
        f"{outside} ticks wrote and the device received {received} commands outside the limits",
    )

    # Blind: no torque from a reading the loop could not trust.
    trusted = np.array([r.trusted for r in records])
    blind = blind_torque_ticks(
        commands,
        trusted,
        binding.safe_command(None, 0.0),
        max_steps(spec, options.safety, options.rate_hz),
    )
    check(
        "blind",
        len(blind) == 0,
        f"{len(blind)} of {int((~trusted).sum())} blind ticks applied torque"
        + (f" (first at tick {records[blind[0]].tick})" if len(blind) else ""),
        blind_ticks=int((~trusted).sum()),
    )

    # Losses: every frame the emulator dropped or damaged, in the range the host saw (by its sequence
    # numbers: the serial frames' indices, the Crazyflie's log stamps), was counted.
    if report is not None and options.device.startswith("msp"):  # every state reply lost, over the session
        injected = len(report["states_dropped"]) + len(report["states_corrupted"])
        counted = result["link"]["lost_states"]
        check(
            "losses",
            counted >= injected,
            f"{injected} state replies dropped or corrupted on the wire, {counted} counted lost by the host "
            f"({result['link']['crc_errors']} checksum errors, {result['link']['malformed_frames']} malformed)",
            injected=injected,
            counted=counted,
        )
    elif report is not None:
        seqs = [r.state.seq for r in records if r.state.seq >= 0]
        first, last = min(seqs), max(seqs)
        injected = [s for s in report["states_dropped"] + report["states_corrupted"] if first < s < last]
        counted = result["link"]["lost_states"]
        check(
            "losses",
            counted >= len(injected),
            f"{len(injected)} state frames dropped or corrupted on the wire, {counted} counted lost by the host "
            f"({result['link']['crc_errors']} CRC errors, {result['link']['malformed_frames']} malformed)",
            injected=len(injected),
            counted=counted,
        )

    # No fault that nothing injected (a watchdog tripping on 5 % loss would stop a real robot for nothing).
    if first_fault is not None and (not events or first_fault.start_ns + first_fault.compute_ns < events[0]["at_ns"]):
        check("no spurious fault", False, f"tick {first_fault.tick}: {first_fault.fault.reason}")
    else:
        check("no spurious fault", True, "every fault followed an injected one" if events else "no fault")

    # Detection: each injected fault caught within its bound.
    for event in events:
        bound = detection_bound(event["kind"], event["duration_s"], options)
        name = f"detect {event['kind']}"
        if first_fault is not None and first_fault.start_ns + first_fault.compute_ns < event["at_ns"]:
            check(name, True, f"injected after the loop had already faulted at tick {first_fault.tick}: not judged")
            continue
        caught = next((r for r in records if r.fault is not None and r.start_ns + r.compute_ns >= event["at_ns"]), None)
        if caught is None:
            check(name, False, f"not caught (bound {bound} ticks)")
            continue
        # Ticks from the one running at the injection to the one that caught it, both counted.
        ticks = int(((ends >= event["at_ns"]) & (starts <= caught.start_ns)).sum())
        check(name, ticks <= bound, f"caught in {ticks} ticks (bound {bound}): {caught.fault.reason}", ticks=ticks)

    if report is not None and "flight" in report:
        check("down", *_came_down(report["flight"], events))

    if options.log_path is not None:
        contents = read_log(options.log_path)
        logged = len(contents.messages.get("/command", []))
        ok = contents.complete and not contents.damage and logged == len(records)
        damage = f", damaged: {'; '.join(contents.damage)}" if contents.damage else ""
        check("log", ok, f"{logged} of {len(records)} ticks, complete: {contents.complete}{damage}")
    return checks


def _came_down(flight: dict[str, Any], events: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether the emulated vehicle ended disarmed on the floor, by the failsafe (or a reboot) when a
    fault was injected."""
    height = flight["final_position"][2]
    how = [e for e in flight["events"] if e["kind"] in (*FAILSAFES, "disarmed")]
    if events:
        how = [e for e in how if e["at_ns"] >= events[0]["at_ns"]]
    said = ", ".join(e["kind"] + (f" ({e['why']})" if "why" in e else "") for e in how) or "nothing"
    down = not flight["armed"] and height < FLOOR_M
    if events and not any(e["kind"] in FAILSAFES for e in how):
        return False, f"after the injected fault the board did not fail safe ({said}); height {height:.2f} m"
    return down, f"{'disarmed' if not flight['armed'] else 'ARMED'} at {height:.2f} m: {said}"
