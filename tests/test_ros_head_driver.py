"""head_driver: joint commands stay inside limits and under max velocity on adversarial input.

Adversarial input: huge values, NaN, wrong dimensions, step jumps and stamps that go backwards,
sent through real DDS to the node; the JointState output is checked against the limits and the
velocity cap of config/head_6dof.yaml using the output's own stamps.
"""
from __future__ import annotations

import numpy as np
import pytest
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import ARKIT52_NAMES, FLAME56_NAMES, JAW, POSE
from dualtalk_ros import topics
from dualtalk_ros.conversions import sec_to_stamp, stamp_to_ns
from dualtalk_ros.head_driver_node import HeadDriverNode
from dualtalk_ros.head_mapping import JointCommandFilter, load_head_joint_map
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import Collector, spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback

EPS = 1e-9


def _adversarial_frames(rng, n=150):
    """(stamp_s, weights, rig, names) with a mix of good, huge, jumpy and broken frames."""
    out, t = [], 10.0
    for k in range(n):
        t += 0.04
        w = rng.normal(0, 0.3, 56)
        kind = k % 10
        if kind == 1:
            w *= 1e6                                     # huge
        elif kind == 2:
            w[:] = np.where(k % 20 == 2, 50.0, -50.0)    # step jumps between extremes
        elif kind == 3:
            w[JAW] = np.nan                              # NaN
        elif kind == 4:
            w = w[:40]                                   # wrong dimension
        elif kind == 5:
            out.append((t - 1.0, w, "flame56", list(FLAME56_NAMES)))   # stamp goes back
            continue
        elif kind == 6:
            w[POSE] = np.inf
        out.append((t, w, "flame56", list(FLAME56_NAMES) if w.size == 56 else []))
    return out


def test_filter_limits_and_velocity_pure(repo_root):
    jm = load_head_joint_map(repo_root / "config" / "head_6dof.yaml")
    f = JointCommandFilter(jm)
    rng = np.random.default_rng(0)
    prev, prev_t = None, None
    for t, w, _, names in _adversarial_frames(rng):
        if w.size != 56 or not np.isfinite(w).all():
            with pytest.raises(ValueError):
                f.target(w, FLAME56_NAMES if w.size == 56 else names)
            continue
        if prev_t is not None and t <= prev_t:
            continue
        pos = f.step(w, FLAME56_NAMES, None if prev_t is None else t - prev_t)
        assert np.all(pos >= f.low - EPS) and np.all(pos <= f.high + EPS)
        if prev is not None:
            assert np.all(np.abs(pos - prev) <= f.vmax * (t - prev_t) + 1e-9)
        prev, prev_t = pos, t


def test_head_driver_node_adversarial(ros_context):
    node = HeadDriverNode(context=ros_context, parameter_overrides=to_parameters({
        "joint_map_file": "head_6dof.yaml", "rig_map_file": "maps/flame56_to_arkit52.yaml",
        "diagnostics_period_s": 0.0, "release_at_stamp": False}))   # synthetic stamps near 0
    probe = Node("probe", context=ros_context)
    pub = probe.create_publisher(Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos(500))
    joints = Collector(probe, JointState, topics.AGENT_JOINT_STATES, reliable_qos(500))
    arkit = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES_ARKIT, reliable_qos(500))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    frames = _adversarial_frames(np.random.default_rng(1))
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0, 10.0)
        for i, (t, w, rig, names) in enumerate(frames):
            msg = Blendshapes(rig=rig, names=names, weights=np.asarray(w, np.float32))
            msg.header.stamp = sec_to_stamp(t)
            pub.publish(msg)
            spin_until(ex, lambda: node.counters["received"] > i, 5.0)
        assert spin_until(ex, lambda: node.counters["received"] == len(frames), 15.0)
        assert spin_until(ex, lambda: len(joints.msgs) == node.counters["joint_states"], 10.0)
        counters = node.counters.as_dict()
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    jm = node.filter
    n_bad = sum(1 for _, w, _, _ in frames if w.size != 56 or not np.isfinite(w).all())
    assert counters["invalid"] == n_bad
    assert counters["out_of_order"] > 0
    assert counters["joint_states"] == len(frames) - n_bad - counters["out_of_order"]
    pos = np.array([m.position for m in joints.msgs])
    stamps = np.array([stamp_to_ns(m.header.stamp) for m in joints.msgs]) / 1e9
    assert list(joints.msgs[0].name) == jm.map.names
    assert np.all(pos >= jm.low - EPS) and np.all(pos <= jm.high + EPS)
    dt = np.diff(stamps)
    assert np.all(dt > 0)
    assert np.all(np.abs(np.diff(pos, axis=0)) <= jm.vmax * dt[:, None] + 1e-9)
    assert np.isfinite(pos).all()
    # the jaw actually moves (not stuck at a limit by a bug): it reaches both limits' region
    jaw = pos[:, jm.map.names.index("jaw")]
    assert jaw.max() > 0.2 and jaw.min() < 0.05
    # the avatar output: ARKit-52 names, clamped to [0, 1]
    a = np.array([m.weights for m in arkit.msgs])
    assert tuple(arkit.msgs[0].names) == ARKIT52_NAMES and arkit.msgs[0].rig == "arkit52"
    assert a.shape[1] == 52 and a.min() >= 0.0 and a.max() <= 1.0
