"""How the preview renderer reads mouth, smile and blink out of 50 expression coefficients.

Why: FLAME's expression basis has no "smile dim"; what moves the mouth corners or the eyelids
depends on the data's scale. The synthetic data's rules define directions in ``exp`` space (the
legacy scale: a few hand-picked dims; the calibrated scale: directions measured on real tracks,
:class:`~dualtalk_core.data.face_stats.FaceStats`), so the renderer projects onto the same
directions: ``read-out = (exp - rest) . d / (d . d)``, which is 1 when the face has moved one
rule unit along ``d`` (a full blink, a saturated smile, a fully open mouth).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from dualtalk_core.layout import EXP

N_EXP = EXP.stop


def _vec(dims, weights) -> tuple[float, ...]:
    v = np.zeros(N_EXP)
    v[list(dims)] = weights
    return tuple(float(x) for x in v)


@dataclass(frozen=True)
class FaceReadout:
    """Directions (50 values each) and the jaw's rest and full opening (radians)."""

    rest: tuple[float, ...]
    mouth: tuple[float, ...]
    smile: tuple[float, ...]
    blink: tuple[float, ...]
    jaw_rest: float
    jaw_full: float
    label: str = "custom"

    def __post_init__(self):
        for name in ("rest", "mouth", "smile", "blink"):
            v = getattr(self, name)
            if len(v) != N_EXP or not np.isfinite(v).all():
                raise ValueError(f"face read-out {name}: expected {N_EXP} finite values, "
                                 f"got {len(v)}")
        for name in ("smile", "blink"):
            if not np.any(getattr(self, name)):
                raise ValueError(f"face read-out {name}: direction is all zeros")
        if not self.jaw_full > self.jaw_rest:
            raise ValueError(f"jaw_full ({self.jaw_full}) must exceed jaw_rest "
                             f"({self.jaw_rest})")

    def read(self, exp: np.ndarray, which: str) -> float:
        """Projection of ``exp`` (rest removed) on direction ``which``, in rule units."""
        d = np.asarray(getattr(self, which))
        norm = float(d @ d)
        return 0.0 if norm == 0 else float((np.asarray(exp) - self.rest) @ d / norm)

    @classmethod
    def legacy(cls) -> "FaceReadout":
        """The legacy synthetic rules' dims (what the bundled demo model outputs)."""
        from dualtalk_core.data import synth

        return cls(rest=(0.0,) * N_EXP, mouth=_vec(synth.MOUTH_DIMS, synth.MOUTH_WEIGHTS),
                   smile=_vec(synth.SMILE_DIMS, synth.SMILE_WEIGHTS),
                   blink=_vec([synth.BLINK_DIM], [synth.BLINK_AMPLITUDE]), jaw_rest=0.0,
                   jaw_full=0.25, label="legacy")

    @classmethod
    def from_stats(cls, stats, label: str = "custom") -> "FaceReadout":
        """Directions of the calibrated synthetic rules: the jaw-coupled exp direction at a full
        opening (the 95th percentile of the jaw), the listening smile, the blink event."""
        from dualtalk_core.data.synth_face import SMILE_PEAK

        full = max(stats.jaw_p95, stats.jaw_silent_mean + 1e-3)
        mouth = np.asarray(stats.jaw_exp_beta) * (full - stats.jaw_silent_mean)
        return cls(rest=tuple(stats.exp_mean), mouth=tuple(mouth.tolist()),
                   smile=tuple((SMILE_PEAK * np.asarray(stats.smile_direction)).tolist()),
                   blink=tuple(stats.blink_direction), jaw_rest=float(stats.jaw_silent_mean),
                   jaw_full=float(full), label=label)


@functools.lru_cache(maxsize=8)
def readout_for(spec: str = "real") -> FaceReadout:
    """``"legacy"``, ``"real"`` (packaged statistics) or a statistics file path."""
    from dualtalk_core.data.face_stats import resolve_face_stats

    stats = resolve_face_stats(spec)
    return FaceReadout.legacy() if stats is None else FaceReadout.from_stats(stats, str(spec))
