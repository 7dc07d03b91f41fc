"""Start s2r's deploy node on a robot:

    ros2 launch s2r deploy.launch.py robot:=pendubot policy:=zoo:pendubot device:=serial port:=/dev/ttyACM0

Every argument becomes a parameter of the node (s2r/ros2_node.py); the
parameter file (params_file, by default the package's config/deploy.yaml)
holds the rest. Arm it with `ros2 topic pub --once /s2r/arm std_msgs/msg/Empty`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# name: (default, description, type of the node's parameter)
ARGUMENTS = {
    "robot": ("pendubot", "robot: pendulum, pendubot, acrobot", str),
    "policy": ("zoo:pendubot", "policy: zoo:NAME, an artifact path, or baseline", str),
    "device": ("sim", "device: sim, serial or ros2", str),
    "port": ("", "serial port of the device, e.g. /dev/ttyACM0", str),
    "rate": ("0.0", "loop rate in Hz; 0 uses the policy's", float),
    "log": ("", "MCAP log path; empty for none", str),
}


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, (default, description, _) in ARGUMENTS.items()
    ]
    declared.append(
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("s2r"), "config", "deploy.yaml"]),
            description="parameter YAML for the node (safety limits, duration, autostart, ...)",
        )
    )
    overrides = {
        name: ParameterValue(LaunchConfiguration(name), value_type=kind) for name, (_, _, kind) in ARGUMENTS.items()
    }
    node = Node(
        package="s2r",
        executable="s2r-deploy-node",
        name="s2r_deploy",
        output="screen",
        parameters=[LaunchConfiguration("params_file"), overrides],
    )
    return LaunchDescription([*declared, node])
