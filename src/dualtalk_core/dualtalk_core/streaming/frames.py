"""What a streaming runner hands out: frames, grouped as they were computed.

Why groups: a sliding-window engine computes one hop of frames at a time, a causal model one
step; a consumer that publishes per hop (``BlendshapeSequence``) or measures when a hop became
computable needs the grouping, so runners return :class:`FrameBatch` objects rather than a flat
list that would have to be re-cut with the hop length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dualtalk_core.layout import SAMPLES_PER_FRAME

COUNTER_NAMES = (
    "partner_chunks", "agent_chunks", "partner_motion_frames",
    "dropped_out_of_order", "duplicates", "gaps", "gaps_zero_filled_samples",
    "overlap_trimmed_samples", "rejected_nonfinite", "rejected_bad_shape", "rejected_bad_input",
    "rejected_too_far_ahead", "agent_late_chunks", "agent_audio_late_frames", "resyncs",
    "backlog_resyncs",
    "frames_skipped", "partner_face_filled_frames", "hops", "frames_emitted",
)
"""Fault and progress counters every runner keeps (``runner.counters``)."""


def late_agent_frames(late: np.ndarray, first: int, lookahead_frames: int,
                      counted_until: int, frame_limit: int | None = None) -> tuple[int, int]:
    """Frames that needed agent samples ``late`` (starting at index ``first``) and were (or will
    be) computed without them: ``(new frames, new counted_until)``.

    Why this definition: a frame ``k`` uses the agent's speech of its own 40 ms and of its
    ``lookahead_frames`` after it, so a late sample ``s`` is missing from frames
    ``s // 640 - lookahead .. s // 640``; each frame is counted once (``counted_until`` is the
    first frame not yet counted).  A late range that is all zeros (a barge-in's silence) carried
    no speech, so it costs no frame.  ``frame_limit``: frames from it on will still get the
    speech (a sliding window recomputes them).  This is ``agent_audio_late_frames`` (issue 17):
    the frames whose lips miss speech the TTS published too late."""
    if late.size == 0 or not np.any(late):
        return 0, counted_until
    lo = max(first // SAMPLES_PER_FRAME - max(int(lookahead_frames), 0), counted_until)
    hi = (first + int(late.size) - 1) // SAMPLES_PER_FRAME + 1
    if frame_limit is not None:
        hi = min(hi, int(frame_limit))
    return max(0, hi - lo), max(counted_until, hi)


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
