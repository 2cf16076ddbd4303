"""Face statistics: what real EMOCA/FLAME tracks look like, as numbers synthesis can draw from.

Why: synthetic conversations are only useful if their faces are on the scale of the real data
(a model trained on ~0.1-sized coefficients barely moves a real FLAME face). ``dualtalk data
calibrate`` measures these numbers on real tracks (:mod:`dualtalk_core.data.calibrate`);
``dualtalk data synth`` draws faces from them (:mod:`dualtalk_core.data.synth_face`); the preview
renderer reads mouth, smile and blink along the same directions. The repository carries the
numbers measured on the public sample clip (``face_stats_real.json`` next to this module,
package data: numbers only, no clip), which are the default.

``legacy`` is not a file: it names the hand-set scale of the first synthetic data (expression
~0.1), which the bundled demo model was trained on; :func:`resolve_face_stats` returns ``None``
for it and synthesis then runs its original rules unchanged.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "dualtalk-face-stats"
VERSION = 1
LEGACY = "legacy"
DEFAULT = "real"
DEFAULT_FILE = "face_stats_real.json"
N_EXP = 50

# Vector fields and their length (validated on load, so a hand-edited file fails by name).
_VECTORS = {
    "exp_mean": N_EXP, "exp_std": N_EXP, "exp_vel_std": N_EXP, "identity_std": N_EXP,
    "jaw_exp_beta": N_EXP, "jaw_exp_r2": N_EXP, "speaking_shift": N_EXP,
    "residual_std": N_EXP, "residual_rho": N_EXP, "smile_direction": N_EXP,
    "blink_direction": N_EXP, "head_mean": 3, "head_std": 3, "head_vel_std": 3,
    "head_drift_std": 3, "head_identity_std": 3, "jaw_side_mean": 2, "jaw_side_std": 2,
}


@dataclass
class FaceStats:
    """Per-dim statistics of real face tracks (56-layout groups; units of the npz fields).

    ``exp_*``: within-speaker statistics of ``exp`` (speaker offsets removed before the std);
    ``identity_std``: spread of per-speaker mean offsets (see ``identity_method``);
    ``jaw_*``: jaw opening (``pose[:, 3]``, radians) overall and on speaking/silent frames;
    ``jaw_exp_beta``: exp change per radian of jaw opening while speaking (regression), with
    ``jaw_exp_r2`` per dim; ``speaking_shift``: extra exp offset while speaking that the jaw
    does not explain; ``smile_direction``: exp response after the partner's phrase ends (one
    unit of the listening rule's kernel), ``blink_*``: blink-like events; ``residual_*``: the
    rest, drawn as a per-dim AR(1) with this std and lag-1 correlation; ``head_*``: head rotation
    ``pose[:, 0:3]`` (mean, std, frame-to-frame velocity std, std of its 2 s moving average).
    ``notes`` says how each estimate was made (e.g. assumed identity spread with one speaker).
    """

    exp_mean: list[float]
    exp_std: list[float]
    exp_vel_std: list[float]
    identity_std: list[float]
    identity_method: str
    jaw_mean: float
    jaw_std: float
    jaw_vel_std: float
    jaw_p05: float
    jaw_p95: float
    jaw_silent_mean: float
    jaw_speaking_mean: float
    jaw_silent_std: float
    jaw_speaking_std: float
    jaw_side_mean: list[float]
    jaw_side_std: list[float]
    jaw_exp_beta: list[float]
    jaw_exp_r2: list[float]
    jaw_exp_explained: float
    speaking_shift: list[float]
    speaking_fraction: float
    speaking_source: str
    smile_direction: list[float]
    smile_source: str
    blink_measured: bool
    blink_rate_hz: float
    blink_width_frames: float
    blink_direction: list[float]
    residual_std: list[float]
    residual_rho: list[float]
    head_mean: list[float]
    head_std: list[float]
    head_vel_std: list[float]
    head_drift_std: list[float]
    head_identity_std: list[float]
    frames: int
    speakers: int
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- derived views ----------------------------------------------------------------------
    def vec(self, name: str) -> np.ndarray:
        """A vector field as float64 numpy."""
        return np.asarray(getattr(self, name), np.float64)

    def to_json_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **_rounded(asdict(self))}

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = self.to_json_dict()  # one key per line, vectors on one line: readable diffs
        body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items())
        path.write_text("{\n" + body + "\n}\n")
        return path

    @classmethod
    def from_json_dict(cls, doc: Any, origin: str = "<dict>") -> "FaceStats":
        """Validate a parsed stats file; ``ValueError`` naming ``origin`` and the field."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{origin}: not a face statistics file (expected "
                             f"\"format\": \"{FORMAT}\")")
        if doc.get("version") != VERSION:
            raise ValueError(f"{origin}: version {doc.get('version')!r}, expected {VERSION}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in doc and n not in ("sources", "notes")]
        if missing:
            raise ValueError(f"{origin}: missing field(s) {missing}")
        for name, n in _VECTORS.items():
            arr = np.asarray(doc[name], np.float64)
            if arr.shape != (n,) or not np.isfinite(arr).all():
                raise ValueError(f"{origin}: field {name!r} should be {n} finite numbers, "
                                 f"got shape {list(arr.shape)}")
        return cls(**{n: doc[n] for n in names if n in doc})


def _rounded(obj: Any) -> Any:
    """Floats to 6 significant digits: the file stays readable and diffs stay small."""
    if isinstance(obj, float):
        return float(f"{obj:.6g}")
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj


def default_stats_path() -> Path:
    """The packaged statistics of the sample clip (installed as package data)."""
    return Path(str(resources.files("dualtalk_core.data").joinpath(DEFAULT_FILE)))


def load_face_stats(path: str | Path) -> FaceStats:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face statistics file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    return FaceStats.from_json_dict(doc, origin=str(path))


def resolve_face_stats(spec: "str | Path | FaceStats | None") -> FaceStats | None:
    """``"legacy"`` -> None (the original hand-set scale); ``"real"``/None -> the packaged
    statistics; a path -> that file; a :class:`FaceStats` passes through."""
    if isinstance(spec, FaceStats):
        return spec
    if spec is None or str(spec) == DEFAULT:
        return load_face_stats(default_stats_path())
    if str(spec) == LEGACY:
        return None
    return load_face_stats(spec)


def face_stats_label(spec: "str | Path | FaceStats | None") -> str:
    """What ``synth.json`` records as the scale a data set was drawn on."""
    if isinstance(spec, FaceStats):
        return "custom:" + ",".join(spec.sources)
    return DEFAULT if spec is None else str(spec)
