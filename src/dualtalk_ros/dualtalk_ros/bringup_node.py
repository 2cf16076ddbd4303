"""One node of a ``dualtalk-ros bringup`` graph in its own process.

``python -m dualtalk_ros.bringup_node SPEC.json``: the bring-up writes, per node, the entry name,
the node name and its resolved parameters (params file + launch-style arguments + ``--set``) as
JSON, and starts this runner once per node, as ``ros2 launch`` starts one executable per node.
Parameters are passed as Python values (typed by the node's ``PARAMS``), not through a ROS
parameter file, so an int given for a float parameter or an empty list behaves as in the file.

Exit codes tell the bring-up what happened: 0 after a clean shutdown (SIGINT/SIGTERM),
:data:`EXIT_STARTUP` when the node could not be built (bad parameter, missing checkpoint: a
respawn would fail the same way), anything else (1 for an uncaught exception, -N for a signal)
is a crash that ``--respawn`` recovers from. On a clean exit the node's final
``diagnostics_values()`` (if it has them) are written to ``SPEC.exit.json`` for ``--report``.
"""
from __future__ import annotations

import importlib
import json
import signal
import sys
from pathlib import Path

EXIT_STARTUP = 3


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 1:
        print("usage: python -m dualtalk_ros.bringup_node SPEC.json [--ros-args ...]",
              file=sys.stderr)
        return 2
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from .bringup import entry_by_name
    from .params import to_parameters
    from .runtime import StartupError, shut_down

    entry = entry_by_name(spec["entry"])
    cls = entry.load()
    specs = getattr(importlib.import_module(cls.__module__), "PARAMS", ())
    rclpy.init(args=["dualtalk_bringup_node", *argv[1:]])
    executor = SingleThreadedExecutor()
    node = None
    code = 0
    try:
        try:
            node = cls(name=spec["name"],
                       parameter_overrides=to_parameters(spec["params"], specs))
        except (StartupError, FileNotFoundError, ValueError) as exc:
            print(f"[{spec['name']}] start-up error: {exc}", file=sys.stderr)
            return EXIT_STARTUP
        except Exception:
            if rclpy.ok():
                raise
            return 0    # stopped (SIGINT/SIGTERM) while the node was being built
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # one stop request is enough: a second SIGINT (the terminal's, then the bring-up's)
        # must not interrupt the clean shutdown below
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        values = getattr(node, "diagnostics_values", None)
        if values is not None and code == 0:
            try:
                spec_path.with_suffix(".exit.json").write_text(json.dumps(values(), default=str))
            except Exception as exc:  # the report is a bonus; the shutdown must finish
                print(f"[{spec['name']}] exit report not written: {exc}", file=sys.stderr)
        shut_down(executor, node)
    return code


if __name__ == "__main__":
    sys.exit(main())
