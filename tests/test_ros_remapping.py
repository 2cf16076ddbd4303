"""Topic names live in ``dualtalk_ros.topics`` and are renamed by ROS remapping (issue 15).

A real head driver started with ``--ros-args -r agent/joint_states:=/arm/cmd`` (what ``ros2 run``,
a launch file's ``remappings`` and the bring-up's ``--remap`` all pass to the node) publishes its
commands on ``/arm/cmd`` and nothing on the old name. A parameter file that still sets one of the
removed ``*_topic`` parameters is refused at start-up with the remap to use: rclpy would
otherwise ignore it silently and the robot would wait on a topic nobody publishes.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import FLAME56_NAMES
from dualtalk_ros import topics
from dualtalk_ros.conversions import sec_to_stamp
from dualtalk_ros.head_driver_node import HeadDriverNode
from dualtalk_ros.params import ParamError, to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import Collector, spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback


def test_remapped_head_driver_publishes_on_the_new_name(ros_context):
    node = HeadDriverNode(context=ros_context, cli_args=[
        "--ros-args", "-r", f"{topics.AGENT_JOINT_STATES}:=/arm/cmd"])
    probe = Node("probe", context=ros_context)
    pub = probe.create_publisher(Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    renamed = Collector(probe, JointState, "/arm/cmd", reliable_qos())
    old = Collector(probe, JointState, topics.AGENT_JOINT_STATES, reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0
                          and renamed.sub.get_publisher_count() > 0, 10.0)
        assert old.sub.get_publisher_count() == 0
        for k in range(5):
            msg = Blendshapes(rig="flame56", names=list(FLAME56_NAMES),
                              weights=np.zeros(56, np.float32))
            msg.header.stamp = sec_to_stamp(time.time())
            pub.publish(msg)
        assert spin_until(ex, lambda: len(renamed.msgs) == 5, 10.0), node.counters.as_dict()
        assert old.msgs == []
        assert node.joint_pub.topic_name == "/arm/cmd"
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_removed_topic_parameter_in_a_params_file_is_a_startup_error(ros_context, tmp_path):
    """The ``ros2 launch`` path: the value comes from ``--params-file``, not an override."""
    params = tmp_path / "old.yaml"
    params.write_text("head_driver:\n  ros__parameters:\n    joint_states_topic: /arm/cmd\n")
    with pytest.raises(ParamError, match=r"'joint_states_topic'.*removed.*"
                       r"-r agent/joint_states:=/arm/cmd.*--remap head_driver:agent/joint_sta"):
        HeadDriverNode(context=ros_context, cli_args=["--ros-args", "--params-file", str(params)])


@pytest.mark.parametrize("module, cls, old, hint", [
    ("dualtalk_node", "DualTalkNode", "blendshapes_topic", "-r agent/blendshapes:=x"),
    ("audio_file_player_node", "AudioFilePlayerNode", "topic", "-r audio:=x"),
    ("face_input_adapter_node", "FaceInputAdapterNode", "head_topic",
     "-r partner/head:=x.*set join_head: true"),
])
def test_removed_topic_parameters_name_the_remap(ros_context, module, cls, old, hint):
    """The bring-up path (parameter overrides), refused before any work (no model loaded)."""
    import importlib

    node_cls = getattr(importlib.import_module(f"dualtalk_ros.{module}"), cls)
    with pytest.raises(ParamError, match=f"{old}.*removed.*{hint}"):
        node_cls(context=ros_context, parameter_overrides=to_parameters({old: "x"}))
