"""Hardware-in-the-loop: the real loop over a real serial port, against the emulator or a device, judged.

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
- log:       the MCAP log is complete and holds every tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hardware.apps.deploy import DeployOptions, binding_of, deploy, trajectory_of
from hardware.apps.log import read_log
from hardware.backends.serial_device import SerialDevice
from hardware.emulators.faults import FaultPlan
from hardware.emulators.process import EmulatorProcess
from hardware.loop import Policy, TickRecord
from hardware.safety import blind_torque_ticks, max_steps
from sim.robots import load_robot_params, robot_spec


def detection_bound(kind: str, duration_s: float, options: DeployOptions) -> int:
    """Ticks within which the loop must catch an injected fault, counted from the injection (a tick
    still running at the injection counts).

    - unplug: the next read or write fails: 2 ticks;
    - frozen sensor: the watchdog's frozen timeout, plus 3 ticks: the one running at the injection,
      the one that reads the last fresh frame (still on the link at the injection), and the first
      whose age of the values is over the timeout;
    - brown-out: the device's RESET fault when it reboots, or the stale-state timeout if sooner, plus 2.
    """
    rate, safety = options.rate_hz, options.safety
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
    """Deploy over serial and judge the run. `options.device` is serial:PORT for a real device, or
    `serial` to start the emulator (with `faults`, the options' parameters and imperfections, and
    the plant hanging or upright as `start` says). `should_stop` is asked before every tick."""
    records: list[TickRecord] = []
    report = None
    if options.device == "serial":
        with EmulatorProcess(
            robot=options.robot,
            params=options.params,
            imperfections=options.imperfections,
            seed=options.seed,
            faults=faults or FaultPlan(),
            start=start,
        ) as emulator:
            device = SerialDevice(emulator.port)
            result = deploy(policy, options, device, records, should_stop)
            report = emulator.stop()
    else:
        if faults is not None:
            raise ValueError("faults are injected by the emulator: use --device serial --emulate, not a real port")
        device = SerialDevice(options.device.removeprefix("serial:"))
        result = deploy(policy, options, device, records, should_stop)
    rtt = np.array(device.rtt_us)
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
        }
    return result


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
    spec = robot_spec(options.robot, load_robot_params(options.robot, options.params))
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

    # Losses: every frame the emulator dropped or damaged, in the range the host saw, was counted.
    if report is not None:
        seqs = [r.state.seq for r in records if r.state.seq >= 0]
        first, last = min(seqs), max(seqs)
        injected = {s for s in report["states_dropped"] + report["states_corrupted"] if first < s < last}
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

    if options.log_path is not None:
        contents = read_log(options.log_path)
        logged = len(contents.messages.get("/command", []))
        ok = contents.complete and not contents.damage and logged == len(records)
        damage = f", damaged: {'; '.join(contents.damage)}" if contents.damage else ""
        check("log", ok, f"{logged} of {len(records)} ticks, complete: {contents.complete}{damage}")
    return checks
