"""Energy-based voice activity detection per 25 fps frame, with hysteresis.

Why energy and not a learned VAD: the engine needs a per-speaker "is talking now" bit for every
output frame (it feeds ``ConversationState``), on a 2-core robot CPU, deterministically, with no
extra dependency.  The signals are close-talk microphone / TTS audio, where frame energy with
hysteresis (a high threshold to switch on, a lower one to switch off, an onset count and a hangover)
is a well-established and adequate detector.  ``webrtcvad`` is not installed in this project.

The level of a frame is its RMS in dBFS over the frame's 640 samples (full scale = 1.0).
``score`` maps the level linearly from ``off_db`` (0.0) to ``on_db`` (1.0), clipped; ``speaking``
is the hysteresis state.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from dualtalk_core.config_io import YamlConfigMixin
from dualtalk_core.layout import FRAME_RATE, SAMPLES_PER_FRAME

SILENCE_DB = -100.0
"""Level reported for digital silence (log of zero is clamped here)."""


@dataclass
class VadConfig(YamlConfigMixin):
    """Thresholds of the energy VAD (dBFS of a frame's RMS; times in seconds).

    on_db:  a frame this loud or louder counts as voiced.
    off_db: speaking stops only after frames stay below this for ``hangover_s``.
    onset_s: voiced frames needed in a row to switch speaking on (rejects clicks).
    hangover_s: quiet time needed to switch speaking off (bridges gaps between words).
    """

    on_db: float = -40.0
    off_db: float = -50.0
    onset_s: float = 0.08
    hangover_s: float = 0.32

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"VadConfig.{f.name}: expected a finite number, got {value!r}")
        if self.off_db > self.on_db:
            raise ValueError(
                f"VadConfig: off_db ({self.off_db}) must be <= on_db ({self.on_db}) for hysteresis")
        if self.onset_s < 0 or self.hangover_s < 0:
            raise ValueError(
                f"VadConfig: onset_s and hangover_s must be >= 0, got {self.onset_s}, {self.hangover_s}")

    @property
    def onset_frames(self) -> int:
        return max(1, int(round(self.onset_s * FRAME_RATE)))

    @property
    def hangover_frames(self) -> int:
        return int(round(self.hangover_s * FRAME_RATE))

    # to_dict / from_dict / to_yaml / from_yaml come from YamlConfigMixin.
    @classmethod
    def _coerce_values(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Thresholds are floats even when a YAML file or ROS parameter gives an int."""
        return {k: float(v) for k, v in data.items()}


def frame_levels_db(samples: np.ndarray, samples_per_frame: int = SAMPLES_PER_FRAME) -> np.ndarray:
    """RMS level in dBFS of each complete ``samples_per_frame`` frame of ``samples`` (float64 [F])."""
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[0] // samples_per_frame
    if n == 0:
        return np.zeros(0)
    power = np.mean(np.square(x[: n * samples_per_frame].reshape(n, samples_per_frame)), axis=1)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(power)
    return np.maximum(db, SILENCE_DB)


class EnergyVad:
    """Stateful hysteresis VAD for one speaker; feed frame levels in time order."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self.reset()

    def reset(self) -> None:
        self.speaking = False
        self._run_loud = 0
        self._run_quiet = 0

    def score(self, level_db: float) -> float:
        """0..1 activity score: ``off_db`` -> 0, ``on_db`` -> 1 (linear, clipped)."""
        c = self.config
        if c.on_db == c.off_db:
            return 1.0 if level_db >= c.on_db else 0.0
        return float(np.clip((level_db - c.off_db) / (c.on_db - c.off_db), 0.0, 1.0))

    def update(self, level_db: float) -> tuple[float, bool]:
        """Advance one frame; returns (score, speaking)."""
        c = self.config
        self._run_loud = self._run_loud + 1 if level_db >= c.on_db else 0
        self._run_quiet = self._run_quiet + 1 if level_db < c.off_db else 0
        if not self.speaking and self._run_loud >= c.onset_frames:
            self.speaking = True
        elif self.speaking and self._run_quiet > c.hangover_frames:
            self.speaking = False
        return self.score(level_db), self.speaking

    def process(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run over whole frames of ``samples``; returns (scores float32 [F], speaking bool [F])."""
        levels = frame_levels_db(samples)
        scores = np.zeros(levels.shape[0], dtype=np.float32)
        speaking = np.zeros(levels.shape[0], dtype=bool)
        for i, level in enumerate(levels):
            scores[i], speaking[i] = self.update(float(level))
        return scores, speaking
