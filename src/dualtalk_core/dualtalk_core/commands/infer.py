"""``dualtalk infer``: inference on one whole clip -> float32 [T, 56] ``.npy``.

Offline by default (the whole clip in one forward pass).  ``--streaming`` runs the clip through
the live path instead - the :class:`~dualtalk_core.streaming.session.StreamingSession` and the
runner the checkpoint names - pushed in ``--chunk-ms`` pieces as a live stream arrives
(:mod:`dualtalk_core.streaming.clip`), from the same fitted inputs as offline.  For a live
(causal) model the result equals offline to float rounding (<= 1e-5); for a sliding-window
model it is what the robot would get, which differs from offline (windows, running
normalisation, cross-fades).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger("dualtalk.infer")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from dualtalk_core.devices import check_precision, resolve_device
    from dualtalk_core.media.audio_io import load_wav
    from dualtalk_core.model.checkpoint import load_checkpoint
    from dualtalk_core.model.inference import load_partner_motion, predict_clip

    device = resolve_device(args.device, "--device")
    check_precision(args.precision, device, "--precision")
    if args.streaming and args.precision != "fp32":
        raise ValueError(f"--streaming runs in fp32 only; got --precision {args.precision}")
    model, payload = load_checkpoint(args.checkpoint, map_location=device)
    self_audio = load_wav(args.self_audio)
    partner_audio = load_wav(args.partner_audio)
    partner_motion = load_partner_motion(args.partner_motion)
    start = time.perf_counter()
    if args.streaming:
        from dualtalk_core.streaming.clip import predict_clip_streamed

        pred = predict_clip_streamed(model, payload, self_audio, partner_audio, partner_motion,
                                     args.chunk_ms, device, args.length_from, log)
    else:
        pred = predict_clip(model, self_audio, partner_audio, partner_motion, device=device,
                            length_from=args.length_from, precision=args.precision)
    elapsed = time.perf_counter() - start  # predict_clip returns host data: GPU work is done
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, pred.astype(np.float32))
    log.info("%d frames in %.2f s (%.3f s per second of audio) on %s, %s", len(pred), elapsed,
             elapsed / max(len(self_audio) / 16000, 1e-9), device, args.precision)
    print(f"wrote {out} {list(pred.shape)}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "infer", help="predict the agent's motion for one clip (offline or --streaming)",
        description="Predict the agent's 56-d FLAME motion for a whole clip. Audio of any sample "
                    "rate or channel count is resampled (soxr) / downmixed with a warning.")
    parser.add_argument("--checkpoint", required=True, help="dualtalk checkpoint (.pt)")
    parser.add_argument("--self-audio", required=True, help="the agent's own speech (WAV)")
    parser.add_argument("--partner-audio", required=True, help="the partner's speech (WAV)")
    parser.add_argument("--partner-motion", required=True,
                        help="partner motion: DualTalk .npz (exp/pose) or [T,56] .npy")
    parser.add_argument("-o", "--output", required=True, help="output .npy, float32 [T, 56]")
    parser.add_argument("--device", default="cpu",
                        help="auto, cpu, cuda or cuda:N (default: cpu); cuda without a GPU is "
                             "refused")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="fp32 (default), or bf16/fp16 autocast (fp16: CUDA only); bf16 "
                             "differs from fp32 by about 1e-2 at most (README, GPU)")
    parser.add_argument("--length-from", choices=("motion", "audio"), default="motion",
                        help="take T from the partner motion (default; frame-aligned with the "
                             "motion track) or from the self audio, ceil(n/640), as the released "
                             "demo; the other inputs are trimmed/padded and it is logged")
    parser.add_argument("--streaming", action="store_true",
                        help="run the clip through the live streaming session (the runner the "
                             "checkpoint names), pushed in --chunk-ms pieces in time order; a "
                             "live model gives the offline result (<= 1e-5), a sliding-window "
                             "model what a robot would get (not equal to offline)")
    parser.add_argument("--chunk-ms", type=float, default=20.0,
                        help="with --streaming: the push size in ms (default 20)")
    parser.set_defaults(func=run)
