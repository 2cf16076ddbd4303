"""``bag replay``: real rclpy subscribers receive every message, in order, with the bag's timing.

Timing checks are loose on purpose (a shared 2-core machine): they compare the receive spacing
with the bag's spacing, not absolute speed.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bag_helpers import write_synthetic_clip
from dualtalk_ros import topics
from dualtalk_ros.bag.make import MakeOptions, find_clip_sources, make_bag
from dualtalk_ros.bag.replay import BagReplayer, ReplayOptions, parse_remaps
from dualtalk_ros.bag.typestore import UnknownMessageType

NS = 1_000_000_000


@pytest.fixture
def bag(tmp_path):
    write_synthetic_clip(tmp_path / "data", seconds=1.0, seed=7)
    src = find_clip_sources(tmp_path / "data", ["synth_clip_000_speaker1"])[0]
    return make_bag(src, tmp_path / "bag", MakeOptions(start_time_s=50.0)).path


class Listener:
    """Subscribes (reliable, deep queue) to topics and keeps (receive time, message)."""

    def __init__(self, node, topics: dict[str, type]):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        self.got: dict[str, list] = {t: [] for t in topics}
        qos = QoSProfile(depth=2000, reliability=ReliabilityPolicy.RELIABLE)
        self.subs = [node.create_subscription(cls, t, self._cb(t), qos)
                     for t, cls in topics.items()]

    def _cb(self, topic):
        def cb(msg):
            self.got[topic].append((time.monotonic(), msg))
        return cb


def spin_while(executor, fn, done=lambda: False, settle_s: float = 5.0):
    """Run ``fn`` in a thread while spinning ``executor`` here; after it returns keep spinning
    until ``done()`` or ``settle_s`` passed (delivery may trail publication); returns fn()."""
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("r", fn()))
    th.start()
    while th.is_alive():
        executor.spin_once(timeout_sec=0.01)
    deadline = time.monotonic() + settle_s
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)
    return box["r"]


def stamp(msg) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


@pytest.mark.parametrize("rate", [1.0, 0.0])
def test_replay_delivers_all_in_order_with_timing(ros_context, bag, rate):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from dualtalk_msgs.msg import AudioChunk, Blendshapes

    sub_node = rclpy.create_node("bag_test_listener", context=ros_context)
    pub_node = rclpy.create_node("bag_test_replay", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(sub_node)
    try:
        listener = Listener(sub_node, {topics.PARTNER_AUDIO: AudioChunk,
                                       topics.AGENT_AUDIO: AudioChunk,
                                       topics.PARTNER_FACE: Blendshapes,
                                       topics.AGENT_BLENDSHAPES_GT: Blendshapes})
        replayer = BagReplayer(pub_node, bag, ReplayOptions(
            rate=rate, wait_for_subscribers_s=10.0, start_delay_s=0.3))
        expected = {topics.PARTNER_AUDIO: 50, topics.AGENT_AUDIO: 50, topics.PARTNER_FACE: 25,
                    topics.AGENT_BLENDSHAPES_GT: 25}
        log = spin_while(ex, replayer.run, lambda: all(
            len(listener.got[t]) >= n for t, n in expected.items()))
        replayer.destroy()
        assert {t: len(v) for t, v in listener.got.items()} == expected
        assert {t: log.count(t) for t in expected} == expected
        for topic, items in listener.got.items():
            stamps = [stamp(m) for _, m in items]
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), topic
            assert stamps[0] == 50 * NS
        firsts = [m.first_sample_index for _, m in listener.got[topics.PARTNER_AUDIO]]
        assert firsts == list(range(0, 16000, 320))
        if rate > 0:
            # publication times follow the bag's spacing (20 ms audio, 40 ms face) ...
            pub_stamps, pub_wall = log.arrays(topics.PARTNER_AUDIO)
            err_ms = (np.diff(pub_wall) - np.diff(pub_stamps) / rate) / 1e6
            assert np.median(np.abs(err_ms)) < 5.0
            # ... and so do the receive times (loose: a shared CI machine)
            recv = np.array([t for t, _ in listener.got[topics.PARTNER_AUDIO]])
            span = recv[-1] - recv[0]
            assert 0.98 * 0.8 < span < 0.98 * 1.5, span
            assert np.median(np.diff(recv)) == pytest.approx(0.020, abs=0.008)
    finally:
        ex.shutdown()
        sub_node.destroy_node()
        pub_node.destroy_node()


def test_replay_topics_remap_and_clock(ros_context, bag):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from dualtalk_msgs.msg import AudioChunk
    from rosgraph_msgs.msg import Clock

    sub_node = rclpy.create_node("bag_test_listener2", context=ros_context)
    pub_node = rclpy.create_node("bag_test_replay2", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(sub_node)
    try:
        listener = Listener(sub_node, {"/robot/mic": AudioChunk, "/clock": Clock,
                                       topics.AGENT_AUDIO: AudioChunk})
        opts = ReplayOptions(rate=4.0, topics=[topics.PARTNER_AUDIO], publish_clock=True,
                             remap=parse_remaps([f"{topics.PARTNER_AUDIO}:=/robot/mic"]),
                             wait_for_subscribers_s=10.0, start_delay_s=0.3)
        replayer = BagReplayer(pub_node, bag, opts)
        spin_while(ex, replayer.run, lambda: len(listener.got["/robot/mic"]) >= 50)
        replayer.destroy()
        assert len(listener.got["/robot/mic"]) == 50
        assert listener.got["agent/audio"] == []          # filtered out
        clocks = [c.clock.sec * NS + c.clock.nanosec for _, c in listener.got["/clock"]]
        assert len(clocks) >= 10                          # ~100 Hz over 0.25 s of replay
        assert clocks == sorted(clocks)
        assert 50 * NS <= clocks[0] < 50.2 * NS            # bag time, from the first message
        assert 50.5 * NS < clocks[-1] <= 51 * NS           # ... to (near) the last one
    finally:
        ex.shutdown()
        sub_node.destroy_node()
        pub_node.destroy_node()


def test_replay_clear_errors(ros_context, bag, tmp_path):
    import rclpy
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    node = rclpy.create_node("bag_test_errors", context=ros_context)
    try:
        with pytest.raises(ValueError, match=r"topic\(s\) \['/nope'\] not in the bag"):
            BagReplayer(node, bag, ReplayOptions(topics=["nope"]))
        with pytest.raises(ValueError, match="old:=new"):
            parse_remaps([f"{topics.PARTNER_AUDIO}=x"])
        # a bag with a type no installed package provides
        store = get_typestore(Stores.EMPTY)
        store.register(get_types_from_msg("int32 x", "foo_msgs/msg/Bar"))
        with Writer(tmp_path / "foreign", version=9) as w:
            conn = w.add_connection("bar", "foo_msgs/msg/Bar", typestore=store)
            w.write(conn, 1, store.serialize_cdr(store.types["foo_msgs/msg/Bar"](x=3),
                                                 "foo_msgs/msg/Bar"))
        with pytest.raises(UnknownMessageType, match="foo_msgs/msg/Bar"):
            BagReplayer(node, tmp_path / "foreign")
        with pytest.raises(ValueError, match="does not exist"):
            BagReplayer(node, tmp_path / "missing")
    finally:
        node.destroy_node()


def test_cli_replay_as_fast_as_possible(bag, capsys):
    from dualtalk_ros.cli import main

    assert main(["bag", "replay", str(bag), "--as-fast-as-possible"]) == 0
    assert "published 150 messages" in capsys.readouterr().out
    assert main(["bag", "replay", str(bag), "--topics", "nope"]) == 2


def test_record_what_replay_publishes(bag, tmp_path):
    """``bag record`` (own context, explicit type) captures every replayed message unchanged."""
    import threading

    from dualtalk_ros.bag.record import record
    from dualtalk_ros.bag.replay import replay
    from rosbags.rosbag2 import Reader

    box = {}
    th = threading.Thread(target=lambda: box.setdefault("counts", record(
        tmp_path / "rec", [f"{topics.PARTNER_AUDIO}:=dualtalk_msgs/msg/AudioChunk"],
        duration_s=6.0)))
    th.start()
    log = replay(bag, ReplayOptions(rate=0.0, topics=[topics.PARTNER_AUDIO],
                                    wait_for_subscribers_s=10.0, start_delay_s=0.3))
    th.join()
    assert log.count(topics.PARTNER_AUDIO) == 50
    assert box["counts"] == {topics.PARTNER_AUDIO: 50}
    with Reader(bag) as a, Reader(tmp_path / "rec") as b:
        src = [bytes(d) for c, _, d in a.messages() if c.topic == "/" + topics.PARTNER_AUDIO]
        got = [bytes(d) for _, _, d in b.messages()]
    assert got == src


def _relative_copy(bag, out):
    """``bag`` rewritten the way bags were stored before issue 17: relative topic names."""
    from rosbags.rosbag2 import Reader, Writer

    from dualtalk_ros.bag.typestore import typestore

    with Reader(bag) as r, Writer(out, version=9) as w:
        conns = {c.id: w.add_connection(c.topic.lstrip("/"), c.msgtype, typestore=typestore())
                 for c in r.connections}
        for c, t, d in r.messages():
            w.write(conns[c.id], t, bytes(d))
    return out


def test_old_bag_with_relative_names_is_read_and_replayed(ros_context, bag, tmp_path):
    """Readers normalise names in one place (bagio): an old bag reads and replays as a new one."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from dualtalk_msgs.msg import AudioChunk
    from rosbags.rosbag2 import Reader

    from dualtalk_ros.bag import bagio
    from dualtalk_ros.bag.inputs import read_input_bag

    old = _relative_copy(bag, tmp_path / "old")
    with Reader(old) as r:
        assert topics.PARTNER_AUDIO in {c.topic for c in r.connections}     # really relative
    new_in, old_in = read_input_bag(bag), read_input_bag(old)
    assert old_in.errors == [] and set(old_in.topics) == set(new_in.topics)
    assert "/" + topics.PARTNER_AUDIO in old_in.topics
    assert old_in.partner_audio_samples == new_in.partner_audio_samples == 16000
    np.testing.assert_array_equal(old_in.gt, new_in.gt)
    sub_node = rclpy.create_node("bag_test_listener_old", context=ros_context)
    pub_node = rclpy.create_node("bag_test_replay_old", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(sub_node)
    try:
        listener = Listener(sub_node, {topics.PARTNER_AUDIO: AudioChunk})
        replayer = BagReplayer(pub_node, old, ReplayOptions(
            rate=0.0, topics=[topics.PARTNER_AUDIO], wait_for_subscribers_s=10.0,
            start_delay_s=0.3))
        log = spin_while(ex, replayer.run, lambda: len(listener.got[topics.PARTNER_AUDIO]) >= 50)
        replayer.destroy()
    finally:
        ex.shutdown()
        sub_node.destroy_node()
        pub_node.destroy_node()
    assert len(listener.got[topics.PARTNER_AUDIO]) == 50
    assert list(log.stamps) == [bagio.qualified(topics.PARTNER_AUDIO)]
    assert log.count(topics.PARTNER_AUDIO) == 50         # either spelling finds it
