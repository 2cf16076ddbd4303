"""``dualtalk``: the command line of dualtalk_core, and the dispatcher ``dualtalk-ros`` shares.

Each sub-command lives in its own module and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (called with the parsed args, returns an exit code). :func:`run_cli`
builds a parser from such modules, sets up logging and turns user errors into one line and exit
code 2; both ``dualtalk`` and ``dualtalk-ros`` (:mod:`dualtalk_ros.cli`) are that function with
their own module lists, so they behave alike.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

COMMAND_MODULES = (
    "dualtalk_core.commands.presets",          # list model presets with parameter counts
    "dualtalk_core.commands.convert_official",  # import the authors' released state dict
    "dualtalk_core.commands.infer",            # offline inference on whole clips
    "dualtalk_core.commands.data",             # data check / data synth
    "dualtalk_core.commands.train",            # training (single process or torchrun)
    "dualtalk_core.commands.distill",          # train a student on a teacher's outputs
    "dualtalk_core.commands.evaluate",         # paper metrics + baselines
    "dualtalk_core.commands.plot",             # EXP/JAW/POSE curves with turns shaded
    "dualtalk_core.commands.export",           # weights-only (optionally fp16) checkpoint copy
    "dualtalk_core.commands.render",           # cartoon faces from coefficients -> GIF/MP4/PNG
    "dualtalk_core.commands.fit_map",          # fit a FLAME<->ARKit rig map from paired tracks
)


def build_parser(prog: str = "dualtalk", modules: Sequence[str] = COMMAND_MODULES,
                 description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description
                                     or __doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def run_cli(prog: str, modules: Sequence[str], argv: list[str] | None = None,
            description: str | None = None) -> int:
    """Parse ``argv`` with the sub-commands of ``modules`` and run the chosen one."""
    args = build_parser(prog, modules, description).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as exc:  # user errors: one clear line
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return run_cli("dualtalk", COMMAND_MODULES, argv)


if __name__ == "__main__":
    sys.exit(main())
