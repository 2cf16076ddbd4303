"""Helpers for the bag tests: a tiny DualTalk-layout clip written with soundfile + npz.

The clip is deterministic (seeded) and short, so make/replay tests run in seconds; its values are
known, so tests can compare what comes back from a bag with the source exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from dualtalk_core import layout


def write_synthetic_clip(root: Path, clip: str = "synth_clip_000", seconds: float = 2.0,
                         seed: int = 0, motion_sides: tuple[int, ...] = (1, 2)) -> dict:
    """Write ``<clip>_speaker{1,2}.wav`` (16 kHz float32) and the npz of ``motion_sides``.

    Returns ``{"audio": {1: arr, 2: arr}, "motion": {spk: [T,56]}}`` for comparisons.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n = int(seconds * layout.SAMPLE_RATE)
    t_frames = layout.num_frames_for_samples(n)
    out: dict = {"audio": {}, "motion": {}, "clip": clip, "samples": n, "frames": t_frames}
    tt = np.arange(n) / layout.SAMPLE_RATE
    for spk in (1, 2):
        env = (np.sin(2 * np.pi * 0.5 * tt + spk) > 0).astype(np.float32)  # turn-taking
        audio = (0.1 * env * np.sin(2 * np.pi * (180 + 40 * spk) * tt)
                 + 0.01 * rng.standard_normal(n)).astype(np.float32)
        sf.write(root / f"{clip}_speaker{spk}.wav", audio, layout.SAMPLE_RATE, subtype="FLOAT")
        out["audio"][spk] = audio
        if spk in motion_sides:
            motion = (0.1 * rng.standard_normal((t_frames, layout.DIM))).astype(np.float32)
            motion += np.linspace(0, 0.2, t_frames, dtype=np.float32)[:, None]
            fields = layout.npz_fields_from_flame56(motion)
            np.savez(root / f"{clip}_speaker{spk}.npz", **fields,
                     shape=np.zeros((t_frames, 100), np.float32))
            out["motion"][spk] = motion
    return out
