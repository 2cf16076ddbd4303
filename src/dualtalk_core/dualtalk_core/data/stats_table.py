"""Per-group motion statistics of clip-sides, for comparing synthetic faces with real ones.

Why: "is the synthetic data on the real scale?" needs one definition of the numbers, used by
``dualtalk data stats`` (any npz files or data folders), ``dualtalk data calibrate``'s summary
and the tests. Each statistic is computed per clip-side over its frames (the spread a model
has to reproduce within one clip), then averaged over clip-sides:

* ``exp_std_median`` / ``exp_std_min`` / ``exp_std_max``: per-dim std of ``exp``;
* ``exp_std_all``: std over all ``exp`` values of the clip (includes the per-dim means);
* ``jaw_std`` / ``jaw_vel_std``: jaw opening (``pose[:, 3]``) and its frame-to-frame change;
* ``pose_std``: head rotation std, mean over the three axes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dualtalk_core import layout

COLUMNS = ("exp_std_median", "exp_std_min", "exp_std_max", "exp_std_all", "jaw_std",
           "jaw_vel_std", "pose_std")


def side_stats(motion: np.ndarray) -> dict[str, float]:
    """The :data:`COLUMNS` of one [T, 56] clip-side."""
    m = np.asarray(motion, np.float64)
    exp_std = m[:, layout.EXP].std(axis=0)
    jaw = m[:, layout.JAW.start]
    return {"exp_std_median": float(np.median(exp_std)), "exp_std_min": float(exp_std.min()),
            "exp_std_max": float(exp_std.max()), "exp_std_all": float(m[:, layout.EXP].std()),
            "jaw_std": float(jaw.std()), "jaw_vel_std": float(np.diff(jaw).std()),
            "pose_std": float(m[:, layout.POSE].std(axis=0).mean())}


def group_stats(motions: Iterable[np.ndarray]) -> dict[str, float]:
    """Mean of :func:`side_stats` over clip-sides, plus ``n`` (how many)."""
    rows = [side_stats(m) for m in motions]
    if not rows:
        raise ValueError("no clip-sides to summarise")
    out = {k: float(np.mean([r[k] for r in rows])) for k in COLUMNS}
    out["n"] = len(rows)
    return out


def motion_files(paths: Sequence[str | Path]) -> list[Path]:
    """``.npz`` files given directly or found (recursively) under the given folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*_speaker[12].npz"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"not a file or folder: {p}")
    if not files:
        raise FileNotFoundError(f"no *_speakerN.npz under {', '.join(map(str, paths))}")
    return files


def load_motions(paths: Sequence[str | Path]) -> list[np.ndarray]:
    from dualtalk_core.data.motion_io import load_motion

    return [load_motion(f) for f in motion_files(paths)]


def markdown_table(rows: dict[str, dict[str, float]], digits: int = 3) -> str:
    """Rows (label -> :func:`group_stats`) as a Markdown table."""
    head = ("| data | N | EXP per-dim std: median (range) | EXP std, all values | JAW std | "
            "JAW velocity std | POSE std |")
    lines = [head, "|---|---:|---|---:|---:|---:|---:|"]
    f = lambda v: f"{v:.{digits}f}"  # noqa: E731
    for label, r in rows.items():
        lines.append(f"| {label} | {r['n']} | {f(r['exp_std_median'])} ({f(r['exp_std_min'])}"
                     f"-{f(r['exp_std_max'])}) | {f(r['exp_std_all'])} | {f(r['jaw_std'])} | "
                     f"{f(r['jaw_vel_std'])} | {f(r['pose_std'])} |")
    return "\n".join(lines)


def stats_summary_lines(stats) -> list[str]:
    """A few lines saying what ``dualtalk data calibrate`` measured."""
    exp_std = stats.vec("exp_std")
    return [
        f"exp: per-dim std median {np.median(exp_std):.3f} ({exp_std.min():.3f}-"
        f"{exp_std.max():.3f}); jaw-coupled share while speaking {stats.jaw_exp_explained:.2f}",
        f"jaw: std {stats.jaw_std:.4f}, silent {stats.jaw_silent_mean:.4f} / speaking "
        f"{stats.jaw_speaking_mean:.4f} mean ({stats.speaking_source})",
        f"head: std {np.round(stats.vec('head_std'), 4).tolist()}, drift (2 s mean) std "
        f"{np.round(stats.vec('head_drift_std'), 4).tolist()}",
        "blink-like events: " + (f"{stats.blink_rate_hz:.2f} /s, {stats.blink_width_frames:.1f}"
                                  f" frames wide" if stats.blink_measured else "not measurable"),
        f"smile: {stats.smile_source}",
        *stats.notes,
    ]
