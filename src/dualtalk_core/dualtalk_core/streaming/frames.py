"""What a streaming runner hands out: frames, grouped as they were computed.

Why groups: a sliding-window engine computes one hop of frames at a time, a causal model one
step; a consumer that publishes per hop (``BlendshapeSequence``) or measures when a hop became
computable needs the grouping, so runners return :class:`FrameBatch` objects rather than a flat
list that would have to be re-cut with the hop length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COUNTER_NAMES = (
    "partner_chunks", "agent_chunks", "partner_motion_frames",
    "dropped_out_of_order", "duplicates", "gaps", "gaps_zero_filled_samples",
    "overlap_trimmed_samples", "rejected_nonfinite", "rejected_bad_shape", "rejected_bad_input",
    "rejected_too_far_ahead", "agent_late_chunks", "resyncs", "backlog_resyncs",
    "frames_skipped", "partner_face_filled_frames", "hops", "frames_emitted",
)
"""Fault and progress counters every runner keeps (``runner.counters``)."""


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


@dataclass
class FrameBatch:
    """Consecutive frames computed together.

    ``ready_sample``: the partner-audio sample count (absolute index) whose arrival made the
    batch computable - for the sliding window, the hop's last frame plus the lookahead; None
    for a batch flushed at the end of a conversation (computed without that audio)."""

    frames: list[OutputFrame]
    ready_sample: int | None
