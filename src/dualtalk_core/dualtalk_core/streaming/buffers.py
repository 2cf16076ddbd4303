"""Bounded, sample-indexed buffers behind the streaming engine.

Why separate: the engine's job is scheduling hops and blending; these classes own the boring but
error-prone index arithmetic (absolute sample indices on the conversation clock, trimming old
data, reading ranges that are partly missing) so it can be tested and reasoned about alone.

* :class:`AudioTimeline` - audio written at absolute sample indices; unwritten samples read as 0.
* :class:`BlockStats` - sums of x and x^2 over consecutive blocks, for running normalisation.
* :class:`MotionTrack` - partner face frames at irregular media times, resampled to 25 fps with a
  per-frame "filled" flag (interpolated across a gap or held at an edge).
"""
from __future__ import annotations

from collections import deque

import numpy as np

from dualtalk_core.layout import DIM, FRAME_RATE


class BacklogOverflow(ValueError):
    """A write or extension that would make an :class:`AudioTimeline` hold more than its bound."""


class AudioTimeline:
    """Mono float32 audio addressed by absolute sample index, keeping only a bounded tail.

    ``write`` places samples anywhere at or after ``start`` (the oldest index still held); the
    range between existing data and a write further ahead is zero and marked unwritten.
    ``read(a, b)`` returns exactly ``b - a`` samples, zero where nothing was written or the range
    was already trimmed.  ``trim_before(i)`` forgets everything before ``i``.

    Memory is bounded for any index: storage never spans more than ``max_samples``; a write or
    :meth:`extend_start` that would need more raises :class:`BacklogOverflow` before allocating
    anything (the engine then re-synchronises).  Check first with :meth:`fits`.
    """

    def __init__(self, start: int = 0, max_samples: int | None = None) -> None:
        self.max_samples = max_samples
        self.reset(start)

    def reset(self, start: int = 0) -> None:
        self.start = int(start)
        self._data = np.zeros(0, dtype=np.float32)
        self._written = np.zeros(0, dtype=bool)

    @property
    def end(self) -> int:
        """One past the last index that storage covers (written or zero-filled)."""
        return self.start + self._data.shape[0]

    @property
    def allocated(self) -> int:
        """Samples of storage held now (the quantity :attr:`max_samples` bounds)."""
        return int(self._data.shape[0])

    def fits(self, end: int) -> bool:
        """Whether writing up to ``end`` keeps storage within the bound."""
        return self.max_samples is None or end - self.start <= self.max_samples

    def _ensure(self, end: int) -> None:
        need = end - self.start
        if need <= self._data.shape[0]:
            return
        if self.max_samples is not None and need > self.max_samples:
            raise BacklogOverflow(f"audio buffer would span {need} samples from index "
                                  f"{self.start}; the bound is {self.max_samples}")
        grow = need - self._data.shape[0]
        self._data = np.concatenate([self._data, np.zeros(grow, dtype=np.float32)])
        self._written = np.concatenate([self._written, np.zeros(grow, dtype=bool)])

    def write(self, first: int, samples: np.ndarray) -> int:
        """Write ``samples`` at ``first``; parts before ``start`` are dropped. Returns samples written."""
        samples = np.asarray(samples, dtype=np.float32)
        skip = max(0, self.start - first)
        if skip >= samples.shape[0]:
            return 0
        first += skip
        samples = samples[skip:]
        self._ensure(first + samples.shape[0])
        a = first - self.start
        self._data[a : a + samples.shape[0]] = samples
        self._written[a : a + samples.shape[0]] = True
        return int(samples.shape[0])

    def written_count(self, a: int, b: int) -> int:
        """How many samples in [a, b) were written (not zero-filled)."""
        lo, hi = max(a, self.start), min(b, self.end)
        if hi <= lo:
            return 0
        return int(np.count_nonzero(self._written[lo - self.start : hi - self.start]))

    def read(self, a: int, b: int) -> np.ndarray:
        out = np.zeros(max(0, b - a), dtype=np.float32)
        lo, hi = max(a, self.start), min(b, self.end)
        if hi > lo:
            out[lo - a : hi - a] = self._data[lo - self.start : hi - self.start]
        return out

    def extend_start(self, new_start: int) -> None:
        """Move ``start`` earlier (prepending unwritten zeros) so older writes are kept."""
        grow = self.start - int(new_start)
        if grow <= 0:
            return
        if self.max_samples is not None and self._data.shape[0] + grow > self.max_samples:
            raise BacklogOverflow(f"audio buffer would span {self._data.shape[0] + grow} samples "
                                  f"from index {new_start}; the bound is {self.max_samples}")
        self._data = np.concatenate([np.zeros(grow, np.float32), self._data])
        self._written = np.concatenate([np.zeros(grow, bool), self._written])
        self.start = int(new_start)

    def trim_before(self, index: int) -> None:
        """Forget everything before ``index`` (all of it, and move ``start`` there, when
        ``index`` lies beyond the stored end)."""
        if index >= self.end:
            if index > self.start:
                self.reset(index)
            return
        cut = max(0, index - self.start)
        if cut == 0:
            return
        self._data = self._data[cut:].copy()
        self._written = self._written[cut:].copy()
        self.start += cut


class BlockStats:
    """Running mean/variance over the most recent blocks of a signal.

    The engine adds one block per hop (the audio between the previous and the current hop clock),
    so the statistics depend only on the audio and the hop grid - never on how the audio was
    chunked on arrival - which keeps the streaming output deterministic.  Sums are float64.
    """

    def __init__(self, context_samples: int) -> None:
        self.context_samples = int(context_samples)
        self.reset()

    def reset(self) -> None:
        self._blocks: deque[tuple[int, int, float, float]] = deque()  # (end_index, n, sum, sumsq)

    def add(self, end_index: int, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float64)
        if x.size == 0:
            return
        self._blocks.append((int(end_index), int(x.size), float(x.sum()), float(np.dot(x, x))))
        if self.context_samples > 0:
            while len(self._blocks) > 1 and self._blocks[0][0] <= end_index - self.context_samples:
                self._blocks.popleft()

    def mean_var(self) -> tuple[float, float]:
        n = sum(b[1] for b in self._blocks)
        if n == 0:
            return 0.0, 0.0
        s = sum(b[2] for b in self._blocks)
        ss = sum(b[3] for b in self._blocks)
        mean = s / n
        return mean, max(ss / n - mean * mean, 0.0)


class MotionTrack:
    """Partner face frames at irregular media times, resampled onto the 25 fps frame grid.

    Frames must arrive in time order (the engine drops older/duplicate stamps before calling
    :meth:`add`).  :meth:`frames` gives values at frame times k/25: linear interpolation between
    the received frames around each time, held constant before the first / after the last one,
    zeros (FLAME neutral) when nothing was received.  A frame counts as *filled* when no received
    frame lies within ``tolerance_s`` of its time, i.e. its value is a guess.
    """

    def __init__(self, tolerance_s: float = 1.0 / FRAME_RATE) -> None:
        self.tolerance_s = float(tolerance_s)
        self.reset()

    def reset(self) -> None:
        self._times = np.zeros(0, dtype=np.float64)
        self._values = np.zeros((0, DIM), dtype=np.float32)

    @property
    def last_time(self) -> float | None:
        return float(self._times[-1]) if self._times.size else None

    def __len__(self) -> int:
        return int(self._times.size)

    def add(self, time_s: float, frame: np.ndarray) -> None:
        self._times = np.append(self._times, float(time_s))
        self._values = np.concatenate([self._values, np.asarray(frame, np.float32)[None, :]])

    def trim_before(self, time_s: float) -> None:
        """Forget frames before ``time_s`` but keep the last one before it (for interpolation)."""
        keep_from = int(np.searchsorted(self._times, time_s, side="left")) - 1
        if keep_from > 0:
            self._times = self._times[keep_from:]
            self._values = self._values[keep_from:]

    def frames(self, first_frame: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Values [count, 56] float32 and filled flags [count] bool for frames first..first+count-1."""
        t = (first_frame + np.arange(count)) / FRAME_RATE
        if self._times.size == 0:
            return np.zeros((count, DIM), np.float32), np.ones(count, dtype=bool)
        times, values = self._times, self._values
        hi = np.searchsorted(times, t, side="left")          # first received time >= t
        lo = np.clip(hi - 1, 0, times.size - 1)
        hi_c = np.clip(hi, 0, times.size - 1)
        t_lo, t_hi = times[lo], times[hi_c]
        span = t_hi - t_lo
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(span > 0, (t - t_lo) / np.where(span > 0, span, 1.0), 0.0)
        w = np.clip(w, 0.0, 1.0)
        w = np.where(hi >= times.size, 0.0, w)                # after the last: hold it
        w = np.where(hi == 0, 1.0, w)                         # before the first: hold it
        out = (values[lo] * (1.0 - w)[:, None] + values[hi_c] * w[:, None]).astype(np.float32)
        nearest = np.minimum(np.abs(t - t_lo), np.abs(t_hi - t))
        filled = nearest > self.tolerance_s + 1e-9
        return out, filled
