"""face_input_adapter brings ARKit blendshapes / JointState / flame56 into partner/face (flame56)."""
from __future__ import annotations

import numpy as np
import pytest
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import ARKIT52_NAMES, FLAME56_NAMES
from dualtalk_ros import topics
from dualtalk_ros.conversions import sec_to_stamp, stamp_to_ns
from dualtalk_ros.face_input_adapter_node import FaceInputAdapterNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import Collector, spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback

J = FLAME56_NAMES.index


def _run(ctx, params, send, expect: int):
    node = FaceInputAdapterNode(context=ctx, parameter_overrides=to_parameters(params))
    probe = Node("probe", context=ctx)
    out = Collector(probe, Blendshapes, topics.PARTNER_FACE, reliable_qos())
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        pubs = send(probe)
        assert spin_until(ex, lambda: all(p.get_subscription_count() > 0 for p, _ in pubs), 10.0)
        for i, (p, msg) in enumerate(pubs):
            p.publish(msg)
            if node.sync is None:   # one message at a time, so none is lost to the queue
                spin_until(ex, lambda: node.counters["received"] > i, 3.0)
        spin_until(ex, lambda: len(out.msgs) >= expect, 5.0)
        return out.msgs, node.counters.as_dict()
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def _bs(weights, names, rig, t):
    m = Blendshapes(rig=rig, names=list(names), weights=np.asarray(weights, np.float32))
    m.header.stamp = sec_to_stamp(t)
    m.header.frame_id = "tracker"
    return m


def test_arkit_flame_passthrough_and_bad_input(ros_context):
    def send(probe):
        pub = probe.create_publisher(Blendshapes, topics.PARTNER_FACE_TRACKING, reliable_qos())
        arkit = np.zeros(52)
        arkit[ARKIT52_NAMES.index("JawOpen")] = 1.0
        flame = np.arange(56, dtype=np.float32)
        order = np.random.default_rng(0).permutation(56)
        return [(pub, _bs(arkit, ARKIT52_NAMES, "arkit52", 1.0)),
                (pub, _bs(flame[order], [FLAME56_NAMES[i] for i in order], "flame56", 1.04)),
                (pub, _bs(np.full(52, np.nan), ARKIT52_NAMES, "arkit52", 1.08)),
                (pub, _bs(np.zeros(3), ["a", "b"], "arkit52", 1.12))]
    msgs, counters = _run(ros_context, {"diagnostics_period_s": 0.0}, send, expect=2)
    assert counters["invalid"] == 2 and counters["mapped"] == 1 and counters["passthrough"] == 1
    assert len(msgs) == 2
    first, second = msgs
    assert first.rig == "flame56" and tuple(first.names) == FLAME56_NAMES
    assert np.asarray(first.weights)[J("jaw_rx")] == np.float32(0.3)   # JawOpen 1 -> 0.3 rad
    assert stamp_to_ns(first.header.stamp) == 1_000_000_000 and first.header.frame_id == "tracker"
    np.testing.assert_array_equal(np.asarray(second.weights), np.arange(56, dtype=np.float32))


def test_joint_state_face_joined_with_head_pose(ros_context):
    def send(probe):
        face = probe.create_publisher(JointState, topics.PARTNER_FACE_TRACKING, reliable_qos())
        head = probe.create_publisher(JointState, topics.PARTNER_HEAD, reliable_qos())
        f = JointState(name=["JawOpen", "MouthSmileLeft"], position=[0.5, 1.0])
        f.header.stamp = sec_to_stamp(2.0)
        h = JointState(name=["HeadYaw", "HeadPitch", "HeadRoll"], position=[0.1, -0.2, 0.05])
        h.header.stamp = sec_to_stamp(2.005)      # 5 ms apart: joined (slop 20 ms)
        return [(face, f), (head, h)]
    msgs, counters = _run(ros_context, {"input_type": "joint_state", "join_head": True,
                                        "diagnostics_period_s": 0.0}, send, expect=1)
    assert len(msgs) == 1, counters
    w = np.asarray(msgs[0].weights)
    np.testing.assert_allclose(w[[J("jaw_rx"), J("head_ry"), J("head_rx"), J("head_rz")]],
                               [0.15, 0.1, -0.2, 0.05], rtol=1e-6)
    assert w[J("exp_01")] == np.float32(1.2)
