"""``audio_file_player``: plays wav files as ``AudioChunk`` in real time (e.g. the robot's TTS).

Why: on a robot without a live TTS bridge, or in a demo, a recorded utterance stands in for
the agent's (or partner's) voice. Chunks (20 ms by default) go out on ``audio`` at their
playback time on the *conversation clock*: sample index ``i`` plays at
``origin + i / sample_rate``; the header stamp is the playback time of the chunk's first sample.
``origin_stamp_s`` lets two players (partner and agent) share one clock; 0 means "node start +
start_delay_s". ``lead_time_s`` publishes that much ahead of playback (the streaming engine's
TTS lookahead contract: agent audio may arrive early, stamped with when it *will* play).
Optionally the same audio is played on a sound device (``output_device``).

The output topic is ``audio`` (:data:`dualtalk_ros.topics.PLAYER_AUDIO`), relative on purpose:
one executable serves both voices, so each instance is pointed at its stream by remapping
(``--ros-args -r audio:=partner/audio``; the launch file and the bring-up do this for
``partner_player`` and ``agent_player``), or by a namespace (``-r __ns:=/agent``).
"""
from __future__ import annotations

import threading

import numpy as np
from dualtalk_msgs.msg import AudioChunk
from rclpy.node import Node
from rclpy.parameter import Parameter

from dualtalk_core.layout import SAMPLE_RATE

from .conversions import ns_to_stamp, numpy_to_audio_chunk
from . import topics
from .params import Param, declare_params, refuse_removed_params
from .qos import sensor_qos
from .runtime import Counters, StartupError, run_node

PARAMS = (
    Param("wav_files", [], "wav files played one after the other (resampled to sample_rate)",
          type=Parameter.Type.STRING_ARRAY),
    Param("loop", False, "start again from the first file after the last one"),
    Param("frame_id", "agent_tts", "header.frame_id of the chunks"),
    Param("sample_rate", SAMPLE_RATE, "published sample rate (Hz)", low=8000, high=192000),
    Param("chunk_s", 0.02, "chunk duration (s)", low=0.005, high=0.2),
    Param("encoding", "float32", "AudioChunk encoding", choices=("float32", "int16")),
    Param("lead_time_s", 0.0, "publish this long before the chunk's playback time", low=0.0,
          high=30.0),
    Param("origin_stamp_s", 0.0, "ROS time (s) at which sample 0 plays; 0 = node start + "
          "start_delay_s (give both players the same value to share the clock)", low=0.0),
    Param("start_delay_s", 0.5, "delay from node start to sample 0 when origin_stamp_s is 0",
          low=0.0, high=60.0),
    Param("silence_after_s", 0.0, "after the last file (no loop), keep publishing silence this "
          "long so consumers see the end of speech", low=0.0, high=3600.0),
    Param("output_device", "", "also play on this sound device (name or index); empty = no"),
)


REMOVED_PARAMS = {"topic": topics.PLAYER_AUDIO}


def read_wav(path: str, sample_rate: int) -> np.ndarray:
    """A wav as float32 mono at ``sample_rate`` (dualtalk_core's reader; soxr resampling)."""
    from dualtalk_core.media.audio_io import load_wav

    return load_wav(path, target_sr=sample_rate)


class AudioFilePlayerNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None,
                 name: str = "audio_file_player", cli_args=None) -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides,
                         cli_args=cli_args)   # e.g. ["--ros-args", "-r", "a:=b"]
        refuse_removed_params(self, REMOVED_PARAMS)
        p = self.params = declare_params(self, PARAMS)
        if not p["wav_files"]:
            raise StartupError(f"{name}: parameter wav_files is empty; give at least one wav file")
        try:
            clips = [read_wav(f, p["sample_rate"]) for f in p["wav_files"]]
        except (FileNotFoundError, ValueError) as exc:
            raise StartupError(f"{name}: {exc}") from exc
        self.audio = np.concatenate(clips).astype(np.float32)
        if self.audio.size == 0:
            raise StartupError(f"{name}: wav_files hold no samples")
        self.sr = int(p["sample_rate"])
        self.chunk = max(1, int(round(p["chunk_s"] * self.sr)))
        self.silence_samples = int(round(p["silence_after_s"] * self.sr))
        now_ns = self.get_clock().now().nanoseconds
        origin_s = p["origin_stamp_s"]
        self.origin_ns = int(origin_s * 1e9) if origin_s > 0 else now_ns + int(p["start_delay_s"] * 1e9)
        self.lead_ns = int(p["lead_time_s"] * 1e9)
        self.next_index = 0
        self.finished = False
        self.counters = Counters("chunks", "device_underflows")
        self.pub = self.create_publisher(AudioChunk, topics.PLAYER_AUDIO, sensor_qos())
        self.timer = self.create_timer(min(0.01, p["chunk_s"] / 2), self.tick)
        self.stream = None
        self._device_pos = 0
        self._lock = threading.Lock()
        if p["output_device"]:
            self._open_device(p["output_device"])
        self.get_logger().info(
            f"playing {len(clips)} file(s), {self.audio.size / self.sr:.2f} s on "
            f"{self.pub.topic_name} "
            f"(lead {p['lead_time_s']} s, loop={p['loop']})")

    def _open_device(self, device: str) -> None:
        import sounddevice as sd

        dev = int(device) if device.lstrip("-").isdigit() else device
        try:
            self.stream = sd.OutputStream(device=dev, samplerate=self.sr, channels=1,
                                          dtype="float32", callback=self._device_callback)
        except Exception as exc:
            raise StartupError(f"output_device {device!r}: {exc}; available devices:\n"
                               f"{sd.query_devices()}") from exc
        self._device_started = False

    def _device_callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.counters.inc("device_underflows")
        with self._lock:
            pos = self._device_pos
            self._device_pos += frames
        out = self.samples(pos, frames)
        outdata[:, 0] = out

    def samples(self, start: int, count: int) -> np.ndarray:
        """``count`` samples from stream index ``start`` (looping or padding with silence)."""
        n = self.audio.size
        if self.params["loop"]:
            idx = (np.arange(start, start + count) % n)
            return self.audio[idx]
        out = np.zeros(count, dtype=np.float32)
        if start < n:
            part = self.audio[start:start + count]
            out[:part.size] = part
        return out

    def tick(self) -> None:
        """Publish every chunk whose (playback time - lead) has come."""
        if self.finished:
            return
        now = self.get_clock().now().nanoseconds
        if self.stream is not None and not self._device_started and now >= self.origin_ns:
            self.stream.start()
            self._device_started = True
        end = self.audio.size + self.silence_samples
        while True:
            play_ns = self.origin_ns + self.next_index * 1_000_000_000 // self.sr
            if play_ns - self.lead_ns > now:
                return
            if not self.params["loop"] and self.next_index >= end:
                self.finished = True
                self.get_logger().info("finished playing")
                return
            count = self.chunk if self.params["loop"] else min(self.chunk, end - self.next_index)
            msg = numpy_to_audio_chunk(self.samples(self.next_index, count), self.sr,
                                       self.next_index, stamp=ns_to_stamp(play_ns),
                                       frame_id=self.params["frame_id"],
                                       encoding=self.params["encoding"])
            self.pub.publish(msg)
            self.counters.inc("chunks")
            self.next_index += count

    def close(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
            self.stream = None


def main(args=None) -> int:
    return run_node(AudioFilePlayerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
