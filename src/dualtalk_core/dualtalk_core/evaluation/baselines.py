"""Reference baselines of the paper's Table 4, scored on the same clip-sides as the model.

Why: a metric value means little alone; these show what trivial or retrieval-based answers
reach on the same data. Every baseline maps one clip-side (self audio, partner audio, partner
motion; never its ground truth) to a [T, 56] motion, using only the TRAINING split:

- ``random``: frames drawn i.i.d. from all training target frames (seeded per clip-side name);
- ``mean``: the mean training frame, held for all T frames;
- ``copy-partner``: the partner's motion copied (mirror behaviour);
- ``nearest-audio``: target motion of the training clip-side whose audio (log-mel / energy
  summary of self and partner audio) is nearest (sklearn ``NearestNeighbors``);
- ``nearest-motion``: target motion of the training clip-side whose partner motion summary
  (per-dim mean, std and mean absolute velocity) is nearest.

Retrieved motions are cut to T or extended by mirror-tiling (no jumps at the seams).
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from dualtalk_core.layout import DIM, SAMPLE_RATE, SAMPLES_PER_FRAME

log = logging.getLogger(__name__)


class SideLike(Protocol):
    """What a baseline reads from a clip-side (``dualtalk_core.data.dataset.ClipSide`` fits)."""

    self_audio: np.ndarray
    partner_audio: np.ndarray
    partner_motion: np.ndarray

    @property
    def name(self) -> str: ...


# ------------------------------------------------------------------------------------------
# audio features (numpy only; frames aligned with motion frames)

N_FFT = 1024
N_MELS = 40


def _mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE,
                    fmin: float = 50.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters [n_mels, n_fft//2+1]."""
    fmax = fmax or sr / 2
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    return np.maximum(0.0, np.minimum(up, down))


_MEL = _mel_filterbank()


def _frames(audio: np.ndarray, num_frames: int | None, width: int) -> np.ndarray:
    """[T, width] windows centred on motion frames (hop 640), zero padded at the ends."""
    audio = np.asarray(audio, dtype=np.float32).ravel()
    if num_frames is None:
        num_frames = max(1, int(np.ceil(len(audio) / SAMPLES_PER_FRAME)))
    starts = np.arange(num_frames) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2 - width // 2
    pad = width
    padded = np.pad(audio, (pad, pad + num_frames * SAMPLES_PER_FRAME))
    idx = (starts + pad)[:, None] + np.arange(width)[None]
    return padded[idx]


def frame_log_energy(audio: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    """Per motion frame log10 RMS energy of a 16 kHz waveform (window = one frame, 40 ms)."""
    fr = _frames(audio, num_frames, SAMPLES_PER_FRAME)
    rms = np.sqrt(np.mean(fr.astype(np.float64) ** 2, axis=1))
    return np.log10(rms + 1e-5)


def log_mel_frames(audio: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    """Per motion frame log-mel spectrum [T, 40] (Hann window of 1024 samples, hop 640)."""
    fr = _frames(audio, num_frames, N_FFT) * np.hanning(N_FFT)[None].astype(np.float32)
    power = np.abs(np.fft.rfft(fr, axis=1)) ** 2
    return np.log(power @ _MEL.T + 1e-8)


def audio_summary(audio: np.ndarray) -> np.ndarray:
    """Clip-level audio descriptor: mean/std of log-mel, energy stats, voiced fraction."""
    mel = log_mel_frames(audio)
    energy = frame_log_energy(audio)
    voiced = energy > (np.percentile(energy, 95) - 1.5)  # within 30 dB of the loud frames
    return np.concatenate([mel.mean(0), mel.std(0),
                           [energy.mean(), energy.std(), voiced.mean()]])


def partner_motion_summary(motion: np.ndarray) -> np.ndarray:
    """Clip-level partner-motion descriptor: per-dim mean, std, mean |velocity|."""
    motion = np.asarray(motion, dtype=np.float64)
    vel = np.abs(np.diff(motion, axis=0)).mean(0) if len(motion) > 1 else np.zeros(motion.shape[1])
    return np.concatenate([motion.mean(0), motion.std(0), vel])


# ------------------------------------------------------------------------------------------

def fit_to_length(motion: np.ndarray, num_frames: int) -> np.ndarray:
    """Cut ``motion`` to ``num_frames`` or extend it by mirror-tiling (forward, backward, ...)."""
    motion = np.asarray(motion, dtype=np.float32)
    if len(motion) == 0:
        raise ValueError("fit_to_length: empty motion")
    if len(motion) >= num_frames:
        return motion[:num_frames].copy()
    cycle = np.concatenate([motion, motion[::-1]]) if len(motion) > 1 else motion
    reps = int(np.ceil(num_frames / len(cycle)))
    return np.tile(cycle, (reps, 1))[:num_frames].copy()


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(0)
    sd = x.std(0)
    sd[sd < 1e-8] = 1.0
    return (x - mu) / sd, mu, sd


@dataclass
class BaselineBank:
    """What the baselines know about the training split (built once, reused per clip-side)."""

    names: list[str]
    motions: list[np.ndarray]          # training target motions [T_i, 56]
    frames: np.ndarray                 # all training target frames [N, 56]
    mean_frame: np.ndarray             # [56]
    audio_features: np.ndarray         # standardised [n_sides, F_a]
    audio_norm: tuple[np.ndarray, np.ndarray]
    motion_features: np.ndarray        # standardised [n_sides, F_m]
    motion_norm: tuple[np.ndarray, np.ndarray]
    seed: int = 0
    _index: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_sides(cls, sides: Sequence, seed: int = 0) -> "BaselineBank":
        """Index training clip-sides (objects with ``self_audio``, ``partner_audio``,
        ``partner_motion``, ``target_motion`` and ``name``)."""
        if not sides:
            raise ValueError("baselines need at least one training clip-side")
        motions = [np.asarray(s.target_motion, dtype=np.float32) for s in sides]
        for s, m in zip(sides, motions):
            if m.ndim != 2 or m.shape[1] != DIM:
                raise ValueError(f"{s.name}: target motion should be [T, {DIM}], got {m.shape}")
        frames = np.concatenate(motions)
        audio = np.stack([_side_audio_feature(s) for s in sides])
        motion = np.stack([partner_motion_summary(s.partner_motion) for s in sides])
        a_std, a_mu, a_sd = _standardise(audio)
        m_std, m_mu, m_sd = _standardise(motion)
        log.info("baselines: indexed %d training clip-sides, %d frames", len(sides), len(frames))
        return cls(names=[s.name for s in sides], motions=motions, frames=frames,
                   mean_frame=frames.mean(0), audio_features=a_std, audio_norm=(a_mu, a_sd),
                   motion_features=m_std, motion_norm=(m_mu, m_sd), seed=seed)

    def nearest(self, kind: str, query: np.ndarray) -> int:
        """Index of the training clip-side nearest to ``query`` (Euclidean, standardised);
        ``kind`` is ``"audio"`` or ``"motion"``. The sklearn index is built once per kind."""
        from sklearn.neighbors import NearestNeighbors

        features, norm = {"audio": (self.audio_features, self.audio_norm),
                          "motion": (self.motion_features, self.motion_norm)}[kind]
        if kind not in self._index:
            self._index[kind] = NearestNeighbors(n_neighbors=1).fit(features)
        q = (np.asarray(query, dtype=np.float64) - norm[0]) / norm[1]
        return int(self._index[kind].kneighbors(q[None], return_distance=False)[0, 0])


def _side_audio_feature(side) -> np.ndarray:
    return np.concatenate([audio_summary(side.self_audio), audio_summary(side.partner_audio)])


def _num_frames(side, num_frames: int | None) -> int:
    return int(num_frames if num_frames is not None else len(side.partner_motion))


def random_frames(bank: BaselineBank, side, num_frames: int | None = None) -> np.ndarray:
    """T training frames drawn i.i.d.; the seed mixes ``bank.seed`` and the clip-side name."""
    t = _num_frames(side, num_frames)
    rng = np.random.default_rng([bank.seed, zlib.crc32(side.name.encode())])
    return bank.frames[rng.integers(0, len(bank.frames), size=t)].copy()


def mean_motion(bank: BaselineBank, side, num_frames: int | None = None) -> np.ndarray:
    """The mean training frame repeated T times."""
    return np.tile(bank.mean_frame[None], (_num_frames(side, num_frames), 1)).astype(np.float32)


def copy_partner(bank: BaselineBank | None, side, num_frames: int | None = None) -> np.ndarray:
    """The partner's own motion (last frame held if T is longer)."""
    partner = np.asarray(side.partner_motion, dtype=np.float32)
    t = _num_frames(side, num_frames)
    if len(partner) >= t:
        return partner[:t].copy()
    return np.concatenate([partner, np.repeat(partner[-1:], t - len(partner), axis=0)])


def nearest_audio(bank: BaselineBank, side, num_frames: int | None = None) -> np.ndarray:
    """Target motion of the training clip-side with the nearest self+partner audio summary."""
    i = bank.nearest("audio", _side_audio_feature(side))
    return fit_to_length(bank.motions[i], _num_frames(side, num_frames))


def nearest_motion(bank: BaselineBank, side, num_frames: int | None = None) -> np.ndarray:
    """Target motion of the training clip-side with the nearest partner-motion summary."""
    i = bank.nearest("motion", partner_motion_summary(side.partner_motion))
    return fit_to_length(bank.motions[i], _num_frames(side, num_frames))


BaselineFn = Callable[[BaselineBank, object, "int | None"], np.ndarray]

BASELINES: dict[str, tuple[str, BaselineFn]] = {
    "random": ("Random frames", random_frames),
    "mean": ("Mean motion", mean_motion),
    "copy-partner": ("Copy partner", copy_partner),
    "nearest-audio": ("Nearest audio (retrieval)", nearest_audio),
    "nearest-motion": ("Nearest motion (retrieval)", nearest_motion),
}
"""Baseline key -> (table label, function(bank, side, num_frames) -> [T, 56])."""


def parse_baselines(spec: str) -> list[str]:
    """``"all"`` / ``"none"`` / comma list (``_`` or ``-``) -> baseline keys, validated."""
    spec = (spec or "none").strip().lower()
    if spec == "all":
        return list(BASELINES)
    if spec in ("none", ""):
        return []
    keys = [k.strip().replace("_", "-") for k in spec.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: all, none, {', '.join(BASELINES)}")
    return keys


def run_baseline(key: str, bank: BaselineBank, sides: Sequence,
                 num_frames: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Predictions of baseline ``key`` for every clip-side -> ``{side.name: [T, 56]}``."""
    if key not in BASELINES:
        raise ValueError(f"unknown baseline {key!r}; known: {', '.join(BASELINES)}")
    fn = BASELINES[key][1]
    num_frames = num_frames or {}
    return {s.name: fn(bank, s, num_frames.get(s.name)) for s in sides}
