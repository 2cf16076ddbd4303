"""``dualtalk_node``: the streaming DualTalk session as a ROS node (plumbing only).

Subscribes ``partner/audio`` and ``agent/audio`` (``AudioChunk``) and ``partner/face``
(``Blendshapes``, flame56 or any rig ``partner_face_map_file`` maps to it); publishes the agent's
face at 25 fps on ``agent/blendshapes`` (flame56, with names), one ``agent/blendshape_sequence``
per computed hop (with ``partner_input_end``: how far the partner audio it was computed from
reaches, for the listening reaction latency), ``conversation_state`` per frame and
counters/timings on ``/diagnostics``
(names from :mod:`.topics`; rename them by remapping, e.g. ``-r agent/blendshapes:=face``).

Everything that is not ROS - clock origin, conversation end and restart, hops, release times,
latency, counters, non-finite frames - is :class:`dualtalk_core.streaming.session.
StreamingSession` (its docstring has the rules).  Parameters come from two dataclasses
(:mod:`.dualtalk_settings`): read-only unless marked dynamic (``frame_id``,
``diagnostics_period_s``, ``end_of_stream_s``, ``restart_after_rewind_s``), which apply at once.

The model is loaded once at start (a missing or invalid checkpoint is a start-up error); the
session steps in a worker thread so subscriptions never block behind inference, and a pacer
thread releases frames at their due time when ``playout_delay_s`` > 0.  Every bad message is
logged (throttled), counted and dropped; the node never dies on input.

Barge-in: an ``std_msgs/Empty`` on ``agent/speech_stop`` turns the agent speech queued after the
current playback time into silence and refuses chunks of the interrupted speech still on their
way (``agent_stopped_chunks``), so the mouth closes once the audio already fed to the model
(its lookahead) has passed (:mod:`.speech_stop`). The silence overlaps what was fed, so each
stop counts once in the runner's ``agent_late_chunks``.
"""
from __future__ import annotations

import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import AudioChunk, BlendshapeSequence, Blendshapes, ConversationState
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import Empty

from dualtalk_core.layout import FLAME56, FLAME56_NAMES, SAMPLE_RATE

from .audio_input import AudioInput
from .conversions import (MessageError, ns_to_stamp, numpy_to_blendshape_sequence,
                          numpy_to_blendshapes, stamp_to_ns)
from . import topics
from .dualtalk_settings import (NODE_PARAMS, REMOVED_PARAMS, NodeSettings, apply_parameter_changes,
                                build_session, streaming_params)
from .face_input import FaceInput
from .params import declare_params, refuse_removed_params
from .playout import Pacer
from .qos import reliable_qos, sensor_qos
from .runtime import StartupError, diagnostic_array, run_node
from .speech_stop import SpeechStop

PARAMS = NODE_PARAMS + streaming_params()   # every parameter (static defaults), for tools
NODE_COUNTERS = ("partner_chunks_in", "agent_chunks_in", "face_frames_in",
                 "invalid_partner_audio", "invalid_agent_audio", "invalid_face",
                 "speech_stops", "agent_stopped_chunks")


class DualTalkNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None,
                 name: str = "dualtalk_node", cli_args=None) -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides,
                         cli_args=cli_args)   # e.g. ["--ros-args", "-r", "a:=b"]
        refuse_removed_params(self, REMOVED_PARAMS)
        self.settings = s = NodeSettings(**declare_params(self, NODE_PARAMS))
        try:
            self.face_in = FaceInput(s.partner_face_map_file)
        except (FileNotFoundError, ValueError) as exc:
            raise StartupError(f"dualtalk_node: {exc}") from exc
        self.session = build_session(self, s)
        self.counters = self.session.counters
        self.counters.declare(*NODE_COUNTERS)
        self.partner_in, self.agent_in = AudioInput("partner"), AudioInput("agent")
        self._running, self._wake = True, threading.Event()
        out_qos, in_qos = reliable_qos(), sensor_qos(depth=50)
        self.pub_frame = self.create_publisher(Blendshapes, topics.AGENT_BLENDSHAPES, out_qos)
        self.pub_seq = self.create_publisher(BlendshapeSequence, topics.AGENT_BLENDSHAPE_SEQUENCE,
                                             out_qos)
        self.pub_state = self.create_publisher(ConversationState, topics.CONVERSATION_STATE,
                                               out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos(10))
        self.create_subscription(AudioChunk, topics.PARTNER_AUDIO, self.on_partner_audio, in_qos)
        self.create_subscription(AudioChunk, topics.AGENT_AUDIO, self.on_agent_audio, in_qos)
        self.create_subscription(Blendshapes, topics.PARTNER_FACE, self.on_partner_face, in_qos)
        self.speech_stop = SpeechStop()
        self.create_subscription(Empty, topics.AGENT_SPEECH_STOP, self.on_speech_stop,
                                 reliable_qos(10))
        self._diag_timer = None
        self.restart_diagnostics_timer()
        self._pacer = (Pacer(lambda: self.get_clock().now().nanoseconds, self._publish_frame,
                             lambda: self.counters.inc("late_frames"))
                       if self.config.playout_delay_s > 0 else None)
        self._worker = threading.Thread(target=self._work, name="dualtalk_engine", daemon=True)
        self._worker.start()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        c = self.config
        self.get_logger().info(
            f"DualTalk model from {s.checkpoint} on {s.device}; streaming W={c.window_s} "
            f"L={c.lookahead_s} H={c.hop_s} s (latency floor {c.latency_s:.2f} s)")

    def _on_set_parameters(self, params) -> SetParametersResult:
        ok, reason = apply_parameter_changes(self, params)
        return SetParametersResult(successful=ok, reason=reason)

    def session_log(self, level: str, text: str, throttle: bool = False) -> None:
        """The session's log lines; one call site per level (rclpy's throttling needs it)."""
        logger = self.get_logger()
        if level == "info":
            logger.info(text)
        elif level == "error":
            logger.error(text, throttle_duration_sec=5.0 if throttle else 0.0)
        elif throttle:
            logger.warning(text, throttle_duration_sec=2.0)
        else:
            logger.warning(text)

    # the session's parts, for diagnostics and tests
    engine = property(lambda self: self.session.runner)
    config = property(lambda self: self.session.config)
    origin_ns = property(lambda self: self.session.origin_ns)

    # ------------------------------------------------------------------ input
    def _dropped(self, counter: str, text: str) -> None:
        self.counters.inc(counter)
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    def on_partner_audio(self, msg: AudioChunk) -> None:
        self.counters.inc("partner_chunks_in")
        try:
            got = self.partner_in.convert(msg)
        except MessageError as exc:
            return self._dropped("invalid_partner_audio", f"dropped partner audio: {exc}")
        if got is not None:      # stamp from the message's own clock (before resampling)
            self.session.push_partner_audio(got[0], got[1], stamp_to_ns(msg.header.stamp),
                                            stamp_index=int(msg.first_sample_index),
                                            stamp_rate=int(msg.sample_rate))
            self._wake.set()

    def on_agent_audio(self, msg: AudioChunk) -> None:
        self.counters.inc("agent_chunks_in")
        try:
            got = self.agent_in.convert(msg)
        except MessageError as exc:
            return self._dropped("invalid_agent_audio", f"dropped agent audio: {exc}")
        if got is None:
            return
        if not self.speech_stop.accept(got[1], len(got[0])):
            return self._dropped("agent_stopped_chunks", "dropped agent audio: speech "
                                 "interrupted by agent/speech_stop")
        self.session.push_agent_audio(got[0], got[1], stamp_to_ns(msg.header.stamp))

    def on_speech_stop(self, _msg: Empty) -> None:
        """Barge-in: queued agent speech after the current playback time becomes silence."""
        self.counters.inc("speech_stops")
        origin = self.session.origin_ns
        if origin is None:       # no conversation clock yet: only refuse what was announced
            self.speech_stop.stop(0)
            return
        now_index = (self.get_clock().now().nanoseconds - origin) * SAMPLE_RATE // 1_000_000_000
        silence = self.speech_stop.stop(now_index)
        if silence is not None:
            first, n = silence
            self.session.push_agent_audio(np.zeros(n, np.float32), first,
                                          origin + first * 1_000_000_000 // SAMPLE_RATE)
            self._wake.set()
        self.get_logger().info(f"speech stop at sample {now_index}: "
                               f"{0 if silence is None else silence[1] / SAMPLE_RATE:.2f} s of "
                               "queued agent speech silenced")

    def on_partner_face(self, msg: Blendshapes) -> None:
        self.counters.inc("face_frames_in")
        try:
            weights = self.face_in.convert(msg)
        except MessageError as exc:
            return self._dropped("invalid_face", f"dropped partner face: {exc}")
        self.session.push_partner_face(weights, stamp_to_ns(msg.header.stamp))

    # ------------------------------------------------------------------ output
    def _work(self) -> None:
        while self._running:
            self._wake.wait(0.05)
            self._wake.clear()
            if not self._running:
                break
            try:
                for hop in self.session.step():
                    self._publish(hop)
            except Exception as exc:  # e.g. a stamp no message can hold: never kill the node
                self.counters.inc("publish_errors")
                self.get_logger().error(f"publishing failed: {exc}", throttle_duration_sec=5.0)

    def _publish(self, hop) -> None:
        fid = self.settings.frame_id
        seq = numpy_to_blendshape_sequence(
            hop.weights, rig=FLAME56, names=FLAME56_NAMES, stamp=ns_to_stamp(hop.stamps_ns[0]),
            frame_id=fid)
        if hop.input_end_ns is not None and hop.input_end_ns >= 0:
            seq.partner_input_end = ns_to_stamp(hop.input_end_ns)
        self.pub_seq.publish(seq)
        for i in range(len(hop.frames)):
            if hop.release_ns is None or self._pacer is None:
                self._publish_frame(hop, i)
            else:
                self._pacer.put(hop.release_ns[i], hop, i)

    def _publish_frame(self, hop, i: int) -> None:
        if not self._running:
            return
        f, fid, stamp = hop.frames[i], self.settings.frame_id, ns_to_stamp(hop.stamps_ns[i])
        self.pub_frame.publish(numpy_to_blendshapes(f.weights, rig=FLAME56, names=FLAME56_NAMES,
                                                    stamp=stamp, frame_id=fid))
        state = ConversationState(partner_speaking=bool(f.partner_speaking),
                                  agent_speaking=bool(f.agent_speaking),
                                  partner_voice_activity=float(f.partner_vad),
                                  agent_voice_activity=float(f.agent_vad))
        state.header.stamp, state.header.frame_id = stamp, fid
        self.pub_state.publish(state)
        self.session.published(hop, i, self.get_clock().now().nanoseconds)

    # ------------------------------------------------------------------ diagnostics
    def diagnostics_values(self) -> dict:
        values = self.session.diagnostics()
        for stream in (self.partner_in, self.agent_in):
            values.update({f"{stream.name}_{k}": v for k, v in stream.counters.items()})
        return values

    def publish_diagnostics(self) -> None:
        values = self.diagnostics_values()
        invalid = sum(self.counters[k] for k in ("invalid_partner_audio", "invalid_agent_audio",
                                                  "invalid_face", "model_errors"))
        level, text = (1, f"{invalid} invalid inputs dropped") if invalid else (0, "ok")
        if values["real_time_factor"] > 1.0:
            level, text = 1, f"slower than real time (rtf {values['real_time_factor']:.2f})"
        self.pub_diag.publish(diagnostic_array(self, "streaming", values, level=level, message=text))

    def restart_diagnostics_timer(self) -> None:
        """(Re)start the /diagnostics timer at ``diagnostics_period_s`` (0 = none)."""
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self.settings.diagnostics_period_s > 0:
            self._diag_timer = self.create_timer(self.settings.diagnostics_period_s,
                                                 self.publish_diagnostics)

    def close(self) -> None:
        """Stop the worker threads (call before ``destroy_node``)."""
        self._running = False
        # a reset makes a step that is working through a backlog of hops return after the hop
        # it is computing (its result is discarded), so the join below is short; a thread left
        # inside torch at interpreter exit aborts the process
        self.session.close()
        self._wake.set()
        threads = [self._worker]
        if self._pacer is not None:
            self._pacer.stop()
            threads.append(self._pacer.thread)
        for t in threads:
            if t.is_alive() and threading.current_thread() is not t:
                t.join(timeout=60.0)
                if t.is_alive():
                    self.get_logger().error(f"{t.name} thread did not stop within 60 s")


def main(args=None) -> int:
    return run_node(DualTalkNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
