"""Lips on time through the whole graph (issue 17, "done when").

The real bring-up (one process per node, DDS on loopback) with a live model: the partner's
voice from a file in real time, the agent's speech from a file published 0.32 s ahead of its
playback (the README's TTS contract), ``head_driver`` releasing frames at their stamps and
``voice_player`` playing the agent's speech through PortAudio into an ALSA ``file`` device
(:mod:`dualtalk_ros.alsa_file`, the one ``bag evaluate`` uses). It must show:

- every agent frame is released (``agent/joint_states`` and ``agent/blendshapes_arkit``) at or
  after its stamp and before the next one is due (receive time - stamp in [0, 40 ms); the
  receive time is the rmw's ``received_timestamp``, so the probe's own scheduling is not in it;
  :data:`HELD_UP` frames may be held up by the loaded development machine). One exception, a
  property of any live graph rather than of the head driver: the conversation
  clock starts with the partner's first sample, so the frames before the partner lookahead
  (``-partner_lookahead_s``: 0.12 s, 3 frames for the ``live`` preset) are computed from the
  first partner chunk, which arrives at their stamps; they are released at once (counted in
  ``late_frames``), never before their stamps, late by at most the first model step;
- the played audio is in the file, every sample at its position: the samples the player reports
  on ``agent/audio_played`` are, in order and contiguous, exactly the announced speech at those
  indices (silence where there is none), and the file holds them at one constant offset;
- voice and face share one clock: sample ``i`` plays (its report's stamp + offset / rate) at
  the stamp of the frame that starts at ``i``.
"""
from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from dualtalk_msgs.msg import AudioChunk, Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.model.checkpoint import save_checkpoint
from dualtalk_core.model.config import get_preset
from dualtalk_core.model.dualtalk import DualTalk
from dualtalk_ros import alsa_file, procs, topics
from dualtalk_ros.conversions import stamp_to_ns
from dualtalk_ros.qos import reliable_qos
from ros_helpers import entry_point, ros_env, spin_for, spin_until

pytestmark = pytest.mark.ros  # starts real node processes over DDS on loopback

SECONDS, SPEECH = 3.0, (0.5, 2.5)       # the agent speaks from 0.5 s to 2.5 s
LEAD_S = 0.32
HELD_UP = 2
"""Frames (of ~75) that may leave 40-100 ms after their stamps: the development machine has 2
cores shared with a training run (load ~5), and the OS can hold any process for tens of ms
there (the README's bench saw 1-3 of 203 frames late on it); on a machine with a core to spare
none do."""
MS, NS = 1_000_000, 1_000_000_000


class _Received:
    """Messages of one topic with the rmw's receive time (system clock ns) of each."""

    def __init__(self, node, msg_type, topic: str):
        self.items: list[tuple[int, object]] = []
        self.sub = node.create_subscription(msg_type, topic, self._cb, reliable_qos(2000))

    def _cb(self, msg, info=None):
        recv = info.get("received_timestamp", 0) if isinstance(info, dict) else getattr(
            info, "received_timestamp", 0)
        self.items.append((int(recv) or time.time_ns(), msg))
        self.last = time.monotonic()

    last = 0.0


def _voices(tmp_path) -> tuple[np.ndarray, np.ndarray]:
    """(partner, agent) float32 wavs written to ``tmp_path``: noise stands in for voices (the
    model's weights are random; what is checked is timing and positions)."""
    rng = np.random.default_rng(11)
    n = int(SECONDS * SAMPLE_RATE)
    partner = (0.1 * rng.standard_normal(n)).astype(np.float32)
    agent = np.zeros(n, np.float32)
    a, b = (int(s * SAMPLE_RATE) for s in SPEECH)
    agent[a:b] = np.clip(0.3 * rng.standard_normal(b - a), -0.99, 0.99)
    sf.write(tmp_path / "partner.wav", partner, SAMPLE_RATE, subtype="FLOAT")
    sf.write(tmp_path / "agent.wav", agent, SAMPLE_RATE, subtype="FLOAT")
    return partner, agent


def _run_graph(tmp_path, checkpoint, raw, ctx) -> dict[str, list]:
    """Bring the graph up, let the conversation play, stop it; what the probe received."""
    conf = alsa_file.write_file_playback(tmp_path / "alsa.conf", raw)
    probe = Node("lips_graph_probe", context=ctx)
    got = {"joints": _Received(probe, JointState, topics.AGENT_JOINT_STATES),
           "arkit": _Received(probe, Blendshapes, topics.AGENT_BLENDSHAPES_ARKIT),
           "frames": _Received(probe, Blendshapes, topics.AGENT_BLENDSHAPES),
           "played": _Received(probe, AudioChunk, topics.AGENT_AUDIO_PLAYED)}
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(probe)
    argv = [entry_point("dualtalk-ros"), "bringup", "conversation", "--checkpoint",
            str(checkpoint), "--use-file-audio", "--partner-wav", str(tmp_path / "partner.wav"),
            "--agent-wav", str(tmp_path / "agent.wav"), "--play-voice"]
    # the players start once every node is up, but best-effort audio sent before DDS has
    # matched them with their subscribers is lost: on a loaded machine that takes a while
    for item in (f"agent_player.lead_time_s={LEAD_S}", "dualtalk_node.torch_threads=1",
                 "dualtalk_node.end_of_stream_s=0.5", "partner_player.start_delay_s=4.0",
                 "agent_player.start_delay_s=4.0"):
        argv += ["--set", item]
    log_path = tmp_path / "graph.log"
    with log_path.open("w") as log_file:
        proc = procs.popen(argv, env=ros_env(**alsa_file.environment(conf)), stdout=log_file,
                           stderr=subprocess.STDOUT, start_new_session=True)
    def settled() -> bool:
        """The conversation is over: frames stopped, every one released, the voice played."""
        n = len(got["frames"].items)
        return (n > 0 and time.monotonic() - got["frames"].last > 1.5
                and len(got["joints"].items) == n == len(got["arkit"].items)
                and any(m.first_sample_index >= SECONDS * SAMPLE_RATE
                        for _, m in got["played"].items))

    try:
        done = spin_until(ex, lambda: proc.poll() is not None or settled(), 120.0)
        spin_for(ex, 1.0)                   # the last reports and frames in flight
    finally:
        procs.stop(proc, 20.0, group=True)
        log = log_path.read_text(errors="replace")
        ex.shutdown()
        probe.destroy_node()
    counts = {k: len(v.items) for k, v in got.items()}
    assert done and proc.returncode in (0, -2, 130), (counts, log[-4000:])
    return {k: v.items for k, v in got.items()} | {"log": log}


def test_whole_graph_releases_every_frame_on_time_with_the_voice_in_the_file(tmp_path,
                                                                             ros_context):
    with torch.random.fork_rng():
        torch.manual_seed(7)
        model = DualTalk(get_preset("live")).eval()
    ck = save_checkpoint(tmp_path / "live.pt", model, preset="live")
    _, agent = _voices(tmp_path)
    raw = tmp_path / "played.raw"
    got = _run_graph(tmp_path, ck, raw, ros_context)
    log = got["log"][-4000:]
    # 1. every frame the node published was released by the head driver, on time
    n_published = len(got["frames"])
    # most of the conversation (best-effort audio sent before DDS matched it may be lost)
    assert n_published >= 0.9 * int(SECONDS * SAMPLE_RATE) // SAMPLES_PER_FRAME, log
    first = min(stamp_to_ns(m.header.stamp) for _, m in got["frames"])
    startup = max(0, -round(get_preset("live").partner_lookahead_s * 25))   # docstring
    for name in ("joints", "arkit"):
        items = got[name]
        assert len(items) == n_published, (name, len(items), n_published)
        lag_ms = np.array([(recv - stamp_to_ns(m.header.stamp)) / MS for recv, m in items])
        k = np.array([round((stamp_to_ns(m.header.stamp) - first) / (40 * MS)) for _, m in items])
        assert lag_ms.min() >= 0.0, f"{name}: released {-lag_ms.min():.1f} ms before its stamp"
        on_time = lag_ms[k >= startup]
        assert on_time.size == n_published - startup
        late = on_time[on_time >= 40.0]
        assert late.size <= HELD_UP and (late < 100.0).all() and np.median(on_time) < 10.0, (
            f"{name}: {late.size} frame(s) released after the next was due, lags up to "
            f"{on_time.max():.1f} ms: {np.round(lag_ms, 1)}")
        assert lag_ms[k < startup].max() < 500.0, np.round(lag_ms[:startup + 2], 1)
    # 2. the voice as played: contiguous reports of exactly the announced samples ...
    reports = [m for _, m in sorted(got["played"], key=lambda r: r[1].first_sample_index)]
    firsts = np.array([m.first_sample_index for m in reports], np.int64)
    sizes = np.array([len(m.data_int16) for m in reports], np.int64)
    assert np.array_equal(firsts[1:], firsts[:-1] + sizes[:-1]), "a gap in what was played"
    reported = np.concatenate([np.asarray(m.data_int16, np.int16) for m in reports])
    announced = np.round(np.clip(agent, -1, 1) * 32767).astype(np.int16)
    idx = np.arange(firsts[0], firsts[0] + reported.size)
    want = np.where(idx < announced.size, announced[np.minimum(idx, announced.size - 1)], 0)
    assert np.array_equal(reported, want), "a played sample is not the one announced for it"
    speech = np.flatnonzero(announced)
    assert firsts[0] <= speech[0] and speech[-1] < idx[-1], "not all of the speech was played"
    # ... sit in the file at one constant offset (PortAudio may write lead-in silence first)
    data = np.fromfile(raw, dtype="<i2")
    offset = int(np.flatnonzero(data)[0]) - int(speech[0] - firsts[0])
    assert offset >= 0 and data.size >= offset + reported.size
    assert np.array_equal(data[offset:offset + reported.size], reported), \
        "the file does not hold the played samples at their positions"
    # 3. one clock: sample i plays at the stamp of the frame that starts at i
    origins = np.array([stamp_to_ns(m.header.stamp) - f * NS // SAMPLE_RATE
                        for m, f in zip(reports, firsts)])
    assert np.ptp(origins) < MS, "the player's reports disagree on when sample 0 plays"
    # (frame k is stamped origin + k * 40 ms; the first frames may be missing when the first
    # partner chunks were lost, so compare modulo one frame)
    off = (first - int(origins[0])) % (40 * MS)
    assert min(off, 40 * MS - off) < MS, "voice and face are not on one clock"
