"""For colcon: ROS 2 builds ament_python packages with setup.py. The metadata
lives in pyproject.toml; this adds the ROS 2 package's files (the ament index
marker, package.xml, the launch and parameter files) under share/s2r."""

from glob import glob

from setuptools import setup

setup(
    python_requires=">=3.10",
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/s2r"]),
        ("share/s2r", ["package.xml"]),
        ("share/s2r/launch", glob("launch/*.launch.py")),
        ("share/s2r/config", glob("launch/*.yaml")),
    ],
)
