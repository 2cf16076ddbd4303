"""What every node's ``main`` and counters share: spin with clean shutdown, diagnostics.

``Counters`` (named event counters on /diagnostics) is the streaming core's, so the
session's counters and a node's own are one object.

``run_node`` gives each executable the same behaviour: ``rclpy.init``, build the node (a
start-up error such as a missing checkpoint is printed in one line and exits 1), spin, and shut
down quietly on Ctrl-C or an external shutdown.
"""
from __future__ import annotations

import sys
from typing import Callable, Mapping

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from dualtalk_core.streaming.stats import Counters  # noqa: F401 - the nodes' counters


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, missing file, no device); message says why."""


def run_node(factory: Callable[..., object], args: list[str] | None = None) -> int:
    """``main()`` body shared by all executables; returns the process exit code.

    The executor exists before the node is built, so a Ctrl-C during a long start-up (model
    loading) ends in the same clean path as one during spinning.
    """
    rclpy.init(args=args)
    executor = SingleThreadedExecutor()
    node = None
    code = 0
    try:
        node = factory()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (StartupError, FileNotFoundError, ValueError) as exc:
        name = getattr(factory, "__name__", "node")
        print(f"[{name}] start-up error: {exc}", file=sys.stderr)
        code = 1
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C came while the node was being built: its context is gone, which is the
        # shutdown that was asked for, not an error
    finally:
        shut_down(executor, node)
    return code


def shut_down(executor, node) -> None:
    """The clean end of a node's process: stop the executor, ``close()`` the node (its own
    threads) when it has one, destroy it, shut rclpy down (once)."""
    executor.shutdown()
    if node is not None:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        node.destroy_node()
    if rclpy.ok():
        rclpy.shutdown()


def diagnostic_array(node, name: str, values: Mapping[str, object], level: int = 0,
                     message: str = "ok") -> DiagnosticArray:
    """One ``DiagnosticStatus`` named ``<node>: <name>`` with ``values`` as key/value strings."""
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    status = DiagnosticStatus(level=bytes([level]), name=f"{node.get_name()}: {name}",
                              message=message, hardware_id=node.get_fully_qualified_name())
    status.values = [KeyValue(key=str(k), value=(f"{v:.6g}" if isinstance(v, float) else str(v)))
                     for k, v in values.items()]
    arr.status = [status]
    return arr
