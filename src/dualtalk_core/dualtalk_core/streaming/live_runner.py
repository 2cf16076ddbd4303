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
later still moves the lips from the first frame not yet computed (``agent_late_chunks``; the
frames that were computed without it: ``agent_audio_late_frames``).  With a
negative ``Lp`` frames leave before their media time.

Partner face: frame ``j``'s motion is decided when the partner audio covers frame ``j``
(:class:`~dualtalk_core.streaming.held_motion.HeldMotion`: the newest face at or before it; a
missing one repeats the last and is counted in ``partner_face_filled_frames``).

Faults, counters and messages are the window engine's: both runners take them from
:class:`~dualtalk_core.streaming.runner_inputs.RunnerInputs` (and ``checks.py``): gaps
zero-filled (``gaps``), a gap over ``max_gap_s`` or a buffer over ``max_backlog_s``
re-synchronises with a fresh model state (``resyncs`` / ``backlog_resyncs``,
``frames_skipped``), duplicates / out of order / NaN / bad shapes / too far ahead are refused and
counted, never raised.  A push of zero samples is ``rejected_bad_shape`` (as the engine); a big
push is fed to the model in pieces of ``PIECE_FRAMES``, so allocations stay bounded.

Settings used: the fault limits, ``face_tolerance_s``, ``vad``; ignored (window-only):
``window_s``, ``lookahead_s``, ``hop_s``, ``crossfade_s``, ``norm_mode``, ``norm_context_s`` (the
model has fixed log-mel statistics), ``max_overdue_s`` (a stateful model cannot skip input).
``config.latency_s`` is ``max(Ls, Lp, 0)`` in seconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dualtalk_core.layout import DIM, FRAME_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.buffers import AudioTimeline
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.frames import FrameBatch, late_agent_frames
from dualtalk_core.streaming.held_motion import HeldMotion
from dualtalk_core.streaming.runner_inputs import RunnerInputs
from dualtalk_core.vad import frame_levels_db

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



class LiveRunner(RunnerInputs):
    """Streaming runner around a live (causal) model; contract in ``streaming/runners.py``, the
    pushes, clock and faults in :class:`~dualtalk_core.streaming.runner_inputs.RunnerInputs`."""

    kind = "live"
    _face_track = HeldMotion     # each face frame decided once, causally

    def __init__(self, model, config: StreamingConfig | None = None, device: str = "cpu"):
        if not hasattr(model, "init_state") or not getattr(model.config, "causal", False):
            raise ValueError("the live runner needs a causal model (LiveDualTalk, "
                             "config.causal=True); this one streams with the window runner")
        super().__init__(device)
        self.model = model.eval().to(self.device)
        self.ls, self.lp = model.self_lookahead, model.partner_lookahead
        self.config = with_model_horizons(config or StreamingConfig(), model)
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def _clear_stream(self, origin: int | None) -> None:
        """Per-conversation state from frame ``origin``, with a fresh model state and the
        pointers of what was fed to it."""
        super()._clear_stream(origin)
        base = 0 if origin is None else origin * SAMPLES_PER_FRAME
        self._state = None if origin is None else self.model.init_state()
        self._fed_partner = self._fed_agent = base
        self._fed_motion = origin or 0
        self._motion_filled: dict[int, bool] = {}

    def warm_up(self) -> float:
        """One short step on silence with a throwaway state (lazy torch set-up happens here,
        not in the first real push); returns ms."""
        n = (max(self.ls, self.lp, 0) + 2) * SAMPLES_PER_FRAME
        t0 = time.perf_counter()
        state = self.model.init_state()
        self.model.step(state, np.zeros(n, np.float32), np.zeros(n, np.float32),
                        np.zeros((n // SAMPLES_PER_FRAME, DIM), np.float32))
        return (time.perf_counter() - t0) * 1000.0

    # ------------------------------------------------------------------ push (live parts)
    def _accept_agent(self, x: np.ndarray, first: int) -> bool:
        """A range already fed to the model is late: its frames are counted, the rest of the
        chunk is used (``agent_late_chunks``; all of it late: refused with that counter)."""
        late = self._partner_end is not None and first < self._fed_agent
        if late:
            self._count_late_frames(x[:self._fed_agent - first], first)
        refused = self._agent_refusal(first, int(x.shape[0]))
        if refused:
            return self._reject(*refused)
        if late:
            self.counters["agent_late_chunks"] += 1
            x, first = x[self._fed_agent - first:], self._fed_agent
        return self._store_agent(x, first)

    def _count_late_frames(self, late: np.ndarray, first: int) -> None:
        """``agent_audio_late_frames``: the model already took ``late`` (at ``first``) as silence,
        so every frame that uses it, computed or not, goes without it (:func:`~dualtalk_core.
        streaming.frames.late_agent_frames`)."""
        n, self._late_counted = late_agent_frames(late, first, self.ls, self._late_counted)
        self.counters["agent_audio_late_frames"] += n

    def _old_agent(self, first: int, n: int) -> tuple[str, str] | None:
        if self._partner_end is not None and first + n <= self._fed_agent:
            return "agent_late_chunks", (
                f"agent audio: chunk [{first}, {first + n}) arrived after the frames that needed "
                f"it were computed (push it at least self_lookahead_s - partner_lookahead_s ahead)")
        return None

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
            filled = self._motion_filled.pop(k + self.lp, False)
            frames.append(self._output_frame(k, pred[i], p_level, a_level, filled))
        self._next_emit += len(frames)
        if frames:
            self._ready.append(FrameBatch(frames, job.ready_sample))
            self.counters["hops"] += 1
        self.counters["frames_emitted"] += len(frames)
        self._hop_ms.append(ms)
        self._compute_s += ms / 1000.0
        keep = (self._next_emit + min(self.lp, 0) - 1) * SAMPLES_PER_FRAME
        self._partner.trim_before(min(keep, self._fed_partner))
        self._agent.trim_before(min(self._next_emit * SAMPLES_PER_FRAME, self._fed_agent))

    def _frame_level(self, timeline: AudioTimeline, k: int) -> float:
        """Level (dB) of frame ``k``'s audio; frames before the stream start read silence."""
        a = max(k, self._origin) * SAMPLES_PER_FRAME
        return float(frame_levels_db(timeline.read(a, a + SAMPLES_PER_FRAME))[0])

    def _run(self, final: bool) -> None:
        """Step the model over every input that arrived (``final``: ``model.flush`` feeds
        silence past the last partner sample, so every frame up to it comes out)."""
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

    def _backlog_s(self) -> float:
        due = (self._partner_end or 0) // SAMPLES_PER_FRAME - self.lp
        return max(0.0, (due - self._next_emit) / FRAME_RATE)
