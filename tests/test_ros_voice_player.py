"""The agent's voice played by the graph (issue 17, deliverables 2 and 3: barge-in).

``voice_player`` runs as its installed executable with HOME holding an ``.asoundrc`` whose
default playback PCM is ALSA's ``file`` plugin, so PortAudio really writes the samples and the
file holds them, in the order played. The speech is index coded (each sample's value is its
index on the conversation clock), so every sample in the file says which index it is: all played
samples must sit at one constant offset (file position - index), i.e. each at its announced
position, with silence for a gap, without the chunks that came after their playback time
(counted ``late_samples``), and silent after a barge-in stop. ``agent/audio_played`` says when
each written block plays; it is written ahead of that time (the device latency).
"""
from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import AudioChunk
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Empty

from dualtalk_ros import topics
from dualtalk_ros.conversions import int16_to_audio_chunk, ns_to_stamp, stamp_to_ns
from dualtalk_ros.qos import reliable_qos, sensor_qos
from ros_helpers import (Collector, entry_point, latest_diagnostics, ros_env, spin_for,
                         spin_until, write_alsa_file_playback)

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback

SR, CHUNK, NS = 16000, 320, 1_000_000_000
AHEAD_S, LATE_S = 0.3, 0.15
SEG_A, GAP, SEG_B_LATE, SEG_C = (320, 8000), (8000, 11200), (11200, 12800), (12800, 16000)
SEG_D, STOP_AT = (24000, 40000), 28000        # queued speech, stopped at index 28000
END = 44000


def _coded(first: int, n: int) -> np.ndarray:
    return (np.arange(first, first + n) % 65536).astype(np.uint16).view(np.int16)


def _decode(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int16).view(np.uint16).astype(np.int64)


def _schedule(origin_ns: int) -> list[tuple[int, int]]:
    """(publish time ns, first index) of every chunk: A and C early, B late, D all at once."""
    play = lambda i: origin_ns + i * NS // SR    # noqa: E731
    events = [(play(i) - int(AHEAD_S * NS), i) for lo, hi in (SEG_A, SEG_C)
              for i in range(lo, hi, CHUNK)]
    events += [(play(i) + int(LATE_S * NS), i) for i in range(*SEG_B_LATE, CHUNK)]
    events += [(play(SEG_D[0]) - NS // 2, i) for i in range(*SEG_D, CHUNK)]
    return sorted(events)


class _WallCollector:
    """Messages with the wall-clock (ROS clock) ns at which each arrived."""

    def __init__(self, node, msg_type, topic):
        self.items: list[tuple[int, object]] = []
        self.sub = node.create_subscription(msg_type, topic, self._cb, reliable_qos(1000))

    def _cb(self, msg):
        self.items.append((time.time_ns(), msg))

    @property
    def msgs(self) -> list:
        return [m for _, m in self.items]


def _last_values(diag: Collector) -> dict[str, int]:
    return {k: int(float(v)) for k, v in latest_diagnostics(diag, "voice_player").items()}


def test_voice_plays_each_sample_at_its_index_and_stops_on_barge_in(tmp_path, ros_context):
    out = tmp_path / "played.raw"
    home = tmp_path / "home"
    write_alsa_file_playback(home, out)
    probe = Node("voice_probe", context=ros_context)
    pub = probe.create_publisher(AudioChunk, topics.AGENT_AUDIO, sensor_qos(200))
    stop = probe.create_publisher(Empty, topics.AGENT_SPEECH_STOP, reliable_qos(10))
    played = _WallCollector(probe, AudioChunk, topics.AGENT_AUDIO_PLAYED)
    diag = Collector(probe, DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(probe)
    proc = subprocess.Popen([entry_point("voice_player"), "--ros-args", "-p", "latency_s:=0.08",
                             "-p", "diagnostics_period_s:=0.2"], env=ros_env(HOME=str(home)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0
                          and stop.get_subscription_count() > 0, 30.0), "voice_player not up"
        origin = time.time_ns() + NS
        stop_ns = origin + STOP_AT * NS // SR
        for t_pub, first in _schedule(origin):
            spin_for(ex, max(0.0, (t_pub - time.time_ns()) / NS))
            if first >= SEG_D[0] and time.time_ns() >= stop_ns:
                break
            pub.publish(int16_to_audio_chunk(_coded(first, CHUNK), SR, first,
                                             stamp=ns_to_stamp(origin + first * NS // SR)))
        spin_for(ex, max(0.0, (stop_ns - time.time_ns()) / NS))
        stop.publish(Empty())
        assert spin_until(ex, lambda: any(m.first_sample_index >= END for m in played.msgs),
                          10.0)
        assert spin_until(ex, lambda: _last_values(diag).get("stops") == 1, 5.0)
        values = _last_values(diag)
    finally:
        proc.terminate()
        log, _ = proc.communicate(timeout=20)
        ex.shutdown()
        probe.destroy_node()
    assert proc.returncode == 0, log
    reports = played.msgs
    data = np.fromfile(out, dtype="<i2")
    reported = np.concatenate([np.asarray(m.data_int16, np.int16) for m in reports])
    # the device got exactly what the reports say, in order (PortAudio may add lead-in silence)
    lead = data.size - reported.size
    assert lead >= 0 and np.array_equal(data[lead:lead + reported.size], reported), log
    # every report: contiguous indices, stamped with its playback time, written before it
    firsts = np.array([m.first_sample_index for m in reports])
    sizes = np.array([len(m.data_int16) for m in reports])
    assert np.array_equal(firsts[1:], firsts[:-1] + sizes[:-1])
    for m in reports:
        assert abs(stamp_to_ns(m.header.stamp) - (origin + m.first_sample_index * NS // SR)) \
            < 1_000_000
    # each block is written (and reported) ahead of its playback time, by about the latency
    ahead_s = np.array([(stamp_to_ns(m.header.stamp) - t) / NS for t, m in played.items])
    assert np.percentile(ahead_s, 5) > 0.0 and 0.03 < np.median(ahead_s) < 0.15, ahead_s
    # file position of index i: lead + (i - firsts[0]); every nonzero sample sits there
    nz = np.flatnonzero(data)
    idx = _decode(data[nz])
    assert np.array_equal(nz - lead + firsts[0], idx), "a sample played off its position"
    got = set(idx.tolist())
    on_time = set(range(SEG_A[0], SEG_A[1])) | set(range(SEG_C[0], SEG_C[1]))
    assert on_time - {0} <= got, f"{len(on_time - got)} on-time samples not played"
    assert not got & set(range(*GAP)), "the gap was not silent"
    assert not got & set(range(*SEG_B_LATE)), "late samples were played late"
    assert values["late_samples"] == SEG_B_LATE[1] - SEG_B_LATE[0]
    # barge-in: speech before the stop played; after it (plus what sat in the device) silence
    allowance = int((0.08 + 0.01 + 0.1) * SR)
    assert set(range(SEG_D[0], STOP_AT - int(0.05 * SR))) <= got
    assert max(i for i in got if i >= SEG_D[0]) < STOP_AT + allowance
    assert values["stopped_samples"] > 0
