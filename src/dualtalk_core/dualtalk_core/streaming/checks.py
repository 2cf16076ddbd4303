"""Validation of pushed inputs: one function per input kind, returning what was wrong.

Why separate from the engine: every runner (sliding window today, a causal model later) must
refuse the same bad inputs with the same counters and messages; nothing here raises.  Each
check returns ``(value or None, counter name, message)``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from dualtalk_core.layout import DIM


def check_audio(stream: str, samples: Any, first: Any,
                max_samples: int | None = None) -> tuple[np.ndarray | None, str, str]:
    """A 1-D finite float chunk at an int index >= 0 (at most ``max_samples`` long)."""
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
    if max_samples is not None and x.shape[0] > max_samples:
        return None, "rejected_bad_shape", (
            f"{stream} audio: chunk of {x.shape[0]} samples is longer than the buffer bound "
            f"({max_samples} samples, max_backlog_s); push it in pieces")
    if not np.all(np.isfinite(x)):
        return None, "rejected_nonfinite", (
            f"{stream} audio: chunk at sample {int(first)} holds NaN/Inf; dropped whole")
    return x.astype(np.float32, copy=False), "", ""


def check_face(frame: Any, media_time_s: Any) -> tuple[tuple[np.ndarray, float] | None, str, str]:
    """A finite [56] frame at a finite media time >= 0 -> ((frame, time), "", "")."""
    try:
        t = float(media_time_s)
    except (TypeError, ValueError):
        return None, "rejected_bad_input", (
            f"partner motion: media_time_s must be a number, got {media_time_s!r}")
    if not math.isfinite(t) or t < 0:
        return None, "rejected_bad_input", (
            f"partner motion: media_time_s must be finite and >= 0, got {media_time_s!r}")
    try:
        v = np.asarray(frame, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return None, "rejected_bad_input", f"partner motion: not numeric ({exc})"
    if v.shape != (DIM,):
        return None, "rejected_bad_shape", (
            f"partner motion: expected shape [{DIM}], got {list(v.shape)}")
    if not np.all(np.isfinite(v)):
        return None, "rejected_nonfinite", f"partner motion at {t:.3f} s holds NaN/Inf"
    return (v, t), "", ""
