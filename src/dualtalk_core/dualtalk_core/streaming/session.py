"""StreamingSession: everything a live consumer of DualTalk needs, without ROS.

Why: a live consumer (the ROS node, a benchmark, ``infer --streaming``) needs more than a runner
that turns audio into frames: a clock origin that maps sample indices to capture stamps,
conversations that end (no partner audio for ``end_of_stream_s``: flush the held-back frames)
and restart (the partner index rewinds, or jumps beyond ``max_backlog_s``), whole hops with
stamps and the steady-clock time they became computable, the rule for when each frame may
leave, latency figures and counters.  Keeping all of it here makes the node plumbing and lets
tests and benchmarks drive exactly what runs on the robot.

Clocks: media time is ``sample_index / 16 kHz``.  The first partner chunk of a conversation
fixes the origin ``stamp - index / rate`` (ns); the frame at media time ``t`` is stamped
``origin + t`` (the capture time of its first audio sample) and partner face stamps map back
the same way.  Without stamps (files, benchmarks) the origin is 0: stamps are media time.

Release rule (:attr:`Hop.release_ns`): with ``playout_delay_s`` 0 a hop's frames leave as soon
as computed (``None``); otherwise frame ``k`` leaves at its stamp + ``playout_delay_s``.

Latency: ``processing_latency_ms_*`` is, per published frame, the steady-clock time from the
arrival of the partner chunk that made its hop computable to the publish (compute + queueing
(+ the playout delay when pacing)); flushed frames are left out (their input ended
``end_of_stream_s`` earlier).  ``end_to_end_latency_ms_*`` is clock now - frame stamp; reported
``unavailable`` when any recent value lies outside ``[0, 60 s)`` (stamps not on that clock).

Late agent speech: frames computed without speech that arrived after they needed it are
counted by the runner and reported as ``agent_audio_late_frames`` (logged, throttled).

Faults: bad input is counted and dropped by the runner (``engine_rejected`` here, the reason
logged); a model error is counted (``model_errors``) and logged; a frame with NaN/Inf weights is
counted (``nonfinite_frames``) and replaced by the last good pose (neutral before any), never
handed out.  Nothing here raises on input.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dualtalk_core.layout import DIM, SAMPLE_RATE
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.frames import FrameBatch, OutputFrame
from dualtalk_core.streaming.stats import Counters, LatencyWindow, latency_values

NS = 1_000_000_000
NS_PER_FRAME = 40_000_000
PLAUSIBLE_E2E_NS = 60 * NS
"""A frame stamp farther than this from the publishing clock is not on it."""

SESSION_COUNTERS = (
    "engine_rejected", "face_before_origin_dropped", "agent_before_origin_dropped",
    "conversation_restarts", "conversations_ended", "frames_flushed", "index_jumps",
    "model_errors", "nonfinite_frames", "frames_published", "late_frames",
    "end_to_end_latency_implausible")
LATE_FRAMES = "agent_audio_late_frames"
"""Frames computed without agent speech that came too late (the runner counts them; published
under this name, unprefixed, on ``/diagnostics``: the issue-17 TTS contract's counter)."""
#: runner counters worth one warning the first time they move (then only counted)
_WARN_ONCE = ("resyncs", "backlog_resyncs", "frames_skipped")

Log = Callable[..., None]
"""``log(level, text, throttle=False)``: level is info / warning / error; ``throttle`` marks
messages that may repeat per input (a consumer may rate-limit those)."""


def _default_log(level: str, text: str, throttle: bool = False) -> None:
    import logging

    getattr(logging.getLogger("dualtalk.streaming"), level)(text)


@dataclass
class Hop:
    """Frames computed together, ready to publish.

    ``stamps_ns``: capture time of each frame's first sample (origin + k * 40 ms);
    ``computable_ns``: steady-clock (``time.monotonic_ns``) arrival of the partner chunk that made
    the hop computable, None when flushed; ``release_ns``: per frame, the time (on the stamps'
    clock) it may leave, or None = at once; ``input_end_ns``: on the stamps' clock, how far the
    partner audio used to compute the hop reaches (for a flushed hop: all there was), so a
    consumer can measure the listening reaction (partner input -> first frame computed with it)."""

    frames: list[OutputFrame]
    stamps_ns: list[int]
    computable_ns: int | None
    flushed: bool
    release_ns: list[int] | None
    input_end_ns: int | None = None

    @property
    def weights(self) -> np.ndarray:
        return np.stack([f.weights for f in self.frames])


class StreamingSession:
    """A live conversation around one runner (see the module docstring).

    Push methods are called from input threads, :meth:`step` from one worker thread,
    :meth:`published` from whoever publishes.  ``steady_ns`` is injectable for tests."""

    def __init__(self, runner: Any, *, log: Log | None = None,
                 steady_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.runner = runner
        self.config: StreamingConfig = runner.config
        self._log = log or _default_log
        self._steady_ns = steady_ns
        self.counters = Counters(*SESSION_COUNTERS)
        self._lock = threading.RLock()
        self._warned: set[str] = set()
        self._processing, self._e2e = LatencyWindow(), LatencyWindow()
        self.origin_ns: int | None = None
        self._ended = False
        self._last_partner_ns = 0
        self._face_backlog: deque = deque(maxlen=250)
        self._arrivals: deque[tuple[int, int]] = deque(maxlen=4096)
        self._last_good = np.zeros(DIM, np.float32)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, preset: str = "auto",
                        config_file: str | Path | None = None,
                        overrides: Mapping[str, Any] | None = None, device: str = "cpu",
                        log: Log | None = None) -> "StreamingSession":
        """Load a checkpoint and build the runner its preset names, configured preset (or what
        the checkpoint records) -> file -> overrides.  ``payload`` is kept on the session."""
        from dualtalk_core.model.checkpoint import load_checkpoint
        from dualtalk_core.streaming.runners import make_runner, runner_kind, streaming_config_for

        model, payload = load_checkpoint(path, map_location="cpu")
        config = streaming_config_for(payload, preset, config_file, overrides)
        try:
            runner = make_runner(runner_kind(payload), model, config, device)
        except ValueError as exc:       # e.g. horizons that disagree with the checkpoint's
            raise ValueError(f"{path}: {exc}") from None
        session = cls(runner, log=log)
        session.payload = payload
        return session

    # ------------------------------------------------------------------ input
    def push_partner_audio(self, samples: np.ndarray, first: int, stamp_ns: int | None = None,
                           *, stamp_index: int | None = None, stamp_rate: int = SAMPLE_RATE,
                           arrival_ns: int | None = None) -> bool:
        """Partner audio at 16 kHz index ``first``.  ``stamp_ns`` is the capture time of
        sample ``stamp_index`` (default ``first``) at ``stamp_rate`` - the message's own clock
        when the audio was resampled on the way.  Starts / restarts conversations."""
        arrival = self._steady_ns() if arrival_ns is None else int(arrival_ns)
        n = len(samples) if hasattr(samples, "__len__") else 0
        with self._lock:
            self._last_partner_ns = arrival
            self._maybe_restart(int(first) if isinstance(first, (int, np.integer)) else None, n)
            backlog = []
            if self.origin_ns is None:
                index = first if stamp_index is None else stamp_index
                self.origin_ns = (0 if stamp_ns is None
                                  else int(stamp_ns) - int(index) * NS // int(stamp_rate))
                backlog, self._face_backlog = list(self._face_backlog), deque(maxlen=250)
        ok = self.runner.push_partner_audio(samples, first)
        if ok:
            with self._lock:
                self._arrivals.append((int(first) + n, arrival))
        else:
            self._rejected("partner audio")
        for weights, face_stamp in backlog:
            self._push_face(weights, face_stamp)
        return ok

    def _maybe_restart(self, first: int | None, n: int) -> None:
        """End-of-stream, rewind and far-jump rules (lock held)."""
        clock = self.runner.clock_samples
        if self._ended:
            self._new_conversation("the previous one ended (end of stream)")
        elif self.origin_ns is None or clock is None or first is None:
            return
        elif first + n < clock - self.config.restart_after_rewind_s * SAMPLE_RATE:
            self._new_conversation("partner sample index went back")
        elif first > clock + self.config.max_backlog_samples:
            self.counters.inc("index_jumps")
            self._warn_once("index_jump", (
                f"partner sample index jumped {(first - clock) / SAMPLE_RATE:.0f} s ahead (more "
                f"than max_backlog_s={self.config.max_backlog_s:g}): new conversation anchored at "
                f"this chunk's stamp (counted in index_jumps; logged once)"))
            self._new_conversation("partner sample index jumped ahead")

    def _new_conversation(self, why: str) -> None:
        """Reset the runner and the clock origin (lock held); the chunk being handled becomes
        the new origin.  One path for end of stream, rewinds and far jumps."""
        self.counters.inc("conversation_restarts")
        self._log("info", f"new conversation: {why}")
        self.runner.reset()
        self.origin_ns = None
        self._ended = False
        self._arrivals.clear()

    def push_agent_audio(self, samples: np.ndarray, first: int,
                         stamp_ns: int | None = None) -> bool:
        """The agent's speech at its playback index ``first`` (``agent_clock: index``) or at its
        playback stamp (``agent_clock: stamp``, needs a clock origin)."""
        if self.config.agent_clock == "stamp":
            with self._lock:
                origin = self.origin_ns
            if origin is None or stamp_ns is None:
                self.counters.inc("agent_before_origin_dropped")
                return False
            first = int(round((int(stamp_ns) - origin) * SAMPLE_RATE / NS))
            if first < 0:
                self.counters.inc("agent_before_origin_dropped")
                return False
        late_before = self.runner.counters.get(LATE_FRAMES, 0)
        ok = self.runner.push_agent_audio(samples, first)
        late = self.runner.counters.get(LATE_FRAMES, 0) - late_before
        if late > 0:
            self._log("warning", (
                f"agent speech at sample {first} came after {late} frame(s) that needed it were "
                f"computed: those frames go without it (counted in {LATE_FRAMES}; publish the "
                f"speech at least self_lookahead_s - partner_lookahead_s + a margin ahead)"),
                throttle=True)
        if not ok:
            self._rejected("agent audio")
        return ok

    def push_partner_face(self, weights: np.ndarray, stamp_ns: int) -> bool:
        """A flame56 partner face frame captured at ``stamp_ns``; held until the conversation
        has a clock origin (at most 250 frames)."""
        with self._lock:
            if self.origin_ns is None or self._ended:
                if len(self._face_backlog) == self._face_backlog.maxlen:
                    self.counters.inc("face_before_origin_dropped")
                self._face_backlog.append((weights, int(stamp_ns)))
                return True
        return self._push_face(weights, int(stamp_ns))

    def _push_face(self, weights: np.ndarray, stamp_ns: int) -> bool:
        origin = self.origin_ns
        t = (stamp_ns - origin) / NS if origin is not None else -1.0
        if t < 0:
            self.counters.inc("face_before_origin_dropped")
            return False
        ok = self.runner.push_partner_motion(weights, t)
        if not ok:
            self._rejected("partner face")
        return ok

    def _rejected(self, what: str) -> None:
        self.counters.inc("engine_rejected")
        self._log("warning", f"engine refused {what}: {self.runner.last_rejection}", throttle=True)

    def _warn_once(self, kind: str, text: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._log("warning", text)

    # ------------------------------------------------------------------ output
    def step(self) -> list[Hop]:
        """Compute every hop the inputs allow, then apply the end-of-stream rule."""
        try:
            batches = self.runner.pull_batches()
        except Exception as exc:  # a model error must not end the session
            self.counters.inc("model_errors")
            self._log("error", f"model step failed: {exc}", throttle=True)
            batches = []
        with self._lock:
            origin = self.origin_ns
        hops = [self._hop(b, origin, flushed=False) for b in batches if origin is not None]
        hops += self._maybe_end_of_stream()
        self._notice_runner_faults()
        return hops

    def finish(self) -> list[Hop]:
        """End the conversation now: the remaining (lookahead) frames, flushed."""
        with self._lock:
            return self._flush("finished")

    def _maybe_end_of_stream(self) -> list[Hop]:
        eos_s = self.config.end_of_stream_s
        if eos_s <= 0:
            return []
        with self._lock:
            if (self._ended or self.origin_ns is None
                    or self._steady_ns() - self._last_partner_ns < eos_s * NS):
                return []
            # under the lock: a partner chunk arriving now waits, then starts a new conversation
            return self._flush(f"no partner audio for {eos_s:g} s")

    def _flush(self, why: str) -> list[Hop]:
        """Flush the runner and end the conversation (lock held)."""
        if self.origin_ns is None or self._ended:
            return []
        self._ended = True
        try:
            batches = self.runner.flush_batches()
        except Exception as exc:
            self.counters.inc("model_errors")
            self._log("error", f"end-of-stream flush failed: {exc}")
            return []
        hops = [self._hop(b, self.origin_ns, flushed=True) for b in batches]
        n = sum(len(h.frames) for h in hops)
        self.counters.inc("conversations_ended")
        self.counters.inc("frames_flushed", n)
        self._log("info", f"{why}: end of conversation, {n} last frame(s) flushed")
        return hops

    def _hop(self, batch: FrameBatch, origin: int, flushed: bool) -> Hop:
        for f in batch.frames:            # never hand out NaN/Inf: hold the last good pose
            if np.isfinite(f.weights).all():
                self._last_good = f.weights
            else:
                self.counters.inc("nonfinite_frames")
                self._warn_once("nonfinite", f"model output frame {f.index} holds NaN/Inf; "
                                "replaced by the last good pose (counted in nonfinite_frames)")
                f.weights = self._last_good.copy()
        stamps = [origin + f.index * NS_PER_FRAME for f in batch.frames]
        computable = None if flushed else self._arrival_of(batch.ready_sample)
        delay = int(round(self.config.playout_delay_s * NS))
        release = [s + delay for s in stamps] if delay > 0 else None
        used = self.runner.clock_samples if batch.ready_sample is None else batch.ready_sample
        input_end = None if used is None else origin + int(used) * NS // SAMPLE_RATE
        return Hop(batch.frames, stamps, computable, flushed, release, input_end)

    def _arrival_of(self, need: int | None) -> int | None:
        """Steady-clock arrival of the partner chunk that covered sample ``need``."""
        if need is None:
            return None
        with self._lock:
            while len(self._arrivals) > 1 and self._arrivals[1][0] <= need:
                self._arrivals.popleft()          # later hops never need older chunks
            for end, arrival in self._arrivals:
                if end >= need:
                    return arrival
        return None

    def _notice_runner_faults(self) -> None:
        counters = self.runner.counters
        for name in _WARN_ONCE:
            if counters.get(name, 0) > 0:
                self._warn_once(name, f"streaming: {name} (counted as engine_{name}; logged "
                                f"once): {self.runner.last_rejection}")

    # ------------------------------------------------------------------ bookkeeping
    def published(self, hop: Hop, i: int, clock_now_ns: int) -> None:
        """Frame ``i`` of ``hop`` left now (``clock_now_ns`` on the stamps' clock)."""
        self.counters.inc("frames_published")
        if hop.computable_ns is not None:
            self._processing.add((self._steady_ns() - hop.computable_ns) / 1e6)
        e2e = clock_now_ns - hop.stamps_ns[i]
        if 0 <= e2e < PLAUSIBLE_E2E_NS:
            self._e2e.add(e2e / 1e6)
        else:        # stamps not on this clock (e.g. a bag from t=0 without sim time)
            self.counters.inc("end_to_end_latency_implausible")
            self._e2e.add(float("nan"))

    def diagnostics(self) -> dict[str, Any]:
        """Timing, latency summaries, session counters and the runner's (``engine_*``)."""
        stats = self.runner.stats
        values: dict[str, Any] = {
            "real_time_factor": float(stats.get("rtf", 0.0)),
            "hop_ms_p50": float(stats.get("hop_ms_p50", 0.0)),
            "hop_ms_p95": float(stats.get("hop_ms_p95", 0.0)),
        }
        values.update(latency_values("processing_latency_ms", self._processing.values()))
        values.update(latency_values("end_to_end_latency_ms", self._e2e.values()))
        values.update({"algorithmic_latency_s": float(self.config.latency_s),
                       "media_clock_s": float(self.runner.clock_s)})
        values.update(self.counters.as_dict())
        values.update({f"engine_{k}": v for k, v in self.runner.counters.items()
                       if k != LATE_FRAMES})
        values[LATE_FRAMES] = int(self.runner.counters.get(LATE_FRAMES, 0))
        return values

    # ------------------------------------------------------------------ settings
    def check_update(self, **changes: Any) -> StreamingConfig:
        """The config with run-time ``changes`` applied, validated; ``ValueError`` naming the
        field for a value out of range or a field that is fixed at start-up."""
        fixed = sorted(set(changes) - set(StreamingConfig.dynamic_fields()))
        if fixed:
            raise ValueError(f"StreamingConfig: {fixed} cannot change while running (only "
                             f"{list(StreamingConfig.dynamic_fields())} can)")
        return self.config.replace(**changes)

    def update(self, **changes: Any) -> None:
        """Apply run-time changes (see :meth:`check_update`)."""
        config = self.check_update(**changes)
        with self._lock:
            self.config = config
            self.runner.config = config

    def close(self) -> None:
        """Make a pull that is working through a backlog return after its current hop."""
        self.runner.reset()
