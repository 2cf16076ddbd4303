"""dualtalk_ros: ament_python package with the nodes, bring-up and bag tools.

Installs with colcon on a ROS 2 system (node executables go to lib/dualtalk_ros for
``ros2 run``/``ros2 launch``) or with pip into a virtualenv (the same executables in bin/).
"""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dualtalk_ros"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def _rel(pattern: str) -> list[str]:
    """Files of the repository's top-level launch/ and config/ folders, relative to HERE."""
    return sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(ROOT, pattern)))


# One list of node executables: `ros2 run dualtalk_ros <name>` and the launch file use these.
NODES = {
    "audio_capture": "dualtalk_ros.audio_capture_node:main",
    "audio_file_player": "dualtalk_ros.audio_file_player_node:main",
    "dualtalk_node": "dualtalk_ros.dualtalk_node:main",
    "head_driver": "dualtalk_ros.head_driver_node:main",
    "face_input_adapter": "dualtalk_ros.face_input_adapter_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _rel("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", _rel("config/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=["dualtalk_core", "numpy", "pyyaml", "rosbags>=0.10", "sounddevice>=0.4",
                      "soundfile>=0.12", "matplotlib>=3.7"],
    zip_safe=True,
    maintainer="DualTalk maintainers",
    maintainer_email="maintainers@dualtalk.dev",
    description="ROS 2 nodes for DualTalk: audio capture, inference, head driver, bags.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODES.items()]
        + ["dualtalk-ros = dualtalk_ros.cli:main"],
    },
)
