"""EXP / JAW / POSE curves of a prediction against ground truth, with conversation turns shaded.

Why: the paper's numbers say how far a prediction is from the truth, not *when* it goes wrong.
A plot over time with the agent's speaking turns and the partner's speaking turns shaded shows
at a glance whether the mouth moves while speaking and the head reacts while listening.

Turns come from the audio energy of each side when the waveforms are given, otherwise from jaw
activity (rolling std of the jaw opening) of the ground truth and partner motion.
Uses matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dualtalk_core.layout import EXP, FLAME56_NAMES, FRAME_RATE, JAW, POSE

log = logging.getLogger(__name__)

SELF_COLOR = "tab:green"
PARTNER_COLOR = "tab:orange"
JAW_WINDOW_S = 0.4
"""Rolling window for jaw-activity turn detection (seconds)."""
TURN_GAP_S = 0.3
"""Pauses up to this long inside a turn are shaded as part of it."""


def turns_from_audio(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Bool [T]: frames where this side's audio is loud (same rule as the lip-sync metric)."""
    from dualtalk_core.evaluation.metrics import speaking_frames

    return speaking_frames(audio, num_frames)


def turns_from_jaw(motion: np.ndarray, rel_threshold: float = 0.35) -> np.ndarray:
    """Bool [T]: frames with jaw activity (rolling std of ``jaw_rx``) above a relative level.

    Talking moves the jaw quickly; listening holds it nearly still. The threshold is relative to
    the clip's own 95th percentile activity, so it works across rigs and people.
    """
    jaw = np.asarray(motion, dtype=np.float64)[:, JAW.start]
    w = max(3, int(round(JAW_WINDOW_S * FRAME_RATE)))
    if len(jaw) < w:
        return np.zeros(len(jaw), bool)
    pad = np.pad(jaw, (w // 2, w - 1 - w // 2), mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, w)
    activity = win.std(axis=1)
    ref = float(np.percentile(activity, 95))
    if ref <= 1e-8:
        return np.zeros(len(jaw), bool)
    return activity > rel_threshold * ref


def close_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False no longer than ``max_gap`` frames between True frames (pauses
    inside a phrase are still the same turn)."""
    mask = np.asarray(mask, bool).copy()
    for a, b in _spans(~mask):
        if a > 0 and b < len(mask) and b - a <= max_gap:
            mask[a:b] = True
    return mask


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) frame ranges where ``mask`` is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[0::2], edges[1::2]))


def _exp_pcs(gt_exp: np.ndarray | None, pred_exp: np.ndarray, k: int):
    """Principal axes of EXP (fitted on gt when present) and the projection function."""
    ref = gt_exp if gt_exp is not None else pred_exp
    mu = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - mu, full_matrices=False)
    axes = vt[:k]
    return lambda x: (x - mu) @ axes.T


def plot_motion(pred: np.ndarray, out: str | Path, *, gt: np.ndarray | None = None,
                partner: np.ndarray | None = None, self_audio: np.ndarray | None = None,
                partner_audio: np.ndarray | None = None, title: str | None = None,
                exp_components: int = 3) -> Path:
    """Write a PNG of EXP (first principal components), JAW and POSE curves over time.

    ``pred``/``gt``/``partner``: [T, 56] (trimmed to the shortest given). Solid lines are ground
    truth, dashed the prediction. Shading: agent speaking (green), partner speaking (orange).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    arrays = [np.asarray(pred, np.float64)]
    arrays += [np.asarray(a, np.float64) for a in (gt, partner) if a is not None]
    t = min(len(a) for a in arrays)
    if t < 2:
        raise ValueError(f"need at least 2 frames to plot, got {t}")
    pred = arrays[0][:t]
    gt = None if gt is None else np.asarray(gt, np.float64)[:t]
    partner = None if partner is None else np.asarray(partner, np.float64)[:t]
    time = np.arange(t) / FRAME_RATE

    # turns
    self_turns = partner_turns = None
    if self_audio is not None:
        self_turns = turns_from_audio(self_audio, t)
    elif gt is not None:
        self_turns = turns_from_jaw(gt)
    if partner_audio is not None:
        partner_turns = turns_from_audio(partner_audio, t)
    elif partner is not None:
        partner_turns = turns_from_jaw(partner)
    gap = int(round(TURN_GAP_S * FRAME_RATE))
    self_turns = None if self_turns is None else close_gaps(self_turns, gap)
    partner_turns = None if partner_turns is None else close_gaps(partner_turns, gap)
    turn_source = "audio energy" if self_audio is not None or partner_audio is not None \
        else "jaw activity"

    k = min(exp_components, EXP.stop - EXP.start)
    project = _exp_pcs(None if gt is None else gt[:, EXP], pred[:, EXP], k)
    panels = [
        ("EXP (PCs of ground truth)" if gt is not None else "EXP (PCs)",
         [f"PC{i + 1}" for i in range(k)], project(pred[:, EXP]),
         None if gt is None else project(gt[:, EXP])),
        ("JAW (rad)", list(FLAME56_NAMES[JAW]), pred[:, JAW], None if gt is None else gt[:, JAW]),
        ("POSE (rad)", list(FLAME56_NAMES[POSE]), pred[:, POSE],
         None if gt is None else gt[:, POSE]),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.6 * len(panels)), sharex=True,
                             constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (label, names, p, g) in zip(axes, panels):
        for mask, color in ((self_turns, SELF_COLOR), (partner_turns, PARTNER_COLOR)):
            if mask is None:
                continue
            for a, b in _spans(mask):
                ax.axvspan(a / FRAME_RATE, b / FRAME_RATE, color=color, alpha=0.13, lw=0)
        for j, name in enumerate(names):
            c = colors[j % len(colors)]
            if g is not None:
                ax.plot(time, g[:, j], color=c, lw=1.3, label=f"{name} gt")
            ax.plot(time, p[:, j], color=c, lw=1.1, ls="--", label=f"{name} pred")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, framealpha=0.8)
    axes[-1].set_xlabel("time (s)")
    handles = [Patch(color=SELF_COLOR, alpha=0.3, label="agent speaking"),
               Patch(color=PARTNER_COLOR, alpha=0.3, label="partner speaking")]
    axes[0].legend(handles=handles + axes[0].get_legend_handles_labels()[0],
                   loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, framealpha=0.8)
    head = title or "prediction (dashed) vs ground truth (solid)"
    fig.suptitle(f"{head}   [turns from {turn_source}]", fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
