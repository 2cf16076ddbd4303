"""The arithmetic of one sliding-window hop: its inputs, normalisation and cross-fade.

Kept apart from :mod:`dualtalk_core.streaming.engine` (which schedules hops and guards the
buffers) so each piece reads on its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dualtalk_core.streaming.buffers import BlockStats

_EPS = 1e-7  # as the released per-clip normalisation


@dataclass
class HopJob:
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
    final: bool



def normalise(x: np.ndarray, mode: str, stats: BlockStats) -> np.ndarray:
    """``none``: unchanged; ``window``: this window's own mean/variance; ``running``: the
    statistics gathered hop by hop (see the engine's docstring)."""
    if mode == "none":
        return x
    if mode == "window":
        mean, var = float(np.mean(x, dtype=np.float64)), float(np.var(x, dtype=np.float64))
    else:
        mean, var = stats.mean_var()
    return ((x.astype(np.float64) - mean) / math.sqrt(var + _EPS)).astype(np.float32)


def crossfade(job: HopJob, pred: np.ndarray, previous: tuple[int, np.ndarray] | None,
              n_cf: int) -> np.ndarray:
    """The emitted frames of ``pred``, blended linearly over the first ``n_cf`` frames from
    the previous hop's prediction ``(its window start, its frames)`` so hops join smoothly."""
    cur = pred[job.emit_start - job.win_start: job.emit_end - job.win_start]
    out = cur.copy()
    if previous is not None and n_cf > 0:
        p_start, prev = previous
        for i in range(min(n_cf, out.shape[0])):
            j = job.emit_start + i - p_start
            if 0 <= j < prev.shape[0]:
                w = (i + 1) / (n_cf + 1)
                out[i] = w * cur[i] + (1.0 - w) * prev[j]
    return out


def is_quantized(model: Any) -> bool:
    """Dynamically quantised modules must not be moved with ``.to`` (they stay on CPU)."""
    try:
        return any("quantized" in type(m).__module__ for m in model.modules())
    except AttributeError:
        return False
