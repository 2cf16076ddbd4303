"""The agent's speech, queued by playback sample index until the loudspeaker reaches it.

Why by index and not by arrival: the conversation clock says sample ``i`` of ``agent/audio``
plays at ``origin + i / rate``, and ``dualtalk_node`` moves the lips for that same index. The
voice player writes the loudspeaker stream position by position; whatever was announced for a
position plays there, silence where nothing was (a gap), and samples that arrive after their
position was written are dropped and counted (``late_samples``), never played late, which would
put the voice behind the face. ROS-free so the policy is tested on its own.

Barge-in (:meth:`VoiceBuffer.stop`): queued speech is dropped, and so is any chunk announced
before the stop that is still on its way (its indices end at or before the highest index
announced when the stop came), so an interrupted sentence cannot resume.
"""
from __future__ import annotations

import bisect

import numpy as np


class VoiceBuffer:
    """Chunks ``(first index, int16 samples)``; not thread-safe (the node holds a lock)."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = int(max_samples)
        self._firsts: list[int] = []
        self._chunks: list[np.ndarray] = []
        self.announced_end = 0          # highest index + 1 ever announced
        self._cancel_before = 0          # barge-in: indices below this never play
        self.late_samples = 0
        self.stopped_samples = 0
        self.overflow_samples = 0

    @property
    def queued(self) -> int:
        return sum(c.size for c in self._chunks)

    def add(self, first: int, samples: np.ndarray, written_until: int) -> int:
        """Queue ``samples`` (int16, mono) for indices ``first...``; ``written_until`` is the
        first index not yet written to the device. Returns how many samples were queued."""
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        end = first + samples.size
        self.announced_end = max(self.announced_end, end)
        skip = max(0, max(written_until, self._cancel_before) - first)
        if skip:
            late = min(samples.size, max(0, written_until - first))
            cancelled = min(samples.size, skip) - late
            self.late_samples += late
            self.stopped_samples += max(0, cancelled)
            samples, first = samples[skip:], first + skip
        if samples.size == 0:
            return 0
        if self.queued + samples.size > self.max_samples:
            self.overflow_samples += samples.size
            return 0
        k = bisect.bisect_right(self._firsts, first)
        self._firsts.insert(k, first)
        self._chunks.insert(k, samples)
        return samples.size

    def read(self, start: int, count: int) -> np.ndarray:
        """int16 samples for indices ``[start, start + count)``: queued speech where announced,
        silence elsewhere (where chunks overlap, the one starting later, or the one received
        later at the same index, wins). What is read is consumed."""
        out = np.zeros(count, dtype=np.int16)
        stop = start + count
        keep_f, keep_c = [], []
        for f, c in zip(self._firsts, self._chunks):
            e = f + c.size
            lo, hi = max(f, start), min(e, stop)
            if lo < hi:
                out[lo - start:hi - start] = c[lo - f:hi - f]
            if e > stop:             # keep only what is still to be played
                cut = max(0, stop - f)
                keep_f.append(f + cut)
                keep_c.append(c[cut:])
        self._firsts, self._chunks = keep_f, keep_c
        return out

    def discard_before(self, index: int) -> int:
        """Drop (and count as late) queued samples below ``index``: the writer skipped those
        positions (it fell behind the clock). Returns how many were dropped."""
        dropped = 0
        keep_f, keep_c = [], []
        for f, c in zip(self._firsts, self._chunks):
            cut = min(c.size, max(0, index - f))
            dropped += cut
            if cut < c.size:
                keep_f.append(f + cut)
                keep_c.append(c[cut:])
        self._firsts, self._chunks = keep_f, keep_c
        self.late_samples += dropped
        return dropped

    def reset(self) -> int:
        """A new conversation clock: drop the queue (counted as stopped) and forget what the
        old clock announced. Returns the number of queued samples dropped."""
        n = self.stop()
        self.announced_end = self._cancel_before = 0
        return n

    def stop(self) -> int:
        """Barge-in: drop everything queued and cancel what was announced but not yet
        received. Returns the number of queued samples dropped."""
        n = self.queued
        self.stopped_samples += n
        self._firsts, self._chunks = [], []
        self._cancel_before = self.announced_end
        return n
