"""Score predictions of whole clip-sides with the paper's metrics and report them like Table 2.

Why: ``dualtalk evaluate``, the bag evaluator and the benchmarks all need the same thing: given
predicted, ground-truth and partner motion per clip-side, compute :func:`metrics.clip_metrics`
per clip-side, average, scale like the paper, and write Markdown / JSON / CSV. One
:class:`EvaluationResult` can hold several methods (the model and the baselines) scored on the
same clip-sides, so their rows sit in one table.

Shapes: ``per_clip`` rows are flat dicts (``method``, ``clip``, ``frames``, ``"FD_EXP"``, ...
raw values); ``mean`` and ``scaled`` are ``[metric][group]`` nested dicts.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from dualtalk_core.evaluation import metrics as M

log = logging.getLogger(__name__)

EXTRA_LABELS = {
    "jaw_speech_r": "jaw-opening vs own speech energy, Pearson r while speaking ↑",
    "jaw_speech_r_all": "jaw vs own speech, r over all frames",
    "exp_std_ratio": "EXP std ratio pred/real (1 = moves like the real face)",
    "jaw_std_ratio": "JAW std ratio pred/real",
    "jaw_r": "pred vs real jaw opening, r ↑",
}
REFERENCE_EXTRAS = ("jaw_speech_r", "jaw_speech_r_all")
"""Extras that also have a ground-truth value (the others compare pred WITH the truth)."""


def metric_key(metric: str, group: str) -> str:
    """Flat column name of one metric x group, e.g. ``"P-FD_EXP"`` (CSV/per-clip rows)."""
    return f"{metric}_{group}"


@dataclass
class MethodScores:
    """The scores of one method over the evaluated clip-sides."""

    method: str
    per_clip: list[dict[str, Any]]
    mean: dict[str, dict[str, float]]
    scaled: dict[str, dict[str, float]]
    extras: dict[str, float] = field(default_factory=dict)
    """Diagnostics beyond the paper, e.g. ``jaw_speech_r`` (mean over clip-sides)."""

    @property
    def n_clips(self) -> int:
        return len(self.per_clip)


@dataclass
class EvaluationResult:
    """Scores of one or more methods on the same clip-sides.

    ``per_clip``, ``mean`` and ``scaled`` refer to the first (primary) method for the common
    one-method case; ``methods`` holds every method in insertion order; ``skipped`` lists
    ``{"method", "clip", "reason"}`` for clip-sides that could not be scored.
    """

    methods: dict[str, MethodScores]
    skipped: list[dict[str, str]] = field(default_factory=list)
    sid_fit_on: str = "pred"
    reference: dict[str, float] = field(default_factory=dict)
    """The extras computed on the ground truth itself (what a perfect prediction gets)."""
    notes: list[str] = field(default_factory=list)
    """Caveats the report prints under the table (e.g. a neutral partner face was used)."""

    # -- convenience views of the primary method ------------------------------------------
    @property
    def primary(self) -> MethodScores:
        return next(iter(self.methods.values()))

    @property
    def per_clip(self) -> list[dict[str, Any]]:
        return self.primary.per_clip

    @property
    def mean(self) -> dict[str, dict[str, float]]:
        return self.primary.mean

    @property
    def scaled(self) -> dict[str, dict[str, float]]:
        return self.primary.scaled

    def all_rows(self) -> list[dict[str, Any]]:
        """Per-clip rows of every method (with a ``method`` column)."""
        return [row for s in self.methods.values() for row in s.per_clip]

    def merge(self, other: "EvaluationResult") -> "EvaluationResult":
        """Add ``other``'s methods (and skips) to this result; returns ``self``."""
        for name, scores in other.methods.items():
            if name in self.methods:
                raise ValueError(f"method {name!r} is already in this result")
            self.methods[name] = scores
        self.skipped.extend(other.skipped)
        for k, v in other.reference.items():
            self.reference.setdefault(k, v)
        self.notes += [n for n in other.notes if n not in self.notes]
        return self

    # -- reports ------------------------------------------------------------------------------
    def to_markdown(self, include_paper: bool = True, digits: int = 2) -> str:
        """Table in the paper's Table 2 format: rows = methods, columns = metric x group, scaled.

        With ``include_paper`` the published DualTalk numbers (real test split) are appended
        for orientation; they are NOT comparable with scores on other data.
        """
        cols = [(m, g) for m in M.METRICS for g in M.GROUP_NAMES]
        arrows = {m: ("↓" if M.LOWER_IS_BETTER[m] else "↑") for m in M.METRICS}
        header = "| Method | N | " + " | ".join(f"{m}{arrows[m]} {g}" for m, g in cols) + " |"
        sep = "|---|---:|" + "---:|" * len(cols)
        lines = [header, sep]

        def fmt(v: float | None) -> str:
            if v is None:
                return "–"
            if not math.isfinite(v):
                return "nan"
            text = f"{v:.{digits}f}"
            return f"{0.0:.{digits}f}" if float(text) == 0.0 else text  # no "-0.00"

        for s in self.methods.values():
            cells = [fmt(s.scaled[m][g]) for m, g in cols]
            lines.append(f"| {s.method} | {s.n_clips} | " + " | ".join(cells) + " |")
        if include_paper:
            for name, res in M.PAPER_RESULTS.items():
                cells = [fmt(res.get(m, {}).get(g)) for m, g in cols]
                lines.append(f"| *{name}* | – | " + " | ".join(cells) + " |")
        scale = "; ".join(
            f"{m} x" + "/".join(f"{M.PAPER_SCALE[m][g]:g}" for g in M.GROUP_NAMES)
            for m in M.METRICS)
        extra_names = sorted({k for s in self.methods.values() for k in s.extras})
        if extra_names:
            lines += ["", "| Method | " + " | ".join(EXTRA_LABELS.get(k, k) for k in extra_names)
                      + " |", "|---|" + "---:|" * len(extra_names)]
            for s in self.methods.values():
                lines.append(f"| {s.method} | "
                             + " | ".join(fmt(s.extras.get(k)) for k in extra_names) + " |")
            if self.reference:
                lines.append("| *ground truth (reference)* | "
                             + " | ".join(fmt(self.reference.get(k)) for k in extra_names) + " |")
        notes = [f"Scaled as in the paper (EXP/JAW/POSE): {scale}. "
                 f"N = clip-sides; SID k-means fitted on {self.sid_fit_on}."]
        if include_paper:
            notes.append("Italic rows: published numbers on the real DualTalk test split.")
        if self.skipped:
            notes.append(f"{len(self.skipped)} clip-side(s) skipped (see JSON/log).")
        notes += self.notes
        return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"

    def to_json_dict(self) -> dict[str, Any]:
        """Every metric x group, raw and paper-scaled, per method; plus scale, skips, paper.

        Non-finite values become ``None`` so the output is strict JSON.
        """
        return _json_safe({
            "metrics": list(M.METRICS),
            "groups": list(M.GROUP_NAMES),
            "scale": M.PAPER_SCALE,
            "sid_fit_on": self.sid_fit_on,
            "methods": {
                name: {"n_clips": s.n_clips, "raw": s.mean, "scaled": s.scaled,
                       "extras": s.extras}
                for name, s in self.methods.items()
            },
            "reference": self.reference,
            "paper": M.PAPER_RESULTS,
            "skipped": list(self.skipped),
            "notes": list(self.notes),
        })

    def write_per_clip_csv(self, path: str | Path) -> Path:
        """Per-clip raw metrics of every method as CSV (one row per method x clip-side)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = ["method", "clip", "frames"] + [metric_key(m, g) for m in M.METRICS
                                                 for g in M.GROUP_NAMES]
        fields += sorted({k for r in self.all_rows() for k in r} - set(fields))
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for row in self.all_rows():
                writer.writerow({k: row.get(k) for k in fields})
        return path


def _json_safe(obj: Any) -> Any:
    """Nested dicts/lists with NaN/inf floats replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _score_one(name: str, pred: np.ndarray, gt: np.ndarray, partner: np.ndarray,
               sid_fit_on: str, self_audio: np.ndarray | None
               ) -> tuple[str, dict | None, str | None, int, dict]:
    try:
        res = M.clip_metrics(pred, gt, partner, sid_fit_on=sid_fit_on)
        extras = M.motion_scale_checks(pred, gt)
        if self_audio is not None:
            for key, fn in (("jaw_speech_r", M.jaw_speech_correlation),
                            ("jaw_speech_r_all", M.jaw_speech_correlation_all)):
                extras[key] = fn(pred, self_audio)
                extras[f"ref:{key}"] = fn(gt, self_audio)
    except ValueError as exc:
        return name, None, str(exc), 0, {}
    frames = min(len(pred), len(gt), len(partner))
    return name, res, None, frames, extras


def evaluate_predictions(preds: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray],
                         partners: Mapping[str, np.ndarray], *, method: str = "model",
                         sid_fit_on: str = "pred", jobs: int = 1,
                         self_audio: Mapping[str, np.ndarray] | None = None
                         ) -> EvaluationResult:
    """Score ``preds[name]`` against ``gts[name]`` with partner ``partners[name]``.

    Names are clip-sides (``<clip>_speakerN``). A clip-side without ground truth or partner,
    or whose arrays are unusable, is skipped with its reason (``result.skipped``); ground
    truths without a prediction are listed as skipped too so missing outputs are visible.
    ``jobs > 1`` scores clip-sides in parallel processes (joblib). With ``self_audio`` (the
    agent's own waveform per clip-side) the lip-sync diagnostic ``jaw_speech_r`` is added.
    Raises ``ValueError`` when nothing could be scored.
    """
    skipped: list[dict[str, str]] = []
    todo: list[str] = []
    for name in sorted(preds):
        if name not in gts:
            skipped.append({"method": method, "clip": name, "reason": "no ground truth"})
        elif name not in partners:
            skipped.append({"method": method, "clip": name, "reason": "no partner motion"})
        else:
            todo.append(name)
    for name in sorted(set(gts) - set(preds)):
        skipped.append({"method": method, "clip": name, "reason": "no prediction"})

    audio = self_audio or {}
    args = [(n, preds[n], gts[n], partners[n], sid_fit_on, audio.get(n)) for n in todo]
    if jobs > 1 and len(args) > 1:
        from joblib import Parallel, delayed
        outs = Parallel(n_jobs=jobs)(delayed(_score_one)(*a) for a in args)
    else:
        outs = [_score_one(*a) for a in args]

    rows: list[dict[str, Any]] = []
    clip_results = []
    extra_vals: dict[str, list[float]] = {}
    for name, res, err, frames, extras in outs:
        if res is None:
            log.warning("%s: %s: not scored: %s", method, name, err)
            skipped.append({"method": method, "clip": name, "reason": str(err)})
            continue
        clip_results.append(res)
        row: dict[str, Any] = {"method": method, "clip": name, "frames": frames}
        for m in M.METRICS:
            for g in res:
                row[metric_key(m, g)] = res[g][m]
        row.update({k: v for k, v in extras.items() if not k.startswith("ref:")})
        for k, v in extras.items():
            extra_vals.setdefault(k, []).append(v)
        rows.append(row)
    if not rows:
        reasons = "; ".join(f"{s['clip']}: {s['reason']}" for s in skipped[:5])
        raise ValueError(f"{method}: no clip-side could be scored ({reasons})")
    mean = M.aggregate_metrics(clip_results)
    extras_mean = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                   for k, v in extra_vals.items()}
    reference = {k[len("ref:"):]: v for k, v in extras_mean.items() if k.startswith("ref:")}
    extras_mean = {k: v for k, v in extras_mean.items() if not k.startswith("ref:")}
    scores = MethodScores(method=method, per_clip=rows, mean=mean, scaled=M.scale_metrics(mean),
                          extras=extras_mean)
    return EvaluationResult(methods={method: scores}, skipped=skipped, sid_fit_on=sid_fit_on,
                            reference=reference)


def combine_results(results: Iterable[EvaluationResult]) -> EvaluationResult:
    """One result holding the methods of several (e.g. model + baselines), in order."""
    results = list(results)
    if not results:
        raise ValueError("combine_results: nothing to combine")
    out = EvaluationResult(methods=dict(results[0].methods), skipped=list(results[0].skipped),
                           sid_fit_on=results[0].sid_fit_on,
                           reference=dict(results[0].reference), notes=list(results[0].notes))
    for r in results[1:]:
        out.merge(r)
    return out


# ------------------------------------------------------------------------------------------
# gathering ground truth / predictions from disk

def load_pred_dir(directory: str | Path) -> dict[str, np.ndarray]:
    """Predictions named like the released outputs: ``<clip>_speakerN.npy``, each [T, 56]."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: prediction folder not found")
    preds = {p.stem: np.load(p) for p in sorted(directory.glob("*_speaker[12].npy"))}
    if not preds:
        raise FileNotFoundError(f"{directory}: no <clip>_speakerN.npy files")
    return preds


def targets_of(sides: Iterable, neutral_partner: bool = False
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(gts, partners)`` keyed by clip-side name from ``data.ClipSide`` objects.

    A side whose partner motion was missing (loaded as zeros) has no partner entry, unless
    ``neutral_partner``: then its zeros (FLAME's neutral face) are its partner, as for the
    DualTalk demo clips where only one side was tracked (see :func:`neutral_partner_note`).
    """
    sides = [s for s in sides if s.target_motion is not None]
    return ({s.name: s.target_motion for s in sides},
            {s.name: s.partner_motion for s in sides
             if neutral_partner or not s.partner_motion_is_zeros})


def neutral_partner_note(names: Iterable[str]) -> str | None:
    """The report's caveat for clip-sides scored with a neutral partner face (or None)."""
    names = sorted(names)
    if not names:
        return None
    return (f"Partner face absent for {len(names)} clip-side(s) ({', '.join(names[:4])}"
            f"{', ...' if len(names) > 4 else ''}): the model was given a NEUTRAL partner face "
            f"(zeros), and P-FD / rPCC compare against that neutral face, so they say little "
            f"there.")
