"""The ``live`` runner: a causal :class:`~dualtalk_core.model.live.LiveDualTalk` stepped as
audio and face frames arrive, under the same push/pull contract as the sliding window.

Why a second runner rather than a sliding window around the live model: the live model carries
its own state (LSTM, convolution buffers, bounded attention caches), so each push costs only its
new frames and the streamed output equals the offline output of the same model.  Re-running it
on windows would throw both away.

Emission rule.  With ``Ls`` / ``Lp`` the model's self / partner lookahead in frames, frame ``k``
is emitted once the partner audio covers frame ``k + Lp`` and the agent audio covers frame
``k + Ls``.  The partner audio is the clock (the microphone never runs ahead); the agent's own
speech is pushed ahead by a TTS, and ranges it never pushes are silence.  So the agent range a
frame needs is *final* once the partner clock says the frame is due: when the partner covers
frame ``P - 1``, agent audio up to frame ``P - Lp + Ls`` is fed to the model (unwritten = silence)
and is not revised.  A TTS must therefore push its speech at least ``self_lookahead_s -
partner_lookahead_s`` (plus a compute margin) ahead of its playback index; speech that comes
later still moves the lips from the first frame not yet computed (``agent_late_chunks``).  With a
negative ``Lp`` frames leave before their media time.

Partner face: frame ``j``'s motion is decided when the partner audio covers frame ``j``
(:class:`~dualtalk_core.streaming.held_motion.HeldMotion`: the newest face at or before it; a
missing one repeats the last and is counted in ``partner_face_filled_frames``).

Faults, counters and messages are the window engine's (:mod:`dualtalk_core.streaming.engine`,
``checks.py``): gaps zero-filled (``gaps``), a gap over ``max_gap_s`` or a buffer over
``max_backlog_s`` re-synchronises with a fresh model state (``resyncs`` / ``backlog_resyncs``,
``frames_skipped``), duplicates / out of order / NaN / bad shapes / too far ahead are refused and
counted, never raised.  A push of zero samples is ``rejected_bad_shape`` (as the engine); a big
push is fed to the model in pieces of ``PIECE_FRAMES``, so allocations stay bounded.

Settings used: the fault limits, ``face_tolerance_s``, ``vad``; ignored (window-only):
``window_s``, ``lookahead_s``, ``hop_s``, ``crossfade_s``, ``norm_mode``, ``norm_context_s`` (the
model has fixed log-mel statistics), ``max_overdue_s`` (a stateful model cannot skip input).
``config.latency_s`` is ``max(Ls, Lp, 0)`` in seconds.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from dualtalk_core.layout import DIM, FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.buffers import AudioTimeline, BacklogOverflow
from dualtalk_core.streaming.checks import check_audio, check_face
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.frames import COUNTER_NAMES, FrameBatch, OutputFrame
from dualtalk_core.streaming.held_motion import HeldMotion
from dualtalk_core.vad import EnergyVad, frame_levels_db

PIECE_FRAMES = 250
"""Most partner audio (in frames, 10 s) fed to the model in one step: bounds a big push."""
HORIZONS = ("self_lookahead_s", "partner_lookahead_s")


def with_model_horizons(config: StreamingConfig, model) -> StreamingConfig:
    """``config`` with the model's horizons filled in; ``ValueError`` naming both values when
    the configuration asks for different ones (they are fixed when the model is trained)."""
    have = {name: float(getattr(model.config, name)) for name in HORIZONS}
    for name, value in have.items():
        want = getattr(config, name)
        if want is not None and abs(float(want) - value) > 1e-9:
            raise ValueError(
                f"StreamingConfig.{name} = {float(want):g} s was requested, but the checkpoint's "
                f"model was trained with {name} = {value:g} s; horizons cannot change after "
                f"training: unset it or use a checkpoint trained with {float(want):g} s")
    return config.replace(**have)


@dataclass
class _Job:
    """Inputs for one model step, taken under the lock and run outside it."""

    generation: int
    state: object
    agent: np.ndarray
    partner: np.ndarray
    motion: np.ndarray
    flush_frames: int | None     # relative frame count to flush to, or None
    ready_sample: int | None


class LiveRunner:
    """Streaming runner around a live (causal) model; contract in ``streaming/runners.py``."""

    kind = "live"

    def __init__(self, model, config: StreamingConfig | None = None, device: str = "cpu"):
        import torch

        from dualtalk_core.devices import resolve_device

        if not hasattr(model, "init_state") or not getattr(model.config, "causal", False):
            raise ValueError("the live runner needs a causal model (LiveDualTalk, "
                             "config.causal=True); this one streams with the window runner")
        self._torch = torch
        self.device = resolve_device(device, "streaming device")
        self.model = model.eval().to(self.device)
        self.ls, self.lp = model.self_lookahead, model.partner_lookahead
        self.config = with_model_horizons(config or StreamingConfig(), model)
        self._lock = threading.RLock()
        self._pull_lock = threading.Lock()
        self._generation = 0
        self.last_rejection = ""
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Forget everything and start a new conversation (counters and timings too)."""
        with self._lock:
            self._generation += 1
            self.counters: dict[str, int] = {name: 0 for name in COUNTER_NAMES}
            self._step_ms: deque[float] = deque(maxlen=4096)
            self._compute_s = 0.0
            self._agent = AudioTimeline(0, self.config.max_backlog_samples)
            self._agent_empty = True
            self._faces = HeldMotion(self.config.face_tolerance_s)
            self._clear_stream(None)

    def _clear_stream(self, origin: int | None) -> None:
        """Per-conversation state from frame ``origin`` (None: before the first partner chunk)."""
        base = 0 if origin is None else origin * SAMPLES_PER_FRAME
        self._origin = origin
        self._partner = AudioTimeline(base, self.config.max_backlog_samples)
        self._partner_end: int | None = None if origin is None else base
        self._recent_starts: deque[int] = deque(maxlen=256)
        self._state = None if origin is None else self.model.init_state()
        self._fed_partner = self._fed_agent = base
        self._fed_motion = self._next_emit = origin or 0
        self._motion_filled: dict[int, bool] = {}
        self._ready: list[FrameBatch] = []
        self._vad_p, self._vad_a = EnergyVad(self.config.vad), EnergyVad(self.config.vad)
        self._flushed = False

    def warm_up(self) -> float:
        """One short step on silence with a throwaway state (lazy torch set-up happens here,
        not in the first real push); returns ms."""
        n = (max(self.ls, self.lp, 0) + 2) * SAMPLES_PER_FRAME
        t0 = time.perf_counter()
        state = self.model.init_state()
        self.model.step(state, np.zeros(n, np.float32), np.zeros(n, np.float32),
                        np.zeros((n // SAMPLES_PER_FRAME, DIM), np.float32))
        return (time.perf_counter() - t0) * 1000.0

    # ------------------------------------------------------------------ push
    def _reject(self, counter: str, message: str) -> bool:
        self.counters[counter] += 1
        self.last_rejection = message
        return False

    @property
    def _max_chunk(self) -> int:
        return self.config.max_backlog_samples - SAMPLES_PER_FRAME

    def push_partner_audio(self, samples: np.ndarray, first_sample_index: int) -> bool:
        """Partner (microphone) audio; the partner stream drives the clock.  Returns accepted."""
        with self._lock:
            x, counter, msg = check_audio("partner", samples, first_sample_index, self._max_chunk)
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

    def _place_partner(self, first: int, x: np.ndarray) -> None:
        """Zero-fill a short gap; re-synchronise after a long one or past the buffer bound."""
        end, stop = self._partner_end, first + x.shape[0]
        if first > end and first - end > self.config.max_gap_s * SAMPLE_RATE:
            self._resync(first, "resyncs", f"gap > max_gap_s before sample {first}")
        elif not self._partner.fits(stop):
            self._resync(max(first, end), "backlog_resyncs", f"sample {stop} lies beyond "
                         f"max_backlog_s={self.config.max_backlog_s:g} of buffered audio")
        elif first > end:
            self.counters["gaps"] += 1
            self.counters["gaps_zero_filled_samples"] += first - end
            self._partner.write(end, np.zeros(first - end, np.float32))
        self._partner.write(first, x)
        self._partner_end = stop

    def push_agent_audio(self, samples: np.ndarray, first_sample_index: int) -> bool:
        """The agent's own speech at its PLAYBACK sample index; should come ahead (module
        docstring): a range already fed to the model is late (counted, the rest is used)."""
        with self._lock:
            x, counter, msg = check_audio("agent", samples, first_sample_index, self._max_chunk)
            if x is None:
                return self._reject(counter, msg)
            first, n = int(first_sample_index), int(x.shape[0])
            refused = self._agent_refusal(first, n)
            if refused:
                return self._reject(*refused)
            if self._partner_end is not None and first < self._fed_agent:
                self.counters["agent_late_chunks"] += 1
                x, first = x[self._fed_agent - first:], self._fed_agent
                n = int(x.shape[0])
            if self._agent.written_count(first, first + n) == n:
                return self._reject("duplicates", f"agent audio: range [{first}, {first + n}) already received")
            if not self._agent.fits(first + n) and self._partner_end is not None:
                self._resync(self._partner_end, "backlog_resyncs", (
                    f"agent sample {first + n} lies beyond max_backlog_s="
                    f"{self.config.max_backlog_s:g} of buffered audio"))
            if not self._agent.fits(first + n):
                return self._reject("rejected_too_far_ahead", (
                    f"agent audio: chunk at sample {first} lies beyond max_backlog_s of buffer"))
            self._agent.write(first, x)
            self._agent_empty = False
            self.counters["agent_chunks"] += 1
            return True

    def _agent_refusal(self, first: int, n: int) -> tuple[str, str] | None:
        """(counter, message) when an agent chunk cannot be placed; anchors the agent buffer
        before the first partner chunk (TTS audio may come first)."""
        limit = self.config.max_ahead_s * SAMPLE_RATE
        clock = self._partner_end
        if clock is None and not self._agent_empty:
            clock = self._agent.start
        if clock is not None and first > clock + limit:
            return "rejected_too_far_ahead", (
                f"agent audio: chunk at sample {first} is more than max_ahead_s="
                f"{self.config.max_ahead_s} ahead of the clock (sample {clock})")
        if self._partner_end is None:
            if self._agent_empty:
                self._agent.reset(first)
            elif first < self._agent.start:
                if self._agent.end - first > limit:
                    return "rejected_too_far_ahead", (
                        f"agent audio: chunk at sample {first} would span more than "
                        f"max_ahead_s={self.config.max_ahead_s} of buffered audio")
                self._agent.extend_start(first)
        elif first + n <= self._fed_agent:
            return "agent_late_chunks", (
                f"agent audio: chunk [{first}, {first + n}) arrived after the frames that needed "
                f"it were computed (push it at least self_lookahead_s - partner_lookahead_s ahead)")
        return None

    def push_partner_motion(self, frame: np.ndarray, media_time_s: float) -> bool:
        """One tracked partner face frame (56 FLAME coefficients) at its media time."""
        with self._lock:
            got, counter, msg = check_face(frame, media_time_s)
            if got is None:
                return self._reject(counter, msg)
            v, t = got
            last = self._faces.last_time
            if last is not None and t == last:
                return self._reject("duplicates", f"partner motion: duplicate stamp {t:.3f} s")
            if last is not None and t < last:
                return self._reject("dropped_out_of_order", (
                    f"partner motion: stamp {t:.3f} s is older than the newest {last:.3f} s"))
            if (self._partner_end is not None
                    and t > self._partner_end / SAMPLE_RATE + self.config.max_ahead_s):
                return self._reject("rejected_too_far_ahead", (
                    f"partner motion: stamp {t:.3f} s is more than max_ahead_s ahead of the clock"))
            self._faces.add(t, v)
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
        """A fresh model state from sample ``first``; frames already computed are kept."""
        old_next, ready = self._next_emit, self._ready
        self._generation += 1
        self._start_stream(first)
        self._ready = ready
        self.counters[counter] += 1
        if counter != "resyncs":
            self.counters["resyncs"] += 1
        self.counters["frames_skipped"] += max(0, self._next_emit - old_next)
        self.last_rejection = f"partner audio: {why}; re-synchronised"

    # ------------------------------------------------------------------ steps
    def _make_job(self, final: bool) -> _Job | None:
        """The next piece of input for the model, the fed pointers advanced (lock held)."""
        if self._origin is None or self._flushed:
            return None
        p_end = min(self._partner_end, self._fed_partner + PIECE_FRAMES * SAMPLES_PER_FRAME)
        last_piece = p_end == self._partner_end
        covered = p_end // SAMPLES_PER_FRAME            # partner frames covered (absolute)
        agent_end = max(self._fed_agent, (covered - self.lp + self.ls) * SAMPLES_PER_FRAME)
        motion_end = covered
        flush_to = None
        if final and last_piece:
            total = -(-self._partner_end // SAMPLES_PER_FRAME)
            flush_to = total - self._origin
            agent_end = max(agent_end, (total + self.ls) * SAMPLES_PER_FRAME)
            motion_end = total
        motion_end = max(motion_end, self._fed_motion)
        if (flush_to is None and p_end == self._fed_partner and agent_end == self._fed_agent
                and motion_end == self._fed_motion):
            return None
        partner = self._partner.read(self._fed_partner, p_end)
        agent = self._agent.read(self._fed_agent, agent_end)
        motion, filled = self._faces.take(self._fed_motion, motion_end - self._fed_motion)
        self._motion_filled.update(zip(range(self._fed_motion, motion_end), filled.tolist()))
        self._fed_partner, self._fed_agent, self._fed_motion = p_end, agent_end, motion_end
        if flush_to is not None:
            self._flushed = True
        ready = None if flush_to is not None else covered * SAMPLES_PER_FRAME
        return _Job(self._generation, self._state, agent, partner, motion, flush_to, ready)

    def _run_model(self, job: _Job) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        frames, state = self.model.step(job.state, job.agent, job.partner, job.motion)
        parts = [frames]
        if job.flush_frames is not None:
            tail, _ = self.model.flush(state, job.flush_frames)
            parts.append(tail)
        out = self._torch.cat(parts).float().cpu().numpy()
        return out, (time.perf_counter() - t0) * 1000.0

    def _commit(self, job: _Job, pred: np.ndarray, ms: float) -> None:
        """Frames of one step -> a FrameBatch, with per-frame VAD and face-filled flags."""
        frames = []
        for i in range(pred.shape[0]):
            k = self._next_emit + i
            p_level = self._frame_level(self._partner, k + min(self.lp, 0))
            a_level = self._frame_level(self._agent, k)
            p_score, p_speak = self._vad_p.update(p_level)
            a_score, a_speak = self._vad_a.update(a_level)
            filled = self._motion_filled.pop(k + self.lp, False)
            self.counters["partner_face_filled_frames"] += int(filled)
            frames.append(OutputFrame(
                index=k, media_time_s=k * SAMPLES_PER_FRAME / SAMPLE_RATE,
                weights=pred[i].astype(np.float32), partner_vad=p_score, agent_vad=a_score,
                partner_speaking=p_speak, agent_speaking=a_speak, partner_face_filled=filled))
        self._next_emit += len(frames)
        if frames:
            self._ready.append(FrameBatch(frames, job.ready_sample))
            self.counters["hops"] += 1
        self.counters["frames_emitted"] += len(frames)
        self._step_ms.append(ms)
        self._compute_s += ms / 1000.0
        keep = (self._next_emit + min(self.lp, 0) - 1) * SAMPLES_PER_FRAME
        self._partner.trim_before(min(keep, self._fed_partner))
        self._agent.trim_before(min(self._next_emit * SAMPLES_PER_FRAME, self._fed_agent))

    def _frame_level(self, timeline: AudioTimeline, k: int) -> float:
        """Level (dB) of frame ``k``'s audio; frames before the stream start read silence."""
        a = max(k, self._origin) * SAMPLES_PER_FRAME
        return float(frame_levels_db(timeline.read(a, a + SAMPLES_PER_FRAME))[0])

    def _run(self, final: bool) -> None:
        with self._pull_lock:
            while True:
                with self._lock:
                    job = self._make_job(final)
                    if job is None:
                        return
                try:
                    pred, ms = self._run_model(job)
                except Exception as exc:
                    with self._lock:   # the state took part of the input: start afresh
                        if job.generation == self._generation:
                            self._resync(self._partner_end, "resyncs", f"model step failed ({exc})")
                    raise
                with self._lock:
                    if job.generation == self._generation:
                        self._commit(job, pred, ms)

    def _take(self) -> list[FrameBatch]:
        with self._lock:
            out, self._ready = self._ready, []
        return out

    def pull_batches(self) -> list[FrameBatch]:
        """Step the model over every input that arrived; the frames it emitted, in order."""
        self._run(final=False)
        return self._take()

    def flush_batches(self) -> list[FrameBatch]:
        """End of conversation: feed silence past the last partner sample (``model.flush``)
        so every frame up to it comes out.  Nothing more until :meth:`reset`."""
        self._run(final=True)
        return self._take()

    # ------------------------------------------------------------------ diagnostics
    @property
    def clock_s(self) -> float:
        return 0.0 if self._partner_end is None else self._partner_end / SAMPLE_RATE

    @property
    def clock_samples(self) -> int | None:
        return self._partner_end

    @property
    def buffered_samples(self) -> int:
        """Largest storage any audio buffer holds now (bounded by ``max_backlog_s``)."""
        return max(self._partner.allocated, self._agent.allocated)

    @property
    def stats(self) -> dict[str, float]:
        """Per-step compute ms (``hop_ms_*``: one step per pull with new input), RTF."""
        with self._lock:
            ms = np.asarray(self._step_ms, dtype=np.float64)
            emitted_s = self.counters["frames_emitted"] / FRAME_RATE
            due = (self._partner_end or 0) // SAMPLES_PER_FRAME - self.lp
            d = {"hops": float(self.counters["hops"]),
                 "frames_emitted": float(self.counters["frames_emitted"]),
                 "clock_s": self.clock_s, "latency_s": self.config.latency_s,
                 "backlog_s": max(0.0, (due - self._next_emit) / FRAME_RATE)
                 if self._origin is not None else 0.0,
                 "rtf": self._compute_s / emitted_s if emitted_s > 0 else 0.0}
            if ms.size:
                d.update(hop_ms_mean=float(ms.mean()), hop_ms_p50=float(np.percentile(ms, 50)),
                         hop_ms_p95=float(np.percentile(ms, 95)),
                         hop_ms_p99=float(np.percentile(ms, 99)), hop_ms_max=float(ms.max()),
                         hop_ms_last=float(ms[-1]))
            return d
