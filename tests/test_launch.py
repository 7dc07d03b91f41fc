"""The ROS 2 package: the launch file's arguments (read statically, and by launch_ros where ROS 2 is
installed), the deploy node's parameters, and the layout `colcon build` installs."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

from s2r.ros2_node import PARAMETERS, parse_ros_args

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "deploy.launch.py"
DOCUMENTED = {"robot", "policy", "device", "port", "rate", "log"}


def _declared_arguments() -> dict[str, str]:
    """ARGUMENTS of the launch file (name -> default), without importing launch or launch_ros."""
    tree = ast.parse(LAUNCH.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS":
            return {
                ast.literal_eval(k): ast.literal_eval(v.elts[0])
                for k, v in zip(node.value.keys, node.value.values, strict=True)
            }
    raise AssertionError("the launch file has no ARGUMENTS table")


def test_launch_arguments_are_the_documented_ones_and_each_is_a_node_parameter():
    arguments = _declared_arguments()
    assert set(arguments) == DOCUMENTED
    assert set(arguments) <= set(PARAMETERS)
    declared = [
        call.args[0].value
        for call in ast.walk(ast.parse(LAUNCH.read_text()))
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument" and call.args
        if isinstance(call.args[0], ast.Constant)
    ]
    assert declared == ["params_file"]  # the others are declared from ARGUMENTS
    # The defaults parse as the node's parameters do.
    argv = ["--ros-args"] + [x for name, default in arguments.items() for x in ("-p", f"{name}:={default}")]
    params = parse_ros_args(argv)
    assert params["robot"] == "pendubot" and params["rate"] == 0.0 and params["port"] == ""


def test_the_shipped_parameter_file_is_valid_and_overridable():
    argv = ["--ros-args", "--params-file", str(ROOT / "launch" / "deploy.yaml"), "-p", "device:=ros2", "-r", "a:=b"]
    params = parse_ros_args(argv)
    assert params["device"] == "ros2" and params["autostart"] is False and params["max_slew"] == 600.0


def test_the_node_deploys_a_policy_as_it_was_trained():
    from s2r.ros2_node import deploy_options

    class Trained:
        control_rate_hz, action_history = 100.0, 1
        conditions = {"observe_winding": True, "friction_compensation": True}

    params = parse_ros_args(["--ros-args", "--params-file", str(ROOT / "launch" / "deploy.yaml")])
    options = deploy_options(params, Trained())
    assert options.rate_hz == 100.0 and options.action_history == 1
    assert options.conditions == Trained.conditions


def test_bad_parameters_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter 'speed'"):
        parse_ros_args(["--ros-args", "-p", "speed:=3"])
    with pytest.raises(ValueError, match="parameter 'rate' expects a float, got 'fast'"):
        parse_ros_args(["--ros-args", "-p", "rate:=fast"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    autostart: 3\n")
    with pytest.raises(ValueError, match="bad.yaml: parameter 'autostart' expects a bool"):
        parse_ros_args(["--ros-args", "--params-file", str(bad)])


def test_launch_ros_loads_the_launch_file():
    pytest.importorskip("launch_ros", reason="launch_ros comes with a ROS 2 install")
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert names == DOCUMENTED | {"params_file"}


def test_colcon_installs_the_ros2_package_layout(tmp_path):
    if shutil.which("colcon") is None:
        pytest.skip("colcon is not installed (Debian: apt-get install colcon python3-colcon-ros python3-ament-package)")
    install = tmp_path / "install"
    subprocess.run(
        [
            "colcon",
            "--log-base",
            str(tmp_path / "log"),
            "build",
            "--base-paths",
            str(ROOT),
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(install),
            "--merge-install",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    share = install / "share"
    assert (share / "s2r" / "launch" / "deploy.launch.py").is_file()
    assert (share / "s2r" / "config" / "deploy.yaml").is_file()
    assert (share / "s2r" / "package.xml").is_file()
    assert (share / "ament_index" / "resource_index" / "packages" / "s2r").is_file()
    assert (install / "lib" / "s2r" / "s2r-deploy-node").is_file()
