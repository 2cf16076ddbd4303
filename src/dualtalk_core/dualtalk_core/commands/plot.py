"""``dualtalk plot``: EXP/JAW/POSE curves of a prediction vs ground truth, turns shaded.

Example::

    dualtalk plot out/clip_speaker1.npy --gt data/test/clip_speaker1.npz \\
        --partner data/test/clip_speaker2.npz -o fig.png \\
        --self-audio data/test/clip_speaker1.wav --partner-audio data/test/clip_speaker2.wav
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from dualtalk_core.data.motion_io import load_motion  # [T, 56] from .npz/.npy (also used by tests)

log = logging.getLogger("dualtalk.plot")


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="plot EXP/JAW/POSE curves with turns shaded",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred", type=Path, help="prediction: [T,56] .npy (or DualTalk .npz)")
    p.add_argument("--gt", type=Path, help="ground truth of the same side (.npz or .npy)")
    p.add_argument("--partner", type=Path, help="partner's motion (.npz or .npy)")
    p.add_argument("--self-audio", type=Path, help="agent's own wav (turns from energy)")
    p.add_argument("--partner-audio", type=Path, help="partner's wav (turns from energy)")
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    p.add_argument("--title", default=None, help="figure title (default: file name + metrics)")
    p.set_defaults(func=run)


def load_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32 waveform (dualtalk_core's one audio reader)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    from dualtalk_core.media.audio_io import load_wav

    return load_wav(str(path))


def _default_title(args, pred, gt, partner) -> str:
    title = args.pred.name
    if gt is not None and partner is not None:
        from dualtalk_core.evaluation.metrics import clip_metrics, scale_metrics

        try:
            m = clip_metrics(pred, gt, partner)
        except ValueError as exc:
            log.warning("metrics not shown: %s", exc)
            return title
        mean = {metric: {g: m[g][metric] for g in m} for metric in ("FD", "MSE")}
        s = scale_metrics(mean)
        title += (f"   FD-EXP {s['FD']['EXP']:.2f}  MSE-EXP {s['MSE']['EXP']:.2f}  "
                  f"MSE-JAW {s['MSE']['JAW']:.2f}  MSE-POSE {s['MSE']['POSE']:.2f} (paper scale)")
    return title


def run(args) -> int:
    from dualtalk_core.media.plot import plot_motion

    pred = load_motion(args.pred)
    gt = load_motion(args.gt) if args.gt else None
    partner = load_motion(args.partner) if args.partner else None
    self_audio = load_audio(args.self_audio) if args.self_audio else None
    partner_audio = load_audio(args.partner_audio) if args.partner_audio else None
    title = args.title or _default_title(args, pred, gt, partner)
    out = plot_motion(pred, args.output, gt=gt, partner=partner, self_audio=self_audio,
                      partner_audio=partner_audio, title=title)
    print(out)
    return 0
