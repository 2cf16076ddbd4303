"""``dualtalk-ros``: bring-up and bag tools for the pip/venv install (no ros2cli there).

Sub-commands live in their own modules and expose ``register(subparsers)``; the dispatcher is
dualtalk_core's (:func:`dualtalk_core.cli.run_cli`), so both commands behave alike.
"""
from __future__ import annotations

import sys

from dualtalk_core.cli import run_cli

COMMAND_MODULES = (
    "dualtalk_ros.bringup",   # dualtalk-ros bringup conversation ...
    "dualtalk_ros.bag.cli",   # dualtalk-ros bag make|replay|evaluate|info
)


def main(argv: list[str] | None = None) -> int:
    return run_cli("dualtalk-ros", COMMAND_MODULES, argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
