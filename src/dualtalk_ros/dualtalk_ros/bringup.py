"""``dualtalk-ros bringup conversation``: the launch file's node graph in one process.

The venv install has no ``ros2 launch``; this command starts the same nodes
(:data:`CONVERSATION_NODES`, also what ``launch/conversation.launch.py`` starts; a test checks
they agree) with the same parameter file (``config/conversation.yaml``, ROS format
``node_name: ros__parameters: ...``) in one ``SingleThreadedExecutor``. ``--set node.param=value``
overrides single values; ``--duration`` stops after that many seconds and ``--report`` writes
measured output rate, end-to-end latency and CPU load as JSON.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PARAMS = "conversation.yaml"


@dataclass(frozen=True)
class NodeEntry:
    """One node of the conversation graph: its node name (key in the params file), the
    installed executable, the class, and when it runs (``always``, ``file_audio`` or
    ``live_audio``)."""

    name: str
    executable: str
    module: str
    cls: str
    when: str = "always"

    def load(self):
        return getattr(importlib.import_module(f"dualtalk_ros.{self.module}"), self.cls)


CONVERSATION_NODES: tuple[NodeEntry, ...] = (
    NodeEntry("audio_capture", "audio_capture", "audio_capture_node", "AudioCaptureNode",
              "live_audio"),
    NodeEntry("partner_player", "audio_file_player", "audio_file_player_node",
              "AudioFilePlayerNode", "file_audio"),
    NodeEntry("agent_player", "audio_file_player", "audio_file_player_node",
              "AudioFilePlayerNode", "file_audio"),
    NodeEntry("face_input_adapter", "face_input_adapter", "face_input_adapter_node",
              "FaceInputAdapterNode"),
    NodeEntry("dualtalk_node", "dualtalk_node", "dualtalk_node", "DualTalkNode"),
    NodeEntry("head_driver", "head_driver", "head_driver_node", "HeadDriverNode"),
)


def conversation_nodes(use_file_audio: bool | None = None) -> list[NodeEntry]:
    """The node set; ``None`` = all entries, else those that run in that audio mode."""
    if use_file_audio is None:
        return list(CONVERSATION_NODES)
    skip = "live_audio" if use_file_audio else "file_audio"
    return [n for n in CONVERSATION_NODES if n.when != skip]


def register(sub) -> None:
    parser = sub.add_parser("bringup", help="run a node graph in one process (no ros2 launch)")
    graphs = parser.add_subparsers(dest="graph", required=True, metavar="GRAPH")
    p = graphs.add_parser("conversation", help="audio in -> DualTalk -> head driver",
                          description=__doc__.splitlines()[0])
    p.add_argument("--params", default=DEFAULT_PARAMS,
                   help="ROS parameter YAML (default: config/conversation.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="NODE.PARAM=VALUE", help="override one parameter (repeatable)")
    p.add_argument("--checkpoint", help="dualtalk_node checkpoint (same as the launch argument)")
    p.add_argument("--device", help="torch device of dualtalk_node (cpu, cuda)")
    p.add_argument("--audio-device", help="capture device (name or index)")
    p.add_argument("--use-file-audio", action="store_true",
                   help="play wav files (partner_player/agent_player) instead of capturing")
    p.add_argument("--no-audio-input", action="store_true",
                   help="start no audio source: another process (e.g. a bag replay) publishes "
                        "partner/agent audio")
    p.add_argument("--partner-wav", help="partner wav for --use-file-audio")
    p.add_argument("--agent-wav", help="agent wav for --use-file-audio")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds (0 = until Ctrl-C)")
    p.add_argument("--report", help="write measured rate/latency/CPU as JSON to this file")
    p.set_defaults(func=run)


def node_parameters(args) -> dict[str, dict[str, Any]]:
    """Parameters per node: params file, then launch-style arguments, then ``--set``."""
    from .params import load_params_file, parse_overrides, resolve_config_path

    per_node = load_params_file(resolve_config_path(args.params))
    wildcard = per_node.pop("/**", {})
    out = {n.name: dict(wildcard, **per_node.get(n.name, {})) for n in CONVERSATION_NODES}
    if args.checkpoint:
        out["dualtalk_node"]["checkpoint"] = args.checkpoint
    if args.device:
        out["dualtalk_node"]["device"] = args.device
    if args.audio_device:
        out["audio_capture"]["device"] = args.audio_device
    if args.partner_wav:
        out["partner_player"]["wav_files"] = [args.partner_wav]
    if args.agent_wav:
        out["agent_player"]["wav_files"] = [args.agent_wav]
    for node, values in parse_overrides(args.overrides).items():
        if node not in out:
            raise ValueError(f"--set {node}.…: unknown node {node!r}; nodes: {sorted(out)}")
        out[node].update(values)
    return out


class _Probe:
    """Subscriber measuring what a consumer sees: frame rate and stamp-to-arrival latency."""

    def __init__(self, node, topic: str) -> None:
        from dualtalk_msgs.msg import Blendshapes

        from .conversions import stamp_to_ns
        from .qos import reliable_qos

        self._stamp_to_ns = stamp_to_ns
        self.arrivals: list[tuple[int, int]] = []   # (ros now ns, stamp ns)
        node.create_subscription(Blendshapes, topic, self._cb, reliable_qos())
        self.node = node

    def _cb(self, msg) -> None:
        self.arrivals.append((self.node.get_clock().now().nanoseconds,
                              self._stamp_to_ns(msg.header.stamp)))

    def summary(self, skip_s: float = 1.0) -> dict[str, float]:
        import numpy as np

        if len(self.arrivals) < 2:
            return {"frames": float(len(self.arrivals))}
        a = np.array(self.arrivals, dtype=np.float64)
        t0 = a[0, 0] + skip_s * 1e9     # ignore the start-up transient
        a = a[a[:, 0] >= t0] if (a[:, 0] >= t0).sum() >= 2 else a
        lat = (a[:, 0] - a[:, 1]) / 1e6
        span = (a[-1, 0] - a[0, 0]) / 1e9
        return {"frames": float(len(self.arrivals)),
                # stamp -> arrival is only a latency when the stamps are on this clock (not,
                # e.g., a bag stamped from t=0 replayed without sim time)
                "latency_plausible": bool(((lat >= 0) & (lat < 60_000)).all()),
                "rate_hz": (len(a) - 1) / span if span > 0 else 0.0,
                "latency_ms_p50": float(np.percentile(lat, 50)),
                "latency_ms_p95": float(np.percentile(lat, 95)),
                "latency_ms_max": float(lat.max()),
                "interval_ms_p50": float(np.percentile(np.diff(a[:, 0]) / 1e6, 50)),
                "interval_ms_p95": float(np.percentile(np.diff(a[:, 0]) / 1e6, 95))}


def quiet_openmp_threads() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy.

    By default OpenMP worker threads (torch's intra-op pool) spin for a while after each
    parallel region. In this one-process graph the executor threads of the other nodes (audio
    in, head driver, the probe) need the same cores between the model's hops; on a small machine
    (2 cores) the spinning starves them and adds latency, for no gain (a hop is one short burst
    of work every 0.4 s). libgomp reads the variable once when it is loaded, so this must run
    before torch is imported (``run`` imports the nodes, hence torch, only afterwards); when
    torch is already loaded (bring-up called from a process that imported it) it is too late and
    nothing is changed. ``bag evaluate`` sets the same default for its graph subprocess.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run(args) -> int:
    quiet_openmp_threads()
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from .params import to_parameters
    from .runtime import StartupError

    params = node_parameters(args)
    entries = conversation_nodes(args.use_file_audio)
    if getattr(args, "no_audio_input", False):
        entries = [e for e in entries if e.when == "always"]
    ctx = Context()
    rclpy.init(context=ctx)
    nodes: list = []
    code = 0
    cpu0, wall0 = os.times(), time.monotonic()
    probe = None
    try:
        # players last, sharing one conversation clock that starts shortly after construction
        ordered = [e for e in entries if e.when != "file_audio"] + \
                  [e for e in entries if e.when == "file_audio"]
        origin = None
        for entry in ordered:
            values = dict(params[entry.name])
            if entry.when == "file_audio" and not values.get("origin_stamp_s"):
                if origin is None:
                    origin = time.time() + float(values.get("start_delay_s", 0.5))
                values["origin_stamp_s"] = origin
            cls = entry.load()
            specs = getattr(importlib.import_module(cls.__module__), "PARAMS", ())
            nodes.append(cls(context=ctx, name=entry.name,
                             parameter_overrides=to_parameters(values, specs)))
        from rclpy.node import Node
        probe_node = Node("bringup_probe", context=ctx)
        nodes.append(probe_node)
        topic = params["dualtalk_node"].get("blendshapes_topic", "agent/blendshapes")
        probe = _Probe(probe_node, topic)
        # One thread is enough: every callback is short (the model runs in dualtalk_node's own
        # thread, paced output in another). A MultiThreadedExecutor spun at 100 % CPU here (its
        # wait set reports a subscription ready again before a worker has taken the message),
        # holding the GIL and slowing model hops ~40x on 2 cores.
        executor = SingleThreadedExecutor(context=ctx)
        for n in nodes:
            executor.add_node(n)
        print(f"bringup: running {[e.name for e in entries]}"
              + (f" for {args.duration} s" if args.duration else " (Ctrl-C to stop)"),
              file=sys.stderr)
        cpu0, wall0 = os.times(), time.monotonic()
        deadline = wall0 + args.duration if args.duration > 0 else float("inf")
        try:
            # spin from this thread (not executor.spin + a timer thread calling shutdown), so
            # the executor is shut down here, after its worker threads finished their callbacks
            while ctx.ok() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            # detach the nodes and let callbacks already handed to the thread pool finish
            # before the executor destroys its guard condition (rclpy otherwise reports
            # "cannot use Destroyable" from tasks that were still queued)
            for n in nodes:
                executor.remove_node(n)
            drain_until = time.monotonic() + 0.3
            while time.monotonic() < drain_until:
                executor.spin_once(timeout_sec=0.05)
            executor.shutdown()
    except StartupError as exc:
        print(f"bringup: start-up error: {exc}", file=sys.stderr)
        code = 1
    finally:
        cpu1, wall1 = os.times(), time.monotonic()
        report = None
        if probe is not None:
            wall = max(wall1 - wall0, 1e-9)
            cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            report = {"nodes": [e.name for e in entries], "wall_s": wall,
                      "cpu_s": cpu, "cpu_load_cores": cpu / wall,
                      "cpu_load_percent_of_machine": 100.0 * cpu / wall / (os.cpu_count() or 1),
                      "cpu_count": os.cpu_count(), "machine_loadavg_1min": os.getloadavg()[0]}
            report.update(probe.summary())
            for n in nodes:
                if hasattr(n, "diagnostics_values"):
                    d = n.diagnostics_values()
                    report["dualtalk_node"] = {k: d[k] for k in (
                        "real_time_factor", "hop_ms_p50", "hop_ms_p95",
                        "processing_latency_ms_p50", "processing_latency_ms_p95",
                        "end_to_end_latency_ms_p50", "end_to_end_latency_ms_p95",
                        "algorithmic_latency_s", "frames_published", "frames_flushed")}
        for n in nodes:
            close = getattr(n, "close", None)
            if close is not None:
                close()
        for n in nodes:
            n.destroy_node()
        if ctx.ok():
            rclpy.shutdown(context=ctx)
        if report is not None:
            text = json.dumps(report, indent=2)
            print(text)
            if args.report:
                Path(args.report).write_text(text)
    return code
