"""Every dualtalk_msgs type crosses real DDS (loopback) between two rclpy nodes intact."""
from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy

from dualtalk_msgs.msg import AudioChunk, Blendshapes, BlendshapeSequence, ConversationState
from dualtalk_core.layout import FLAME56, FLAME56_NAMES

pytestmark = pytest.mark.ros


def _header(msg, sec: int, nanosec: int, frame: str):
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = nanosec
    msg.header.frame_id = frame
    return msg


def _make_messages():
    rng = np.random.default_rng(0)
    bs = _header(Blendshapes(), 12, 345, "agent_face")
    bs.rig = FLAME56
    bs.names = list(FLAME56_NAMES)
    bs.weights = rng.standard_normal(56).astype(np.float32).tolist()

    seq = _header(BlendshapeSequence(), 13, 40_000_000, "agent_face")
    seq.rig = FLAME56
    seq.names = list(FLAME56_NAMES)
    seq.frame_rate = 25.0
    seq.num_frames = 25
    seq.weights = rng.standard_normal(56 * 25).astype(np.float32).tolist()

    audio_i16 = _header(AudioChunk(), 14, 1, "partner_mic")
    audio_i16.sample_rate = 16000
    audio_i16.channels = 2
    audio_i16.first_sample_index = 2**40 + 7  # uint64 range beyond 32 bits
    audio_i16.encoding = "int16"
    audio_i16.data_int16 = rng.integers(-32768, 32767, 512 * 2, dtype=np.int16).tolist()

    audio_f32 = _header(AudioChunk(), 15, 2, "agent_tts")
    audio_f32.sample_rate = 16000
    audio_f32.channels = 1
    audio_f32.first_sample_index = 512
    audio_f32.encoding = "float32"
    audio_f32.data_float32 = rng.uniform(-1, 1, 512).astype(np.float32).tolist()

    state = _header(ConversationState(), 16, 3, "conversation")
    state.partner_speaking = True
    state.agent_speaking = False
    state.partner_voice_activity = 0.75
    state.agent_voice_activity = 0.125
    return [bs, seq, audio_i16, audio_f32, state]


def _fields_equal(a, b) -> bool:
    for name in a.get_fields_and_field_types():
        va, vb = getattr(a, name), getattr(b, name)
        if hasattr(va, "get_fields_and_field_types"):
            if not _fields_equal(va, vb):
                return False
        elif isinstance(va, (np.ndarray,)) or hasattr(va, "tolist"):
            if not np.array_equal(np.asarray(va), np.asarray(vb)):
                return False
        elif list(va) != list(vb) if isinstance(va, (list, tuple)) else va != vb:
            return False
    return True


def test_every_message_type_roundtrips_over_dds(ros_context):
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sender = Node("msg_sender", context=ros_context)
    receiver = Node("msg_receiver", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(sender)
    executor.add_node(receiver)
    messages = _make_messages()
    received: dict[int, list] = {i: [] for i in range(len(messages))}
    publishers = []
    for i, msg in enumerate(messages):
        topic = f"roundtrip_{i}"
        receiver.create_subscription(type(msg), topic, received[i].append, qos)
        publishers.append(sender.create_publisher(type(msg), topic, qos))
    try:
        deadline = time.monotonic() + 20.0
        # wait for discovery, then publish each message once
        while time.monotonic() < deadline and any(p.get_subscription_count() == 0 for p in publishers):
            executor.spin_once(timeout_sec=0.05)
        for pub, msg in zip(publishers, messages):
            pub.publish(msg)
        while time.monotonic() < deadline and not all(received.values()):
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        sender.destroy_node()
        receiver.destroy_node()

    for i, msg in enumerate(messages):
        assert len(received[i]) == 1, f"{type(msg).__name__} #{i}: got {len(received[i])} messages"
        got = received[i][0]
        assert _fields_equal(msg, got), f"{type(msg).__name__} changed in transit: {msg} != {got}"
    seq = received[1][0]
    assert seq.num_frames == 25 and len(seq.weights) == 56 * 25
    assert np.asarray(received[2][0].data_int16).reshape(-1, 2).shape == (512, 2)
    assert received[2][0].first_sample_index == 2**40 + 7
