"""The DualTalk paper's metrics (FD, P-FD, MSE, SID, rPCC per EXP/JAW/POSE group).

Why this module exists: numbers are only comparable with the paper when they are computed the way
the released evaluation script computes them. So this follows the released behaviour exactly:

- every clip-side is trimmed to the shortest of prediction, ground truth and partner;
- **FD**: Frechet distance between Gaussians fitted to the frames of ONE clip
  (``np.cov(rowvar=False)``, ``scipy.linalg.sqrtm``, ``1e-6 * I`` retry when the square root is
  not finite, imaginary part dropped but an error when the diagonal's imaginary part > 1e-3);
- **P-FD**: FD of ``concat([partner, gt])`` against ``concat([partner, pred])`` per group;
- **MSE**: mean squared error over all elements of the group;
- **SID**: ``KMeans(k, random_state=0, n_init="auto")`` fitted on the PREDICTED frames, the
  ground-truth frames assigned to those clusters, Shannon entropy (bits) of the histogram with
  ``log2(h + 1e-6)``. (The released script names its arguments (gt, pred) but calls it with
  (pred, gt); ``sid_fit_on="gt"`` offers the variant the names suggest);
- **rPCC**: ``|corr(gt, partner) - corr(pred, partner)|`` on the flattened group arrays.

Raw values live in nested dicts; the paper's reporting scale :data:`PAPER_SCALE` is applied in
exactly one place, :func:`scale_metrics`.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Iterable, Mapping

import numpy as np
from scipy import linalg

from dualtalk_core.layout import DIM, GROUPS

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("FD", "P-FD", "MSE", "SID", "rPCC")
"""Metric names in the paper's Table 2 column order."""
GROUP_NAMES: tuple[str, ...] = tuple(GROUPS)
"""``("EXP", "JAW", "POSE")``, the paper's column groups."""
LOWER_IS_BETTER: dict[str, bool] = {"FD": True, "P-FD": True, "MSE": True, "SID": False,
                                    "rPCC": True}
"""Direction of each metric (the paper marks SID with an up arrow)."""

SID_CLUSTERS: dict[str, int] = {"EXP": 40, "JAW": 10, "POSE": 10}
"""KMeans cluster counts of the released SID."""

FD_EPS = 1e-6
"""Diagonal offset added to both covariances when sqrtm of their product is not finite."""
IMAG_TOLERANCE = 1e-3
"""Largest imaginary part on sqrtm's diagonal that may be dropped silently (released value)."""
SID_LOG_EPS = 1e-6

PAPER_SCALE: dict[str, dict[str, float]] = {
    "FD": {"EXP": 1.0, "JAW": 1e3, "POSE": 1e2},
    "P-FD": {"EXP": 1.0, "JAW": 1e3, "POSE": 1e2},
    "MSE": {"EXP": 10.0, "JAW": 1e3, "POSE": 1e2},
    "SID": {"EXP": 1.0, "JAW": 1.0, "POSE": 1.0},
    "rPCC": {"EXP": 1e2, "JAW": 10.0, "POSE": 10.0},
}
"""Reporting multipliers of the paper's Table 2, ``PAPER_SCALE[metric][group]``."""

PAPER_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "DualTalk (paper)": {
        "FD": {"EXP": 11.14, "JAW": 1.90, "POSE": 3.83},
        "P-FD": {"EXP": 11.88, "JAW": 1.97, "POSE": 3.97},
        "MSE": {"EXP": 3.59, "JAW": 1.04, "POSE": 1.72},
        "SID": {"EXP": 3.48, "JAW": 2.23, "POSE": 1.72},
        "rPCC": {"EXP": 4.73, "JAW": 1.37, "POSE": 2.38},
    },
    "TIMAR 2025 (8 s context)": {"FD": {"EXP": 8.97}},
    "TIMAR 2025 (1 s turns)": {"FD": {"EXP": 9.61}},
}
"""Published numbers on the real DualTalk test split, already in the paper's scale.

``PAPER_RESULTS[method][metric][group]``; entries that were not published are absent.
"""


# --------------------------------------------------------------------------------------------
# input handling

def _as_motion(x: np.ndarray, what: str) -> np.ndarray:
    """A float [T, D] array; raises ``ValueError`` naming ``what`` otherwise."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a [T, D] array, got shape {list(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{what}: {bad} non-finite values (NaN/inf)")
    return arr


def trim_to_shortest(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cut every array to the smallest first dimension, as the released script does."""
    if not arrays:
        return ()
    n = min(int(np.shape(a)[0]) for a in arrays)
    return tuple(np.asarray(a)[:n] for a in arrays)


# --------------------------------------------------------------------------------------------
# FD

def gaussian_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over frames and sample covariance (``np.cov(rowvar=False)``, ddof 1) of [T, D]."""
    frames = np.asarray(frames)
    mu = np.mean(frames, axis=0)
    cov = np.atleast_2d(np.cov(frames, rowvar=False))
    return mu, cov


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = FD_EPS) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), the released way.

    ``|mu1-mu2|^2 + Tr(s1) + Tr(s2) - 2 Tr(sqrtm(s1 s2))``. When sqrtm of the product is not
    finite, ``eps * I`` is added to both covariances and it is retried; a complex result has its
    imaginary part dropped unless the diagonal's imaginary part exceeds :data:`IMAG_TOLERANCE`.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"FD: mean vectors differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape:
        raise ValueError(f"FD: covariances differ in shape: {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm's "singular matrix" chatter; we check finiteness
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.all(np.isfinite(covmean)):
            log.debug("FD: sqrtm of the covariance product is not finite; adding %g*I", eps)
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag)
        if imag.size and float(imag.max()) > IMAG_TOLERANCE:
            raise ValueError(f"FD: sqrtm has an imaginary component of "
                             f"{float(np.max(np.abs(covmean.imag))):.3g} (> {IMAG_TOLERANCE})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fd(pred: np.ndarray, gt: np.ndarray) -> float:
    """FD between the frame distributions of two [T, D] arrays (Gaussian fit per array)."""
    mu1, s1 = gaussian_stats(pred)
    mu2, s2 = gaussian_stats(gt)
    return frechet_distance(mu1, s1, mu2, s2)


def paired_fd(pred: np.ndarray, gt: np.ndarray, partner: np.ndarray) -> float:
    """P-FD: FD of ``[partner, gt]`` (reference) against ``[partner, pred]`` frames."""
    ref = np.concatenate([partner, gt], axis=-1)
    cand = np.concatenate([partner, pred], axis=-1)
    mu1, s1 = gaussian_stats(ref)
    mu2, s2 = gaussian_stats(cand)
    return frechet_distance(mu1, s1, mu2, s2)


# --------------------------------------------------------------------------------------------
# MSE, SID, rPCC

def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean of the squared error over all elements (in the inputs' dtype, as released)."""
    return float(np.mean((np.asarray(pred) - np.asarray(gt)) ** 2))


def shannon_index(labels: np.ndarray, k: int) -> float:
    """``-sum h log2(h + 1e-6)`` of the normalised histogram of ``labels`` over ``k`` bins."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k).astype(np.float64)
    h = counts / counts.sum()
    return float(-np.sum(h * np.log2(h + SID_LOG_EPS)))


def sid(pred: np.ndarray, gt: np.ndarray, k: int, fit_on: str = "pred") -> float:
    """Shannon index of diversity, released order: KMeans fitted on ``pred``, ``gt`` assigned.

    ``fit_on="gt"`` swaps the roles (fit on ground truth, assign the prediction). When a clip has
    fewer frames than ``k``, ``k`` is reduced to the frame count (the released script would fail).
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    if fit_on not in ("pred", "gt"):
        raise ValueError(f"SID: fit_on must be 'pred' or 'gt', got {fit_on!r}")
    fit, assign = (pred, gt) if fit_on == "pred" else (gt, pred)
    k_eff = min(int(k), int(fit.shape[0]))
    if k_eff < k:
        log.debug("SID: only %d frames, using k=%d instead of %d", fit.shape[0], k_eff, k)
    if k_eff < 1:
        raise ValueError("SID: no frames to cluster")
    with warnings.catch_warnings():
        # fewer distinct points than clusters (e.g. a constant prediction) is a legal input
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k_eff, random_state=0, n_init="auto").fit(fit)
        labels = km.predict(np.asarray(assign, dtype=km.cluster_centers_.dtype))
    return shannon_index(labels, k_eff)


def pearson_flat(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of the flattened arrays; 0.0 when either is constant (r is undefined there).

    The released ``np.corrcoef`` returns NaN for a constant array; 0 ("no linear relation")
    keeps constant baselines such as a zero face comparable instead of poisoning the mean.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    x = x - x.mean()
    y = y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    if denom == 0.0 or not math.isfinite(denom):
        return 0.0
    return float(np.clip((x @ y) / denom, -1.0, 1.0))


def rpcc(pred: np.ndarray, gt: np.ndarray, partner: np.ndarray) -> float:
    """``|corr(gt, partner) - corr(pred, partner)|`` on flattened arrays (lower is better)."""
    return abs(pearson_flat(gt, partner) - pearson_flat(pred, partner))


# --------------------------------------------------------------------------------------------
# per clip and aggregation

def clip_metrics(pred: np.ndarray, gt: np.ndarray, partner: np.ndarray, *,
                 sid_fit_on: str = "pred",
                 groups: Mapping[str, slice] = GROUPS) -> dict[str, dict[str, float]]:
    """All metrics of one clip-side: ``{"EXP": {"FD":..,"P-FD":..,"MSE":..,"SID":..,"rPCC":..},
    "JAW": {...}, "POSE": {...}}`` (raw, unscaled).

    ``pred``, ``gt``, ``partner``: [T, 56] (lengths may differ; all are trimmed to the shortest).
    Raises ``ValueError`` on wrong widths, non-finite values or fewer than 2 common frames.
    """
    pred = _as_motion(pred, "prediction")
    gt = _as_motion(gt, "ground truth")
    partner = _as_motion(partner, "partner motion")
    for arr, what in ((pred, "prediction"), (gt, "ground truth"), (partner, "partner motion")):
        if arr.shape[1] != DIM:
            raise ValueError(f"{what}: expected [T, {DIM}], got {list(arr.shape)}")
    pred, gt, partner = trim_to_shortest(pred, gt, partner)
    if pred.shape[0] < 2:
        raise ValueError(f"need at least 2 common frames for covariances, got {pred.shape[0]}")
    out: dict[str, dict[str, float]] = {}
    for g, sl in groups.items():
        p, t, q = pred[:, sl], gt[:, sl], partner[:, sl]
        out[g] = {
            "FD": fd(p, t),
            "P-FD": paired_fd(p, t, q),
            "MSE": mse(p, t),
            "SID": sid(p, t, SID_CLUSTERS.get(g, 10), fit_on=sid_fit_on),
            "rPCC": rpcc(p, t, q),
        }
    return out


def aggregate_metrics(per_clip: Iterable[Mapping[str, Mapping[str, float]]]
                      ) -> dict[str, dict[str, float]]:
    """Mean over clip-sides of :func:`clip_metrics` outputs -> ``mean[metric][group]`` (raw).

    Non-finite clip values are left out of the mean (and logged); a metric with no finite value
    is NaN. The released script's plain ``np.mean`` equals this whenever all values are finite.
    """
    rows = list(per_clip)
    if not rows:
        raise ValueError("aggregate_metrics: no clip results to average")
    groups = list(rows[0].keys())
    out: dict[str, dict[str, float]] = {}
    for m in METRICS:
        out[m] = {}
        for g in groups:
            vals = np.array([float(r[g][m]) for r in rows], dtype=np.float64)
            finite = np.isfinite(vals)
            if not finite.all():
                log.warning("%s-%s: %d of %d clip values are not finite; left out of the mean",
                            m, g, int((~finite).sum()), vals.size)
            out[m][g] = float(vals[finite].mean()) if finite.any() else float("nan")
    return out


def scale_metrics(mean: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """The ONE place the paper's reporting scale is applied: ``raw[metric][group] * factor``."""
    return {m: {g: float(v) * PAPER_SCALE[m][g] for g, v in groups.items()}
            for m, groups in mean.items()}


# --------------------------------------------------------------------------------------------
# extra diagnostic (not a paper metric)

def speaking_frames(self_audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Bool [T]: frames where the agent's own audio is loud.

    :func:`dualtalk_core.signals.speaking_mask`: loud relative to the clip (the synthetic data's
    rule) and above the live VAD's silence level, so scoring, data and the running graph agree
    on what "speaking" means.
    """
    from dualtalk_core.signals import speaking_mask

    return np.asarray(speaking_mask(np.asarray(self_audio, np.float32), num_frames), bool)


def jaw_speech_correlation(motion: np.ndarray, self_audio: np.ndarray) -> float:
    """Pearson r of jaw opening (``jaw_rx``) with the agent's own speech energy while speaking.

    Why: the lip-sync check of issue 4's "done" criterion (r > 0.5); the paper's metrics do not
    see whether the mouth moves WITH the speech. Same definition as the synthetic data
    (:func:`dualtalk_core.signals.jaw_energy_correlation`); a jaw that does not move at all while
    speaking scores 0, and NaN means fewer than 2 speaking frames.
    """
    from dualtalk_core.layout import JAW
    from dualtalk_core.signals import jaw_energy_correlation

    motion = _as_motion(motion, "motion")
    jaw = motion[:, JAW.start]
    speaking = speaking_frames(self_audio, len(jaw))
    if int(speaking.sum()) < 2:
        return float("nan")
    if float(np.ptp(jaw[speaking])) == 0.0:
        return 0.0
    return float(jaw_energy_correlation(jaw, self_audio, speaking))


def jaw_speech_correlation_all(motion: np.ndarray, self_audio: np.ndarray) -> float:
    """Pearson r of jaw opening with own speech energy over ALL frames (silences included).

    Why besides :func:`jaw_speech_correlation`: on real tracks the jaw hardly follows the
    loudness *within* speech (the sample clip: r 0.01 on speaking frames) but opens when
    speaking and rests when not (r 0.45 over all frames); this one sees that.
    """
    from dualtalk_core.layout import JAW
    from dualtalk_core.signals import pearson, speech_energy_per_frame

    motion = _as_motion(motion, "motion")
    jaw = motion[:, JAW.start]
    return float(pearson(jaw, speech_energy_per_frame(self_audio, len(jaw))))


def motion_scale_checks(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """How much the prediction moves compared with the ground truth, per clip-side.

    ``exp_std_ratio``: RMS over ``exp`` dims of the per-dim std, pred / real (1 = the face
    moves as much as the real one; per-dim means excluded, so an identity offset does not
    count as motion); ``jaw_std_ratio``: std of the jaw opening, pred / real; ``jaw_r``: Pearson
    r of predicted vs real jaw opening. Why: the paper's metrics do not say whether a model
    trained on one data scale moves a face of another (issue 19).
    """
    from dualtalk_core.layout import EXP, JAW
    from dualtalk_core.signals import pearson

    pred, gt = trim_to_shortest(_as_motion(pred, "pred"), _as_motion(gt, "gt"))

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else float("nan")

    exp_rms = lambda m: float(np.sqrt(np.mean(np.var(m[:, EXP], axis=0))))  # noqa: E731
    return {"exp_std_ratio": ratio(exp_rms(pred), exp_rms(gt)),
            "jaw_std_ratio": ratio(float(pred[:, JAW.start].std()), float(gt[:, JAW.start].std())),
            "jaw_r": float(pearson(pred[:, JAW.start], gt[:, JAW.start]))}
