"""Frames scheduled by their stamps (issue 17, deliverable 1): the real head driver over DDS.

Frames come the way the live model sends them with speech published ahead: a hop of five
frames at once, 0.3 s before the first one's stamp. Each JointState and ARKit frame must leave
the head driver at or after its stamp on the ROS clock and before the next one is due
(receipt time - stamp in [0, 40 ms)). Frames that arrive after their stamp are released at once
and counted (``late_frames``); one stamped far in the future is refused and counted, and the
face holds its last pose.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import FLAME56_NAMES, JAW
from dualtalk_ros import topics
from dualtalk_ros.conversions import ns_to_stamp, stamp_to_ns
from dualtalk_ros.head_driver_node import HeadDriverNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import spin_for, spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback

MS = 1_000_000
PERIOD = 40 * MS


def _frame(stamp_ns: int, jaw: float) -> Blendshapes:
    w = np.zeros(56, np.float32)
    w[JAW.start] = jaw
    msg = Blendshapes(rig="flame56", names=list(FLAME56_NAMES), weights=w)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


class _Arrivals:
    """(wall-clock ns at receipt, stamp ns) of every message on a topic."""

    def __init__(self, node, msg_type, topic):
        self.items: list[tuple[int, int]] = []
        self.sub = node.create_subscription(msg_type, topic, self._cb, reliable_qos(500))

    def _cb(self, msg):
        self.items.append((time.time_ns(), stamp_to_ns(msg.header.stamp)))


def test_frames_published_early_leave_at_their_stamps(ros_context):
    node = HeadDriverNode(context=ros_context, parameter_overrides=to_parameters({
        "joint_map_file": "head_6dof.yaml", "rig_map_file": "maps/flame56_to_arkit52.yaml",
        "diagnostics_period_s": 0.0, "max_ahead_s": 2.0}))
    probe = Node("lips_probe", context=ros_context)
    pub = probe.create_publisher(Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos(500))
    joints = _Arrivals(probe, JointState, topics.AGENT_JOINT_STATES)
    arkit = _Arrivals(probe, Blendshapes, topics.AGENT_BLENDSHAPES_ARKIT)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    n_hops, hop = 8, 5
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0
                          and joints.sub.get_publisher_count() > 0, 10.0)
        origin = time.time_ns() + 500 * MS
        for h in range(n_hops):              # each hop 0.3 s before its first frame is due
            first = origin + h * hop * PERIOD
            spin_for(ex, max(0.0, (first - 300 * MS - time.time_ns()) / 1e9))
            for k in range(hop):
                pub.publish(_frame(first + k * PERIOD, 0.1 * (k + 1)))
        n_early = n_hops * hop
        assert spin_until(ex, lambda: len(joints.items) == n_early
                          and len(arkit.items) == n_early, 5.0)
        # late frames: stamped 100 ms before they are sent (after the early ones)
        late_origin = origin + n_early * PERIOD
        spin_for(ex, max(0.0, (late_origin + 100 * MS - time.time_ns()) / 1e9))
        for k in range(3):
            pub.publish(_frame(late_origin + k * PERIOD, 0.5))
        # a frame from another clock: an hour ahead
        pub.publish(_frame(time.time_ns() + 3600 * 10**9, 0.9))
        assert spin_until(ex, lambda: node.counters["received"] == n_early + 4
                          and len(joints.items) == n_early + 3, 5.0)
        spin_for(ex, 0.2)
        counters = node.counters.as_dict()
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    for name, arrivals in (("joint_states", joints.items), ("arkit", arkit.items)):
        lag_ms = np.array([(rx - st) / MS for rx, st in arrivals[:n_early]])
        assert lag_ms.min() >= 0.0, f"{name}: released before its stamp: {lag_ms.min():.1f} ms"
        assert lag_ms.max() < 40.0, f"{name}: released late: lags {np.round(lag_ms, 1)}"
        assert [st for _, st in arrivals] == sorted(st for _, st in arrivals)
    assert counters["late_frames"] == 3
    assert counters["stamp_too_far_ahead"] == 1 and counters["dropped"] == 1
    assert counters["joint_states"] == n_early + 3      # the far-future frame never moved it


def test_agent_speech_too_late_is_counted_in_frames_on_diagnostics(ros_context, tmp_path, capfd):
    """TTS contract (deliverable 3): agent speech published after the frames that needed it
    were computed still goes in, and those frames are counted as ``agent_audio_late_frames``
    on ``/diagnostics`` (and logged); speech published ahead costs nothing."""
    import torch
    from diagnostic_msgs.msg import DiagnosticArray
    from dualtalk_msgs.msg import AudioChunk

    from dualtalk_core.model.checkpoint import save_checkpoint
    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk
    from dualtalk_ros.conversions import numpy_to_audio_chunk
    from dualtalk_ros.dualtalk_node import DualTalkNode
    from dualtalk_ros.qos import sensor_qos
    from ros_helpers import Collector, latest_diagnostics

    with torch.random.fork_rng():
        torch.manual_seed(5)
        model = DualTalk(get_preset("live")).eval()
    ck = save_checkpoint(tmp_path / "live.pt", model, preset="live")
    node = DualTalkNode(context=ros_context, parameter_overrides=to_parameters({
        "checkpoint": str(ck), "end_of_stream_s": 0.0, "torch_threads": 1,
        "diagnostics_period_s": 0.2}))
    probe = Node("late_probe", context=ros_context)
    partner = probe.create_publisher(AudioChunk, topics.PARTNER_AUDIO, sensor_qos(200))
    agent = probe.create_publisher(AudioChunk, topics.AGENT_AUDIO, sensor_qos(200))
    diag = Collector(probe, DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    rng = np.random.default_rng(0)
    speech = lambda n: (0.3 * rng.standard_normal(n)).astype(np.float32)   # noqa: E731
    t0 = time.time_ns()

    def send(pub, first, x):
        pub.publish(numpy_to_audio_chunk(x, 16000, first, stamp=ns_to_stamp(
            t0 + first * 1_000_000_000 // 16000), encoding="float32"))

    def late_frames() -> int | None:
        got = latest_diagnostics(diag, "dualtalk_node").get("agent_audio_late_frames")
        return None if got is None else int(got)

    try:
        assert spin_until(ex, lambda: partner.get_subscription_count() > 0
                          and agent.get_subscription_count() > 0, 10.0)
        send(agent, 28800, speech(3200))                       # 1.8-2.0 s: well ahead
        for first in range(0, 16000, 320):                     # the first second of partner
            send(partner, first, np.zeros(320, np.float32))
        assert spin_until(ex, lambda: node.counters["frames_published"] >= 10, 20.0)
        send(agent, 3200, speech(3200))                        # 0.2-0.4 s: already fed
        assert spin_until(ex, lambda: late_frames() is not None and late_frames() > 0, 10.0)
        for first in range(16000, 32000, 320):
            send(partner, first, np.zeros(320, np.float32))
        spin_for(ex, 1.0)
        got, values = late_frames(), node.diagnostics_values()
    finally:
        ex.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()
    # frames k whose own 40 ms or self lookahead (ls frames) lay in [3200, 6400): k = 5-ls .. 9
    ls = node.engine.ls
    assert got == 10 - max(5 - ls, 0) == values["agent_audio_late_frames"], (got, values)
    assert values["engine_agent_late_chunks"] == 1      # the chunk count is kept beside it
    assert "agent_audio_late_frames" in capfd.readouterr().err
