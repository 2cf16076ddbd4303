"""face_input_adapter refuses what it cannot read instead of inventing a face (issue 20, items 6
and 9): an unknown rig or unknown names, and one message of each malformed kind, are counted on
/diagnostics by reason and publish nothing on partner/face; a good message afterwards still
comes out (the node carries on)."""
from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from dualtalk_core.layout import ARKIT52_NAMES
from dualtalk_ros import topics
from dualtalk_ros.conversions import sec_to_stamp
from dualtalk_ros.face_input_adapter_node import FaceInputAdapterNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import Collector, latest_diagnostics, spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback


def _bs(weights, names, rig, t=1.0):
    m = Blendshapes(rig=rig, names=list(names), weights=np.asarray(weights, np.float32))
    m.header.stamp = sec_to_stamp(t)
    return m


def _diag_values(diag: Collector) -> dict[str, str]:
    return latest_diagnostics(diag, "face_input_adapter")


def _run(ctx, messages, expect_out: int):
    node = FaceInputAdapterNode(context=ctx, parameter_overrides=to_parameters(
        {"diagnostics_period_s": 0.2}))
    probe = Node("probe", context=ctx)
    pub = probe.create_publisher(Blendshapes, topics.PARTNER_FACE_TRACKING, reliable_qos())
    out = Collector(probe, Blendshapes, topics.PARTNER_FACE, reliable_qos())
    diag = Collector(probe, DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0
                          and out.sub.get_publisher_count() > 0, 10.0)
        for i, msg in enumerate(messages):
            pub.publish(msg)
            assert spin_until(ex, lambda: node.counters["received"] > i, 5.0)
        n = len(messages)
        assert spin_until(ex, lambda: _diag_values(diag).get("received") == str(n), 5.0)
        spin_until(ex, lambda: len(out.msgs) > expect_out, 0.5)   # nothing more may come
        return out.msgs, _diag_values(diag)
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_unknown_rig_and_names_are_refused_not_a_neutral_face(ros_context):
    msgs, diag = _run(ros_context, [_bs([0.5, 0.7], ["foo", "bar"], "foo")], expect_out=0)
    assert msgs == []
    assert diag["invalid"] == "1" and diag["invalid_unknown_rig"] == "1"
    assert diag["mapped"] == "0" and diag["passthrough"] == "0"
    assert "rig 'foo' is not known" in diag["last_invalid"]


def test_each_malformed_kind_is_counted_and_the_node_carries_on(ros_context):
    good = np.zeros(52)
    good[ARKIT52_NAMES.index("JawOpen")] = 1.0
    bad = [
        _bs([0.5, 0.7], ["foo", "bar"], "arkit52"),                # known rig, unknown names
        _bs([0.5, 0.7], ["foo", "bar"], ""),                       # no rig, unknown names
        _bs(np.full(52, np.nan), ARKIT52_NAMES, "arkit52"),        # NaN
        _bs(np.full(52, np.inf), ARKIT52_NAMES, "arkit52"),        # Inf
        _bs([0.1, 0.2], ["JawOpen", "JawOpen"], "arkit52"),        # duplicate names
        _bs(np.zeros(3), ["JawOpen", "MouthClose"], "arkit52"),    # size mismatch
        _bs([], [], "mediapipe"),                                  # unknown rig, empty
        _bs(np.zeros(7), [], "arkit52"),                           # canonical order, wrong size
    ]
    extra = _bs([1.0, 0.3], ["JawOpen", "_neutral"], "arkit52", t=2.0)  # one unknown name
    msgs, diag = _run(ros_context, bad + [_bs(good, ARKIT52_NAMES, "arkit52", t=1.5), extra],
                      expect_out=2)
    assert len(msgs) == 2                                          # only the good ones
    assert np.asarray(msgs[0].weights)[50] == np.float32(0.3)      # JawOpen 1 -> jaw 0.3 rad
    assert diag["invalid"] == str(len(bad))
    assert {k: diag[f"invalid_{k}"] for k in ("unknown_rig", "unknown_names", "non_finite",
                                               "duplicate_names", "malformed")} == {
        "unknown_rig": "1", "unknown_names": "2", "non_finite": "2", "duplicate_names": "1",
        "malformed": "2"}
    assert diag["ignored_names"] == "1" and diag["mapped"] == "2"
