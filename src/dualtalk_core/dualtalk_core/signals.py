"""Signal helpers shared by data synthesis, evaluation and rendering.

One definition each of per-frame speech energy, Pearson r, "speaking" frames and the jaw vs
speech correlation: the synthetic data drives the jaw with the energy, the evaluation scores the
jaw against it, the renderer draws speech levels from it, so they must agree. "Silence" is the
live VAD's switch-off level (:class:`dualtalk_core.vad.VadConfig` ``off_db``), so scoring
recorded data and the running graph agree on it.
"""
from __future__ import annotations

import math

import numpy as np

from dualtalk_core import layout
from dualtalk_core.vad import VadConfig

#: RMS of the live VAD's switch-off level: quieter frames are never "speaking"
SILENCE_RMS = 10.0 ** (VadConfig().off_db / 20.0)


def speech_energy_per_frame(audio: np.ndarray, num_frames: int | None = None,
                            smooth_frames: float = 1.0) -> np.ndarray:
    """RMS of each 640-sample (40 ms) frame, optionally Gaussian-smoothed: float32 [T].

    The synthetic data drives the jaw with it, and the evaluation correlates predicted jaw
    opening with it, so both use this one definition.
    """
    audio = np.asarray(audio, dtype=np.float32)
    spf = layout.SAMPLES_PER_FRAME
    t = layout.num_frames_for_samples(audio.size) if num_frames is None else num_frames
    padded = np.zeros(t * spf, np.float32)
    k = min(audio.size, padded.size)
    padded[:k] = audio[:k]
    rms = np.sqrt(np.mean(padded.reshape(t, spf).astype(np.float64) ** 2, axis=1))
    if smooth_frames > 0:
        from scipy.ndimage import gaussian_filter1d
        rms = gaussian_filter1d(rms, smooth_frames, mode="nearest")
    return rms.astype(np.float32)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-D arrays (nan when either is constant)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def speaking_mask(audio: np.ndarray, num_frames: int, rel_threshold: float = 0.1,
                  min_rms: float = SILENCE_RMS) -> np.ndarray:
    """Frames where the speaker's own smoothed energy exceeds both ``rel_threshold`` x its 95th
    percentile and ``min_rms`` (the VAD's silence level), so a track that is silence throughout
    has no speaking frames."""
    env = speech_energy_per_frame(audio, num_frames, smooth_frames=1.0)
    ref = np.percentile(env, 95)
    return env > max(rel_threshold * ref, min_rms)


def jaw_energy_correlation(jaw_open: np.ndarray, self_audio: np.ndarray,
                           mask: np.ndarray | None = None) -> float:
    """Pearson r between jaw opening (56-layout index 50) and own speech energy, speaking frames."""
    t = len(jaw_open)
    env = speech_energy_per_frame(self_audio, t, smooth_frames=1.0)
    if mask is None:
        mask = speaking_mask(self_audio, t)
    mask = np.asarray(mask, bool)[:t]
    return pearson(np.asarray(jaw_open)[:t][mask], env[mask])
