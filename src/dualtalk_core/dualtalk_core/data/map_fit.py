"""Fit a FLAME <-> ARKit linear map from paired tracks of the same frames.

Why: the maps in ``config/maps/`` are hand-made guesses (real ``exp`` dims are PCA components,
not named muscles). With the same frames tracked in both rigs (the DualTalk set and its ARKit
conversion: ``<side>.npz`` beside ``<side>.npy`` [T, 61], as ``--rig arkit61`` loads it) the map
can be fitted instead. One target at a time, ``scipy.optimize.lsq_linear`` solves a ridge-
regularised least squares on standardised sources (so the small jaw and head angles are not
penalised more than the large ``exp`` values), with bounds:

* ARKit as the target: its weights live in [0, 1]. The map is written with ``clamp: [0, 1]``
  and fitted for that clamp (censored least squares: a frame whose target sits at 0 or 1 and
  whose prediction is already beyond it costs nothing: L-BFGS-B from the plain solution), and
  the bias -- the
  neutral face's weight -- is bounded to [0, 1];
* FLAME as the target: plain ridge least squares, no bounds, no clamp.

Optional temporal smoothing (Gaussian, in frames) of both tracks before the fit damps tracker
jitter. The residual per target (RMSE and R^2 of the written map on the raw frames) goes into
the YAML's header, so a poorly predictable target is visible where the map is used.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import lsq_linear

from dualtalk_core import layout
from dualtalk_core.data.motion_io import check_track, read_track_npz



@dataclass(frozen=True)
class Direction:
    """Which rig is the source and which the target, and the target's range."""

    name: str
    source_rig: str
    target_rig: str
    clamp: tuple[float, float] | None


DIRECTIONS = {
    "flame-to-arkit": Direction("flame-to-arkit", layout.FLAME56, layout.ARKIT52, (0.0, 1.0)),
    "arkit-to-flame": Direction("arkit-to-flame", layout.ARKIT61, layout.FLAME56, None),
}


@dataclass
class PairedTrack:
    """One side's frames in both rigs: FLAME [T, 56] and ARKit [T, 61]."""

    name: str
    flame: np.ndarray
    arkit: np.ndarray


@dataclass
class FittedMap:
    direction: Direction
    matrix: np.ndarray          # [targets, sources]
    bias: np.ndarray            # [targets]
    rmse: np.ndarray            # [targets], the written map on the raw frames
    r2: np.ndarray              # [targets]
    frames: int
    tracks: list[str]
    ridge: float
    smooth_frames: float
    source_std: np.ndarray      # [sources], over the raw frames (for pruning)

    @property
    def source_names(self) -> tuple[str, ...]:
        return layout.rig_names(self.direction.source_rig)

    @property
    def target_names(self) -> tuple[str, ...]:
        return layout.rig_names(self.direction.target_rig)

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, np.float64) @ self.matrix.T + self.bias
        return y if self.direction.clamp is None else np.clip(y, *self.direction.clamp)


# ------------------------------------------------------------------------------------------
# input

def pair_files(paths: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``(npz, npy)`` pairs from ``.npz`` files or folders (searched recursively); the ARKit
    track is the ``.npy`` of the same stem (the data set's ``--rig arkit61`` layout)."""
    npzs: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            npzs += sorted(p.rglob("*.npz"))
        elif p.is_file() and p.suffix == ".npz":
            npzs.append(p)
        elif p.is_file():
            raise ValueError(f"{p}: expected a FLAME .npz (its ARKit .npy is found beside it)")
        else:
            raise FileNotFoundError(f"not a file or folder: {p}")
    if not npzs:
        raise FileNotFoundError(f"no .npz files under {', '.join(map(str, paths))}")
    pairs = []
    for npz in npzs:
        npy = npz.with_suffix(".npy")
        if not npy.is_file():
            raise FileNotFoundError(f"{npz}: no ARKit track beside it (expected {npy})")
        pairs.append((npz, npy))
    return pairs


def load_pair(npz: Path, npy: Path) -> PairedTrack:
    """Both tracks of one side, checked: fields, shape, NaN, >= 100 frames, same length (a
    difference of one frame is trimmed, as the data loader does)."""
    flame = read_track_npz(npz).astype(np.float64)
    try:
        arkit = np.asarray(np.load(npy, allow_pickle=False), np.float64)
    except Exception as exc:
        raise ValueError(f"{npy}: unreadable as .npy ({type(exc).__name__}: {exc})") from None
    width = len(layout.ARKIT61_NAMES)
    if arkit.ndim != 2 or arkit.shape[1] != width:
        raise ValueError(f"{npy}: expected an ARKit [T, {width}] array ({layout.ARKIT61}), "
                         f"got {list(arkit.shape)}")
    for path, arr in ((npz, flame), (npy, arkit)):
        check_track(path, arr)
    if abs(len(flame) - len(arkit)) > 1:
        raise ValueError(f"{npz}: {len(flame)} frames but {npy.name} has {len(arkit)} (the "
                         f"tracks must cover the same frames)")
    t = min(len(flame), len(arkit))
    return PairedTrack(npz.stem, flame[:t], arkit[:t])


# ------------------------------------------------------------------------------------------
# fit

def _solve_target(xs: np.ndarray, y: np.ndarray, ridge: float, clamp, bias_bounds):
    """Ridge least squares of one target on sources ``xs`` [N, S] (+ bias): ``lsq_linear``;
    with a clamp, refined for the clamped map (:func:`_censored_refit`)."""
    n, s = xs.shape
    a = np.vstack([np.hstack([xs, np.ones((n, 1))]),
                   np.hstack([np.sqrt(ridge * n) * np.eye(s), np.zeros((s, 1))])])
    lb = np.full(s + 1, -np.inf)
    ub = np.full(s + 1, np.inf)
    lb[-1], ub[-1] = bias_bounds
    sol = lsq_linear(a, np.concatenate([y, np.zeros(s)]), bounds=(lb, ub),
                     method="bvls" if s < 80 else "trf").x
    if clamp is not None:
        sol = _censored_refit(xs, y, ridge, clamp, sol, (lb, ub))
    return sol[:-1], sol[-1]


def _censored_refit(xs, y, ridge, clamp, start, bounds) -> np.ndarray:
    """Least squares of ``clip(x w + b)`` against ``y``: a frame whose target sits at the
    clamp costs only when the prediction is inside the range (squared hinge). Convex and
    smooth, so L-BFGS-B from the plain solution finds its minimum."""
    from scipy.optimize import minimize

    n = len(y)
    at_low, at_high = y <= clamp[0] + 1e-6, y >= clamp[1] - 1e-6
    lam = ridge * n

    def loss(p):
        pred = xs @ p[:-1] + p[-1]
        r = pred - y
        r = np.where(at_low, np.maximum(pred - clamp[0], 0.0), r)
        r = np.where(at_high, np.minimum(pred - clamp[1], 0.0), r)
        grad = np.append(xs.T @ r, r.sum()) * 2.0
        grad[:-1] += 2.0 * lam * p[:-1]
        return float(r @ r + lam * p[:-1] @ p[:-1]), grad

    lb, ub = bounds
    box = [(None if not np.isfinite(lo) else lo, None if not np.isfinite(hi) else hi)
           for lo, hi in zip(lb, ub)]
    res = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=box,
                   options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
    return res.x


def fit_map(tracks: Sequence[PairedTrack], direction: str = "flame-to-arkit",
            ridge: float = 1e-3, smooth_frames: float = 0.0) -> FittedMap:
    """Fit the map in ``direction`` on all frames of ``tracks`` (see the module docstring)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    if ridge < 0 or smooth_frames < 0:
        raise ValueError(f"ridge and smooth_frames must be >= 0, got {ridge}, {smooth_frames}")
    from threadpoolctl import threadpool_limits

    # N x ~60 problems: BLAS threads only contend (50x slower on a busy 2-core machine)
    with threadpool_limits(1):
        return _fit(tracks, DIRECTIONS[direction], ridge, smooth_frames)


def _fit(tracks: Sequence[PairedTrack], d: Direction, ridge: float, smooth_frames: float
         ) -> FittedMap:
    n_target = len(layout.rig_names(d.target_rig))

    def columns(tr: PairedTrack, rig: str) -> np.ndarray:
        arr = tr.flame if rig == layout.FLAME56 else tr.arkit
        return arr[:, :len(layout.rig_names(rig))]

    def smoothed(arr: np.ndarray) -> np.ndarray:
        return gaussian_filter1d(arr, smooth_frames, axis=0, mode="nearest") \
            if smooth_frames > 0 else arr

    x_raw = np.concatenate([columns(t, d.source_rig) for t in tracks])
    y_raw = np.concatenate([columns(t, d.target_rig) for t in tracks])
    x = np.concatenate([smoothed(columns(t, d.source_rig)) for t in tracks])
    y = np.concatenate([smoothed(columns(t, d.target_rig)) for t in tracks])
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    xs = (x - mu) / sd
    bias_bounds = d.clamp if d.clamp is not None else (-np.inf, np.inf)
    matrix = np.zeros((n_target, x.shape[1]))
    bias = np.zeros(n_target)
    for k in range(n_target):
        # bias of the standardised problem = prediction at the mean; bounded like the target
        w, b0 = _solve_target(xs, y[:, k], ridge, d.clamp, (-np.inf, np.inf))
        matrix[k] = w / sd
        bias[k] = b0 - matrix[k] @ mu
        if d.clamp is not None and not bias_bounds[0] <= bias[k] <= bias_bounds[1]:
            bias[k] = _refit_with_bias_bound(x, y[:, k], sd, ridge, d.clamp, matrix, k)
    fitted = FittedMap(d, matrix, bias, np.zeros(n_target), np.zeros(n_target), len(x),
                       [t.name for t in tracks], ridge, smooth_frames, x_raw.std(0))
    fitted.rmse, fitted.r2 = residuals(fitted, x_raw, y_raw)
    return fitted


def _refit_with_bias_bound(x, y, sd, ridge, clamp, matrix, k) -> float:
    """Refit target ``k`` in raw source units so the bias (neutral face weight) stays in
    ``clamp``: the neutral face must map to a valid ARKit weight."""
    w, b = _solve_target(x / sd, y, ridge, clamp, clamp)
    matrix[k] = w / sd
    return float(b)


def residuals(fitted: FittedMap, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMSE and R^2 per target of ``fitted`` (clamp included) on frames ``x`` -> ``y``."""
    err = fitted.apply(x) - y
    rmse = np.sqrt((err ** 2).mean(0))
    var = y.var(0)
    r2 = np.where(var > 1e-12, 1.0 - (err ** 2).mean(0) / np.maximum(var, 1e-12), np.nan)
    return rmse, r2


# ------------------------------------------------------------------------------------------
# output: the format of config/maps/*.yaml (dualtalk_ros.rig_mapping)

def _num(v: float) -> str:
    text = f"{float(v):.6g}"
    return "0.0" if float(text) == 0.0 else text


def map_yaml(fitted: FittedMap, prune: float = 0.0, command: str = "") -> str:
    """The map as YAML (sparse ``targets:`` form), its fit and residuals in a header comment.

    ``prune`` drops terms whose effect over the data (|gain| x source std) is below it; the
    residuals in the header are those of the map as fitted (before pruning, which only drops
    terms that do not matter at that level).
    """
    d = fitted.direction
    lines = [
        f"# FITTED map {d.source_rig} -> {d.target_rig} (not hand-made): "
        f"`{command or 'dualtalk fit-map ' + d.name}`.",
        f"# Regularised least squares per target (scipy lsq_linear, ridge {fitted.ridge:g} on "
        f"standardised sources" + (", clamp-aware fit, neutral-face bias in "
                                   f"[{d.clamp[0]:g}, {d.clamp[1]:g}]" if d.clamp else "")
        + (f", both tracks Gaussian-smoothed over {fitted.smooth_frames:g} frames"
           if fitted.smooth_frames else "") + ").",
        f"# Data: {fitted.frames} paired frames from {len(fitted.tracks)} track(s): "
        + ", ".join(fitted.tracks[:6]) + (" ..." if len(fitted.tracks) > 6 else ""),
        "# Residual per target on those frames (RMSE in target units; R^2, nan = constant "
        "target):",
    ]
    for name, e, r in zip(fitted.target_names, fitted.rmse, fitted.r2):
        lines.append(f"#   {name}: rmse {_num(e)}, R^2 {_num(r) if np.isfinite(r) else 'nan'}")
    lines += [f"source_rig: {d.source_rig}", f"target_rig: {d.target_rig}"]
    if d.clamp is not None:
        lines.append(f"clamp: [{d.clamp[0]:.1f}, {d.clamp[1]:.1f}]")
    lines.append("targets:")
    for k, name in enumerate(fitted.target_names):
        terms = [f"{src}: {_num(g)}" for src, g, sd in zip(fitted.source_names,
                                                            fitted.matrix[k], fitted.source_std)
                 if float(_num(g)) != 0.0 and abs(g) * sd >= prune]
        lines.append(f"  {name}: {{terms: {{{', '.join(terms)}}}, bias: {_num(fitted.bias[k])}}}")
    return "\n".join(lines) + "\n"

