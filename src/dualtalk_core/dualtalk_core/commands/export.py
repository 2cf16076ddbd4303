"""``dualtalk export``: a deployable, weights-only copy of a training checkpoint.

Drops the optimizer and RNG states kept for resuming, keeps config, weights and a provenance
summary, optionally stores the weights as float16 (``--half``) and attaches a label that the
ROS node logs when it loads the model. The bundled demo model was made this way::

    dualtalk export runs/demo200/best.pt -o models/dualtalk_cpu_demo.pt --half \\
        --label "DEMO MODEL: cpu preset trained on synthetic conversations only"
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("dualtalk.export")


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="weights-only copy of a checkpoint (optionally fp16)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a DualTalk checkpoint (e.g. best.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    p.add_argument("--half", action="store_true", help="store float weights as float16")
    p.add_argument("--label", default=None, help="text kept in the file, logged on load")
    p.add_argument("--info", default=None,
                   help="JSON object merged into the provenance (e.g. the reproduce command)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualtalk_core.model.checkpoint import export_checkpoint, load_checkpoint

    info = None
    if args.info:
        try:
            info = json.loads(args.info)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--info: not valid JSON: {exc}") from exc
        if not isinstance(info, dict):
            raise ValueError(f"--info: expected a JSON object, got {type(info).__name__}")
    out = export_checkpoint(args.checkpoint, args.output, half=args.half, label=args.label,
                            info=info)
    model, _ = load_checkpoint(out)  # proves the export loads
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out} ({size_mb:.1f} MB, {model.num_parameters() / 1e6:.2f} M parameters"
          f"{', float16 storage' if args.half else ''})")
    return 0
