"""``dualtalk-ros``: bring-up and bag tools for the pip/venv install (no ros2cli there).

Sub-commands live in their own modules and expose ``register(subparsers)``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = (
    "dualtalk_ros.bringup",   # dualtalk-ros bringup conversation ...
    "dualtalk_ros.bag.cli",   # dualtalk-ros bag make|replay|evaluate|info
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualtalk-ros", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"dualtalk-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
