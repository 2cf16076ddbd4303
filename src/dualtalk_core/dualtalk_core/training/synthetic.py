"""Random clip-sides held in memory, for measuring and testing the training step.

Why: a throughput figure (samples/s, peak GPU memory) depends on the shapes only, not on what
the data says, and the GPU check must run on a bare machine without writing and decoding WAV
files (``soundfile`` may not be installed there). Realistic synthetic conversations, for
learning, are :mod:`dualtalk_core.data.synth`.
"""
from __future__ import annotations

import numpy as np

from dualtalk_core import layout
from dualtalk_core.data.dataset import ClipSide


def random_sides(count: int, seconds: float, seed: int = 0) -> list[ClipSide]:
    """``count`` clip-sides of ``seconds`` each: noise audio (std 0.1), small smooth-free random
    FLAME-56 motion (std 0.1), frame-aligned as :func:`~dualtalk_core.data.dataset.load_split`
    returns them."""
    if count < 1 or seconds <= 0:
        raise ValueError(f"random_sides: need count >= 1 and seconds > 0, got {count}, {seconds}")
    rng = np.random.default_rng(seed)
    frames = max(1, int(round(seconds * layout.FRAME_RATE)))
    n = frames * layout.SAMPLES_PER_FRAME
    sides = []
    for i in range(count):
        def noise(*shape: int) -> np.ndarray:
            return (0.1 * rng.standard_normal(shape)).astype(np.float32)

        sides.append(ClipSide(clip=f"random_{i:04d}", speaker=1 + i % 2, self_audio=noise(n),
                              partner_audio=noise(n), partner_motion=noise(frames, layout.DIM),
                              target_motion=noise(frames, layout.DIM)))
    return sides
