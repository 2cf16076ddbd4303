"""audio_capture captures real samples through PortAudio from an ALSA file device.

The capture node runs as its installed executable in a subprocess whose HOME holds an
``.asoundrc`` (PortAudio reads the ALSA configuration when it initialises, so HOME must be set
before that). The raw input file codes each sample's index into its value, so every received
chunk proves that its ``first_sample_index`` is right and that channels are mapped correctly.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from dualtalk_msgs.msg import AudioChunk
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from dualtalk_ros import topics
from dualtalk_ros.conversions import audio_chunk_to_numpy
from dualtalk_ros.qos import sensor_qos
from ros_helpers import (Collector, entry_point, index_coded_stereo, ros_env, spin_until,
                         write_alsa_file_device)

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback

N_SAMPLES = 16000  # 1 s of stereo audio in the file
BLOCK = 320        # 20 ms


def _run_capture(tmp_path, ros_context, extra_args=()):
    raw = tmp_path / "in.raw"
    index_coded_stereo(N_SAMPLES).tofile(raw)
    home = tmp_path / "home"
    write_alsa_file_device(home, raw)
    node = Node("capture_probe", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    partner = Collector(node, AudioChunk, topics.PARTNER_AUDIO, sensor_qos(depth=2000))
    agent = Collector(node, AudioChunk, topics.AGENT_AUDIO, sensor_qos(depth=2000))
    cmd = [entry_point("audio_capture"), "--ros-args", "-p", "channels:=2",
           "-p", "partner_channel:=0", "-p", "agent_channel:=1", "-p", "encoding:=int16",
           "-p", "blocksize_s:=0.02", "-p", "start_when_subscribed:=true", *extra_args]
    proc = subprocess.Popen(cmd, env=ros_env(HOME=str(home)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        spin_until(ex, lambda: sum(1 for m in partner.msgs
                                   if m.first_sample_index >= N_SAMPLES) > 0
                   and len(agent.msgs) > 0, timeout_s=40.0)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        ex.remove_node(node)
        node.destroy_node()
    return partner.msgs, agent.msgs, out


def test_capture_publishes_file_samples_with_correct_indices(tmp_path, ros_context):
    partner, agent, log = _run_capture(tmp_path, ros_context)
    assert partner, f"no partner chunks received; node output:\n{log}"
    ref = index_coded_stereo(N_SAMPLES)
    checked = 0
    for stream, msgs, channel in (("partner", partner, 0), ("agent", agent, 1)):
        last_end = -1
        for m in msgs:
            assert m.sample_rate == 16000 and m.channels == 1 and m.encoding == "int16"
            data = np.asarray(m.data_int16, dtype=np.int16)
            assert data.size == BLOCK, f"{stream}: chunk of {data.size} samples"
            first = m.first_sample_index
            assert first % BLOCK == 0
            assert first >= last_end, f"{stream}: chunk at {first} overlaps previous end {last_end}"
            last_end = first + data.size
            if last_end <= N_SAMPLES:   # beyond the file ALSA repeats stale buffer content
                np.testing.assert_array_equal(data, ref[first:last_end, channel],
                                              err_msg=f"{stream} chunk at {first}")
                checked += 1
    # the subscriber was matched before capture started: the whole file arrives, in order
    partner_firsts = [m.first_sample_index for m in partner if m.first_sample_index < N_SAMPLES]
    assert partner_firsts == list(range(0, N_SAMPLES, BLOCK)), "partner chunks not contiguous"
    assert checked >= N_SAMPLES // BLOCK
    # float conversion keeps int16 full scale
    f = audio_chunk_to_numpy(partner[1])
    np.testing.assert_allclose(f[:, 0], ref[BLOCK:2 * BLOCK, 0] / 32767.0, rtol=1e-6)


def test_capture_unknown_device_is_a_clear_startup_error(tmp_path):
    home = tmp_path / "home"
    write_alsa_file_device(home, tmp_path / "none.raw")
    proc = subprocess.run([entry_point("audio_capture"), "--ros-args", "-p",
                           "device:=no_such_microphone"], env=ros_env(HOME=str(home)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "no_such_microphone" in proc.stderr and "available devices" in proc.stderr
    assert "filedev" in proc.stderr   # the list names the devices that do exist
