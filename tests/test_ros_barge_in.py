"""Barge-in closes the mouth (issue 17, deliverable 3), with the bundled live demo model.

A TTS publishes a whole utterance (5 s) at once, ahead of playback; at media time 2.5 s the
robot is interrupted (``agent/speech_stop``). ``dualtalk_node`` must treat the queued speech
after the stop as silence: from 0.6 s after the stop (the lookahead already fed to the model
plus its causal context), the agent's jaw follows the model's output for the speech cut at the
stop, not the one for the whole utterance. The voice side (the loudspeaker going quiet) is
tests/test_ros_voice_player.py.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
from dualtalk_msgs.msg import AudioChunk, Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Empty

from dualtalk_core.layout import JAW, SAMPLE_RATE, num_frames_for_samples
from dualtalk_core.model.checkpoint import load_checkpoint
from dualtalk_core.model.inference import predict_clip
from dualtalk_ros import topics
from dualtalk_ros.audio_file_player_node import AudioFilePlayerNode
from dualtalk_ros.conversions import numpy_to_audio_chunk, sec_to_stamp
from dualtalk_ros.dualtalk_node import DualTalkNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos, sensor_qos
from ros_helpers import Collector, spin_for, spin_until

pytestmark = pytest.mark.ros
CLIP = "xkHwlcDSOjc_sub_video_109_000"
START_S, SECONDS, STOP_S = 6.0, 5.0, 2.5     # the agent speaks from 0.75 s to the end
CHUNK = 320


def test_speech_stop_closes_the_mouth(ros_context, sample_dir, repo_root, tmp_path):
    ck = repo_root / "models" / "dualtalk_live_demo.pt"
    n = int(SECONDS * SAMPLE_RATE)
    audio = {}
    for spk in (1, 2):
        x, _ = sf.read(sample_dir / f"{CLIP}_speaker{spk}.wav", dtype="float32")
        audio[spk] = x[int(START_S * SAMPLE_RATE):][:n]
    sf.write(tmp_path / "partner.wav", audio[1], SAMPLE_RATE, subtype="FLOAT")
    node = DualTalkNode(context=ros_context, parameter_overrides=to_parameters(
        {"checkpoint": str(ck), "end_of_stream_s": 0.5, "torch_threads": 1}))
    probe = Node("barge_probe", context=ros_context)
    origin_s = time.time() + 1.0
    partner = AudioFilePlayerNode(
        context=ros_context, name="partner_player", parameter_overrides=to_parameters({
            "wav_files": [str(tmp_path / "partner.wav")], "origin_stamp_s": origin_s}),
        cli_args=["--ros-args", "-r", f"{topics.PLAYER_AUDIO}:={topics.PARTNER_AUDIO}"])
    agent_pub = probe.create_publisher(AudioChunk, topics.AGENT_AUDIO, sensor_qos(50))
    stop_pub = probe.create_publisher(Empty, topics.AGENT_SPEECH_STOP, reliable_qos(10))
    frames = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    for x in (node, probe, partner):
        ex.add_node(x)
    expected = num_frames_for_samples(n)
    try:
        assert spin_until(ex, lambda: agent_pub.get_subscription_count() > 0
                          and stop_pub.get_subscription_count() > 0, 10.0)
        for first in range(0, n, CHUNK):      # the whole utterance, published at once
            agent_pub.publish(numpy_to_audio_chunk(
                audio[2][first:first + CHUNK], SAMPLE_RATE, first,
                stamp=sec_to_stamp(origin_s + first / SAMPLE_RATE), frame_id="agent_tts"))
            spin_for(ex, 0.002)
        spin_for(ex, max(0.0, origin_s + STOP_S - time.time()))
        stop_pub.publish(Empty())
        assert spin_until(ex, lambda: node.counters["conversations_ended"] == 1
                          and len(frames.msgs) >= expected, 40.0), node.diagnostics_values()
        silence = node.speech_stop.last_silence
    finally:
        ex.shutdown()
        node.close()
        for x in (node, probe, partner):
            x.destroy_node()
    assert node.counters["speech_stops"] == 1 and silence is not None
    cut = silence[0]
    assert abs(cut / SAMPLE_RATE - STOP_S) < 0.1, cut     # silenced from the stop's time
    model, _ = load_checkpoint(ck)
    face = np.zeros((expected, 56), np.float32)
    spoken = audio[2].copy()
    spoken[cut:] = 0.0
    whole = predict_clip(model, audio[2], audio[1], face)
    stopped = predict_clip(model, spoken, audio[1], face)
    streamed = np.stack([np.asarray(m.weights, np.float32) for m in frames.msgs[:expected]])
    after = slice(int((STOP_S + 0.6) * 25), expected)
    jaw = JAW.start
    gap = np.abs(whole[after, jaw] - stopped[after, jaw]).mean()
    assert gap > 1e-3, "the interrupted speech does not move this model's jaw: vacuous test"
    err_stopped = np.abs(streamed[after, jaw] - stopped[after, jaw]).mean()
    err_whole = np.abs(streamed[after, jaw] - whole[after, jaw]).mean()
    off = np.abs(streamed[:, jaw] - stopped[:, jaw]) > 0.01
    closed_from = (np.flatnonzero(off).max() + 1) / 25 - STOP_S if off.any() else 0.0
    print(f"jaw follows the cut speech from {closed_from:+.2f} s after the stop; "
          f"jaw after the stop: |streamed - cut speech| {err_stopped:.4f}, |streamed - whole "
          f"utterance| {err_whole:.4f}; opening streamed {streamed[after, jaw].mean():.3f}, "
          f"cut {stopped[after, jaw].mean():.3f}, whole {whole[after, jaw].mean():.3f}")
    assert err_stopped < 0.5 * err_whole, (err_stopped, err_whole, gap)
