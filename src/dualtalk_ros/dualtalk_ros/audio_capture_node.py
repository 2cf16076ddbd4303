"""``audio_capture``: microphone(s) -> ``AudioChunk`` on ``partner/audio`` (and ``agent/audio``).

Captures with PortAudio through ``sounddevice``. One device stream is opened; its channels are
mapped to speakers (``partner_channel``, ``agent_channel``; -1 = not mapped), e.g. channel 0 is
the partner's microphone and channel 1 a loopback of the robot's own speaker. Each chunk is
stamped with the capture time of its first sample (PortAudio's ADC time mapped onto the ROS
clock, or "now - chunk duration" when the host API gives none) and carries a running
``first_sample_index`` (the conversation clock).

Chunks are published from the audio callback itself: the publish is short, and on a device that
delivers faster than real time (an ALSA file device in tests) it paces capture instead of
queueing without bound. PortAudio overflows (samples lost in the driver) are counted and logged.
A missing device or an unsupported rate stops start-up with the list of available devices.
Topic names are :mod:`dualtalk_ros.topics`'; rename them by remapping
(``--ros-args -r partner/audio:=/robot/mic``).
"""
from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import AudioChunk
from rclpy.node import Node

from dualtalk_core.layout import SAMPLE_RATE

from .conversions import int16_to_audio_chunk, ns_to_stamp, numpy_to_audio_chunk
from . import topics
from .params import Param, declare_params, refuse_removed_params
from .qos import reliable_qos, sensor_qos
from .runtime import Counters, StartupError, diagnostic_array, run_node

PARAMS = (
    Param("device", "", "PortAudio input device: index or (part of) its name; empty = default"),
    Param("sample_rate", SAMPLE_RATE, "capture rate (Hz); 16000 avoids resampling downstream",
          low=8000, high=192000),
    Param("channels", 1, "channels to open on the device", low=1, high=64),
    Param("blocksize_s", 0.02, "chunk duration (s), 20-32 ms is typical", low=0.005, high=0.2),
    Param("partner_channel", 0, "device channel of the partner microphone (-1 = none)",
          low=-1, high=63),
    Param("agent_channel", -1, "device channel of the agent's own voice (-1 = none)",
          low=-1, high=63),
    Param("partner_frame_id", "partner_mic", "frame_id of partner chunks"),
    Param("agent_frame_id", "agent_loopback", "frame_id of agent chunks"),
    Param("encoding", "int16", "AudioChunk encoding (int16 is bit-exact with 16-bit devices)",
          choices=("int16", "float32")),
    Param("start_when_subscribed", False, "hold capture until partner/audio has a subscriber "
          "(a recorder then gets sample 0)"),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics counters", low=0.0, high=60.0),
)

REMOVED_PARAMS = {"partner_topic": topics.PARTNER_AUDIO, "agent_topic": topics.AGENT_AUDIO}


def _device_list() -> str:
    import sounddevice as sd
    try:
        text = str(sd.query_devices()).strip()
    except Exception as exc:  # PortAudio not initialised / no host API
        return f"(cannot list devices: {exc})"
    return text or "(none: PortAudio sees no audio device; check ALSA, e.g. `arecord -l`)"


class AudioCaptureNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None,
                 name: str = "audio_capture", cli_args=None) -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides,
                         cli_args=cli_args)   # e.g. ["--ros-args", "-r", "a:=b"]
        import sounddevice as sd

        refuse_removed_params(self, REMOVED_PARAMS)
        p = self.params = declare_params(self, PARAMS)
        ch = p["channels"]
        self.mapping = [(c, topic, fid) for c, topic, fid in (
            (p["partner_channel"], topics.PARTNER_AUDIO, p["partner_frame_id"]),
            (p["agent_channel"], topics.AGENT_AUDIO, p["agent_frame_id"])) if c >= 0]
        if not self.mapping:
            raise StartupError("audio_capture: partner_channel and agent_channel are both -1")
        for c, topic, _ in self.mapping:
            if c >= ch:
                raise StartupError(f"audio_capture: channel {c} for {topic} but only {ch} "
                                   f"channel(s) opened (parameter channels)")
        device = p["device"]
        self.device = int(device) if device.strip().lstrip("-").isdigit() else (device or None)
        self.sr = int(p["sample_rate"])
        self.blocksize = max(1, int(round(p["blocksize_s"] * self.sr)))
        self.dtype = "int16" if p["encoding"] == "int16" else "float32"
        try:
            info = sd.query_devices(self.device, "input")
            sd.check_input_settings(device=self.device, channels=ch, dtype=self.dtype,
                                    samplerate=self.sr)
        except Exception as exc:
            raise StartupError(
                f"audio_capture: cannot capture from device {device or '(default)'!r} at "
                f"{self.sr} Hz, {ch} channel(s): {exc}\navailable devices:\n{_device_list()}"
            ) from exc
        self.device_name = info["name"]
        self.counters = Counters("chunks", "overflows", "callback_errors")
        qos = sensor_qos()
        self.pubs = [(c, self.create_publisher(AudioChunk, topic, qos), fid)
                     for c, topic, fid in self.mapping]
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS,
                                              reliable_qos(10))
        if p["diagnostics_period_s"] > 0:
            self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics)
        self.next_index = 0
        self._lock = threading.Lock()
        self.stream = sd.InputStream(device=self.device, samplerate=self.sr, channels=ch,
                                     dtype=self.dtype, blocksize=self.blocksize,
                                     callback=self._callback)
        self.started = False
        if p["start_when_subscribed"]:
            self._wait_timer = self.create_timer(0.05, self._start_if_subscribed)
        else:
            self.start()

    def start(self) -> None:
        if not self.started:
            self.stream.start()
            self.started = True
            self.get_logger().info(
                f"capturing {self.device_name!r} at {self.sr} Hz, {self.params['channels']} ch, "
                f"{self.blocksize} samples/chunk -> {[t for _, t, _ in self.mapping]}")

    def _start_if_subscribed(self) -> None:
        if self.pubs[0][1].get_subscription_count() > 0:
            self._wait_timer.cancel()
            self.start()

    def _first_sample_stamp_ns(self, frames: int, time_info) -> int:
        now = self.get_clock().now().nanoseconds
        try:
            age = float(time_info.currentTime) - float(time_info.inputBufferAdcTime)
        except Exception:
            age = -1.0
        if not (0.0 <= age < 1.0) or time_info.inputBufferAdcTime == 0:
            age = frames / self.sr  # host API gives no ADC time: the block ends "now"
        return now - int(age * 1e9)

    def _callback(self, indata, frames, time_info, status) -> None:
        try:
            if status.input_overflow:
                self.counters.inc("overflows")
                self.get_logger().warning("input overflow: samples lost in the driver",
                                          throttle_duration_sec=2.0)
            stamp = ns_to_stamp(self._first_sample_stamp_ns(frames, time_info))
            with self._lock:
                first = self.next_index
                self.next_index += frames
            for c, pub, fid in self.pubs:
                col = indata[:, c]
                if self.dtype == "int16":
                    msg = int16_to_audio_chunk(col, self.sr, first, stamp=stamp, frame_id=fid)
                else:
                    msg = numpy_to_audio_chunk(col, self.sr, first, stamp=stamp, frame_id=fid)
                pub.publish(msg)
            self.counters.inc("chunks")
        except Exception as exc:  # never let an exception kill the PortAudio stream
            self.counters.inc("callback_errors")
            self.get_logger().error(f"capture callback: {exc}", throttle_duration_sec=2.0)

    def publish_diagnostics(self) -> None:
        values = dict(self.counters.as_dict(), next_sample_index=self.next_index,
                      device=self.device_name)
        self.diag_pub.publish(diagnostic_array(self, "capture", values))

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            finally:
                self.stream = None


def main(args=None) -> int:
    return run_node(AudioCaptureNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
