"""No silent frame loss between dualtalk_node and head_driver (issue 20, item 7).

A 10x burst (500 frames published back to back with the output QoS dualtalk_node uses, while
head_driver is not spinning) must arrive whole; frames that are dropped anyway (stale stamps,
holes in the stamp sequence) are counted on /diagnostics; a restarted conversation (stamps
jump back) is followed, not dropped frame after frame.
"""
from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import FLAME56_NAMES
from dualtalk_ros import topics
from dualtalk_ros.conversions import sec_to_stamp
from dualtalk_ros.head_driver_node import HeadDriverNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import Collector, latest_diagnostics, spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback


def _frame(t: float) -> Blendshapes:
    msg = Blendshapes(rig="flame56", names=list(FLAME56_NAMES),
                      weights=np.full(56, 0.01, np.float32))
    msg.header.stamp = sec_to_stamp(t)
    return msg


def _last_counters(diag: Collector) -> dict[str, str]:
    return latest_diagnostics(diag, "head_driver")


def test_burst_arrives_whole_and_drops_are_counted(ros_context):
    node = HeadDriverNode(context=ros_context, parameter_overrides=to_parameters({
        "joint_map_file": "head_6dof.yaml", "diagnostics_period_s": 0.2,
        "release_at_stamp": False}))   # synthetic stamps near 0: counting, not timing
    probe = Node("probe", context=ros_context)
    pub = probe.create_publisher(Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    joints = Collector(probe, JointState, topics.AGENT_JOINT_STATES, reliable_qos())
    diag = Collector(probe, DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0
                          and joints.sub.get_publisher_count() > 0, 10.0)
        # the burst: 500 frames (20 s of output) while nobody spins the head driver
        burst = [100.0 + 0.04 * k for k in range(500)]
        for t in burst:
            pub.publish(_frame(t))
        assert spin_until(ex, lambda: len(joints.msgs) >= 500, 30.0), \
            f"{len(joints.msgs)} of 500 burst frames came out; counters {node.counters.as_dict()}"
        # a stale frame, a hole of 4 frames, then a restarted conversation (stamps from 0)
        for t in (burst[-1] - 0.2, burst[-1] + 0.2, 0.0, 0.04, 0.08):
            pub.publish(_frame(t))
        assert spin_until(ex, lambda: node.counters["received"] == 505, 10.0)
        assert spin_until(ex, lambda: _last_counters(diag).get("received") == "505", 5.0)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    c = _last_counters(diag)
    assert len(joints.msgs) == 504                      # all but the stale frame
    assert c["out_of_order"] == "1" and c["dropped"] == "1" and c["invalid"] == "0"
    assert c["missed_frames"] == "4" and c["restarts"] == "1"
