"""The input side every streaming runner shares: partner/agent audio and partner face pushed in,
checked, placed on the conversation clock, refused and counted; batches handed out.

Why one base class: the sliding window (:class:`~dualtalk_core.streaming.engine.StreamingEngine`)
and the live runner (:class:`~dualtalk_core.streaming.live_runner.LiveRunner`) promise the same
contract (``streaming/runners.py``): the same clock, the same faults with the same counters and
messages, the same refusals.  Written twice, a fix to one drifted from the other; here it is
written once, and a runner adds only what its model needs:

* ``_face_track``: the class that keeps partner face frames (``add``, ``last_time``);
* ``_clear_stream`` (call ``super()``): its own per-stream state;
* ``_accept_agent``: what a checked agent chunk goes through before :meth:`_store_agent` (when
  speech is *late*, i.e. the model already used its range, differs between the runners);
* ``_old_agent``: the refusal of an agent chunk wholly behind what the runner keeps;
* ``_run(final)``: compute what the input allows into ``self._ready``; ``_backlog_s``.

Threading: every push and the bookkeeping happen under ``self._lock``; ``self._pull_lock`` keeps
one puller at a time (the runner's model runs outside ``self._lock``, so pushes never wait for
it); ``self._generation`` changes when a reset or re-synchronisation discards in-flight work.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np

from dualtalk_core.layout import FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.buffers import AudioTimeline, BacklogOverflow
from dualtalk_core.streaming.checks import check_audio, check_face
from dualtalk_core.streaming.frames import COUNTER_NAMES, FrameBatch, OutputFrame
from dualtalk_core.vad import EnergyVad


class RunnerInputs:
    """Base of the streaming runners: pushes, clock, faults, counters, batches handed out.

    A subclass sets ``model`` and ``config`` after ``super().__init__(device)`` and then calls
    :meth:`reset`.  Nothing raises out of a ``push_*`` for bad data: it returns ``False``,
    counts, and leaves the reason in :attr:`last_rejection`."""

    _face_track: type
    """Class of the partner face store, built as ``_face_track(config.face_tolerance_s)``."""

    def __init__(self, device: str) -> None:
        import torch

        from dualtalk_core.devices import resolve_device

        self._torch = torch
        self.device = resolve_device(device, "streaming device")
        self._lock = threading.RLock()          # guards the buffers and counters
        self._pull_lock = threading.Lock()      # one puller at a time (hops are sequential)
        self._generation = 0
        self.last_rejection: str = ""

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Forget everything and start a new conversation (counters and timings too)."""
        with self._lock:
            self._generation += 1
            self.counters: dict[str, int] = {name: 0 for name in COUNTER_NAMES}
            self._hop_ms: deque[float] = deque(maxlen=4096)   # compute ms per hop / live step
            self._compute_s = 0.0
            self._faces = self._face_track(self.config.face_tolerance_s)
            self._agent = AudioTimeline(0, self.config.max_backlog_samples)
            self._agent_empty = True
            self._clear_stream(None)

    def _clear_stream(self, origin: int | None) -> None:
        """Per-stream state from frame ``origin`` (None: waiting for the first partner chunk);
        a runner extends it with its own (model state, statistics)."""
        base = 0 if origin is None else origin * SAMPLES_PER_FRAME
        self._origin = origin
        self._partner = AudioTimeline(base, self.config.max_backlog_samples)
        self._partner_end: int | None = None if origin is None else base
        self._recent_starts: deque[int] = deque(maxlen=256)
        self._next_emit = self._late_counted = origin or 0
        self._ready: list[FrameBatch] = []
        self._vad_p, self._vad_a = EnergyVad(self.config.vad), EnergyVad(self.config.vad)
        self._flushed = False

    # ------------------------------------------------------------------ push
    def _reject(self, counter: str, message: str) -> bool:
        self.counters[counter] += 1
        self.last_rejection = message
        return False

    @property
    def _max_chunk(self) -> int:
        """Longest chunk accepted: it must fit in a freshly re-synchronised buffer."""
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
        """Write a chunk that starts at or after the stream end: zero-fill a short gap,
        re-synchronise after a long one or when the buffer bound would be exceeded."""
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
        """The agent's own speech at its PLAYBACK sample index; may (should) come ahead (TTS
        lookahead).  Speech for a range the model already used is late: counted, and used
        where it still can be (the runner's module docstring)."""
        with self._lock:
            x, counter, msg = check_audio("agent", samples, first_sample_index, self._max_chunk)
            if x is None:
                return self._reject(counter, msg)
            return self._accept_agent(x, int(first_sample_index))

    def _accept_agent(self, x: np.ndarray, first: int) -> bool:
        """A checked agent chunk: refuse it (:meth:`_agent_refusal`), count lateness, and
        :meth:`_store_agent` it (lock held).  Returns accepted."""
        raise NotImplementedError

    def _store_agent(self, x: np.ndarray, first: int) -> bool:
        """Write an admitted agent chunk: a range already received is a duplicate; past the
        buffer bound both streams re-synchronise (or, before partner audio, it is refused)."""
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
        when nothing else has (no partner audio yet: TTS audio may come first)."""
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
        return self._old_agent(first, n)

    def _old_agent(self, first: int, n: int) -> tuple[str, str] | None:
        """(counter, message) for an agent chunk wholly behind what the runner keeps."""
        raise NotImplementedError

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
        """Restart the streams at sample ``first`` (both buffers rebased there, fresh per-stream
        state); frames already computed are kept, in-flight work is discarded."""
        old_next, ready = self._next_emit, self._ready
        self._generation += 1
        self._start_stream(first)
        self._ready = ready
        self.counters[counter] += 1
        if counter != "resyncs":
            self.counters["resyncs"] += 1
        self.counters["frames_skipped"] += max(0, self._next_emit - old_next)
        self.last_rejection = f"partner audio: {why}; re-synchronised"

    # ------------------------------------------------------------------ pull
    def _output_frame(self, k: int, weights: np.ndarray, partner_db: float, agent_db: float,
                      filled: bool) -> OutputFrame:
        """Frame ``k`` with both speakers' VAD stepped by its audio levels (dB, frames in
        order); a guessed partner face (``filled``) is counted."""
        p_score, p_speak = self._vad_p.update(partner_db)
        a_score, a_speak = self._vad_a.update(agent_db)
        self.counters["partner_face_filled_frames"] += int(filled)
        return OutputFrame(
            index=k, media_time_s=k * SAMPLES_PER_FRAME / SAMPLE_RATE,
            weights=weights.astype(np.float32), partner_vad=p_score, agent_vad=a_score,
            partner_speaking=p_speak, agent_speaking=a_speak, partner_face_filled=filled)

    def _run(self, final: bool) -> None:
        """Compute every frame the input allows (``final``: the tail too) into ``_ready``."""
        raise NotImplementedError

    def _take(self) -> list[FrameBatch]:
        with self._lock:
            out, self._ready = self._ready, []
        return out

    def pull_batches(self) -> list[FrameBatch]:
        """Compute every frame the input allows so far; the batches computed, in order."""
        self._run(final=False)
        return self._take()

    def flush_batches(self) -> list[FrameBatch]:
        """End of conversation: compute every remaining frame (with less lookahead than usual).
        No further frames come out until :meth:`reset` starts a new one."""
        self._run(final=True)
        return self._take()

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

    def _backlog_s(self) -> float:
        """Seconds of due frames not computed yet (after the first partner chunk; lock held)."""
        raise NotImplementedError

    @property
    def stats(self) -> dict[str, float]:
        """Compute timing: ``hops`` (window hops, or live steps that emitted frames), per-hop
        compute ms (``hop_ms_mean/p50/p95/p99/max/last``), ``backlog_s``, real-time factor."""
        with self._lock:
            ms = np.asarray(self._hop_ms, dtype=np.float64)
            emitted_s = self.counters["frames_emitted"] / FRAME_RATE
            d = {"hops": float(self.counters["hops"]),
                 "frames_emitted": float(self.counters["frames_emitted"]),
                 "clock_s": self.clock_s, "latency_s": self.config.latency_s,
                 "backlog_s": self._backlog_s() if self._origin is not None else 0.0,
                 "rtf": self._compute_s / emitted_s if emitted_s > 0 else 0.0}
            if ms.size:
                d.update(hop_ms_mean=float(ms.mean()), hop_ms_p50=float(np.percentile(ms, 50)),
                         hop_ms_p95=float(np.percentile(ms, 95)),
                         hop_ms_p99=float(np.percentile(ms, 99)), hop_ms_max=float(ms.max()),
                         hop_ms_last=float(ms[-1]))
            return d
