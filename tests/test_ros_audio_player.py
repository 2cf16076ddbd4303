"""audio_file_player: wav -> AudioChunk on the conversation clock, in real time, with lead time."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from dualtalk_msgs.msg import AudioChunk
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from dualtalk_ros import topics
from dualtalk_ros.audio_file_player_node import AudioFilePlayerNode
from dualtalk_ros.conversions import audio_chunk_to_numpy, stamp_to_ns
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import sensor_qos
from ros_helpers import spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback


def _play(ctx, wav, lead):
    probe = Node("probe", context=ctx)
    got = []   # (receive ROS time ns, msg)
    probe.create_subscription(AudioChunk, topics.AGENT_AUDIO,
                              lambda m: got.append((probe.get_clock().now().nanoseconds, m)),
                              sensor_qos(depth=500))
    origin = probe.get_clock().now().nanoseconds / 1e9 + 1.0
    player = AudioFilePlayerNode(context=ctx, parameter_overrides=to_parameters({
        "wav_files": [str(wav), str(wav)], "origin_stamp_s": origin, "lead_time_s": lead}),
        cli_args=["--ros-args", "-r", f"{topics.PLAYER_AUDIO}:={topics.AGENT_AUDIO}"])
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(probe)
    ex.add_node(player)
    try:
        spin_until(ex, lambda: player.finished and len(got) >= 50, 10.0)
    finally:
        ex.shutdown()
        player.destroy_node()
        probe.destroy_node()
    return origin, got


def test_player_chunks_are_contiguous_and_stamped_with_playback_time(tmp_path, ros_context):
    wav = tmp_path / "tts.wav"
    x = (0.5 * np.sin(np.arange(8000) / 7.0)).astype(np.float32)     # 0.5 s at 16 kHz
    sf.write(wav, x, 16000, subtype="FLOAT")
    origin, got = _play(ros_context, wav, lead=0.0)
    msgs = [m for _, m in got]
    assert [m.first_sample_index for m in msgs] == list(range(0, 16000, 320))
    np.testing.assert_array_equal(np.concatenate([audio_chunk_to_numpy(m)[:, 0] for m in msgs]),
                                  np.concatenate([x, x]))          # both files, in order
    for recv, m in got:
        stamp = stamp_to_ns(m.header.stamp)
        assert abs(stamp - (origin * 1e9 + m.first_sample_index * 62_500)) < 1_000   # 1/16000 s
        assert recv >= stamp            # without lead time nothing is sent before it plays


def test_player_lead_time_sends_ahead_of_playback(tmp_path, ros_context):
    wav = tmp_path / "tts.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    _, got = _play(ros_context, wav, lead=0.3)
    early = [stamp_to_ns(m.header.stamp) - recv for recv, m in got]
    assert max(early) > 0.1e9          # chunks arrive well before their playback stamp
