"""``dualtalk_node`` runs a live (causal) checkpoint through the live runner: every frame of a
clip once, on media time, and what a robot gets equals the model's offline output (issue 16:
the session picks the path from the checkpoint)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from dualtalk_core.layout import SAMPLE_RATE, num_frames_for_samples
from dualtalk_core.model.checkpoint import save_checkpoint
from dualtalk_core.model.config import get_preset
from dualtalk_core.model.dualtalk import DualTalk
from dualtalk_core.model.inference import predict_clip
from dualtalk_ros import topics
from dualtalk_ros.audio_file_player_node import AudioFilePlayerNode
from dualtalk_ros.conversions import stamp_to_ns
from dualtalk_ros.dualtalk_node import DualTalkNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from ros_helpers import Collector, spin_until

pytestmark = pytest.mark.ros
CLIP = "xkHwlcDSOjc_sub_video_109_000"
SECONDS = 4.0
NS = 1_000_000_000


def test_live_checkpoint_streams_every_frame_equal_to_offline(ros_context, sample_dir, tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = DualTalk(get_preset("live")).eval()
    ck = save_checkpoint(tmp_path / "live.pt", model, preset="live")
    n = int(SECONDS * SAMPLE_RATE)
    audio = {}
    for spk in (1, 2):
        x, _ = sf.read(sample_dir / f"{CLIP}_speaker{spk}.wav", dtype="float32")
        audio[spk] = x[:n]
        sf.write(tmp_path / f"s{spk}.wav", audio[spk], SAMPLE_RATE, subtype="FLOAT")
    expected = num_frames_for_samples(n)
    node = DualTalkNode(context=ros_context, parameter_overrides=to_parameters(
        {"checkpoint": str(ck), "end_of_stream_s": 0.5, "torch_threads": 1}))
    probe = Node("probe", context=ros_context)
    origin_s = probe.get_clock().now().nanoseconds / NS + 1.0
    # the agent's speech is published 0.5 s ahead of playback, as a TTS knows it
    players = [AudioFilePlayerNode(
        context=ros_context, name=f"{who}_player", parameter_overrides=to_parameters({
            "wav_files": [str(tmp_path / f"s{spk}.wav")], "origin_stamp_s": origin_s,
            "frame_id": who, "lead_time_s": lead}),
        cli_args=["--ros-args", "-r", f"{topics.PLAYER_AUDIO}:={topic}"])
        for who, spk, topic, lead in (("partner", 1, topics.PARTNER_AUDIO, 0.0),
                                      ("agent", 2, topics.AGENT_AUDIO, 0.5))]
    frames = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    for x in [node, probe, *players]:
        ex.add_node(x)
    try:
        assert node.session.runner.__class__.__name__ == "LiveRunner"
        assert spin_until(ex, lambda: len(frames.msgs) >= expected
                          and node.counters["conversations_ended"] == 1, timeout_s=40.0), (
            f"{len(frames.msgs)} of {expected} frames; {node.diagnostics_values()}")
    finally:
        ex.shutdown()
        node.close()
        for x in [node, probe, *players]:
            x.destroy_node()
    stamps = np.array([stamp_to_ns(m.header.stamp) for m in frames.msgs])
    # frame 0 at the conversation origin, every 40 ms; a negative partner lookahead (-0.12 s)
    # lets up to 3 frames past the partner's last sample out before the stream is known to end
    assert stamps[0] == pytest.approx(origin_s * NS, abs=1e6)
    assert expected <= len(stamps) <= expected + 3
    np.testing.assert_array_equal(np.diff(stamps), np.full(len(stamps) - 1, 40_000_000))
    streamed = np.stack([np.asarray(m.weights, np.float32) for m in frames.msgs[:expected]])
    offline = predict_clip(model, audio[2], audio[1], np.zeros((expected, 56), np.float32))
    assert np.abs(streamed - offline).max() <= 1e-4
