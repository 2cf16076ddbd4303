"""``dualtalk``: the command line of dualtalk_core.

Each sub-command lives in its own module under :mod:`dualtalk_core.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed args,
returns an exit code). Keeping the commands apart keeps this file tiny.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = (
    "presets",         # list model presets with parameter counts
    "convert_official",  # import the authors' released state dict
    "infer",           # offline inference on whole clips
    "data",            # data check / data synth
    "train",           # training (single process or torchrun)
    "evaluate",        # paper metrics + baselines
    "plot",            # EXP/JAW/POSE curves with turns shaded
    "export",          # weights-only (optionally fp16) copy of a checkpoint, e.g. the demo model
    "render",          # side-by-side cartoon faces from coefficients -> GIF/MP4 (+audio)/PNG
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualtalk", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"dualtalk_core.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as exc:  # user errors: one clear line
        print(f"dualtalk {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
