"""``dualtalk convert-official DualTalk.pth -o dualtalk_paper.pt``: import the released weights."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from dualtalk_core.model.convert import convert_official

    out = convert_official(args.state_dict, args.output, wav2vec2_config=args.wav2vec2_config)
    print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-official", help="convert the authors' released DualTalk.pth to a checkpoint",
        description="Convert the authors' released DualTalk state dict (weight_g/weight_v or "
                    "parametrizations key styles) into a dualtalk checkpoint. The wav2vec2 "
                    "layer count is read from the keys.")
    parser.add_argument("state_dict", help="released DualTalk.pth (a plain state dict)")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--wav2vec2-config", metavar="DIR_OR_JSON",
                        help="local wav2vec2 directory (config.json) or JSON file; default: "
                             "wav2vec2-large-lv60 conventions + sizes read from key shapes")
    parser.set_defaults(func=run)
