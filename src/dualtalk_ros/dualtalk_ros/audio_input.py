"""Validate and normalise incoming ``AudioChunk`` streams for the model: mono float32 at 16 kHz.

Why a class per stream: resampling a stream chunk by chunk must keep filter state between
chunks (``soxr.ResampleStream``) and keep the sample index running on the 16 kHz clock, and a
device that sends stereo or 48 kHz should still work (counted, logged once) rather than be
rejected. Chunks that cannot be used (unknown encoding, NaN, empty, rate 0) raise
:class:`~dualtalk_ros.conversions.MessageError` so the node can count and drop them.
"""
from __future__ import annotations

import numpy as np

from dualtalk_core.layout import SAMPLE_RATE

from .conversions import MessageError, audio_chunk_to_numpy


class AudioInput:
    """One incoming audio stream (partner or agent)."""

    def __init__(self, name: str, target_rate: int = SAMPLE_RATE) -> None:
        self.name = name
        self.target_rate = int(target_rate)
        self.counters = {"resampled_chunks": 0, "downmixed_chunks": 0}
        self._rs = None
        self._in_rate: int | None = None
        self._next_in: int | None = None
        self._out_index = 0

    def convert(self, msg) -> tuple[np.ndarray, int] | None:
        """``AudioChunk`` -> (float32 mono samples at 16 kHz, first sample index at 16 kHz).

        Returns None when a resampler buffered the whole chunk (nothing to push yet).
        """
        rate = int(msg.sample_rate)
        if rate <= 0:
            raise MessageError(f"{self.name} AudioChunk.sample_rate: expected > 0, got {rate}")
        data = audio_chunk_to_numpy(msg)
        if data.shape[0] == 0:
            raise MessageError(f"{self.name} AudioChunk: no samples")
        if not np.isfinite(data).all():
            raise MessageError(f"{self.name} AudioChunk at sample {msg.first_sample_index}: "
                               f"NaN/Inf samples")
        if data.shape[1] > 1:
            self.counters["downmixed_chunks"] += 1
            mono = data.mean(axis=1)
        else:
            mono = data[:, 0]
        first = int(msg.first_sample_index)
        if rate == self.target_rate:
            self._rs = None
            self._in_rate = rate
            return np.ascontiguousarray(mono, dtype=np.float32), first
        return self._resample(mono, first, rate)

    def _resample(self, mono: np.ndarray, first: int, rate: int):
        import soxr

        self.counters["resampled_chunks"] += 1
        if self._rs is None or rate != self._in_rate or first != self._next_in:
            self._rs = soxr.ResampleStream(rate, self.target_rate, 1, dtype="float32")
            self._out_index = int(round(first * self.target_rate / rate))
        self._in_rate = rate
        self._next_in = first + mono.shape[0]
        out = self._rs.resample_chunk(mono.astype(np.float32))
        if out.size == 0:
            return None
        start = self._out_index
        self._out_index += out.size
        return np.ascontiguousarray(out, dtype=np.float32), start
