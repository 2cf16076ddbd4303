"""Streaming DualTalk: live audio and face in, agent face frames out at 25 fps, bounded latency.

Why: DualTalk as released is offline (BiLSTM and unmasked attention see the whole clip).  A robot
needs frames *now*.  The engine re-runs the ordinary offline model on a sliding window - ``W``
seconds of left context plus ``L`` seconds of lookahead - every hop ``H``, and cross-fades the
overlapping predictions of consecutive hops so there are no jumps at hop boundaries.  It is pure
Python (no ROS); ``dualtalk_ros``'s node wraps it.

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

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

import numpy as np

from dualtalk_core.config_io import YamlConfigMixin
from dualtalk_core.layout import DIM, FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.buffers import AudioTimeline, BlockStats, MotionTrack
from dualtalk_core.vad import EnergyVad, VadConfig, frame_levels_db

NORM_MODES = ("running", "window", "none")
_EPS = 1e-7  # as the released per-clip normalisation


def _frames(seconds: float, name: str) -> int:
    """Seconds -> whole frames; raises naming ``name`` when not a multiple of 40 ms."""
    f = seconds * FRAME_RATE
    if abs(f - round(f)) > 1e-6:
        raise ValueError(f"StreamingConfig.{name}: expected a multiple of {1 / FRAME_RATE:g} s "
                         f"(one 25 fps frame), got {seconds!r}")
    return int(round(f))


@dataclass
class StreamingConfig(YamlConfigMixin):
    """Window geometry, normalisation, fault limits and VAD of the streaming engine.

    window_s:    left context fed to the model before the emission point (>= hop_s).
    lookahead_s: future audio the model sees beyond the newest emitted frame (>= 0.04 s); it is
                 the engine's latency floor.
    hop_s:       how often the model is re-run; frames come out in batches of this size.
    crossfade_s: length of the linear blend from the previous hop's prediction to the new one at
                 the start of each batch (0 = none; at most hop_s and lookahead_s - 0.04 s).
    All four must be multiples of 0.04 s (one frame).
    norm_mode:   ``running`` (default; statistics of the last ``norm_context_s`` of each stream),
                 ``window`` (each window on its own) or ``none`` (raw audio into the model).
    face_tolerance_s: a partner face frame further than this from every received one is "filled".
    max_gap_s:   partner audio gaps up to this are zero-filled; longer ones re-synchronise.
    max_ahead_s: how far ahead of the partner clock agent audio / face frames may be pushed.
    max_backlog_s: when compute falls behind and more than this much output is overdue, skip
                 whole hops to the newest one (counted in ``frames_skipped``); 0 = never skip
                 (deterministic, the default; a robot that must stay live sets e.g. 1.0).
    """

    window_s: float = 2.0
    lookahead_s: float = 0.4
    hop_s: float = 0.2
    crossfade_s: float = 0.2
    norm_mode: str = "running"
    norm_context_s: float = 30.0
    face_tolerance_s: float = 0.04
    max_gap_s: float = 5.0
    max_ahead_s: float = 30.0
    max_backlog_s: float = 0.0
    vad: VadConfig = field(default_factory=VadConfig)

    def __post_init__(self) -> None:
        if isinstance(self.vad, Mapping):
            self.vad = VadConfig.from_dict(self.vad)
        self.validate()

    def validate(self) -> None:
        for f in fields(self):
            if f.name in ("norm_mode", "vad"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"StreamingConfig.{f.name}: expected a finite number >= 0, got {v!r}")
            setattr(self, f.name, float(v))
        if self.norm_mode not in NORM_MODES:
            raise ValueError(f"StreamingConfig.norm_mode: expected one of {NORM_MODES}, "
                             f"got {self.norm_mode!r}")
        if not isinstance(self.vad, VadConfig):
            raise ValueError(f"StreamingConfig.vad: expected VadConfig or a dict, got {self.vad!r}")
        w, la, h, cf = (_frames(self.window_s, "window_s"), _frames(self.lookahead_s, "lookahead_s"),
                        _frames(self.hop_s, "hop_s"), _frames(self.crossfade_s, "crossfade_s"))
        if h < 1:
            raise ValueError(f"StreamingConfig.hop_s: expected >= 0.04 s, got {self.hop_s}")
        if la < 1:
            raise ValueError(f"StreamingConfig.lookahead_s: expected >= 0.04 s (frame k needs its "
                             f"own audio), got {self.lookahead_s}")
        if w < h:
            raise ValueError(f"StreamingConfig.window_s: expected >= hop_s ({self.hop_s}), "
                             f"got {self.window_s}")
        if cf > h or cf > la - 1:
            raise ValueError(f"StreamingConfig.crossfade_s: expected <= hop_s ({self.hop_s}) and <= "
                             f"lookahead_s - 0.04 ({self.lookahead_s - 0.04:g}), got {self.crossfade_s}")

    # frames -------------------------------------------------------------------------------
    @property
    def window_frames(self) -> int:
        return _frames(self.window_s, "window_s")

    @property
    def lookahead_frames(self) -> int:
        return _frames(self.lookahead_s, "lookahead_s")

    @property
    def hop_frames(self) -> int:
        return _frames(self.hop_s, "hop_s")

    @property
    def crossfade_frames(self) -> int:
        return _frames(self.crossfade_s, "crossfade_s")

    @property
    def latency_s(self) -> float:
        """Worst-case algorithmic latency of a frame behind the partner clock (L + H)."""
        return self.lookahead_s + self.hop_s

    # (de)serialisation: to_dict / from_dict / to_yaml / from_yaml come from YamlConfigMixin ----
    _YAML_WHAT = "streaming config file"
    _YAML_SECTION = "streaming"  # a file with a ``streaming:`` section is accepted too

    def replace(self, **changes: Any) -> "StreamingConfig":
        d = self.to_dict()
        d.update(changes)
        return StreamingConfig.from_dict(d)


_PRESET_STREAMING: dict[str, dict[str, float]] = {
    # Chosen with bench/bench_streaming.py on the 2-core dev machine: for a trained ``cpu`` model
    # 4 s of left context halves the streaming-vs-offline error of 2 s (8 s gains little more),
    # and a 0.4 s hop keeps the real-time factor near 0.1 at 0.8 s worst-case latency.
    "tiny": dict(window_s=4.0, lookahead_s=0.4, hop_s=0.4, crossfade_s=0.36),
    "cpu": dict(window_s=4.0, lookahead_s=0.4, hop_s=0.4, crossfade_s=0.36),
    "base": dict(window_s=2.0, lookahead_s=0.4, hop_s=0.4, crossfade_s=0.36),
    "paper": dict(window_s=2.0, lookahead_s=0.4, hop_s=0.4, crossfade_s=0.36),
}


def default_streaming_config(preset_name: str = "cpu") -> StreamingConfig:
    """Sane W/L/H for a model preset (``tiny``, ``cpu``, ``base``, ``paper``)."""
    if preset_name not in _PRESET_STREAMING:
        raise ValueError(f"unknown preset {preset_name!r}; known presets: {sorted(_PRESET_STREAMING)}")
    return StreamingConfig(**_PRESET_STREAMING[preset_name])


@dataclass
class OutputFrame:
    """One agent face frame.  ``weights`` are the 56 FLAME coefficients (dualtalk_core.layout)."""

    index: int
    media_time_s: float
    weights: np.ndarray
    partner_vad: float
    agent_vad: float
    partner_speaking: bool
    agent_speaking: bool
    partner_face_filled: bool


COUNTER_NAMES = (
    "partner_chunks", "agent_chunks", "partner_motion_frames",
    "dropped_out_of_order", "duplicates", "gaps", "gaps_zero_filled_samples",
    "overlap_trimmed_samples", "rejected_nonfinite", "rejected_bad_shape", "rejected_bad_input",
    "rejected_too_far_ahead", "agent_late_chunks", "resyncs", "frames_skipped",
    "partner_face_filled_frames", "hops", "frames_emitted",
)


@dataclass
class _Job:
    """Everything one hop needs, copied out under the lock so the model runs without it."""

    generation: int
    win_start: int          # first frame of the window
    win_end: int            # one past the last frame of the window
    emit_start: int
    emit_end: int
    partner: np.ndarray     # normalised [n]
    agent: np.ndarray
    motion: np.ndarray      # [T, 56]
    filled: np.ndarray      # [T] bool
    partner_db: np.ndarray  # level of each emitted frame
    agent_db: np.ndarray


class StreamingEngine:
    """Sliding-window streaming inference around a DualTalk-like model.

    ``model`` is anything callable as ``model(self_audio [1,n], partner_audio [1,n],
    partner_motion [1,T,56], num_frames=T, normalize_audio=False) -> [1,T,56]`` (a
    :class:`dualtalk_core.model.dualtalk.DualTalk`, possibly quantised).  Push methods may be called from
    one thread while another calls :meth:`pull`; the model runs outside the buffer lock, so pushes
    never wait for a hop.  ``pull`` raises only if the model itself fails.
    """

    def __init__(self, model: Callable, config: StreamingConfig | None = None,
                 device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.model = model
        if hasattr(model, "eval"):
            model.eval()
        if hasattr(model, "to") and not _is_quantized(model):
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
            self._agent = AudioTimeline(0)
            self._agent_empty = True
            self._clear_stream(None)

    def _clear_stream(self, origin_frame: int | None) -> None:
        """Per-stream state; ``origin_frame`` None = waiting for the first partner chunk."""
        c = self.config
        ctx = int(round(c.norm_context_s * SAMPLE_RATE))
        self._origin = origin_frame
        self._partner = AudioTimeline(0 if origin_frame is None else origin_frame * SAMPLES_PER_FRAME)
        self._partner_end: int | None = None if origin_frame is None else origin_frame * SAMPLES_PER_FRAME
        self._recent_starts: deque[int] = deque(maxlen=256)
        self._next_emit = origin_frame or 0
        self._stats_end = self._partner_end or 0
        self._pstats, self._astats = BlockStats(ctx), BlockStats(ctx)
        self._pending: tuple[int, np.ndarray] | None = None
        self._ready: list[OutputFrame] = []
        self._vad_p, self._vad_a = EnergyVad(c.vad), EnergyVad(c.vad)
        self._flushed = False

    # ------------------------------------------------------------------ validation helpers
    def _reject(self, counter: str, message: str) -> bool:
        self.counters[counter] += 1
        self.last_rejection = message
        return False

    def _check_audio(self, stream: str, samples: Any, first: Any) -> tuple[np.ndarray | None, str, str]:
        if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or first < 0:
            return None, "rejected_bad_input", (
                f"{stream} audio: first_sample_index must be an int >= 0, got {first!r}")
        try:
            x = np.asarray(samples)
        except Exception as exc:  # noqa: BLE001 - anything unconvertible is bad input
            return None, "rejected_bad_input", f"{stream} audio: not an array ({exc})"
        if x.dtype.kind != "f":
            return None, "rejected_bad_input", (
                f"{stream} audio: expected float samples in [-1, 1] (float32), got dtype {x.dtype}")
        if x.ndim != 1 or x.shape[0] == 0:
            return None, "rejected_bad_shape", (
                f"{stream} audio: expected a non-empty 1-D mono chunk [k], got shape {list(x.shape)}")
        if not np.all(np.isfinite(x)):
            return None, "rejected_nonfinite", (
                f"{stream} audio: chunk at sample {int(first)} holds NaN/Inf; dropped whole")
        return x.astype(np.float32, copy=False), "", ""

    # ------------------------------------------------------------------ push
    def push_partner_audio(self, samples: np.ndarray, first_sample_index: int) -> bool:
        """Partner (microphone) audio; the partner stream drives the clock.  Returns accepted."""
        with self._lock:
            x, counter, msg = self._check_audio("partner", samples, first_sample_index)
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
            elif first > end:
                gap = first - end
                if gap > self.config.max_gap_s * SAMPLE_RATE:
                    self._resync(first)
                else:
                    self.counters["gaps"] += 1
                    self.counters["gaps_zero_filled_samples"] += gap
                    self._partner.write(end, np.zeros(gap, np.float32))
            self._partner.write(first, x)
            self._partner_end = first + x.shape[0]
            self._recent_starts.append(int(first_sample_index))
            self.counters["partner_chunks"] += 1
            return True

    def push_agent_audio(self, samples: np.ndarray, first_sample_index: int) -> bool:
        """The agent's own speech at its PLAYBACK sample index; may come ahead (TTS lookahead)."""
        with self._lock:
            x, counter, msg = self._check_audio("agent", samples, first_sample_index)
            if x is None:
                return self._reject(counter, msg)
            first, n = int(first_sample_index), int(x.shape[0])
            clock = self._partner_end
            if clock is None and not self._agent_empty:
                clock = self._agent.start
            if clock is not None and first > clock + self.config.max_ahead_s * SAMPLE_RATE:
                return self._reject("rejected_too_far_ahead", (
                    f"agent audio: chunk at sample {first} is more than max_ahead_s="
                    f"{self.config.max_ahead_s} ahead of the clock (sample {clock})"))
            if self._partner_end is None:         # nothing to anchor to yet
                if self._agent_empty:
                    self._agent.reset(first)
                elif first < self._agent.start:
                    if self._agent.end - first > self.config.max_ahead_s * SAMPLE_RATE:
                        return self._reject("rejected_too_far_ahead", (
                            f"agent audio: chunk at sample {first} would span more than "
                            f"max_ahead_s={self.config.max_ahead_s} of buffered audio"))
                    self._agent.extend_start(first)
            if first + n <= self._agent.start:
                return self._reject("dropped_out_of_order", (
                    f"agent audio: chunk [{first}, {first + n}) is older than the kept buffer "
                    f"(from sample {self._agent.start})"))
            if self._agent.written_count(first, first + n) == n:
                return self._reject("duplicates", f"agent audio: range [{first}, {first + n}) already received")
            if self._partner_end is not None and first < self._stats_end:
                self.counters["agent_late_chunks"] += 1
            self._agent.write(first, x)
            self._agent_empty = False
            self.counters["agent_chunks"] += 1
            return True

    def push_partner_motion(self, frame: np.ndarray, media_time_s: float) -> bool:
        """One tracked partner face frame (56 FLAME coefficients) at its media time."""
        with self._lock:
            try:
                t = float(media_time_s)
            except (TypeError, ValueError):
                return self._reject("rejected_bad_input", f"partner motion: media_time_s must be a "
                                    f"number, got {media_time_s!r}")
            if not math.isfinite(t) or t < 0:
                return self._reject("rejected_bad_input", f"partner motion: media_time_s must be "
                                    f"finite and >= 0, got {media_time_s!r}")
            try:
                v = np.asarray(frame, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                return self._reject("rejected_bad_input", f"partner motion: not numeric ({exc})")
            if v.shape != (DIM,):
                return self._reject("rejected_bad_shape", (
                    f"partner motion: expected shape [{DIM}], got {list(v.shape)}"))
            if not np.all(np.isfinite(v)):
                return self._reject("rejected_nonfinite", f"partner motion at {t:.3f} s holds NaN/Inf")
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
        if self._agent_empty:
            self._agent.reset(base)
        else:
            self._agent.extend_start(base)

    def _resync(self, first: int) -> None:
        old_next, ready = self._next_emit, self._ready
        self._generation += 1
        self._start_stream(first)
        self._ready = ready
        self.counters["resyncs"] += 1
        self.counters["frames_skipped"] += max(0, self._next_emit - old_next)
        self.last_rejection = f"partner audio: gap > max_gap_s before sample {first}; re-synchronised"

    # ------------------------------------------------------------------ hops
    def _make_job(self, final: bool) -> _Job | None:
        if self._origin is None or self._flushed:
            return None
        c = self.config
        la, hop, win = c.lookahead_frames, c.hop_frames, c.window_frames
        if not final:
            win_end = self._next_emit + hop - 1 + la
            if self._partner_end < win_end * SAMPLES_PER_FRAME:
                return None
            behind = (self._partner_end // SAMPLES_PER_FRAME - win_end) // hop   # whole hops overdue
            if c.max_backlog_s > 0 and behind * hop > c.max_backlog_s * FRAME_RATE:
                self._next_emit += behind * hop
                win_end += behind * hop
                self.counters["frames_skipped"] += behind * hop
                self._pending = None           # nothing to cross-fade with across the jump
            emit_end = self._next_emit + hop
        else:
            win_end = -(-self._partner_end // SAMPLES_PER_FRAME)
            if win_end <= self._next_emit:
                return None
            emit_end = win_end
        win_start = max(self._origin, min(win_end - la - win, self._next_emit))
        a, b = win_start * SAMPLES_PER_FRAME, win_end * SAMPLES_PER_FRAME
        partner, agent = self._partner.read(a, b), self._agent.read(a, b)
        # running statistics: add the new block up to the window end (deterministic: hop grid)
        if b > self._stats_end:
            self._pstats.add(b, self._partner.read(self._stats_end, b))
            self._astats.add(b, self._agent.read(self._stats_end, b))
            self._stats_end = b
        partner_n = self._normalise(partner, self._pstats)
        agent_n = self._normalise(agent, self._astats)
        motion, filled = self._motion.frames(win_start, win_end - win_start)
        ea, eb = self._next_emit * SAMPLES_PER_FRAME, emit_end * SAMPLES_PER_FRAME
        return _Job(self._generation, win_start, win_end, self._next_emit, emit_end,
                    partner_n, agent_n, motion, filled,
                    frame_levels_db(self._partner.read(ea, eb)), frame_levels_db(self._agent.read(ea, eb)))

    def _normalise(self, x: np.ndarray, stats: BlockStats) -> np.ndarray:
        mode = self.config.norm_mode
        if mode == "none":
            return x
        if mode == "window":
            mean, var = float(np.mean(x, dtype=np.float64)), float(np.var(x, dtype=np.float64))
        else:
            mean, var = stats.mean_var()
        return ((x.astype(np.float64) - mean) / math.sqrt(var + _EPS)).astype(np.float32)

    def _run_model(self, job: _Job) -> tuple[np.ndarray, float]:
        torch = self._torch
        t0 = time.perf_counter()
        with torch.inference_mode():
            dev = self.device
            self_audio = torch.from_numpy(job.agent)[None].to(dev)
            partner_audio = torch.from_numpy(job.partner)[None].to(dev)
            motion = torch.from_numpy(job.motion)[None].to(dev)
            out = self.model(self_audio, partner_audio, motion,
                             num_frames=job.win_end - job.win_start, normalize_audio=False)
            pred = out[0].float().cpu().numpy()
        return pred, (time.perf_counter() - t0) * 1000.0

    def _commit(self, job: _Job, pred: np.ndarray, ms: float) -> None:
        n_emit = job.emit_end - job.emit_start
        cur = pred[job.emit_start - job.win_start: job.emit_end - job.win_start]
        out = cur.copy()
        n_cf = self.config.crossfade_frames
        if self._pending is not None and n_cf > 0:
            p_start, prev = self._pending
            for i in range(min(n_cf, n_emit)):
                j = job.emit_start + i - p_start
                if 0 <= j < prev.shape[0]:
                    w = (i + 1) / (n_cf + 1)
                    out[i] = w * cur[i] + (1.0 - w) * prev[j]
        self._pending = (job.win_start, pred)
        for i in range(n_emit):
            k = job.emit_start + i
            p_score, p_speak = self._vad_p.update(float(job.partner_db[i]))
            a_score, a_speak = self._vad_a.update(float(job.agent_db[i]))
            filled = bool(job.filled[k - job.win_start])
            self.counters["partner_face_filled_frames"] += int(filled)
            self._ready.append(OutputFrame(
                index=k, media_time_s=k * SAMPLES_PER_FRAME / SAMPLE_RATE,
                weights=out[i].astype(np.float32), partner_vad=p_score, agent_vad=a_score,
                partner_speaking=p_speak, agent_speaking=a_speak, partner_face_filled=filled))
        self.counters["frames_emitted"] += n_emit
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
            self._run_hops_locked(final)

    def _run_hops_locked(self, final: bool) -> None:
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

    def pull(self) -> list[OutputFrame]:
        """Run every hop the partner clock allows and return the frames produced, in order."""
        self._run_hops(final=False)
        with self._lock:
            out, self._ready = self._ready, []
        return out

    def flush(self) -> list[OutputFrame]:
        """End of conversation: emit every remaining frame (the last window has less lookahead).

        No further frames come out until :meth:`reset` starts a new conversation."""
        self._run_hops(final=True)
        with self._lock:
            out, self._ready = self._ready, []
        return out

    # ------------------------------------------------------------------ diagnostics
    @property
    def clock_s(self) -> float:
        """Media time covered by partner audio so far."""
        return 0.0 if self._partner_end is None else self._partner_end / SAMPLE_RATE

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


def _is_quantized(model: Any) -> bool:
    """Dynamically quantised modules must not be moved with ``.to`` (they stay on CPU)."""
    try:
        return any("quantized" in type(m).__module__ for m in model.modules())
    except AttributeError:
        return False
