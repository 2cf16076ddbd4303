"""Streaming DualTalk: live audio and face in, agent face frames out at 25 fps, bounded latency.

Why: DualTalk as released is offline (BiLSTM and unmasked attention see the whole clip).  A robot
needs frames *now*.  The engine re-runs the ordinary offline model on a sliding window - ``W``
seconds of left context plus ``L`` seconds of lookahead - every hop ``H``, and cross-fades the
overlapping predictions of consecutive hops so there are no jumps at hop boundaries.  It is pure
Python (no ROS); :class:`dualtalk_core.streaming.session.StreamingSession` runs it for live
consumers (clock origin, conversations, release times, latency), and ``dualtalk_ros``'s node
is plumbing around the session.  Settings: :class:`dualtalk_core.streaming.config.StreamingConfig`.

Clock and frames
----------------
Media time is seconds on the conversation clock: ``sample_index / 16000``; both audio streams
share it.  Output frame ``k`` belongs to audio samples ``[k*640, (k+1)*640)`` and is stamped
``media_time_s = k*640/16000`` (25 fps, never irregular).  The PARTNER audio is the live clock
(it is the microphone): frame ``k`` is emitted by :meth:`StreamingEngine.pull` once partner audio
covers sample ``k*640 + L*16000`` (i.e. ``L`` after the frame's stamp; frames come out in batches
of one hop, so the algorithmic latency is at most ``L + H``).  :meth:`StreamingEngine.flush` emits
the tail at the end of a conversation.

Contract for TTS integrators (agent audio)
------------------------------------------
Push the agent's own speech with :meth:`StreamingEngine.push_agent_audio` using the sample index
at which it WILL BE PLAYED on the conversation clock.  Push it as early as you know it: audio that
is already in the buffer when a window is computed is used, both for the frames being emitted and
as lookahead, so lips are ready when the sound plays.  Ranges never pushed are silence (the agent
is listening).  Audio may be pushed up to ``max_ahead_s`` ahead of the partner clock; audio for a
range that a hop has already used ("late") is still accepted and improves later windows, but frames
already emitted are not revised (counter ``agent_late_chunks``).  Re-sending an identical range is
dropped as a duplicate; a barge-in that replaces queued speech may overwrite a range that is not
fully written yet.  To cancel queued speech, overwrite it with zeros.
Frames for media time ``t`` come out when the partner clock reaches ``t + L`` (plus up to one hop),
so for exact lip sync present frame ``k`` at ``k * 0.04 + config.latency_s`` on the playback clock
and delay the agent's loudspeaker output by the same ``latency_s``; a renderer that shows frames as
they arrive lags the agent's voice by up to ``latency_s``.

Faults (nothing raises out of a ``push_*`` for bad data; each returns ``False`` and counts)
------------------------------------------------------------------------------------------
* partner audio gap (sample index jumps forward): zero-filled, ``gaps`` / ``gaps_zero_filled_samples``;
  a gap longer than ``max_gap_s`` re-synchronises instead (``resyncs``, ``frames_skipped``).
* memory is bounded for any sample index: no buffer spans more than ``max_backlog_s``; a chunk
  that would need more (a jump to index 2**40, compute far behind) re-synchronises both streams
  at it (``backlog_resyncs``); a chunk longer than the bound is ``rejected_bad_shape``.
* chunk entirely in the past: ``duplicates`` when its start index was seen recently, else
  ``dropped_out_of_order``; a chunk overlapping the end is trimmed (``overlap_trimmed_samples``).
* NaN/Inf anywhere in a chunk or face frame: the whole chunk is rejected (``rejected_nonfinite``).
* wrong shape (not 1-D / not [56]) or empty: ``rejected_bad_shape``; non-float dtype or a bad index
  or time: ``rejected_bad_input``; too far ahead of the clock: ``rejected_too_far_ahead``.
* partner face frames missing: interpolated between neighbours or held at the edges (zeros when
  none ever came); every emitted frame whose face was a guess has ``partner_face_filled=True`` and
  is counted in ``partner_face_filled_frames``.  Face frames older than the newest one
  (out of order) or with the same stamp (duplicate) are dropped and counted.
The reason of the latest rejection is in :attr:`StreamingEngine.last_rejection`.

Normalisation
-------------
The released model normalises each waveform per clip.  Per-window normalisation would change the
gain with every hop, so by default (``norm_mode="running"``) each stream is normalised with the
mean/variance of the last ``norm_context_s`` seconds it has produced up to the window's end
(statistics gathered hop by hop, so they do not depend on how audio was chunked); for clips up to
``norm_context_s`` this converges to the offline per-clip statistics.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from dualtalk_core.devices import to_device
from dualtalk_core.layout import DIM, FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.buffers import AudioTimeline, BacklogOverflow, BlockStats, MotionTrack
from dualtalk_core.streaming.checks import check_audio, check_face
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.frames import COUNTER_NAMES, FrameBatch, OutputFrame
from dualtalk_core.streaming.hops import HopJob, crossfade, is_quantized, normalise
from dualtalk_core.vad import EnergyVad, frame_levels_db


class StreamingEngine:
    """Sliding-window streaming inference around a DualTalk-like model.

    ``model`` is anything callable as ``model(self_audio [1,n], partner_audio [1,n],
    partner_motion [1,T,56], num_frames=T, normalize_audio=False) -> [1,T,56]`` (a
    :class:`dualtalk_core.model.dualtalk.DualTalk`, possibly quantised).  Push methods may be
    called from one thread while another calls :meth:`pull_batches`; the model runs outside the
    buffer lock, so pushes never wait for a hop.  Pulling raises only if the model itself fails.
    """

    kind = "window"

    def __init__(self, model: Callable, config: StreamingConfig | None = None,
                 device: str = "cpu") -> None:
        import torch

        from dualtalk_core.devices import resolve_device

        self._torch = torch
        self.device = resolve_device(device, "streaming device")
        self.model = model
        if hasattr(model, "eval"):
            model.eval()
        if hasattr(model, "to") and not is_quantized(model):
            model.to(self.device)
        self.config = config if config is not None else StreamingConfig()
        self.config.validate()
        self._lock = threading.RLock()          # guards the buffers and counters
        self._pull_lock = threading.Lock()      # one puller at a time (hops are sequential)
        self._generation = 0
        self.last_rejection: str = ""
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Forget everything and start a new conversation (counters and timings too)."""
        c = self.config
        with self._lock:
            self._generation += 1
            self.counters: dict[str, int] = {name: 0 for name in COUNTER_NAMES}
            self._hop_ms: deque[float] = deque(maxlen=4096)
            self._compute_s = 0.0
            self._motion = MotionTrack(c.face_tolerance_s)
            self._agent = AudioTimeline(0, c.max_backlog_samples)
            self._agent_empty = True
            self._clear_stream(None)

    def _clear_stream(self, origin_frame: int | None) -> None:
        """Per-stream state; ``origin_frame`` None = waiting for the first partner chunk."""
        c = self.config
        ctx = int(round(c.norm_context_s * SAMPLE_RATE))
        base = 0 if origin_frame is None else origin_frame * SAMPLES_PER_FRAME
        self._origin = origin_frame
        self._partner = AudioTimeline(base, c.max_backlog_samples)
        self._partner_end: int | None = None if origin_frame is None else base
        self._recent_starts: deque[int] = deque(maxlen=256)
        self._next_emit = origin_frame or 0
        self._stats_end = self._partner_end or 0
        self._pstats, self._astats = BlockStats(ctx), BlockStats(ctx)
        self._pending: tuple[int, np.ndarray] | None = None
        self._ready: list[FrameBatch] = []
        self._vad_p, self._vad_a = EnergyVad(c.vad), EnergyVad(c.vad)
        self._flushed = False

    def warm_up(self) -> float:
        """One forward pass over a window of silence (the size of a real hop); returns ms.

        Lazy initialisation inside torch then does not slow the first real hop."""
        c = self.config
        frames = c.window_frames + c.hop_frames + c.lookahead_frames
        n = frames * SAMPLES_PER_FRAME
        job = HopJob(0, 0, frames, 0, 0, np.zeros(n, np.float32), np.zeros(n, np.float32),
                   np.zeros((frames, DIM), np.float32), np.ones(frames, bool),
                   np.zeros(0), np.zeros(0), False)
        return self._run_model(job)[1]

    # ------------------------------------------------------------------ push
    def _reject(self, counter: str, message: str) -> bool:
        self.counters[counter] += 1
        self.last_rejection = message
        return False

    def push_partner_audio(self, samples: np.ndarray, first_sample_index: int) -> bool:
        """Partner (microphone) audio; the partner stream drives the clock.  Returns accepted."""
        with self._lock:
            x, counter, msg = check_audio("partner", samples, first_sample_index,
                                          self._max_chunk)
            if x is None:
                return self._reject(counter, msg)
            first, n = int(first_sample_index), int(x.shape[0])
            if self._partner_end is None:
                self._start_stream(first)
            end = self._partner_end
            if first + n <= end:
                if first in self._recent_starts:
                    return self._reject("duplicates", f"partner audio: duplicate chunk at sample {first}")
                return self._reject("dropped_out_of_order", (
                    f"partner audio: chunk [{first}, {first + n}) is older than the stream end {end}"))
            if first < end:
                self.counters["overlap_trimmed_samples"] += end - first
                x, first = x[end - first:], end
            self._place_partner(first, x)
            self._recent_starts.append(int(first_sample_index))
            self.counters["partner_chunks"] += 1
            return True

    @property
    def _max_chunk(self) -> int:
        """Longest chunk accepted: it must fit in a freshly re-synchronised buffer."""
        return self.config.max_backlog_samples - SAMPLES_PER_FRAME

    def _place_partner(self, first: int, x: np.ndarray) -> None:
        """Write a chunk that starts at or after the stream end: zero-fill a short gap,
        re-synchronise after a long one or when the buffer bound would be exceeded."""
        end, stop = self._partner_end, first + x.shape[0]
        if first > end and first - end > self.config.max_gap_s * SAMPLE_RATE:
            self._resync(first, "resyncs", f"gap > max_gap_s before sample {first}")
        elif not self._partner.fits(stop):
            at = first if first > end else end
            self._resync(at, "backlog_resyncs", f"sample {stop} lies beyond max_backlog_s="
                         f"{self.config.max_backlog_s:g} of buffered audio")
        elif first > end:
            self.counters["gaps"] += 1
            self.counters["gaps_zero_filled_samples"] += first - end
            self._partner.write(end, np.zeros(first - end, np.float32))
        self._partner.write(first, x)
        self._partner_end = stop

    def push_agent_audio(self, samples: np.ndarray, first_sample_index: int) -> bool:
        """The agent's own speech at its PLAYBACK sample index; may come ahead (TTS lookahead)."""
        with self._lock:
            x, counter, msg = check_audio("agent", samples, first_sample_index, self._max_chunk)
            if x is None:
                return self._reject(counter, msg)
            first, n = int(first_sample_index), int(x.shape[0])
            refused = self._agent_refusal(first, n)
            if refused:
                return self._reject(*refused)
            if self._agent.written_count(first, first + n) == n:
                return self._reject("duplicates", f"agent audio: range [{first}, {first + n}) already received")
            if not self._agent.fits(first + n) and self._partner_end is not None:
                self._resync(self._partner_end, "backlog_resyncs", (
                    f"agent sample {first + n} lies beyond max_backlog_s="
                    f"{self.config.max_backlog_s:g} of buffered audio"))
            if not self._agent.fits(first + n):
                return self._reject("rejected_too_far_ahead", (
                    f"agent audio: chunk at sample {first} lies beyond max_backlog_s of buffer"))
            if self._partner_end is not None and first < self._stats_end:
                self.counters["agent_late_chunks"] += 1
            self._agent.write(first, x)
            self._agent_empty = False
            self.counters["agent_chunks"] += 1
            return True

    def _agent_refusal(self, first: int, n: int) -> tuple[str, str] | None:
        """(counter, message) when an agent chunk cannot be placed; anchors the agent buffer
        when nothing else has (no partner audio yet)."""
        limit = self.config.max_ahead_s * SAMPLE_RATE
        clock = self._partner_end
        if clock is None and not self._agent_empty:
            clock = self._agent.start
        if clock is not None and first > clock + limit:
            return "rejected_too_far_ahead", (
                f"agent audio: chunk at sample {first} is more than max_ahead_s="
                f"{self.config.max_ahead_s} ahead of the clock (sample {clock})")
        if self._partner_end is None:         # nothing to anchor to yet
            if self._agent_empty:
                self._agent.reset(first)
            elif first < self._agent.start:
                if self._agent.end - first > limit:
                    return "rejected_too_far_ahead", (
                        f"agent audio: chunk at sample {first} would span more than "
                        f"max_ahead_s={self.config.max_ahead_s} of buffered audio")
                self._agent.extend_start(first)
        if first + n <= self._agent.start:
            return "dropped_out_of_order", (
                f"agent audio: chunk [{first}, {first + n}) is older than the kept buffer "
                f"(from sample {self._agent.start})")
        return None

    def push_partner_motion(self, frame: np.ndarray, media_time_s: float) -> bool:
        """One tracked partner face frame (56 FLAME coefficients) at its media time."""
        with self._lock:
            got, counter, msg = check_face(frame, media_time_s)
            if got is None:
                return self._reject(counter, msg)
            v, t = got
            last = self._motion.last_time
            if last is not None and t == last:
                return self._reject("duplicates", f"partner motion: duplicate stamp {t:.3f} s")
            if last is not None and t < last:
                return self._reject("dropped_out_of_order", (
                    f"partner motion: stamp {t:.3f} s is older than the newest {last:.3f} s"))
            if self._partner_end is not None and t > self._partner_end / SAMPLE_RATE + self.config.max_ahead_s:
                return self._reject("rejected_too_far_ahead", (
                    f"partner motion: stamp {t:.3f} s is more than max_ahead_s ahead of the clock"))
            self._motion.add(t, v)
            self.counters["partner_motion_frames"] += 1
            return True

    # ------------------------------------------------------------------ stream start / resync
    def _start_stream(self, first: int) -> None:
        origin = first // SAMPLES_PER_FRAME
        self._clear_stream(origin)
        base = origin * SAMPLES_PER_FRAME
        if first > base:   # part of the first frame before the first sample: silence, not a gap
            self._partner.write(base, np.zeros(first - base, np.float32))
            self._partner_end = first
        self._rebase_agent(base)

    def _rebase_agent(self, base: int) -> None:
        """Keep agent audio from ``base`` on (TTS pushed ahead); drop what lies before it or
        what would not fit the buffer bound."""
        if self._agent_empty:
            self._agent.reset(base)
            return
        self._agent.trim_before(base)
        try:
            self._agent.extend_start(base)
        except BacklogOverflow:
            self._agent.reset(base)
            self._agent_empty = True

    def _resync(self, first: int, counter: str, why: str) -> None:
        """Restart the streams at sample ``first`` (both buffers rebased there); frames already
        computed are kept, the in-flight hop is discarded."""
        old_next, ready = self._next_emit, self._ready
        self._generation += 1
        self._start_stream(first)
        self._motion.trim_before(self._origin / FRAME_RATE)
        self._ready = ready
        self.counters[counter] += 1
        if counter != "resyncs":
            self.counters["resyncs"] += 1
        self.counters["frames_skipped"] += max(0, self._next_emit - old_next)
        self.last_rejection = f"partner audio: {why}; re-synchronised"

    # ------------------------------------------------------------------ hops
    def _window_end(self, final: bool) -> tuple[int, int] | None:
        """(window end, emit end) of the next hop, or None when it is not computable yet."""
        c = self.config
        la, hop = c.lookahead_frames, c.hop_frames
        if final:
            win_end = -(-self._partner_end // SAMPLES_PER_FRAME)
            return None if win_end <= self._next_emit else (win_end, win_end)
        win_end = self._next_emit + hop - 1 + la
        if self._partner_end < win_end * SAMPLES_PER_FRAME:
            return None
        behind = (self._partner_end // SAMPLES_PER_FRAME - win_end) // hop   # whole hops overdue
        if c.max_overdue_s is not None and behind * hop > c.max_overdue_s * FRAME_RATE:
            self._next_emit += behind * hop
            win_end += behind * hop
            self.counters["frames_skipped"] += behind * hop
            self._pending = None           # nothing to cross-fade with across the jump
        return win_end, self._next_emit + hop

    def _make_job(self, final: bool) -> HopJob | None:
        if self._origin is None or self._flushed:
            return None
        ends = self._window_end(final)
        if ends is None:
            return None
        win_end, emit_end = ends
        c = self.config
        win_start = max(self._origin, min(win_end - c.lookahead_frames - c.window_frames,
                                          self._next_emit))
        a, b = win_start * SAMPLES_PER_FRAME, win_end * SAMPLES_PER_FRAME
        partner, agent = self._partner.read(a, b), self._agent.read(a, b)
        # running statistics: add the new block up to the window end (deterministic: hop grid)
        if b > self._stats_end:
            self._pstats.add(b, self._partner.read(self._stats_end, b))
            self._astats.add(b, self._agent.read(self._stats_end, b))
            self._stats_end = b
        motion, filled = self._motion.frames(win_start, win_end - win_start)
        ea, eb = self._next_emit * SAMPLES_PER_FRAME, emit_end * SAMPLES_PER_FRAME
        return HopJob(self._generation, win_start, win_end, self._next_emit, emit_end,
                    normalise(partner, c.norm_mode, self._pstats), normalise(agent, c.norm_mode, self._astats),
                    motion, filled, frame_levels_db(self._partner.read(ea, eb)),
                    frame_levels_db(self._agent.read(ea, eb)), final)

    def _run_model(self, job: HopJob) -> tuple[np.ndarray, float]:
        torch = self._torch
        t0 = time.perf_counter()
        with torch.inference_mode():
            # one pinned, non-blocking copy per input and hop; the read-back is the only sync
            self_audio, partner_audio, motion = to_device(
                [job.agent[None], job.partner[None], job.motion[None]], self.device)
            out = self.model(self_audio, partner_audio, motion,
                             num_frames=job.win_end - job.win_start, normalize_audio=False)
            pred = out[0].float().cpu().numpy()
        return pred, (time.perf_counter() - t0) * 1000.0

    def _commit(self, job: HopJob, pred: np.ndarray, ms: float) -> None:
        out = crossfade(job, pred, self._pending, self.config.crossfade_frames)
        self._pending = (job.win_start, pred)
        frames = []
        for i in range(job.emit_end - job.emit_start):
            k = job.emit_start + i
            p_score, p_speak = self._vad_p.update(float(job.partner_db[i]))
            a_score, a_speak = self._vad_a.update(float(job.agent_db[i]))
            filled = bool(job.filled[k - job.win_start])
            self.counters["partner_face_filled_frames"] += int(filled)
            frames.append(OutputFrame(
                index=k, media_time_s=k * SAMPLES_PER_FRAME / SAMPLE_RATE,
                weights=out[i].astype(np.float32), partner_vad=p_score, agent_vad=a_score,
                partner_speaking=p_speak, agent_speaking=a_speak, partner_face_filled=filled))
        self._ready.append(FrameBatch(frames, None if job.final else job.win_end * SAMPLES_PER_FRAME))
        self.counters["frames_emitted"] += len(frames)
        self.counters["hops"] += 1
        self._hop_ms.append(ms)
        self._compute_s += ms / 1000.0
        self._next_emit = job.emit_end
        keep = (self._next_emit - self.config.window_frames - 1) * SAMPLES_PER_FRAME
        self._partner.trim_before(keep)
        self._agent.trim_before(keep)
        self._motion.trim_before(keep / SAMPLE_RATE)

    def _run_hops(self, final: bool) -> None:
        with self._pull_lock:
            while True:
                with self._lock:
                    job = self._make_job(final=False)
                    if job is None and final:
                        job = self._make_job(final=True)
                        if job is not None:
                            self._flushed = True
                    if job is None:
                        return
                pred, ms = self._run_model(job)
                expected = (job.win_end - job.win_start, DIM)
                if pred.shape != expected:
                    raise RuntimeError(f"model returned shape {list(pred.shape)} for a window of "
                                       f"{expected[0]} frames; expected {list(expected)}")
                with self._lock:
                    if job.generation == self._generation:
                        self._commit(job, pred, ms)

    def _take(self) -> list[FrameBatch]:
        with self._lock:
            out, self._ready = self._ready, []
        return out

    def pull_batches(self) -> list[FrameBatch]:
        """Run every hop the partner clock allows; the hops computed, in order."""
        self._run_hops(final=False)
        return self._take()

    def flush_batches(self) -> list[FrameBatch]:
        """End of conversation: compute every remaining frame (the last window has less
        lookahead).  No further frames come out until :meth:`reset` starts a new one."""
        self._run_hops(final=True)
        return self._take()

    def pull(self) -> list[OutputFrame]:
        """:meth:`pull_batches` as one flat list of frames."""
        return [f for b in self.pull_batches() for f in b.frames]

    def flush(self) -> list[OutputFrame]:
        """:meth:`flush_batches` as one flat list of frames."""
        return [f for b in self.flush_batches() for f in b.frames]

    # ------------------------------------------------------------------ diagnostics
    @property
    def clock_s(self) -> float:
        """Media time covered by partner audio so far."""
        return 0.0 if self._partner_end is None else self._partner_end / SAMPLE_RATE

    @property
    def clock_samples(self) -> int | None:
        """Partner samples covered so far (absolute index); None before the first chunk."""
        return self._partner_end

    @property
    def buffered_samples(self) -> int:
        """Largest storage any audio buffer holds now (bounded by ``max_backlog_s``)."""
        return max(self._partner.allocated, self._agent.allocated)

    @property
    def stats(self) -> dict[str, float]:
        """Hop timing: count, per-hop compute ms (mean/p50/p95/p99/max/last), real-time factor."""
        with self._lock:
            ms = np.asarray(self._hop_ms, dtype=np.float64)
            emitted_s = self.counters["frames_emitted"] / FRAME_RATE
            d = {"hops": float(self.counters["hops"]), "frames_emitted": float(self.counters["frames_emitted"]),
                 "clock_s": self.clock_s, "latency_s": self.config.latency_s,
                 "backlog_s": max(0.0, self.clock_s - (self._next_emit + self.config.lookahead_frames)
                                  * SAMPLES_PER_FRAME / SAMPLE_RATE) if self._origin is not None else 0.0,
                 "rtf": self._compute_s / emitted_s if emitted_s > 0 else 0.0}
            if ms.size:
                d.update(hop_ms_mean=float(ms.mean()), hop_ms_p50=float(np.percentile(ms, 50)),
                         hop_ms_p95=float(np.percentile(ms, 95)), hop_ms_p99=float(np.percentile(ms, 99)),
                         hop_ms_max=float(ms.max()), hop_ms_last=float(ms[-1]))
            return d
