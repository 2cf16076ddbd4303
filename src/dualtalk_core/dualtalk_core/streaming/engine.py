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
already emitted are not revised (counters ``agent_late_chunks``, and ``agent_audio_late_frames``
for the frames computed without that speech).  Re-sending an identical range is
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

import time
from typing import Callable

import numpy as np

from dualtalk_core.devices import to_device
from dualtalk_core.layout import DIM, FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.buffers import BlockStats, MotionTrack
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.frames import FrameBatch, OutputFrame, late_agent_frames
from dualtalk_core.streaming.hops import HopJob, crossfade, is_quantized, normalise
from dualtalk_core.streaming.runner_inputs import RunnerInputs
from dualtalk_core.vad import frame_levels_db


class StreamingEngine(RunnerInputs):
    """Sliding-window streaming inference around a DualTalk-like model.

    ``model`` is anything callable as ``model(self_audio [1,n], partner_audio [1,n],
    partner_motion [1,T,56], num_frames=T, normalize_audio=False) -> [1,T,56]`` (a
    :class:`dualtalk_core.model.dualtalk.DualTalk`, possibly quantised).  Push methods may be
    called from one thread while another calls :meth:`pull_batches`; the model runs outside the
    buffer lock, so pushes never wait for a hop.  Pulling raises only if the model itself fails.
    The pushes, clock and faults are :class:`~dualtalk_core.streaming.runner_inputs.RunnerInputs`.
    """

    kind = "window"
    _face_track = MotionTrack    # interpolates between face frames (a window may revise them)

    def __init__(self, model: Callable, config: StreamingConfig | None = None,
                 device: str = "cpu") -> None:
        super().__init__(device)
        self.model = model
        if hasattr(model, "eval"):
            model.eval()
        if hasattr(model, "to") and not is_quantized(model):
            model.to(self.device)
        self.config = config if config is not None else StreamingConfig()
        self.config.validate()
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def _clear_stream(self, origin_frame: int | None) -> None:
        """Per-stream state, with the window's running statistics and pending hop."""
        super()._clear_stream(origin_frame)
        ctx = int(round(self.config.norm_context_s * SAMPLE_RATE))
        self._stats_end = self._partner_end or 0
        self._pstats, self._astats = BlockStats(ctx), BlockStats(ctx)
        self._pending: tuple[int, np.ndarray] | None = None

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

    # ------------------------------------------------------------------ push (window parts)
    def _accept_agent(self, x: np.ndarray, first: int) -> bool:
        """Audio for a range a hop already used (before ``_stats_end``) is kept for later
        windows and counted late (``agent_late_chunks``, ``agent_audio_late_frames``)."""
        refused = self._agent_refusal(first, int(x.shape[0]))
        if refused:
            return self._reject(*refused)
        if not self._store_agent(x, first):
            return False
        if self._partner_end is not None and first < self._stats_end:
            self.counters["agent_late_chunks"] += 1
            self._count_late_frames(x[:self._stats_end - first], first)
        return True

    def _count_late_frames(self, late: np.ndarray, first: int) -> None:
        """``agent_audio_late_frames``: emitted (or in-flight) frames whose window lacked the
        speech ``late`` at ``first`` (:func:`~dualtalk_core.streaming.frames.late_agent_frames`);
        later windows use it, so frames not yet computed are not counted."""
        la = self.config.lookahead_frames
        n, self._late_counted = late_agent_frames(
            late, first, la, self._late_counted, self._stats_end // SAMPLES_PER_FRAME - la + 1)
        self.counters["agent_audio_late_frames"] += n

    def _old_agent(self, first: int, n: int) -> tuple[str, str] | None:
        if first + n <= self._agent.start:
            return "dropped_out_of_order", (
                f"agent audio: chunk [{first}, {first + n}) is older than the kept buffer "
                f"(from sample {self._agent.start})")
        return None

    def _resync(self, first: int, counter: str, why: str) -> None:
        """Restart the streams at sample ``first``; face frames before it are dropped too."""
        super()._resync(first, counter, why)
        self._faces.trim_before(self._origin / FRAME_RATE)

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
        motion, filled = self._faces.frames(win_start, win_end - win_start)
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
            frames.append(self._output_frame(k, out[i], float(job.partner_db[i]),
                                             float(job.agent_db[i]),
                                             bool(job.filled[k - job.win_start])))
        self._ready.append(FrameBatch(frames, None if job.final else job.win_end * SAMPLES_PER_FRAME))
        self.counters["frames_emitted"] += len(frames)
        self.counters["hops"] += 1
        self._hop_ms.append(ms)
        self._compute_s += ms / 1000.0
        self._next_emit = job.emit_end
        keep = (self._next_emit - self.config.window_frames - 1) * SAMPLES_PER_FRAME
        self._partner.trim_before(keep)
        self._agent.trim_before(keep)
        self._faces.trim_before(keep / SAMPLE_RATE)

    def _run(self, final: bool) -> None:
        """Run every hop the partner clock allows (``final``: the tail too, whose last window
        has less lookahead)."""
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

    # ------------------------------------------------------------------ frames, diagnostics
    def pull(self) -> list[OutputFrame]:
        """:meth:`pull_batches` as one flat list of frames."""
        return [f for b in self.pull_batches() for f in b.frames]

    def flush(self) -> list[OutputFrame]:
        """:meth:`flush_batches` as one flat list of frames."""
        return [f for b in self.flush_batches() for f in b.frames]

    def _backlog_s(self) -> float:
        return max(0.0, self.clock_s - (self._next_emit + self.config.lookahead_frames)
                   * SAMPLES_PER_FRAME / SAMPLE_RATE)
