"""`s2r-deploy-node`: the deploy node's executable, as ROS 2 starts it (`ros2 launch s2r deploy.launch.py`).

Reads the node's parameters the way every ROS 2 node gets them
(`--ros-args -p name:=value` and `--params-file FILE`), builds the policy and
the deploy options, and spins `hardware.apps.ros2_node.DeployNode` until SIGINT or
SIGTERM. Parameters: robot, policy, device (sim, serial, ros2), port
(serial), rate (Hz, 0: the policy's), duration (s, 0: until disarmed), log
(MCAP path, empty: none), params (parameter set), max_slew (units/s, 0: the robot's
rate limits), autostart.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

NODE_NAME = "s2r_deploy"
PARAMETERS: dict[str, Any] = {
    "robot": "pendubot",
    "policy": "zoo:pendubot",
    "device": "sim",
    "port": "",
    "rate": 0.0,
    "duration": 0.0,
    "log": "",
    "params": "model_1.0",
    "max_slew": 0.0,
    "autostart": False,
}


def parse_ros_args(argv: list[str]) -> dict[str, Any]:
    """The node's parameters from ROS 2's command line: `--ros-args` followed by `-p name:=value` and
    `--params-file FILE` (YAML with `<node or /**>: {ros__parameters: {...}}`); later ones win.
    Unknown parameters and values of the wrong type are errors naming them."""
    params = dict(PARAMETERS)
    args = argv[argv.index("--ros-args") + 1 :] if "--ros-args" in argv else []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in ("-p", "--param") and i + 1 < len(args):
            name, sep, value = args[i + 1].partition(":=")
            if not sep:
                raise ValueError(f"parameter {args[i + 1]!r}: expected name:=value")
            _set(params, name, yaml.safe_load(value), "command line")
            i += 2
        elif flag == "--params-file" and i + 1 < len(args):
            data = yaml.safe_load(Path(args[i + 1]).read_text()) or {}
            for node, section in data.items():
                if node.strip("/") in ("**", NODE_NAME):
                    for name, value in (section or {}).get("ros__parameters", {}).items():
                        _set(params, name, value, args[i + 1])
            i += 2
        elif flag in ("-r", "--remap", "--log-level", "-e", "--enclave") and i + 1 < len(args):
            i += 2  # for ROS 2 itself (remappings, logging): nothing for s2r
        else:
            i += 1
    return params


def _set(params: dict[str, Any], name: str, value: Any, source: str) -> None:
    if name not in PARAMETERS:
        raise ValueError(f"{source}: unknown parameter {name!r}; the node takes {', '.join(PARAMETERS)}")
    kind = type(PARAMETERS[name])
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and value is None:
        value = ""
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"{source}: parameter {name!r} expects a {kind.__name__}, got {value!r}")
    params[name] = value


def deploy_options(params: dict[str, Any], policy):
    """The DeployOptions the parameters describe, for `policy` (its task, rate and action history)."""
    from hardware.apps.deploy import options_for
    from hardware.safety import SafetyConfig

    device = params["device"]
    if device == "serial":
        if not params["port"]:
            raise ValueError("device serial needs the port parameter (e.g. port:=/dev/ttyACM0)")
        device = f"serial:{params['port']}"
    return options_for(
        policy,
        params["robot"],
        rate_hz=params["rate"] or None,
        duration_s=params["duration"] or None,
        device=device,
        params=params["params"],
        safety=SafetyConfig(max_slew_per_s=params["max_slew"] or None),
        log_path=Path(params["log"]) if params["log"] else None,
        domain_id=int(os.environ.get("ROS_DOMAIN_ID", 0)),
        metadata={"policy": {"name": params["policy"]}, "node": {"name": NODE_NAME}},
    )


def main(argv: list[str] | None = None) -> int:
    from hardware.apps.ros2_node import DeployNode
    from hardware.links.ros2_transport import RclpyTransport, make_transport
    from policies import make_controller

    logging.basicConfig(level=logging.INFO, format=f"[{NODE_NAME}] %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        params = parse_ros_args(argv)
        policy = make_controller(params["policy"], params["robot"])
        options = deploy_options(params, policy)
        # rclpy under ROS 2 (it takes the --ros-args too: remappings, log levels), else Cyclone DDS.
        transport = make_transport(options.domain_id, node_name=NODE_NAME, args=[sys.argv[0], *argv])
        if isinstance(transport, RclpyTransport):
            transport.declare_parameters(params)
        node = DeployNode(policy, options, transport, NODE_NAME, autostart=params["autostart"])
    except (ValueError, OSError) as exc:
        print(f"{NODE_NAME}: error: {exc}", file=sys.stderr)
        return 2

    def shutdown(signum, frame) -> None:
        node.shutdown = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, shutdown)
    log.info("parameters: %s", params)
    try:
        node.spin()
    finally:
        transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
