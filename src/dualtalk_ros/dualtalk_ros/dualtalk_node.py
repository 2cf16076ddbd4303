"""``dualtalk_node``: the streaming DualTalk model as a ROS node.

Subscribes ``partner/audio`` and ``agent/audio`` (``AudioChunk``) and ``partner/face``
(``Blendshapes``, flame56 or any rig ``partner_face_map_file`` maps to it); publishes the agent's
face at 25 fps on ``agent/blendshapes`` (flame56, with names), one ``agent/blendshape_sequence``
per hop, ``conversation_state`` per frame and counters/timings on ``/diagnostics``.

Clocks: the engine works in *media time* (sample index / 16 kHz). The first partner chunk fixes
the origin ``stamp - first_sample_index / sample_rate``; output frame at media time ``t`` is
stamped ``origin + t`` (the capture time of its first audio sample) and partner face stamps map
back to media time the same way. Agent audio uses its ``first_sample_index`` on the same
conversation clock (``agent_clock: index``) or its stamp (``agent_clock: stamp``).

Conversations: the engine holds back the last ``lookahead`` frames until it has the audio after
them. When no partner audio arrived for ``end_of_stream_s`` (the clip, the bag or the talk
ended), the node flushes the engine, publishes those last frames like any other, and the next
partner audio starts a new conversation (engine reset, new clock origin). A partner sample index
that jumps back by ``restart_after_rewind_s`` or more (a restarted player) starts a new
conversation the same way, without a flush (the old tail would be stamped on a clock that has
just been abandoned).

Latency (``/diagnostics``): ``processing_latency_ms_*`` is, per published frame, the time from
the arrival of the partner chunk that made its hop computable (the chunk reaching the hop's last
frame plus the lookahead) to the publish, on the steady clock: compute + queueing (+ the playout
delay when pacing), independent of how the inputs were stamped. Frames flushed at end of stream
are left out (their inputs ended ``end_of_stream_s`` earlier). ``end_to_end_latency_ms_*`` is ROS
now - frame stamp (capture of the frame's first sample to publish); it is only meaningful when the
stamps are on the node's clock, so it is reported as ``unavailable`` when any recent value lies
outside ``[0, 60 s)`` (e.g. a bag made with stamps from 0 replayed without sim time).

The model is loaded once at start (a missing or invalid checkpoint is a start-up error); it runs
in a worker thread so subscriptions never block behind inference. Every bad message is logged
(throttled), counted and dropped; the node never dies on input.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import AudioChunk, BlendshapeSequence, Blendshapes, ConversationState
from rclpy.node import Node

from dualtalk_core.layout import DIM, FLAME56, FLAME56_NAMES, SAMPLE_RATE, SAMPLES_PER_FRAME

from .audio_input import AudioInput
from .conversions import (MessageError, blendshapes_to_numpy, ns_to_stamp,
                          numpy_to_blendshape_sequence, numpy_to_blendshapes, stamp_to_ns)
from .params import Param, declare_params, resolve_config_path
from .qos import reliable_qos, sensor_qos
from .rig_mapping import LinearMap, load_linear_map
from .runtime import Counters, StartupError, diagnostic_array, run_node

NS = 1_000_000_000
PRESET_CHOICES = ("auto", "tiny", "cpu", "base", "paper")

PARAMS = (
    Param("checkpoint", "", "DualTalk checkpoint (.pt) to load at start (required)"),
    Param("device", "cpu", "torch device: cpu, cuda or cuda:N"),
    Param("warmup", True, "run the model once on silence at start, so the first real hop is "
          "not slowed by lazy initialisation"),
    Param("torch_threads", 0, "torch intra-op CPU threads; 0 = torch's default", low=0, high=256),
    Param("streaming_preset", "auto", "W/L/H defaults of this model preset; auto = cpu",
          choices=PRESET_CHOICES),
    Param("streaming_config_file", "", "optional StreamingConfig YAML (overrides the preset)"),
    Param("window_s", 0.0, "left context W (s, multiple of 0.04); 0 = preset", low=0.0, high=60.0),
    Param("lookahead_s", 0.0, "lookahead L (s, multiple of 0.04); 0 = preset", low=0.0, high=10.0),
    Param("hop_s", 0.0, "hop H (s, multiple of 0.04); 0 = preset", low=0.0, high=10.0),
    Param("crossfade_s", -1.0, "cross-fade (s); -1 = preset", low=-1.0, high=10.0),
    Param("partner_audio_topic", "partner/audio", "partner microphone AudioChunk"),
    Param("agent_audio_topic", "agent/audio", "agent speech AudioChunk (playback index)"),
    Param("partner_face_topic", "partner/face", "partner face Blendshapes"),
    Param("blendshapes_topic", "agent/blendshapes", "agent face output, one frame per message"),
    Param("sequence_topic", "agent/blendshape_sequence", "agent face output, one hop per message"),
    Param("state_topic", "conversation_state", "who is speaking, per frame"),
    Param("partner_face_map_file", "", "linear map YAML from the partner face rig to flame56; "
          "empty = flame56 only"),
    Param("agent_clock", "index", "place agent audio by its sample index or by its stamp",
          choices=("index", "stamp")),
    Param("frame_id", "agent_face", "frame_id of the agent face outputs"),
    Param("playout_delay_s", 0.0, "0 = publish each hop's frames as soon as computed (lowest "
          "latency, bursts of one hop); > 0 = publish each frame at its stamp + this delay, an "
          "even 25 Hz stream for controllers (use > lookahead + hop + compute time)",
          low=0.0, high=10.0),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics", low=0.0, high=60.0),
    Param("end_of_stream_s", 1.0, "no partner audio for this long (s) after a conversation "
          "started: it ended, so flush the engine's last (lookahead) frames, publish them and "
          "start a new conversation (new clock origin) at the next partner audio; keep it above the "
          "longest gap between partner chunks (e.g. a bag replayed at a slow rate); 0 = never",
          low=0.0, high=3600.0),
    Param("restart_after_rewind_s", 5.0, "partner sample index jumping back this far starts a "
          "new conversation (player restarted)", low=0.1, high=3600.0),
)

NODE_COUNTERS = ("partner_chunks_in", "agent_chunks_in", "face_frames_in",
                 "invalid_partner_audio", "invalid_agent_audio", "invalid_face",
                 "engine_rejected", "face_before_origin_dropped", "agent_before_origin_dropped",
                 "conversation_restarts", "conversations_ended", "frames_flushed",
                 "model_errors", "frames_published", "late_frames",
                 "end_to_end_latency_implausible")

#: a frame stamp farther than this from the node's clock is not on it (see module docstring)
PLAUSIBLE_E2E_NS = 60 * NS


def load_model(path: str):
    """Checkpoint -> (model, payload); any failure is a :class:`StartupError` naming the file."""
    from dualtalk_core.model.checkpoint import load_checkpoint

    if not path:
        raise StartupError("dualtalk_node: parameter 'checkpoint' is empty; give a DualTalk "
                           "checkpoint file (e.g. from `dualtalk train` or `dualtalk "
                           "convert-official`)")
    try:
        file = resolve_config_path(path)
        return load_checkpoint(file, map_location="cpu")
    except FileNotFoundError as exc:
        raise StartupError(f"dualtalk_node: checkpoint not found: {exc}") from exc
    except ValueError as exc:  # CheckpointError
        raise StartupError(f"dualtalk_node: invalid checkpoint: {exc}") from exc


def streaming_config(p: dict, payload: dict):
    """StreamingConfig from the preset defaults, the optional file and the W/L/H parameters."""
    from dualtalk_core.streaming.engine import StreamingConfig, default_streaming_config

    preset = p["streaming_preset"]
    if preset == "auto":
        extra = (payload or {}).get("extra") or {}
        preset = extra.get("preset") if extra.get("preset") in PRESET_CHOICES[1:] else "cpu"
    cfg = default_streaming_config(preset)
    if p["streaming_config_file"]:
        cfg = StreamingConfig.from_yaml(resolve_config_path(p["streaming_config_file"]))
    changes = {k: p[k] for k in ("window_s", "lookahead_s", "hop_s") if p[k] > 0}
    if p["crossfade_s"] >= 0:
        changes["crossfade_s"] = p["crossfade_s"]
    if changes:
        cfg = cfg.replace(**changes)
    return cfg


class DualTalkNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None, name: str = "dualtalk_node") -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides)
        from dualtalk_core.streaming.engine import StreamingEngine

        p = self.params = declare_params(self, PARAMS)
        import torch
        if p["torch_threads"] > 0:
            torch.set_num_threads(p["torch_threads"])
        if p["device"].startswith("cuda") and not torch.cuda.is_available():
            raise StartupError(f"dualtalk_node: device {p['device']!r} requested but this torch "
                               f"has no usable CUDA (torch.cuda.is_available() is False)")
        model, payload = load_model(p["checkpoint"])
        try:
            self.config = streaming_config(p, payload)
            self.face_map = (load_linear_map(resolve_config_path(p["partner_face_map_file"]))
                             if p["partner_face_map_file"] else LinearMap.identity(FLAME56))
            self.engine = StreamingEngine(model, self.config, device=p["device"])
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            raise StartupError(f"dualtalk_node: {exc}") from exc
        if p["warmup"]:
            try:
                self._warm_up(model)
            except Exception as exc:
                raise StartupError(f"dualtalk_node: the model fails on a window of silence "
                                   f"(checkpoint {p['checkpoint']}): {exc}") from exc
        if self.face_map.target_rig != FLAME56:
            raise StartupError(f"{self.face_map.origin}: target_rig should be flame56")
        self.counters = Counters(*NODE_COUNTERS)
        self.partner_in = AudioInput("partner")
        self.agent_in = AudioInput("agent")
        self.origin_ns: int | None = None
        self._ended = False                      # flushed: next partner audio starts anew
        self._last_partner_mono = 0.0            # time.monotonic() of the last partner chunk
        self._face_backlog: deque = deque(maxlen=250)
        # (end sample index, steady-clock arrival ns) of accepted partner chunks, for latency
        self._arrivals: deque[tuple[int, int]] = deque(maxlen=4096)
        self._processing_ms: deque[float] = deque(maxlen=500)
        self._e2e_ms: deque[float] = deque(maxlen=500)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._running = True

        out_qos, in_qos = reliable_qos(), sensor_qos(depth=50)
        self.pub_frame = self.create_publisher(Blendshapes, p["blendshapes_topic"], out_qos)
        self.pub_seq = self.create_publisher(BlendshapeSequence, p["sequence_topic"], out_qos)
        self.pub_state = self.create_publisher(ConversationState, p["state_topic"], out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable_qos(10))
        self.create_subscription(AudioChunk, p["partner_audio_topic"], self.on_partner_audio, in_qos)
        self.create_subscription(AudioChunk, p["agent_audio_topic"], self.on_agent_audio, in_qos)
        self.create_subscription(Blendshapes, p["partner_face_topic"], self.on_partner_face, in_qos)
        if p["diagnostics_period_s"] > 0:
            self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics)
        self._outbox: deque = deque()            # (due ns, OutputFrame, stamp ns) when paced
        self._out_cond = threading.Condition()
        self._worker = threading.Thread(target=self._work, name="dualtalk_engine", daemon=True)
        self._worker.start()
        self._pacer = None
        if p["playout_delay_s"] > 0:
            self._pacer = threading.Thread(target=self._pace, name="dualtalk_pacer", daemon=True)
            self._pacer.start()
        c = self.config
        self.get_logger().info(
            f"DualTalk model from {p['checkpoint']} on {p['device']}; streaming W={c.window_s} "
            f"L={c.lookahead_s} H={c.hop_s} s (latency floor {c.latency_s:.2f} s)")
        label = payload["extra"].get("label")
        if label:  # e.g. the bundled demo model says what it is not good for
            self.get_logger().warning(f"checkpoint label: {label}")

    def _warm_up(self, model) -> None:
        """One forward pass over a window of silence (same sizes as a real hop)."""
        import torch

        c = self.config
        frames = c.window_frames + c.hop_frames + c.lookahead_frames
        n = frames * SAMPLES_PER_FRAME
        dev = self.engine.device
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(torch.zeros(1, n, device=dev), torch.zeros(1, n, device=dev),
                  torch.zeros(1, frames, DIM, device=dev), num_frames=frames,
                  normalize_audio=False)
        self.get_logger().info(f"warm-up pass: {1000 * (time.perf_counter() - t0):.0f} ms")

    # ------------------------------------------------------------------ input
    def _warn(self, text: str) -> None:
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    def on_partner_audio(self, msg: AudioChunk) -> None:
        self.counters.inc("partner_chunks_in")
        try:
            got = self.partner_in.convert(msg)
        except MessageError as exc:
            self.counters.inc("invalid_partner_audio")
            return self._warn(f"dropped partner audio: {exc}")
        if got is None:
            return
        samples, first = got
        arrival_ns = time.monotonic_ns()
        with self._lock:
            self._last_partner_mono = arrival_ns / NS
            clock = self.engine.clock_s * SAMPLE_RATE
            if self._ended:
                self._new_conversation("the previous one ended (end of stream)")
            elif self.origin_ns is not None and first + samples.size < clock - \
                    self.params["restart_after_rewind_s"] * SAMPLE_RATE:
                self._new_conversation("partner sample index went back")
            if self.origin_ns is None:
                # from the message's own clock (before resampling shifts indices)
                self.origin_ns = (stamp_to_ns(msg.header.stamp)
                                  - int(msg.first_sample_index) * NS // int(msg.sample_rate))
                backlog, self._face_backlog = list(self._face_backlog), deque(maxlen=250)
            else:
                backlog = []
        if not self.engine.push_partner_audio(samples, first):
            self.counters.inc("engine_rejected")
            self._warn(f"engine refused partner audio: {self.engine.last_rejection}")
        else:
            with self._lock:
                self._arrivals.append((first + samples.size, arrival_ns))
        for weights, stamp_ns in backlog:
            self._push_face(weights, stamp_ns)
        self._wake.set()

    def _new_conversation(self, why: str) -> None:
        """Reset the engine and the clock origin (caller holds ``_lock``); the partner chunk
        being handled becomes the new origin. One path for end of stream and rewinds."""
        self.counters.inc("conversation_restarts")
        self.get_logger().info(f"new conversation: {why}")
        self.engine.reset()
        self.origin_ns = None
        self._ended = False
        self._arrivals.clear()

    def on_agent_audio(self, msg: AudioChunk) -> None:
        self.counters.inc("agent_chunks_in")
        try:
            got = self.agent_in.convert(msg)
        except MessageError as exc:
            self.counters.inc("invalid_agent_audio")
            return self._warn(f"dropped agent audio: {exc}")
        if got is None:
            return
        samples, first = got
        if self.params["agent_clock"] == "stamp":
            if self.origin_ns is None:
                self.counters.inc("agent_before_origin_dropped")
                return
            first = int(round((stamp_to_ns(msg.header.stamp) - self.origin_ns) * SAMPLE_RATE / NS))
            if first < 0:
                self.counters.inc("agent_before_origin_dropped")
                return
        if not self.engine.push_agent_audio(samples, first):
            self.counters.inc("engine_rejected")
            self._warn(f"engine refused agent audio: {self.engine.last_rejection}")

    def on_partner_face(self, msg: Blendshapes) -> None:
        self.counters.inc("face_frames_in")
        try:
            weights, names = blendshapes_to_numpy(msg)
            if not np.isfinite(weights).all():
                raise MessageError("non-finite weights")
            if msg.rig == FLAME56 or self.face_map.source_rig == FLAME56:
                if weights.size != DIM:
                    raise MessageError(f"flame56 face: expected {DIM} weights, got {weights.size}")
                if tuple(names) != FLAME56_NAMES:
                    weights, _ = LinearMap.identity(FLAME56).apply_named(weights, names)
            else:
                weights, _ = self.face_map.apply_named(weights, names)
        except (MessageError, ValueError) as exc:
            self.counters.inc("invalid_face")
            return self._warn(f"dropped partner face: {exc}")
        stamp_ns = stamp_to_ns(msg.header.stamp)
        with self._lock:
            if self.origin_ns is None or self._ended:    # wait for the (next) clock origin
                if len(self._face_backlog) == self._face_backlog.maxlen:
                    self.counters.inc("face_before_origin_dropped")
                self._face_backlog.append((weights, stamp_ns))
                return
        self._push_face(weights, stamp_ns)

    def _push_face(self, weights: np.ndarray, stamp_ns: int) -> None:
        t = (stamp_ns - self.origin_ns) / NS
        if t < 0:
            self.counters.inc("face_before_origin_dropped")
            return
        if not self.engine.push_partner_motion(weights, t):
            self.counters.inc("engine_rejected")
            self._warn(f"engine refused partner face: {self.engine.last_rejection}")

    # ------------------------------------------------------------------ output
    def _work(self) -> None:
        while self._running:
            self._wake.wait(0.05)
            self._wake.clear()
            if not self._running:
                break
            try:
                frames = self.engine.pull()
            except Exception as exc:  # a model error must not kill the node
                self.counters.inc("model_errors")
                self.get_logger().error(f"model step failed: {exc}", throttle_duration_sec=5.0)
                continue
            if frames:
                self._publish(frames, self.origin_ns)
            self._maybe_end_of_stream()

    def _maybe_end_of_stream(self) -> None:
        """No partner audio for ``end_of_stream_s``: flush the engine and publish the tail."""
        eos_s = self.params["end_of_stream_s"]
        if eos_s <= 0:
            return
        with self._lock:
            if (self._ended or self.origin_ns is None
                    or time.monotonic() - self._last_partner_mono < eos_s):
                return
            # under the lock: a partner chunk arriving now waits, then starts a new conversation
            self._ended = True
            origin = self.origin_ns
            try:
                frames = self.engine.flush()
            except Exception as exc:
                self.counters.inc("model_errors")
                self.get_logger().error(f"end-of-stream flush failed: {exc}")
                return
        self.counters.inc("conversations_ended")
        self.counters.inc("frames_flushed", len(frames))
        self.get_logger().info(f"no partner audio for {eos_s:g} s: end of conversation, "
                               f"{len(frames)} last frame(s) flushed")
        if frames:
            self._publish(frames, origin, flushed=True)

    def _ready_ns(self, frame_index: int) -> int | None:
        """Steady-clock arrival of the partner chunk that made ``frame_index`` computable
        (covering ``(frame_index + lookahead_frames) * 640`` samples); None when unknown."""
        need = (frame_index + self.config.lookahead_frames) * SAMPLES_PER_FRAME
        with self._lock:
            while len(self._arrivals) > 1 and self._arrivals[1][0] <= need:
                self._arrivals.popleft()          # later frames never need older chunks
            for end, arrival in self._arrivals:
                if end >= need:
                    return arrival
        return None

    def _publish(self, frames, origin: int | None, flushed: bool = False) -> None:
        if origin is None:
            return
        fid = self.params["frame_id"]
        hop = self.config.hop_frames
        ready: list[int | None] = []
        for start in range(0, len(frames), hop):
            batch = frames[start:start + hop]
            self.pub_seq.publish(numpy_to_blendshape_sequence(
                np.stack([f.weights for f in batch]), rig=FLAME56, names=FLAME56_NAMES,
                stamp=ns_to_stamp(origin + int(round(batch[0].media_time_s * NS))), frame_id=fid))
            # the hop is computed once its LAST frame has its lookahead
            r = None if flushed else self._ready_ns(batch[-1].index)
            ready += [r] * len(batch)
        delay_ns = int(self.params["playout_delay_s"] * NS)
        for f, r in zip(frames, ready):
            stamp_ns = origin + int(round(f.media_time_s * NS))
            if delay_ns > 0:
                with self._out_cond:
                    self._outbox.append((stamp_ns + delay_ns, f, stamp_ns, r))
                    self._out_cond.notify()
            else:
                self._publish_frame(f, stamp_ns, r)

    def _pace(self) -> None:
        """Publish queued frames at their due time (stamp + playout delay)."""
        while self._running:
            with self._out_cond:
                if not self._outbox:
                    self._out_cond.wait(0.1)
                    continue
                due, frame, stamp_ns, ready_ns = self._outbox[0]
                wait_ns = due - self.get_clock().now().nanoseconds
                if wait_ns > 0:
                    self._out_cond.wait(wait_ns / NS)
                    continue
                self._outbox.popleft()
            if wait_ns < -NS // 25:           # more than one frame behind its due time
                self.counters.inc("late_frames")
            self._publish_frame(frame, stamp_ns, ready_ns)

    def _publish_frame(self, f, stamp_ns: int, ready_ns: int | None = None) -> None:
        if not self._running:
            return
        fid = self.params["frame_id"]
        stamp = ns_to_stamp(stamp_ns)
        self.pub_frame.publish(numpy_to_blendshapes(f.weights, rig=FLAME56, names=FLAME56_NAMES,
                                                    stamp=stamp, frame_id=fid))
        state = ConversationState(partner_speaking=bool(f.partner_speaking),
                                  agent_speaking=bool(f.agent_speaking),
                                  partner_voice_activity=float(f.partner_vad),
                                  agent_voice_activity=float(f.agent_vad))
        state.header.stamp = stamp
        state.header.frame_id = fid
        self.pub_state.publish(state)
        self.counters.inc("frames_published")
        if ready_ns is not None:
            self._processing_ms.append((time.monotonic_ns() - ready_ns) / 1e6)
        e2e_ns = self.get_clock().now().nanoseconds - stamp_ns
        if 0 <= e2e_ns < PLAUSIBLE_E2E_NS:
            self._e2e_ms.append(e2e_ns / 1e6)
        else:        # stamps not on this node's clock (e.g. a bag from t=0 without sim time)
            self.counters.inc("end_to_end_latency_implausible")
            self._e2e_ms.append(float("nan"))

    # ------------------------------------------------------------------ diagnostics
    def diagnostics_values(self) -> dict:
        stats = self.engine.stats
        values: dict = {
            "real_time_factor": float(stats.get("rtf", 0.0)),
            "hop_ms_p50": float(stats.get("hop_ms_p50", 0.0)),
            "hop_ms_p95": float(stats.get("hop_ms_p95", 0.0)),
        }
        values.update(latency_values("processing_latency_ms",
                                     np.asarray(self._processing_ms, dtype=np.float64)))
        values.update(latency_values("end_to_end_latency_ms",
                                     np.asarray(self._e2e_ms, dtype=np.float64)))
        values.update({"algorithmic_latency_s": float(self.config.latency_s),
                       "media_clock_s": float(self.engine.clock_s)})
        values.update(self.counters.as_dict())
        for stream in (self.partner_in, self.agent_in):
            for k, v in stream.counters.items():
                values[f"{stream.name}_{k}"] = v
        values.update({f"engine_{k}": v for k, v in self.engine.counters.items()})
        return values

    def publish_diagnostics(self) -> None:
        values = self.diagnostics_values()
        invalid = sum(self.counters[k] for k in ("invalid_partner_audio", "invalid_agent_audio",
                                                  "invalid_face", "model_errors"))
        level, text = (1, f"{invalid} invalid inputs dropped") if invalid else (0, "ok")
        if values["real_time_factor"] > 1.0:
            level, text = 1, f"slower than real time (rtf {values['real_time_factor']:.2f})"
        self.pub_diag.publish(diagnostic_array(self, "streaming", values, level=level, message=text))

    def close(self) -> None:
        """Stop the worker thread (call before ``destroy_node``)."""
        self._running = False
        # a reset makes a pull() that is working through a backlog of hops return after the
        # hop it is computing (its result is discarded), so the join below is short; a thread
        # left inside torch at interpreter exit aborts the process
        self.engine.reset()
        self._wake.set()
        with self._out_cond:
            self._out_cond.notify_all()
        if self._pacer is not None and threading.current_thread() is not self._pacer:
            self._pacer.join(timeout=5.0)
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=60.0)
            if self._worker.is_alive():
                self.get_logger().error("engine worker did not stop within 60 s")


def latency_values(prefix: str, ms: np.ndarray) -> dict:
    """``<prefix>_p50/_p95/_max`` and ``_n`` of recent latencies; the string ``unavailable``
    (with ``_n`` 0) when there are none or any is NaN (not measurable, see module docstring)."""
    if ms.size == 0 or not np.isfinite(ms).all():
        return {f"{prefix}_p50": "unavailable", f"{prefix}_p95": "unavailable",
                f"{prefix}_max": "unavailable", f"{prefix}_n": 0}
    return {f"{prefix}_p50": float(np.percentile(ms, 50)),
            f"{prefix}_p95": float(np.percentile(ms, 95)),
            f"{prefix}_max": float(ms.max()), f"{prefix}_n": int(ms.size)}


def main(args=None) -> int:
    return run_node(DualTalkNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
