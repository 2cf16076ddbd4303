"""dualtalk_node over real rclpy/DDS: real clip in, 25 fps agent face out; bad input survives.

The partner and agent audio are played by the project's own ``audio_file_player`` nodes (same
conversation clock), the partner face comes from the clip's npz at 25 fps, and the node runs a
``tiny`` checkpoint with random weights (what is tested is timing, stamps, names, finiteness and
robustness, not motion quality).
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import AudioChunk, BlendshapeSequence, Blendshapes, ConversationState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from dualtalk_core.layout import (FLAME56_NAMES, SAMPLE_RATE, flame56_from_npz,
                                  num_frames_for_samples)
from dualtalk_ros import topics
from dualtalk_ros.audio_file_player_node import AudioFilePlayerNode
from dualtalk_ros.conversions import (numpy_to_audio_chunk, numpy_to_blendshapes, sec_to_stamp,
                                      stamp_to_ns)
from dualtalk_ros.dualtalk_node import DualTalkNode
from dualtalk_ros.params import to_parameters
from dualtalk_ros.qos import reliable_qos
from dualtalk_ros.runtime import StartupError
from ros_helpers import Collector, entry_point, ros_env, spin_until

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback

CLIP = "xkHwlcDSOjc_sub_video_109_000"
NS = 1_000_000_000
EXCERPT_S = 6.0     # of the 30 s sample clip: 150 frames, enough for 5 s of rate measurement


def _excerpt(sample_dir, tmp_path, seconds: float = EXCERPT_S) -> dict[int, str]:
    """The first ``seconds`` of both speakers' wavs, written to ``tmp_path`` (a whole clip,
    played to its end, in a few seconds)."""
    out = {}
    for spk in (1, 2):
        audio, sr = sf.read(sample_dir / f"{CLIP}_speaker{spk}.wav", dtype="float32")
        out[spk] = str(tmp_path / f"excerpt_speaker{spk}.wav")
        sf.write(out[spk], audio[:int(seconds * sr)], sr, subtype="FLOAT")
    return out


def _dualtalk(ctx, checkpoint, **extra):
    params = {"checkpoint": str(checkpoint), "diagnostics_period_s": 0.5}
    params.update(extra)
    return DualTalkNode(context=ctx, parameter_overrides=to_parameters(params))


@pytest.mark.parametrize("playout_delay_s", [0.0, 0.9])
def test_real_clip_gives_25fps_frames_on_media_time(ros_context, tiny_checkpoint, sample_dir,
                                                    tmp_path, playout_delay_s):
    """playout 0: frames leave per hop as soon as computed; 0.9: each at stamp + 0.9 s.
    The clip (a 6 s excerpt) is played to its end: once its audio stops, the node flushes the
    lookahead frames, so EVERY frame of the clip is published, each exactly once."""
    wavs = _excerpt(sample_dir, tmp_path)
    expected = num_frames_for_samples(int(EXCERPT_S * SAMPLE_RATE))
    node = _dualtalk(ros_context, tiny_checkpoint, playout_delay_s=playout_delay_s,
                     end_of_stream_s=0.5)
    probe = Node("probe", context=ros_context)
    origin_s = probe.get_clock().now().nanoseconds / NS + 1.0
    players = [AudioFilePlayerNode(
        context=ros_context, name=f"{who}_player", parameter_overrides=to_parameters({
            "wav_files": [wavs[spk]], "origin_stamp_s": origin_s, "frame_id": who}),
        cli_args=["--ros-args", "-r", f"{topics.PLAYER_AUDIO}:={topic}"])   # as the launch file
        for who, spk, topic in (("partner", 1, topics.PARTNER_AUDIO),
                                ("agent", 2, topics.AGENT_AUDIO))]
    face = flame56_from_npz(np.load(sample_dir / f"{CLIP}_speaker1.npz"))[:expected]
    face_pub = probe.create_publisher(Blendshapes, topics.PARTNER_FACE, reliable_qos())
    sent = {"k": 0}

    def send_face():   # the partner face, each frame at its capture time
        now = probe.get_clock().now().nanoseconds / NS
        while sent["k"] < face.shape[0] and origin_s + sent["k"] * 0.04 <= now:
            k = sent["k"]
            face_pub.publish(numpy_to_blendshapes(face[k], stamp=sec_to_stamp(origin_s + k * 0.04),
                                                  frame_id="partner_face"))
            sent["k"] += 1

    probe.create_timer(0.01, send_face)
    frames = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    arrival_ns = []
    probe.create_subscription(Blendshapes, topics.AGENT_BLENDSHAPES, lambda m: arrival_ns.append(
        probe.get_clock().now().nanoseconds - stamp_to_ns(m.header.stamp)), reliable_qos())
    seqs = Collector(probe, BlendshapeSequence, topics.AGENT_BLENDSHAPE_SEQUENCE, reliable_qos())
    states = Collector(probe, ConversationState, topics.CONVERSATION_STATE, reliable_qos())
    diags = Collector(probe, DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    for n in [node, probe, *players]:
        ex.add_node(n)
    try:
        assert spin_until(ex, lambda: node.counters["conversations_ended"] == 1
                          and len(frames.msgs) >= expected, timeout_s=40.0), (
            f"{len(frames.msgs)} of {expected} frames; diagnostics: {node.diagnostics_values()}")
        spin_until(ex, lambda: len(states.msgs) >= expected, timeout_s=2.0)
    finally:
        ex.shutdown()
        node.close()
        for n in [node, probe, *players]:
            n.destroy_node()

    # the whole clip: frames 0..expected-1, each once, the last ones flushed at end of stream
    all_stamps = np.array([stamp_to_ns(m.header.stamp) for m in frames.msgs])
    assert len(all_stamps) == expected, f"{len(all_stamps)} frames for a {expected}-frame clip"
    np.testing.assert_array_equal(np.diff(all_stamps), np.full(expected - 1, 40_000_000))
    assert node.counters["frames_flushed"] >= node.config.lookahead_frames
    assert node.counters["frames_published"] == expected
    assert len(states.msgs) == expected
    assert sum(s.num_frames for s in seqs.msgs) == expected
    msgs = frames.msgs[:125]                      # 5 s of output
    stamps = np.array([stamp_to_ns(m.header.stamp) for m in msgs])
    # stamps: origin + k * 40 ms exactly, starting at the conversation origin (frame 0)
    assert stamps[0] == pytest.approx(origin_s * NS, abs=1e6)
    np.testing.assert_array_equal(np.diff(stamps), np.full(124, 40_000_000))
    for m in msgs:
        assert m.rig == "flame56" and tuple(m.names) == FLAME56_NAMES
        w = np.asarray(m.weights)
        assert w.shape == (56,) and np.isfinite(w).all()
    # real-time output: 125 frames arrive over ~5 s of wall time (25 Hz +- 10 %)
    arrivals = np.array([t for t, _ in frames.items[:125]])
    rate = 124 / (arrivals[-1] - arrivals[0])
    assert 22.5 <= rate <= 27.5 * 1.05, f"output rate {rate:.1f} Hz"  # hop bursts: last hop early
    if playout_delay_s:     # paced: no frame leaves before its stamp + playout delay
        assert min(arrival_ns) >= playout_delay_s * NS
    # one state per frame, one sequence per hop with the same frames
    assert [stamp_to_ns(s.header.stamp) for s in states.msgs[:125]] == list(stamps)
    seq = seqs.msgs[0]
    assert seq.num_frames == node.config.hop_frames and seq.frame_rate == 25.0
    np.testing.assert_array_equal(np.asarray(seq.weights).reshape(seq.num_frames, 56)[0],
                                  np.asarray(msgs[0].weights))
    # each hop says how far the partner input it was computed from reaches (issue 17: the
    # listening reaction): a sliding window's end, i.e. its last frame + the lookahead
    for s in seqs.msgs[:-1]:            # (the last, flushed hop used all there was)
        last_frame_end = stamp_to_ns(s.header.stamp) + s.num_frames * 40_000_000
        assert stamp_to_ns(s.partner_input_end) == last_frame_end + round(
            node.config.lookahead_s * NS) - 40_000_000
    # diagnostics carry the real-time factor and latency; nothing was invalid
    mine = [s for d in diags.msgs for s in d.status if s.name.startswith("dualtalk_node")]
    assert mine, "no /diagnostics from dualtalk_node"
    values = {kv.key: kv.value for kv in mine[-1].values}
    assert float(values["real_time_factor"]) > 0
    # stamps on the node's clock: both latencies measurable, end-to-end includes the lookahead
    assert 0 < float(values["processing_latency_ms_p50"]) < 5000
    assert float(values["end_to_end_latency_ms_p50"]) > 1000 * node.config.lookahead_s
    assert values["invalid_partner_audio"] == "0" and values["invalid_face"] == "0"


def test_stamps_from_zero_end_of_stream_new_conversation_and_latency(ros_context,
                                                                    tiny_checkpoint):
    """A partner stream stamped from t=0 (a bag made with ``--start-time 0``, no sim time),
    played in real time, then stopped: every frame of it comes out (the lookahead tail at end
    of stream); the processing latency is plausible while the end-to-end one (ROS now - stamp,
    ~56 years here) is reported unavailable; the same stream played again from sample 0 is a
    new conversation stamped from 0 again."""
    node = _dualtalk(ros_context, tiny_checkpoint, end_of_stream_s=0.5)
    probe = Node("probe", context=ros_context)
    pub_p = probe.create_publisher(AudioChunk, topics.PARTNER_AUDIO, reliable_qos(100))
    frames = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    diags = Collector(probe, DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
    n = 2 * SAMPLE_RATE                                   # 2 s: 50 frames
    t = np.arange(n) / SAMPLE_RATE
    audio = (0.1 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * t) > 0)).astype(np.float32)
    chunk = 320
    play = {"start": None, "next": 0, "limit": n}

    def send():    # real time: chunk i leaves when its last sample has "been captured"
        if play["start"] is None:
            return
        now = probe.get_clock().now().nanoseconds / NS - play["start"]
        while play["next"] < play["limit"] and (play["next"] + chunk) / SAMPLE_RATE <= now:
            i = play["next"]
            pub_p.publish(numpy_to_audio_chunk(audio[i:i + chunk], SAMPLE_RATE, i,
                                               stamp=sec_to_stamp(i / SAMPLE_RATE)))
            play["next"] += chunk

    probe.create_timer(0.01, send)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    expected = num_frames_for_samples(n)
    try:
        assert spin_until(ex, lambda: pub_p.get_subscription_count() > 0, 10.0)
        play["start"] = probe.get_clock().now().nanoseconds / NS
        assert spin_until(ex, lambda: node.counters["conversations_ended"] == 1
                          and len(frames.msgs) >= expected, 20.0), node.diagnostics_values()
        first = [stamp_to_ns(m.header.stamp) for m in frames.msgs]
        values = node.diagnostics_values()
        assert spin_until(ex, lambda: any(
            kv.key == "end_to_end_latency_ms_p50" for d in diags.msgs for s in d.status
            for kv in s.values), 5.0)
        published = {kv.key: kv.value for d in diags.msgs for s in d.status
                     if s.name.startswith("dualtalk_node") for kv in s.values}
        # the same stream again from sample 0 (0.4 s, sent at once): a new conversation
        play.update(start=None, next=0, limit=6400)
        for i in range(0, 6400, chunk):
            pub_p.publish(numpy_to_audio_chunk(audio[i:i + chunk], SAMPLE_RATE, i,
                                               stamp=sec_to_stamp(i / SAMPLE_RATE)))
        assert spin_until(ex, lambda: node.counters["conversations_ended"] == 2
                          and len(frames.msgs) >= expected + 10, 20.0), node.diagnostics_values()
        second = [stamp_to_ns(m.header.stamp) for m in frames.msgs[expected:]]
    finally:
        ex.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()
    assert first == [k * 40_000_000 for k in range(expected)]       # all of them, once
    assert node.counters["frames_flushed"] >= 2 * node.config.lookahead_frames
    assert second == [k * 40_000_000 for k in range(10)]           # new clock origin at 0
    assert node.counters["conversation_restarts"] == 1
    # processing latency: arrival of the completing chunk -> publish (compute + queueing)
    assert values["processing_latency_ms_n"] > 0
    assert 0 < values["processing_latency_ms_p50"] <= values["processing_latency_ms_p95"] < 3000
    assert values["end_to_end_latency_ms_p50"] == "unavailable"
    assert values["end_to_end_latency_implausible"] == expected
    assert published["end_to_end_latency_ms_p50"] == "unavailable"
    assert 0 < float(published["processing_latency_ms_p50"]) < 3000


def _bad_audio_chunks():
    """(kind, message) for every malformed AudioChunk the node must survive."""
    out = []

    def variant(kind, **fields):
        m = numpy_to_audio_chunk(np.zeros(320, np.float32), 16000, 0)
        for k, v in fields.items():
            setattr(m, k, v)
        out.append((kind, m))

    variant("nan", data_float32=np.full(320, np.nan, np.float32))
    variant("inf", data_float32=np.r_[np.zeros(319, np.float32), np.float32(np.inf)])
    variant("unknown encoding", encoding="pcm_mulaw")
    variant("zero channels", channels=0)
    variant("samples not multiple of channels", channels=3, data_float32=np.zeros(320, np.float32))
    variant("zero sample rate", sample_rate=0)
    variant("empty", data_float32=np.zeros(0, np.float32))
    variant("both data fields", data_int16=np.zeros(320, np.int16))
    return out


def _bad_faces():
    out = []
    for kind, weights, rig, names in (
            ("nan face", np.full(56, np.nan), "flame56", list(FLAME56_NAMES)),
            ("wrong dimension", np.zeros(40), "flame56", []),
            ("names/weights mismatch", np.zeros(56), "flame56", ["a", "b"]),
            ("unknown rig without names", np.zeros(56), "mystery_rig", []),
            ("arkit without a map", np.zeros(52), "arkit52", [])):
        m = Blendshapes(rig=rig, names=names, weights=np.asarray(weights, np.float32))
        out.append((kind, m))
    return out


def test_malformed_burst_is_counted_and_node_keeps_working(ros_context, tiny_checkpoint):
    node = _dualtalk(ros_context, tiny_checkpoint)
    probe = Node("probe", context=ros_context)
    qos = reliable_qos(200)
    pub_p = probe.create_publisher(AudioChunk, topics.PARTNER_AUDIO, qos)
    pub_a = probe.create_publisher(AudioChunk, topics.AGENT_AUDIO, qos)
    pub_f = probe.create_publisher(Blendshapes, topics.PARTNER_FACE, qos)
    frames = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: pub_p.get_subscription_count() > 0
                          and pub_f.get_subscription_count() > 0, 10.0)
        bad_audio, bad_faces = _bad_audio_chunks(), _bad_faces()
        for _, m in bad_audio:
            pub_p.publish(m)
            pub_a.publish(m)
            ex.spin_once(timeout_sec=0.01)
        for _, m in bad_faces:
            pub_f.publish(m)
            ex.spin_once(timeout_sec=0.01)
        want = {"invalid_partner_audio": len(bad_audio), "invalid_agent_audio": len(bad_audio),
                "invalid_face": len(bad_faces)}
        spin_until(ex, lambda: all(node.counters[k] >= v for k, v in want.items()), 10.0)
        assert {k: node.counters[k] for k in want} == want
        # the node still works: 48 kHz stereo partner audio (resampled, downmixed) + good face
        t = np.arange(48000 * 2) / 48000.0
        stereo = np.stack([0.1 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
        base = 1_000_000_000
        for n, i in enumerate(range(0, stereo.shape[0], 960)):      # 20 ms chunks
            stamp = sec_to_stamp(base / NS + i / 48000)
            pub_p.publish(numpy_to_audio_chunk(stereo[i:i + 960], 48000, i, stamp=stamp))
            if i % 1920 == 0:
                pub_f.publish(numpy_to_blendshapes(np.zeros(56), stamp=stamp))
            spin_until(ex, lambda: node.counters["partner_chunks_in"] > len(bad_audio) + n, 5.0)
        n_good = stereo.shape[0] // 960
        assert spin_until(ex, lambda: len(frames.msgs) >= 20 and node.counters[
            "partner_chunks_in"] >= len(bad_audio) + n_good, 20.0), node.diagnostics_values()
        values = node.diagnostics_values()
    finally:
        ex.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()
    assert values["partner_resampled_chunks"] == n_good
    assert values["partner_downmixed_chunks"] == n_good
    assert values["invalid_partner_audio"] == len(bad_audio)   # unchanged by good input
    assert all(np.isfinite(np.asarray(m.weights)).all() for m in frames.msgs)
    assert stamp_to_ns(frames.msgs[0].header.stamp) == base


def test_missing_or_invalid_checkpoint_is_a_startup_error(ros_context, tmp_path):
    with pytest.raises(StartupError, match="not found.*nope.pt"):
        _dualtalk(ros_context, tmp_path / "nope.pt")
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(StartupError, match="invalid checkpoint"):
        _dualtalk(ros_context, bad)
    proc = subprocess.run([entry_point("dualtalk_node"), "--ros-args", "-p",
                           f"checkpoint:={tmp_path / 'nope.pt'}"], env=ros_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "checkpoint not found" in proc.stderr


def test_arkit_partner_face_through_map_and_face_before_audio(ros_context, tiny_checkpoint):
    """An ARKit face (mapped by partner_face_map_file) that arrives before the first partner
    audio waits for the clock origin and then reaches the engine at the right media time; a
    partner stream that restarts from sample 0 starts a new conversation."""
    from dualtalk_core.layout import ARKIT52_NAMES

    node = _dualtalk(ros_context, tiny_checkpoint,
                     partner_face_map_file="maps/arkit_to_flame56.yaml")
    probe = Node("probe", context=ros_context)
    pub_f = probe.create_publisher(Blendshapes, topics.PARTNER_FACE, reliable_qos())
    pub_p = probe.create_publisher(AudioChunk, topics.PARTNER_AUDIO, reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        assert spin_until(ex, lambda: pub_f.get_subscription_count() > 0
                          and pub_p.get_subscription_count() > 0, 10.0)
        face = Blendshapes(rig="arkit52", names=list(ARKIT52_NAMES),
                           weights=np.full(52, 0.5, np.float32))
        face.header.stamp = sec_to_stamp(100.08)
        pub_f.publish(face)
        assert spin_until(ex, lambda: node.counters["face_frames_in"] == 1, 5.0)
        assert node.engine.counters["partner_motion_frames"] == 0     # no clock yet: waits
        pub_p.publish(numpy_to_audio_chunk(np.zeros(320, np.float32), 16000, 1600,
                                           stamp=sec_to_stamp(100.1)))
        assert spin_until(ex, lambda: node.engine.counters["partner_motion_frames"] == 1, 5.0)
        assert node.origin_ns == 100_000_000_000            # 100.1 s - 1600 / 16000
        assert node.counters["invalid_face"] == 0
        # a partner source restarted from sample 0 (10 s back): a new conversation, new origin
        for index, stamp in ((160_000, 110.0), (0, 200.0)):
            pub_p.publish(numpy_to_audio_chunk(np.zeros(320, np.float32), 16000, index,
                                               stamp=sec_to_stamp(stamp)))
        assert spin_until(ex, lambda: node.counters["conversation_restarts"] == 1, 5.0)
        assert node.origin_ns == 200_000_000_000
    finally:
        ex.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()


def test_unavailable_cuda_is_a_startup_error(ros_context, tiny_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(StartupError, match="cuda.*no usable CUDA"):
        _dualtalk(ros_context, tiny_checkpoint, device="cuda")


# ------------------------------------------------------------------ parameters (issue 15)
def _set_over_dds(ex, probe, params) -> list:
    """``ros2 param set`` as a remote node does it: the SetParameters service over DDS."""
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(probe, "dualtalk_node")
    assert client.wait_for_services(timeout_sec=10.0)
    future = client.set_parameters(params)
    assert spin_until(ex, future.done, 10.0)
    return list(future.result().results)


def test_set_parameters_read_only_refused_dynamic_applied(ros_context, tiny_checkpoint):
    from rclpy.parameter import Parameter

    node = _dualtalk(ros_context, tiny_checkpoint)
    probe = Node("probe", context=ros_context)
    pub_p = probe.create_publisher(AudioChunk, topics.PARTNER_AUDIO, reliable_qos(100))
    frames = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    try:
        hop = node.config.hop_s
        for name, value in (("hop_s", 0.2), ("checkpoint", "other.pt"),
                            ("partner_face_map_file", "x")):
            (r,) = _set_over_dds(ex, probe, [Parameter(name, value=value)])
            assert not r.successful and "read-only" in r.reason and name in r.reason
        assert node.config.hop_s == hop and node.get_parameter("hop_s").value == hop
        (r,) = _set_over_dds(ex, probe, [Parameter("end_of_stream_s", value=-1.0)])
        assert not r.successful
        assert "end_of_stream_s" in r.reason and "-1.0" in r.reason and "3600" in r.reason
        assert node.config.end_of_stream_s == 1.0
        results = _set_over_dds(ex, probe, [
            Parameter("end_of_stream_s", value=2.5), Parameter("restart_after_rewind_s", value=2.0),
            Parameter("frame_id", value="robot_face"),
            Parameter("diagnostics_period_s", value=0.2)])
        assert all(r.successful for r in results), [r.reason for r in results]
        assert node.config.end_of_stream_s == 2.5 and node.config.restart_after_rewind_s == 2.0
        assert node.settings.frame_id == "robot_face" and node.settings.diagnostics_period_s == 0.2
        # still running, with the new frame_id on its output
        assert spin_until(ex, lambda: pub_p.get_subscription_count() > 0, 10.0)
        for i in range(0, 2 * SAMPLE_RATE, 320):
            pub_p.publish(numpy_to_audio_chunk(np.zeros(320, np.float32), SAMPLE_RATE, i,
                                               stamp=sec_to_stamp(50.0 + i / SAMPLE_RATE)))
        assert spin_until(ex, lambda: len(frames.msgs) >= 10, 20.0), node.diagnostics_values()
        assert frames.msgs[0].header.frame_id == "robot_face"
    finally:
        ex.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()


def test_streaming_settings_merge_preset_file_params(ros_context, tiny_checkpoint, tmp_path):
    """Only hop_s given: the cross-fade follows (no start-up error); streaming_preset is kept
    when a streaming_config_file is given (preset -> file -> parameters)."""
    node = _dualtalk(ros_context, tiny_checkpoint, hop_s=0.2, warmup=False)
    try:
        c = node.config
        assert (c.window_s, c.lookahead_s, c.hop_s, c.crossfade_frames) == (4.0, 0.4, 0.2, 5)
        assert node.get_parameter("window_s").value == 4.0      # the preset's, declared
    finally:
        node.close()
        node.destroy_node()
    file = tmp_path / "s.yaml"
    file.write_text("streaming:\n  lookahead_s: 0.32\n  max_gap_s: 2.0\n")
    node = _dualtalk(ros_context, tiny_checkpoint, streaming_preset="paper", warmup=False,
                     streaming_config_file=str(file), max_gap_s=3.0)
    try:
        c = node.config
        assert (c.window_s, c.lookahead_s, c.max_gap_s) == (2.0, 0.32, 3.0)
    finally:
        node.close()
        node.destroy_node()


@pytest.mark.parametrize("params, pattern", [
    ({"hop_s": 0.2, "crossfade_s": 0.36}, r"crossfade_s: expected .*\[0, 0\.2\].*got 0\.36"),
    ({"lookahead_s": 0.3}, r"lookahead_s: expected a multiple of 0\.04 s.*got 0\.3"),
    ({"streaming_preset": "huge"}, r"streaming_preset.*one of \['auto', .*'cpu'.*got 'huge'"),
    ({"hop_s": "fast"}, r"'hop_s'.*fast.*expected a value in \[0\.04, 10\.0\]"),
    ({"hop_s": 20.0}, r"'hop_s'.*20\.0.*10\.0"),
])
def test_a_configuration_that_cannot_work_fails_at_startup(ros_context, tiny_checkpoint,
                                                           params, pattern):
    from dualtalk_ros.params import ParamError

    with pytest.raises((StartupError, ParamError), match=pattern):
        _dualtalk(ros_context, tiny_checkpoint, warmup=False, **params)


def test_far_sample_index_is_survived_and_25hz_resumes(ros_context, tiny_checkpoint):
    """Issue 20: a partner and an agent chunk at sample index 2**40 (a 4 TiB gap) - the node
    keeps running, counts it, and normal input is published at 25 Hz again."""
    node = _dualtalk(ros_context, tiny_checkpoint)
    probe = Node("probe", context=ros_context)
    pub_p = probe.create_publisher(AudioChunk, topics.PARTNER_AUDIO, reliable_qos(100))
    pub_a = probe.create_publisher(AudioChunk, topics.AGENT_AUDIO, reliable_qos(100))
    frames = Collector(probe, Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(probe)
    tone = (0.1 * np.sin(np.arange(320) / 5.0)).astype(np.float32)
    base = probe.get_clock().now().nanoseconds / NS
    sent = {"i": 0}

    def send():       # real-time partner audio, 20 ms chunks, stamped on the ROS clock
        now = probe.get_clock().now().nanoseconds / NS
        while (sent["i"] + 320) / SAMPLE_RATE <= now - base:
            i = sent["i"]
            pub_p.publish(numpy_to_audio_chunk(tone, SAMPLE_RATE, i,
                                               stamp=sec_to_stamp(base + i / SAMPLE_RATE)))
            sent["i"] += 320

    try:
        assert spin_until(ex, lambda: pub_p.get_subscription_count() > 0
                          and pub_a.get_subscription_count() > 0, 10.0)
        base = probe.get_clock().now().nanoseconds / NS
        probe.create_timer(0.01, send)
        assert spin_until(ex, lambda: len(frames.msgs) >= 10, 20.0), node.diagnostics_values()
        far = 2 ** 40
        now = sec_to_stamp(probe.get_clock().now().nanoseconds / NS)
        pub_a.publish(numpy_to_audio_chunk(tone, SAMPLE_RATE, far, stamp=now))
        pub_p.publish(numpy_to_audio_chunk(tone, SAMPLE_RATE, far, stamp=now))
        assert spin_until(ex, lambda: node.counters["index_jumps"] >= 1, 10.0)
        # the normal stream goes on (from its own index): a new conversation, then 25 Hz again
        assert spin_until(ex, lambda: node.counters["conversation_restarts"] >= 2, 10.0)
        n0 = len(frames.msgs)
        assert spin_until(ex, lambda: len(frames.msgs) >= n0 + 110, 20.0), node.diagnostics_values()
        arrivals = np.array([t for t, _ in frames.items[n0 + 10:n0 + 110]])
        rate = 99 / (arrivals[-1] - arrivals[0])
        values = node.diagnostics_values()
    finally:
        ex.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()
    assert 22.5 <= rate <= 27.5 * 1.05, f"output rate {rate:.1f} Hz"
    assert values["model_errors"] == 0 and values.get("publish_errors", 0) == 0
    assert node.engine.buffered_samples <= node.config.max_backlog_samples
    stamps = [stamp_to_ns(m.header.stamp) for m in frames.msgs[n0:n0 + 100]]
    assert np.all(np.diff(stamps) == 40_000_000)
