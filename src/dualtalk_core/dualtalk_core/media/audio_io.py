"""Reading audio for the model: any WAV/FLAC/OGG -> float32 mono at 16 kHz.

Resampling uses ``soxr`` (a well-kept, high-quality resampler); multi-channel audio is downmixed
by averaging the channels. Both are logged as warnings, because a silently resampled or
downmixed input is a common cause of "the lips are off" reports.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dualtalk_core.layout import SAMPLE_RATE

log = logging.getLogger(__name__)


def load_wav(path: str | Path, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read ``path`` -> float32 mono [n] at ``target_sr`` (resampled/downmixed with a warning)."""
    import soundfile as sf
    import soxr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)       # [n, channels]
    except RuntimeError as exc:  # soundfile.LibsndfileError subclasses RuntimeError
        raise ValueError(f"{path}: cannot read audio: {exc}") from exc
    if audio.shape[1] > 1:
        log.warning("%s: %d channels, downmixed to mono by averaging", path, audio.shape[1])
    mono = audio.mean(axis=1)
    if sr != target_sr:
        log.warning("%s: sample rate %d Hz, resampled to %d Hz with soxr", path, sr, target_sr)
        mono = soxr.resample(mono, sr, target_sr, quality="HQ")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise ValueError(f"{path}: audio contains NaN or infinite samples")
    return mono


def normalize_waveform(audio: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Per-clip (x - mean) / sqrt(var + 1e-7) (``Wav2Vec2FeatureExtractor(do_normalize=True)``)."""
    audio = np.asarray(audio, dtype=np.float32)
    return ((audio - audio.mean()) / np.sqrt(audio.var() + eps)).astype(np.float32)


def fit_audio(audio: np.ndarray, n: int, what: str,
              logger: logging.Logger | None = None) -> np.ndarray:
    """Trim or zero-pad a mono waveform to ``n`` samples (logged, on the caller's ``logger``
    when given, when it changes)."""
    if len(audio) == n:
        return audio
    (logger or log).info("%s: %d samples, %s to %d", what, len(audio),
             "trimmed" if len(audio) > n else "zero-padded", n)
    if len(audio) > n:
        return audio[:n]
    return np.concatenate([audio, np.zeros(n - len(audio), dtype=audio.dtype)])
