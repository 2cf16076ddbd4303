"""``dualtalk render``: the partner's and the agent's faces side by side, drawn from coefficients.

A stylised 2D face (jaw, head pose, a few expression dims; see :mod:`dualtalk_core.media.render`)
for judging timing by eye and ear. The output type follows the file name: ``.mp4`` (H.264,
with the audio muxed in; needs ffmpeg, which the ``imageio-ffmpeg`` dependency ships),
``.gif`` (silent, loops) or ``.png`` (one still: the agent's widest mouth in the window).

Audio: ``--audio`` is the agent's own voice, ``--partner-audio`` the partner's; both are mixed
(summed, clipped) into the MP4 so both voices are heard, and each lights its speaker's
"speaking" bar. A single pre-mixed conversation can be given as ``--audio`` alone (then the
agent's bar follows both voices). Audio sample ``k * 640`` belongs to frame ``k`` (16 kHz, 25 fps).

Example::

    dualtalk render out/clip_speaker1.npy --partner data/test/clip_speaker2.npz \\
        --audio data/test/clip_speaker1.wav --partner-audio data/test/clip_speaker2.wav \\
        -o clip.mp4 --start 5 --duration 10
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from dualtalk_core.layout import FRAME_RATE, SAMPLES_PER_FRAME
from dualtalk_core.data.motion_io import load_motion  # [T, 56] from .npz/.npy

log = logging.getLogger("dualtalk.render")


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="side-by-side cartoon faces -> MP4 (+audio)/GIF/PNG",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred", type=Path, help="agent's motion: [T,56] .npy (or DualTalk .npz)")
    p.add_argument("--partner", type=Path, help="partner's motion (.npz or .npy), drawn left")
    p.add_argument("--audio", type=Path, help="agent's wav, muxed into the MP4")
    p.add_argument("--partner-audio", type=Path, help="partner's wav, mixed in with --audio")
    p.add_argument("-o", "--output", type=Path, required=True, help="OUT.mp4, OUT.gif or OUT.png")
    p.add_argument("--fps", type=float, default=FRAME_RATE,
                   help=f"output frame rate: every round({FRAME_RATE}/N)-th frame is kept "
                        f"(default {FRAME_RATE}; e.g. 12.5 halves a GIF)")
    p.add_argument("--start", type=float, default=0.0, help="first second to render")
    p.add_argument("--duration", type=float, default=None, help="seconds to render (default: all)")
    p.add_argument("--size", type=int, default=None, help="pixels per face (default 256)")
    p.add_argument("--face-stats", default="real", metavar="real|legacy|STATS.json",
                   help="scale the expression read-outs assume: real (default, the calibrated "
                        "scale of `dualtalk data synth`), legacy (the first synthetic scale, "
                        "e.g. the bundled demo model's output) or a calibrate JSON")
    p.set_defaults(func=run)


def _window(args, num_frames: int) -> slice:
    """--start/--duration (seconds) -> frame slice; ``ValueError`` when it holds no frame."""
    if args.start < 0 or (args.duration is not None and args.duration <= 0):
        raise ValueError("--start must be >= 0 and --duration > 0")
    first = int(round(args.start * FRAME_RATE))
    if first >= num_frames:
        raise ValueError(f"{args.pred}: --start {args.start:g} s is past its end "
                         f"({num_frames / FRAME_RATE:.2f} s)")
    if args.duration is None:
        return slice(first, num_frames)
    return slice(first, min(num_frames, first + max(1, round(args.duration * FRAME_RATE))))


def _audio(path: Path | None, num_frames: int) -> np.ndarray | None:
    """Load a wav (16 kHz mono); warn when its length is far from the motion's."""
    if path is None:
        return None
    from dualtalk_core.media.audio_io import load_wav

    audio = load_wav(path)
    seconds, motion_s = len(audio) / (SAMPLES_PER_FRAME * FRAME_RATE), num_frames / FRAME_RATE
    if abs(seconds - motion_s) > 1.0:
        log.warning("%s lasts %.2f s but the motion %.2f s; is it the right pair?", path,
                    seconds, motion_s)
    return audio


def run(args) -> int:
    from dualtalk_core.media import render, video

    kind = video.output_kind(args.output)   # bad extension: fail before loading anything
    if not 0 < args.fps <= FRAME_RATE:
        raise ValueError(f"--fps must be in (0, {FRAME_RATE}], got {args.fps:g}")
    from dualtalk_core.media.face_readout import readout_for

    config = render.RenderConfig(readout=readout_for(str(args.face_stats)),
                                 **({"size": args.size} if args.size else {}))
    agent = render.check_motion(load_motion(args.pred, "prediction"), str(args.pred))
    partner = None
    if args.partner:
        partner = render.check_motion(load_motion(args.partner, "partner motion"),
                                      str(args.partner))
        agent, partner = render.match_lengths(agent, partner)
    t = len(agent)
    own, other = _audio(args.audio, t), _audio(args.partner_audio, t)
    win = _window(args, t)
    levels = {name: None if a is None else render.speech_levels(a, t)[win]
              for name, a in (("agent_level", own), ("partner_level", other))}
    mixed = render.mix_audio(own, other)
    if mixed is not None:
        mixed = mixed[win.start * SAMPLES_PER_FRAME: win.stop * SAMPLES_PER_FRAME]
    step = max(1, round(FRAME_RATE / args.fps))
    t0 = time.perf_counter()
    try:
        out = render.render_to_file(args.output, agent[win],
                                    None if partner is None else partner[win], config=config,
                                    audio=mixed, start_frame=win.start, step=step, **levels)
    except RuntimeError as exc:   # ffmpeg failed: its message, no traceback
        print(f"dualtalk render: error: {exc}", file=sys.stderr)
        return 1
    seconds, kb = time.perf_counter() - t0, out.stat().st_size / 1e3
    if kind == ".png":
        log.info("%s: one still in %.1f s, %.0f kB", out, seconds, kb)
    else:
        log.info("%s: %d frames (%.1f s of motion) at %g fps in %.1f s, %.0f kB", out,
                 len(range(win.start, win.stop, step)), (win.stop - win.start) / FRAME_RATE,
                 FRAME_RATE / step, seconds, kb)
    print(out)
    return 0
