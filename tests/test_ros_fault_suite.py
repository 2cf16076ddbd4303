"""Fault suite for the audio inputs of the real ``dualtalk_node`` (issue 20, deliverable 9).

One run, one node, good real-time partner and agent audio flowing the whole time; in between,
one message of each malformed kind on ``partner/audio`` and on ``agent/audio``:

=====================  ===========================================  ==============================
kind                   message                                      counted on /diagnostics as
=====================  ===========================================  ==============================
bad sample rate        ``sample_rate = 0``                          ``invalid_<stream>_audio``
unknown encoding       ``encoding = "pcm_mulaw"``                   ``invalid_<stream>_audio``
size vs sample width   321 samples for ``channels = 2``             ``invalid_<stream>_audio``
NaN samples            float32 chunk holding NaN                    ``invalid_<stream>_audio``
Inf samples            float32 chunk holding +Inf                   ``invalid_<stream>_audio``
duplicate              the last good chunk sent again               ``engine_duplicates``
rewind                 a chunk from before what is still needed     ``engine_dropped_out_of_order``
10x burst              a 0.9 s stall, then 1 s of audio in 0.1 s    every chunk in ``*_chunks_in``
far index jump         both streams jump to sample 2**40            ``engine_rejected_too_far_
                                                                    ahead`` (agent), ``index_jumps``
                                                                    + a new conversation (partner)
=====================  ===========================================  ==============================

Each fault is injected alone and its count is read back from the node's own ``/diagnostics``
message (not from the object), so the suite checks what an operator sees. At the end the node
is alive, every message it was sent is accounted for, and the output is back at 25 Hz with
contiguous 40 ms stamps. The ``tiny`` checkpoint has random weights: what is tested is
robustness and timing, not motion quality.
"""
from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import AudioChunk, Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from dualtalk_core.layout import SAMPLE_RATE
from dualtalk_ros import topics
from dualtalk_ros.conversions import numpy_to_audio_chunk, sec_to_stamp, stamp_to_ns
from dualtalk_ros.dualtalk_node import DualTalkNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import Collector, latest_diagnostics, spin_for, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

NS = 1_000_000_000
CHUNK = 320                                  # 20 ms at 16 kHz
TONE = (0.1 * np.sin(np.arange(CHUNK) / 5.0)).astype(np.float32)
STREAMS = ("partner", "agent")


def malformed(good: AudioChunk) -> list[tuple[str, AudioChunk]]:
    """(kind, message) for each malformed AudioChunk, built from a good chunk of the stream."""
    out = []

    def variant(kind: str, **fields) -> None:
        m = numpy_to_audio_chunk(TONE, SAMPLE_RATE, good.first_sample_index,
                                 stamp=good.header.stamp)
        for k, v in fields.items():
            setattr(m, k, v)
        out.append((kind, m))

    variant("bad sample rate", sample_rate=0)
    variant("unknown encoding", encoding="pcm_mulaw")
    variant("size not a multiple of the sample width", channels=2,
            data_float32=np.zeros(321, np.float32))
    variant("NaN samples", data_float32=np.r_[TONE[:-1], np.float32(np.nan)])
    variant("Inf samples", data_float32=np.r_[np.float32(np.inf), TONE[1:]])
    return out


class Conversation:
    """The node under test, a probe publishing real-time audio on both streams, and readers of
    the node's /diagnostics and agent/blendshapes."""

    def __init__(self, ctx, checkpoint) -> None:
        self.node = DualTalkNode(context=ctx, parameter_overrides=to_parameters({
            "checkpoint": str(checkpoint), "diagnostics_period_s": 0.2,
            "end_of_stream_s": 3.0}))       # the stall before the burst is no end of stream
        self.probe = Node("fault_probe", context=ctx)
        self.pubs = {s: self.probe.create_publisher(
            AudioChunk, topics.PARTNER_AUDIO if s == "partner" else topics.AGENT_AUDIO,
            reliable_qos(100)) for s in STREAMS}
        self.frames = Collector(self.probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
        self.diags = Collector(self.probe, DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.probe)
        self.sent = {s: 0 for s in STREAMS}          # messages published per stream
        self.next_index, self.last_good = 0, {}
        self.base_s, self.paused = None, False
        self.probe.create_timer(0.01, self._real_time)

    def now_s(self) -> float:
        return self.probe.get_clock().now().nanoseconds / NS

    def publish(self, stream: str, msg: AudioChunk) -> None:
        self.pubs[stream].publish(msg)
        self.sent[stream] += 1

    def send_good(self) -> None:
        """The next 20 ms of both streams, stamped on the ROS clock (conversation time)."""
        i = self.next_index
        for s in STREAMS:
            self.last_good[s] = numpy_to_audio_chunk(
                TONE, SAMPLE_RATE, i, stamp=sec_to_stamp(self.base_s + i / SAMPLE_RATE))
            self.publish(s, self.last_good[s])
        self.next_index += CHUNK

    def _real_time(self) -> None:
        while self.base_s is not None and not self.paused and (
                (self.next_index + CHUNK) / SAMPLE_RATE <= self.now_s() - self.base_s):
            self.send_good()

    def start(self) -> None:
        assert spin_until(self.ex, lambda: all(
            p.get_subscription_count() > 0 for p in self.pubs.values()), 10.0)
        self.base_s = self.now_s()
        assert spin_until(self.ex, lambda: len(self.frames.msgs) >= 10, 30.0), self.counts()

    def counts(self) -> dict[str, int]:
        """The node's newest /diagnostics values (numbers only)."""
        values = latest_diagnostics(self.diags, "dualtalk_node")
        return {k: int(float(v)) for k, v in values.items()
                if v.lstrip("-").replace(".", "", 1).isdigit()}

    def expect(self, inject, deltas: dict[str, int], what: str) -> None:
        """Run ``inject()``; the next /diagnostics must show each counter moved by its delta."""
        before = self.counts()
        inject()
        want = {k: before.get(k, 0) + d for k, d in deltas.items()}
        spin_until(self.ex, lambda: all(self.counts().get(k, 0) >= v for k, v in want.items()),
                   10.0)
        got = {k: self.counts().get(k, 0) for k in want}
        assert got == want, f"{what}: /diagnostics shows {got}, expected {want}"

    def close(self) -> None:
        self.ex.shutdown()
        self.node.close()
        self.node.destroy_node()
        self.probe.destroy_node()


@pytest.fixture
def conversation(ros_context, tiny_checkpoint):
    conv = Conversation(ros_context, tiny_checkpoint)
    try:
        yield conv
    finally:
        conv.close()


def burst(conv: Conversation, stall_s: float = 0.9, speed: float = 10.0) -> None:
    """A source that stalls for ``stall_s`` and then catches up at ``speed`` x real time (a
    driver or network hiccup): every chunk keeps its true stamp, they just arrive late at once."""
    conv.paused = True
    spin_for(conv.ex, stall_s)
    period = CHUNK / SAMPLE_RATE / speed
    while (conv.next_index + CHUNK) / SAMPLE_RATE <= conv.now_s() - conv.base_s:
        conv.send_good()
        spin_for(conv.ex, period)
    conv.paused = False


def burst_is_taken_whole(conv: Conversation) -> None:
    """Every chunk of a 10x burst is counted in ``*_chunks_in`` and none is refused."""
    before, sent0 = conv.counts(), dict(conv.sent)
    burst(conv)
    want = {f"{s}_chunks_in": before[f"{s}_chunks_in"] + conv.sent[s] - sent0[s] for s in STREAMS}
    assert spin_until(conv.ex, lambda: all(conv.counts()[k] >= v for k, v in want.items()),
                      10.0), (conv.counts(), want)
    refusals = ("invalid_partner_audio", "invalid_agent_audio", "engine_duplicates",
                "engine_dropped_out_of_order", "engine_rejected")
    after = conv.counts()
    assert {k: after[k] for k in refusals} == {k: before[k] for k in refusals}


def output_rate_hz(conv: Conversation, frames: int = 125) -> tuple[float, list[int]]:
    """Hz of the next ``frames`` output frames (slope of a line through the arrival times, so
    the per-hop batching of the output does not bias it) and their stamps."""
    n0 = len(conv.frames.msgs) + 25          # skip the restart transient (1 s)
    assert spin_until(conv.ex, lambda: len(conv.frames.msgs) >= n0 + frames, 30.0), conv.counts()
    items = conv.frames.items[n0:n0 + frames]
    t = np.array([a for a, _ in items])
    slope = np.polyfit(t - t[0], np.arange(frames), 1)[0]
    return float(slope), [stamp_to_ns(m.header.stamp) for _, m in items]


def test_every_malformed_audio_kind_is_counted_and_25hz_resumes(conversation):
    conv = conversation
    conv.start()
    for stream in STREAMS:                   # 1. unreadable messages: refused, counted, dropped
        for kind, msg in malformed(conv.last_good[stream]):
            conv.expect(lambda: conv.publish(stream, msg), {f"invalid_{stream}_audio": 1},
                        f"{stream} {kind}")
    for stream in STREAMS:                   # 2. a duplicate of the last good chunk
        conv.expect(lambda: conv.publish(stream, conv.last_good[stream]),
                    {"engine_duplicates": 1}, f"{stream} duplicate")
    # 3. rewinds: partner 1 s back (off the chunk grid: not a duplicate), agent to sample 0
    # once the engine no longer keeps it (its window is behind the emit point)
    rewind = numpy_to_audio_chunk(TONE, SAMPLE_RATE, conv.next_index - SAMPLE_RATE + 7,
                                  stamp=sec_to_stamp(conv.now_s()))
    conv.expect(lambda: conv.publish("partner", rewind), {"engine_dropped_out_of_order": 1},
                "partner rewind")
    keep_s = conv.node.config.window_s + 2.0
    assert spin_until(conv.ex, lambda: conv.next_index > keep_s * SAMPLE_RATE, 30.0)
    conv.expect(lambda: conv.publish("agent", numpy_to_audio_chunk(
        TONE, SAMPLE_RATE, 0, stamp=sec_to_stamp(conv.now_s()))),
        {"engine_dropped_out_of_order": 1}, "agent rewind")
    burst_is_taken_whole(conv)               # 4. a stall, then 1 s of both streams in 0.1 s
    # 5. both streams jump to sample 2**40: the agent chunk is refused (too far ahead), the
    # partner one starts a new conversation, and the good stream after it another (a rewind)
    far = lambda: numpy_to_audio_chunk(TONE, SAMPLE_RATE, 2 ** 40,  # noqa: E731
                                       stamp=sec_to_stamp(conv.now_s()))
    conv.expect(lambda: conv.publish("agent", far()),
                {"engine_rejected_too_far_ahead": 1}, "agent index 2**40")
    conv.expect(lambda: conv.publish("partner", far()),
                {"index_jumps": 1, "conversation_restarts": 2}, "partner index 2**40")

    rate, stamps = output_rate_hz(conv)
    assert conv.node.context.ok() and conv.node._worker.is_alive()
    assert rate == pytest.approx(25.0, rel=0.05), f"output rate {rate:.2f} Hz after the faults"
    assert np.all(np.diff(stamps) == 40_000_000)
    conv.paused = True                        # every message sent reached the node, once
    assert spin_until(conv.ex, lambda: conv.counts().get("partner_chunks_in", 0) >= conv.sent[
        "partner"] and conv.counts().get("agent_chunks_in", 0) >= conv.sent["agent"], 5.0)
    final = conv.counts()
    assert (final["partner_chunks_in"], final["agent_chunks_in"]) == (
        conv.sent["partner"], conv.sent["agent"])
    assert (final["invalid_partner_audio"], final["invalid_agent_audio"]) == (5, 5)
    assert final["model_errors"] == 0 and final.get("publish_errors", 0) == 0
    assert conv.node.engine.buffered_samples <= conv.node.config.max_backlog_samples
