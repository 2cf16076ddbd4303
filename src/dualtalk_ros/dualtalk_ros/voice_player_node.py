"""``voice_player``: plays the agent's speech (``agent/audio``) on a loudspeaker, on time.

Why a node of the graph: the face is computed for the sample index each ``agent/audio`` chunk
announces (the conversation clock: index ``i`` plays at ``origin + i / 16000`` on the ROS clock,
origin = first chunk's stamp - index / rate, as ``dualtalk_node`` does). If the sound goes out
whenever a chunk happens to arrive, voice and face drift apart by the transport's jitter; here
the loudspeaker stream is written position by position, each position with the sample announced
for it (:mod:`dualtalk_ros.voice_buffer`): silence for gaps, late samples dropped and counted
(``late_samples``), never played late.

Output goes through PortAudio (``sounddevice.OutputStream``, blocking writes from a thread of
its own), keeping ``latency_s`` of sound queued in the device, so a sample is written that long
before its playback time. What was played is reported on ``agent/audio_played``
(:data:`topics.AGENT_AUDIO_PLAYED`): one ``AudioChunk`` (int16) per write with the samples
written, silence included, ``first_sample_index`` on the conversation clock and ``header.stamp``
the ROS time its first sample plays; a recorder of that topic has the voice as heard.

Barge-in: an ``std_msgs/Empty`` on ``agent/speech_stop`` (:data:`topics.AGENT_SPEECH_STOP`)
drops the queued speech and any chunk announced before the stop that is still on its way; what
is already in the device (``latency_s``) still plays. Bad input (a chunk at another sample
rate, a stamp that disagrees with the clock by more than ``clock_tolerance_s``: the clock
restarted or jumped) is counted on ``/diagnostics`` and logged once per kind.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import AudioChunk
from rclpy.node import Node
from std_msgs.msg import Empty

from dualtalk_core.layout import SAMPLE_RATE

from . import topics
from .conversions import INT16_SCALE, MessageError, int16_to_audio_chunk, ns_to_stamp, stamp_to_ns
from .params import Param, declare_params
from .qos import reliable_qos, sensor_qos
from .runtime import Counters, StartupError, diagnostic_array, run_node
from .voice_buffer import VoiceBuffer

NS = 1_000_000_000

PARAMS = (
    Param("output_device", "", "sound device (index or part of the name); empty = default"),
    Param("latency_s", 0.08, "sound kept queued in the device: each sample is written this "
          "long before it plays", low=0.0, high=2.0),
    Param("block_s", 0.01, "write period (s)", low=0.002, high=0.1),
    Param("resync_after_s", 0.2, "writer this far behind the clock skips ahead (resyncs)",
          low=0.02, high=10.0),
    Param("clock_tolerance_s", 0.05, "a chunk stamp further than this from origin + index/rate "
          "means a new clock: counted (clock_jumps), queue dropped, clock followed",
          low=0.001, high=60.0),
    Param("max_queue_s", 120.0, "most speech queued ahead (s); more is refused and counted",
          low=1.0, high=3600.0),
    Param("frame_id", "agent_speaker", "header.frame_id of agent/audio_played"),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics counters", low=0.0, high=60.0),
)


def chunk_to_int16(msg: AudioChunk) -> np.ndarray:
    """Mono int16 samples of an ``AudioChunk`` (int16 bit-exact; channels averaged)."""
    channels = int(msg.channels)
    if channels < 1:
        raise MessageError(f"AudioChunk.channels: expected >= 1, got {channels}")
    if msg.encoding == "int16":
        data = np.asarray(msg.data_int16, dtype=np.int16)
    elif msg.encoding == "float32":
        f = np.asarray(msg.data_float32, dtype=np.float32)
        data = np.round(np.clip(np.nan_to_num(f), -1.0, 1.0) * INT16_SCALE).astype(np.int16)
    else:
        raise MessageError(f"AudioChunk.encoding: expected int16 or float32, got {msg.encoding!r}")
    if data.size % channels:
        raise MessageError(f"AudioChunk: {data.size} samples is not a multiple of "
                           f"channels={channels}")
    if channels == 1:
        return data
    return np.round(data.reshape(-1, channels).astype(np.float32).mean(axis=1)).astype(np.int16)


class VoicePlayerNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None,
                 name: str = "voice_player", cli_args=None) -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides,
                         cli_args=cli_args)
        p = self.params = declare_params(self, PARAMS)
        self.rate = SAMPLE_RATE
        self.block = max(1, int(round(p["block_s"] * self.rate)))
        self.counters = Counters("chunks", "invalid_chunks", "clock_jumps", "stops", "resyncs",
                                 "device_underflows", "written_samples")
        self.buffer = VoiceBuffer(int(p["max_queue_s"] * self.rate))
        self.origin_ns: int | None = None
        self.pos: int | None = None            # next index to write to the device
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        self.stream = self._open_device(p["output_device"])
        self.played_pub = self.create_publisher(AudioChunk, topics.AGENT_AUDIO_PLAYED,
                                                reliable_qos(100))
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS,
                                              reliable_qos(10))
        self.create_subscription(AudioChunk, topics.AGENT_AUDIO, self.on_audio, sensor_qos(200))
        self.create_subscription(Empty, topics.AGENT_SPEECH_STOP, self.on_stop, reliable_qos(10))
        if p["diagnostics_period_s"] > 0:
            self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics)
        self._running = True
        self.thread = threading.Thread(target=self._run, name="voice_writer", daemon=True)
        self.thread.start()
        self.get_logger().info(f"voice_player: {self.stream.device!r} at {self.rate} Hz, "
                               f"latency {p['latency_s']} s")

    def _open_device(self, device: str):
        import sounddevice as sd

        dev = None if not device else int(device) if device.lstrip("-").isdigit() else device
        try:
            stream = sd.OutputStream(device=dev, samplerate=self.rate, channels=1, dtype="int16",
                                     blocksize=self.block)
            stream.start()
        except Exception as exc:
            raise StartupError(f"voice_player: output_device {device!r}: {exc}; available "
                               f"devices:\n{sd.query_devices()}") from exc
        return stream

    def _log_once(self, kind: str, text: str) -> None:
        self.counters.inc(kind)
        if kind not in self._logged:
            self._logged.add(kind)
            self.get_logger().warning(f"{text} (logged once; counted in {kind})")

    def on_audio(self, msg: AudioChunk) -> None:
        self.counters.inc("chunks")
        if int(msg.sample_rate) != self.rate:
            return self._log_once("invalid_chunks", f"agent/audio at {msg.sample_rate} Hz, "
                                  f"expected {self.rate}: chunk dropped")
        try:
            samples = chunk_to_int16(msg)
        except MessageError as exc:
            return self._log_once("invalid_chunks", f"agent/audio chunk dropped: {exc}")
        first, stamp = int(msg.first_sample_index), stamp_to_ns(msg.header.stamp)
        origin = stamp - first * NS // self.rate
        with self._lock:
            if self.origin_ns is None:
                self.origin_ns = origin
            elif abs(origin - self.origin_ns) > self.params["clock_tolerance_s"] * NS:
                self._log_once("clock_jumps", f"agent/audio index {first} stamped "
                               f"{(origin - self.origin_ns) / NS:+.3f} s off the conversation "
                               "clock: following the new clock, queued speech dropped")
                self.buffer.reset()
                self.origin_ns, self.pos = origin, None
            self.buffer.add(first, samples, self.pos if self.pos is not None else 0)

    def on_stop(self, _msg: Empty) -> None:
        with self._lock:
            dropped = self.buffer.stop()
        self.counters.inc("stops")
        self.get_logger().info(f"speech stop: {dropped / self.rate:.2f} s of queued speech dropped")

    def index_at(self, t_ns: int) -> int:
        return (t_ns - self.origin_ns) * self.rate // NS

    def _next_block(self) -> tuple[int, np.ndarray] | None:
        """(first index, samples) to write now, or None (no clock yet / nothing due)."""
        now = self.get_clock().now().nanoseconds
        with self._lock:
            if self.origin_ns is None:
                return None
            target = self.index_at(now + int(self.params["latency_s"] * NS)) + self.block
            if target <= 0:
                return None
            if self.pos is None:
                self.pos = max(0, target - self.block)
            elif target - self.pos > self.params["resync_after_s"] * self.rate:
                self.counters.inc("resyncs")
                self.pos = target - self.block
                self.buffer.discard_before(self.pos)
            if target <= self.pos:
                return None
            first, data = self.pos, self.buffer.read(self.pos, target - self.pos)
            self.pos = target
            return first, data

    def _run(self) -> None:
        period = self.params["block_s"]
        while self._running:
            time.sleep(period)
            got = self._next_block()
            if got is None or not self._running:
                continue
            first, data = got
            try:
                if self.stream.write(data):
                    self.counters.inc("device_underflows")
            except Exception as exc:   # a device gone away: keep the node and its counters
                self._log_once("device_errors", f"writing to the sound device failed: {exc}")
                continue
            self.counters.inc("written_samples", data.size)
            self.played_pub.publish(int16_to_audio_chunk(
                data, self.rate, first, stamp=ns_to_stamp(self.origin_ns + first * NS // self.rate),
                frame_id=self.params["frame_id"]))

    def diagnostics_values(self) -> dict:
        values = self.counters.as_dict()
        with self._lock:
            values.update(late_samples=self.buffer.late_samples,
                          stopped_samples=self.buffer.stopped_samples,
                          overflow_samples=self.buffer.overflow_samples,
                          queued_samples=self.buffer.queued)
        return values

    def publish_diagnostics(self) -> None:
        self.diag_pub.publish(diagnostic_array(self, "counters", self.diagnostics_values()))

    def close(self) -> None:
        """Stop the writer and the device (before ``destroy_node``)."""
        self._running = False
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=2.0)
        if self.stream is not None:
            self.stream.abort()
            self.stream.close()
            self.stream = None


def main(args=None) -> int:
    return run_node(VoicePlayerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
