"""s2r's deploy loop as a ROS 2 node: diagnostics out, arm / disarm / e-stop in, over ROS 2 topics.

The node (started by `s2r-deploy-node`, which `launch/deploy.launch.py` runs):

- publishes `/diagnostics` (diagnostic_msgs/DiagnosticArray): its state and
  loop timing every second, and each fault as it happens;
- starts the loop on `/s2r/arm`, stops it into the device's safe state on
  `/s2r/disarm`, and on `/s2r/estop` stops it and refuses to arm again until
  `/s2r/reset` (all std_msgs/Empty): a latched emergency stop. A run that
  ended in a fault (or could not start) latches the same way: the robot is
  armed again only after someone has looked and sent `/s2r/reset`.

Each armed run is one `deploy()` (the same loop, safety and log as `s2r deploy`).
"""

from __future__ import annotations

import time
from typing import Any

from hardware.apps.deploy import DeployOptions, deploy
from hardware.device import DeviceError
from hardware.links import ros2_msgs as msgs
from hardware.loop import Policy

CONTROL_TOPICS = ("arm", "disarm", "estop", "reset")


class DeployNode:
    """Wait for arm, run the loop until disarm / e-stop / duration, report, repeat. `transport` is a
    ROS 2 transport (hardware.links.ros2_transport.make_transport)."""

    def __init__(
        self,
        policy: Policy,
        options: DeployOptions,
        transport,
        name: str = "s2r_deploy",
        autostart: bool = False,
    ):
        self.policy, self.options, self.name, self.autostart = policy, options, name, autostart
        self.diagnostics = transport.publisher("/diagnostics", msgs.DiagnosticArray)
        # Best effort matches every publisher, reliable or not (a reliable reader would not hear a
        # best-effort one); a second, reliable reader would deliver some requests twice, and a late
        # copy of /s2r/arm or /s2r/reset must never undo a disarm or an e-stop.
        self.control = {
            topic: transport.subscriber(f"/s2r/{topic}", msgs.Empty, reliable=False, depth=8)
            for topic in CONTROL_TOPICS
        }
        self.estopped = False
        self.fault: str | None = None
        """The fault that ended the last run, latched until /s2r/reset."""
        self.runs = 0
        self.shutdown = False
        """Set (e.g. from a signal handler) to stop the loop and return from spin()."""

    def _requests(self) -> set[str]:
        return {name for name, reader in self.control.items() if any(isinstance(s, msgs.Empty) for s in reader.take(8))}

    def _publish(self, level: int, message: str, values: dict[str, Any]) -> None:
        status = msgs.DiagnosticStatus(
            level, self.name, message, self.options.robot, [msgs.KeyValue(k, str(v)) for k, v in values.items()]
        )
        header = msgs.Header(msgs.Time.from_ns(time.time_ns()), "")
        self.diagnostics.write(msgs.DiagnosticArray(header, [status]))

    def spin(self) -> None:
        """Serve until `shutdown` is set."""
        armed = self.autostart
        next_report = 0.0
        while not self.shutdown:
            requests = self._requests()
            if "reset" in requests and (self.estopped or self.fault):
                what = "e-stop" if self.estopped else "fault"
                self.estopped, self.fault = False, None
                self._publish(msgs.DiagnosticStatus.OK, f"{what} reset", {})
            if "estop" in requests:
                self.estopped = True
            armed = (armed or "arm" in requests) and "disarm" not in requests
            if armed and self.estopped:
                self._publish(msgs.DiagnosticStatus.ERROR, "arm refused: e-stop latched, send /s2r/reset", {})
                armed = False
            elif armed and self.fault:
                self._publish(
                    msgs.DiagnosticStatus.ERROR,
                    f"arm refused: the last run faulted ({self.fault}), send /s2r/reset",
                    {},
                )
                armed = False
            if armed:
                self._run()
                armed = False
            elif time.monotonic() > next_report:
                state = "e-stop latched" if self.estopped else "fault latched" if self.fault else "disarmed"
                self._publish(msgs.DiagnosticStatus.OK, state, {"runs": self.runs})
                next_report = time.monotonic() + 1.0
            time.sleep(0.02)

    def _run(self) -> None:
        self.runs += 1
        records = []
        stop = {"reason": ""}
        next_report = [time.monotonic() + 1.0]
        seen_faults = [0]

        def should_stop() -> bool:
            requests = self._requests()
            if "estop" in requests:
                self.estopped, stop["reason"] = True, "e-stop from /s2r/estop"
            elif "disarm" in requests:
                stop["reason"] = "disarmed from /s2r/disarm"
            faults = [r.fault for r in records[seen_faults[0] :] if r.fault is not None]
            seen_faults[0] = len(records)
            for fault in faults:
                self._publish(msgs.DiagnosticStatus.ERROR, fault.reason, {"tick": fault.tick})
            if time.monotonic() > next_report[0] and records:
                next_report[0] = time.monotonic() + 1.0
                last = records[-1]
                self._publish(
                    msgs.DiagnosticStatus.OK,
                    "running",
                    {"tick": last.tick, "compute_us": last.compute_ns / 1e3, "missed": last.missed},
                )
            return bool(stop["reason"]) or self.shutdown

        self._publish(msgs.DiagnosticStatus.OK, "armed: loop running", {"run": self.runs})
        try:
            result = deploy(self.policy, self.options, records=records, should_stop=should_stop)
        except (DeviceError, ValueError, OSError) as exc:  # the device, the log or the policy did not start
            self.fault = f"run failed to start: {exc}"
            self._publish(msgs.DiagnosticStatus.ERROR, self.fault, {"run": self.runs})
            return
        loop = result["loop"]
        if loop["faults"]:  # a log that stopped recording is one of them
            self.fault = loop["faults"][0]["reason"]
        summary = {
            "ticks": loop["ticks"],
            "missed_deadlines": loop["missed_deadlines"],
            "jitter_p99_us": round(loop["jitter_us"]["p99"], 1),
            "faults": len(loop["faults"]),
            result["task"]: result["summary"] or "no run",
        }
        level = msgs.DiagnosticStatus.ERROR if loop["faults"] or self.estopped else msgs.DiagnosticStatus.OK
        self._publish(level, f"stopped: {stop['reason'] or 'duration reached'}", summary)
