"""Reading audio for the model: any WAV/FLAC/OGG -> float32 mono at 16 kHz.

Resampling uses ``soxr`` (a well-kept, high-quality resampler); multi-channel audio is downmixed
by averaging the channels. Both are logged as warnings, because a silently resampled or
downmixed input is a common cause of "the lips are off" reports.
"""
from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np

from dualtalk_core.layout import SAMPLE_RATE

log = logging.getLogger(__name__)


class AudioFileError(ValueError):
    """An audio file that cannot be used as is: ``reason`` is a short kind (the data-set report
    groups by it), ``detail`` what was expected and what was found."""

    def __init__(self, path: Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.path, self.reason, self.detail = path, reason, detail


#: AudioFileError reasons
UNREADABLE_WAV = "unreadable wav"
WRONG_SAMPLE_RATE = "wrong sample rate"
NOT_MONO = "not mono"
NON_FINITE = "non-finite values"


def load_wav(path: str | Path, target_sr: int = SAMPLE_RATE, *, strict: bool = False) -> np.ndarray:
    """Read ``path`` -> float32 mono [n] at ``target_sr``.

    Not ``strict`` (inference, players): another rate is resampled and several channels are
    downmixed, each with a warning. ``strict`` (data sets, where a wrong file is a data error, not
    something to repair): those raise :class:`AudioFileError`, as do unreadable, empty and
    non-finite files in both modes. The one reader of audio files in dualtalk_core.
    """
    import soundfile as sf
    import soxr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)       # [n, channels]
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError)
        raise AudioFileError(path, UNREADABLE_WAV, f"{type(exc).__name__}: {exc}") from exc
    if strict and sr != target_sr:
        raise AudioFileError(path, WRONG_SAMPLE_RATE, f"expected {target_sr} Hz, got {sr} Hz")
    if strict and audio.shape[1] != 1:
        raise AudioFileError(path, NOT_MONO, f"expected 1 channel, got {audio.shape[1]}")
    if audio.size == 0:
        raise AudioFileError(path, UNREADABLE_WAV, "no samples")
    if audio.shape[1] > 1:
        log.warning("%s: %d channels, downmixed to mono by averaging", path, audio.shape[1])
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if not np.all(np.isfinite(mono)):
        bad = int(np.count_nonzero(~np.isfinite(mono)))
        raise AudioFileError(path, NON_FINITE, f"{bad} NaN/inf samples")
    if sr != target_sr:
        log.warning("%s: sample rate %d Hz, resampled to %d Hz with soxr", path, sr, target_sr)
        mono = soxr.resample(mono, sr, target_sr, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


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


def write_wav16(path: Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Mono 16-bit PCM WAV, clipped to [-1, 1] (what every ffmpeg build reads)."""
    import soundfile as sf

    sf.write(str(path), np.clip(np.asarray(audio, np.float32), -1.0, 1.0), sample_rate,
             subtype="PCM_16")
    return Path(path)


def write_wav_float32(path: Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Mono 32-bit float WAV with fmt(18) + fact chunks, like the DualTalk release files."""
    data = np.asarray(audio, dtype="<f4").tobytes()
    n = len(data) // 4
    fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt
              + b"fact" + struct.pack("<II", 4, n)
              + b"data" + struct.pack("<I", len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
