"""dualtalk_ros: ament_python package with the nodes, bring-up and bag tools.

Installs with colcon on a ROS 2 system (node executables go to lib/dualtalk_ros for
``ros2 run``/``ros2 launch``) or with pip into a virtualenv (the same executables in bin/).
"""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dualtalk_ros"
HERE = os.path.dirname(os.path.abspath(__file__))


# launch/ and config/ here are symlinks to the repository's top-level folders, so every data
# file lies inside the package: `colcon build --symlink-install` links each data file into
# build/dualtalk_ros/<same relative path>, and a "../../config" path would land outside the
# build folder (in the workspace root).
def _files(pattern: str) -> list[str]:
    """Files matching ``pattern`` below this package, relative to it (as data_files wants)."""
    return sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(HERE, pattern)))


def _config_tree() -> list[tuple[str, list[str]]]:
    """config/**/*.yaml keeping sub-folders (config/maps/ holds the rig maps that the nodes'
    relative ``map_file`` parameters name), one data_files entry per folder."""
    entries = []
    for folder, _dirs, _files_in in sorted(os.walk(os.path.join(HERE, "config"))):
        sub = os.path.relpath(folder, HERE)        # "config", "config/maps", ...
        files = _files(os.path.join(sub, "*.yaml"))
        if files:
            entries.append((f"share/{PACKAGE}/{sub}", files))
    return entries


LAUNCH_FILES = _files("launch/*.launch.py")
if not LAUNCH_FILES:
    raise SystemExit(f"{HERE}/launch has no *.launch.py: launch/ and config/ in this package "
                     "must be the symlinks to the repository's top-level folders")

# One list of node executables: `ros2 run dualtalk_ros <name>` and the launch file use these.
NODES = {
    "audio_capture": "dualtalk_ros.audio_capture_node:main",
    "audio_file_player": "dualtalk_ros.audio_file_player_node:main",
    "dualtalk_node": "dualtalk_ros.dualtalk_node:main",
    "head_driver": "dualtalk_ros.head_driver_node:main",
    "face_input_adapter": "dualtalk_ros.face_input_adapter_node:main",
    "voice_player": "dualtalk_ros.voice_player_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", LAUNCH_FILES),
    ] + _config_tree(),
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
