"""``dualtalk-ros bringup conversation``: the launch file's node graph, one process per node.

The venv install has no ``ros2 launch``; this command starts the same nodes
(:data:`CONVERSATION_NODES`, also what ``launch/conversation.launch.py`` starts; a test checks
they agree) with the same parameter file (``config/conversation.yaml``, ROS format
``node_name: ros__parameters: ...``), each in its own process as ``ros2 launch`` does, so one
node's crash cannot take the others down. ``--respawn NODE`` restarts that node when it exits
(``respawn=True`` in a launch file); every node gets SIGTERM when the bring-up dies, even by
SIGKILL, so none is ever orphaned. Topics are renamed by ROS remapping, as in a launch file:
each entry's default ``remappings`` (the file players' ``audio`` -> ``partner/audio`` /
``agent/audio``) come after the user's ``--remap NODE:FROM:=TO`` rules (the first matching rule
wins in ROS, so the user's win). ``--set node.param=value`` overrides single values;
``--duration`` stops after that many seconds and ``--report`` writes measured output rate,
end-to-end latency, CPU load and each node's exits/respawns as JSON. The exit status is 0 only
when every node ran until the bring-up stopped it.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import topics

DEFAULT_PARAMS = "conversation.yaml"


@dataclass(frozen=True)
class NodeEntry:
    """One node of the conversation graph: its node name (key in the params file), the
    installed executable, the class, when it runs (``always``, ``file_audio``, ``live_audio``
    or ``play_voice``: only when asked, as it needs a sound card) and its default topic
    remappings ``((from, to), ...)`` (the launch file's ``remappings=``; a test checks they
    agree)."""

    name: str
    executable: str
    module: str
    cls: str
    when: str = "always"
    remappings: tuple[tuple[str, str], ...] = ()

    def load(self):
        return getattr(importlib.import_module(f"dualtalk_ros.{self.module}"), self.cls)


CONVERSATION_NODES: tuple[NodeEntry, ...] = (
    NodeEntry("audio_capture", "audio_capture", "audio_capture_node", "AudioCaptureNode",
              "live_audio"),
    NodeEntry("partner_player", "audio_file_player", "audio_file_player_node",
              "AudioFilePlayerNode", "file_audio",
              ((topics.PLAYER_AUDIO, topics.PARTNER_AUDIO),)),
    NodeEntry("agent_player", "audio_file_player", "audio_file_player_node",
              "AudioFilePlayerNode", "file_audio",
              ((topics.PLAYER_AUDIO, topics.AGENT_AUDIO),)),
    NodeEntry("face_input_adapter", "face_input_adapter", "face_input_adapter_node",
              "FaceInputAdapterNode"),
    NodeEntry("dualtalk_node", "dualtalk_node", "dualtalk_node", "DualTalkNode"),
    NodeEntry("head_driver", "head_driver", "head_driver_node", "HeadDriverNode"),
    NodeEntry("voice_player", "voice_player", "voice_player_node", "VoicePlayerNode",
              "play_voice"),
)


def entry_by_name(name: str) -> NodeEntry:
    """The :data:`CONVERSATION_NODES` entry named ``name`` (``KeyError`` listing the names)."""
    for entry in CONVERSATION_NODES:
        if entry.name == name:
            return entry
    raise KeyError(f"unknown node {name!r}; nodes: {[e.name for e in CONVERSATION_NODES]}")


def conversation_nodes(use_file_audio: bool | None = None,
                       play_voice: bool = False) -> list[NodeEntry]:
    """The node set; ``None`` = all entries, else those that run in that audio mode (the
    voice player only with ``play_voice``)."""
    if use_file_audio is None:
        return list(CONVERSATION_NODES)
    skip = {"live_audio" if use_file_audio else "file_audio"} | (
        set() if play_voice else {"play_voice"})
    return [n for n in CONVERSATION_NODES if n.when not in skip]


def register(sub) -> None:
    parser = sub.add_parser("bringup", help="run a node graph, one process per node "
                                            "(no ros2 launch)")
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
    p.add_argument("--play-voice", action="store_true",
                   help="start voice_player: play agent/audio on the default sound device at "
                        "its announced sample index (the robot's loudspeaker)")
    p.add_argument("--partner-wav", help="partner wav for --use-file-audio")
    p.add_argument("--agent-wav", help="agent wav for --use-file-audio")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds (0 = until Ctrl-C)")
    p.add_argument("--report", help="write measured rate/latency/CPU as JSON to this file")
    p.add_argument("--respawn", action="append", default=[], metavar="NODE",
                   help="restart NODE whenever it exits (repeatable; 'all' = every node)")
    p.add_argument("--respawn-delay", type=float, default=1.0, metavar="SECONDS",
                   help="wait before a respawn (default 1 s)")
    p.add_argument("--remap", action="append", default=[], metavar="NODE:FROM:=TO",
                   help="remap a topic of one node (repeatable), e.g. "
                        "head_driver:agent/joint_states:=/arm/cmd")
    p.add_argument("--startup-timeout", type=float, default=180.0, metavar="SECONDS",
                   help="how long the nodes may take to appear in the ROS graph")
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


def remap_rules(items: list[str], entries: list[NodeEntry]) -> dict[str, list[tuple[str, str]]]:
    """Per node, its remapping rules in the order ROS tries them: the user's ``--remap
    NODE:FROM:=TO`` items first (so they win), then the entry's default ``remappings``."""
    names = [e.name for e in entries]
    out: dict[str, list[tuple[str, str]]] = {n: [] for n in names}
    for item in items:
        node, _, rule = item.partition(":")
        src, sep, dst = rule.partition(":=")
        if node not in names or not sep or not src or not dst:
            raise ValueError(f"--remap {item!r}: expected NODE:FROM:=TO with NODE one of {names}")
        out[node].append((src, dst))
    for e in entries:
        out[e.name].extend(e.remappings)
    return out


def remapped(topic: str, rules: list[tuple[str, str]]) -> str:
    """``topic`` after the first rule naming it (relative or with a leading ``/``: the same
    name in the root namespace, where every graph node runs); where a renamed output went."""
    for src, dst in rules:
        if src.lstrip("/") == topic.lstrip("/"):
            return dst
    return topic


def _ros_args(rules: list[tuple[str, str]]) -> list[str]:
    return [arg for src, dst in rules for arg in ("-r", f"{src}:={dst}")]


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc (0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _graph_cpu_s(nodes) -> float:
    return os.times().user + os.times().system + sum(
        _proc_cpu_s(n.proc.pid) for n in nodes if n.running())


_BUILTIN_TOPICS = ("/rosout", "/parameter_events")


def _node_ready(probe_node, name: str) -> bool:
    """The node is in the ROS graph with a publisher of its own (not only the ones every node
    gets at construction): its start-up work (e.g. loading the model) is done."""
    try:
        pubs = probe_node.get_publisher_names_and_types_by_node(name, "/")
    except Exception:  # not discovered yet (NodeNameNonExistentError)
        return False
    return any(topic not in _BUILTIN_TOPICS for topic, _ in pubs)


def _wait_visible(probe_node, executor, nodes, timeout_s: float) -> str | None:
    """Spin until every node in ``nodes`` is ready (:func:`_node_ready`); an error or None."""
    deadline = time.monotonic() + timeout_s
    while probe_node.context.ok():
        for n in nodes:
            event = n.poll()
            if event:
                print(f"bringup: {event}", file=sys.stderr)
            if n.startup_failed:
                return f"{n.name} failed to start"
        waiting = [n.name for n in nodes if n.pending() and not _node_ready(probe_node, n.name)]
        if not waiting:
            return None
        if time.monotonic() > deadline:
            return f"nodes not ready in the ROS graph after {timeout_s:.0f} s: {waiting}"
        executor.spin_once(timeout_sec=0.1)
    return "stopped during start-up"


def _respawn_set(args, names: list[str]) -> set[str]:
    respawn = set(getattr(args, "respawn", None) or [])
    if "all" in respawn:
        respawn = set(names)
    if respawn - set(names):
        raise ValueError(f"--respawn {sorted(respawn - set(names))}: not a node of this graph "
                         f"{names}")
    return respawn


def _start_graph(probe_node, executor, core, players, timeout_s: float) -> None:
    """Start ``core`` nodes, wait until ready, then the file players on one shared clock (so
    their first samples reach a graph whose model is loaded); ``_StartupFailed`` on error."""
    for n in core:
        n.start()
    error = _wait_visible(probe_node, executor, core, timeout_s)
    if error is None and players:
        origin = None
        for n in players:
            if not n.params.get("origin_stamp_s"):
                if origin is None:
                    origin = time.time() + float(n.params.get("start_delay_s", 0.5))
                n.params["origin_stamp_s"] = origin
            n.start()
        error = _wait_visible(probe_node, executor, players, timeout_s)
    if error is not None:
        print(f"bringup: start-up error: {error}", file=sys.stderr)
        raise _StartupFailed(error)


class _StopRequest:
    """Remembers that SIGINT/SIGTERM arrived and raises KeyboardInterrupt the first time (a
    second signal during the clean-up is only remembered, so the node processes are still
    stopped), so an exception that a signal turned into something else is read as a stop."""

    def __init__(self) -> None:
        import signal

        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        first = not self.requested
        self.requested = True
        if first:
            raise KeyboardInterrupt


def _supervise(ctx, executor, nodes, duration_s: float) -> None:
    """Spin the probe and watch the node processes (respawns, exits) until the duration ends,
    Ctrl-C/SIGTERM, a start-up failure, or every node is gone for good."""
    deadline = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    stop = _StopRequest()
    while ctx.ok() and time.monotonic() < deadline:
        try:
            executor.spin_once(timeout_sec=0.1)
        except RuntimeError as exc:
            # a stop signal landing inside rclpy's C++ take surfaces as a pybind conversion
            # error instead of KeyboardInterrupt: a stop, not a crash. The probe only measures,
            # so any other error of its own is reported and the graph keeps running.
            if stop.requested:
                return
            print(f"bringup: probe error (the graph keeps running): {exc}", file=sys.stderr)
        for n in nodes:
            event = n.poll()
            if event:
                print(f"bringup: {event}", file=sys.stderr)
        if any(n.startup_failed for n in nodes):
            return
        if not any(n.pending() for n in nodes):
            print("bringup: every node has exited", file=sys.stderr)
            return


def _dualtalk_node_report(nodes) -> dict | None:
    """dualtalk_node's own figures from its exit report (written on a clean stop)."""
    final = next((n for n in nodes if n.name == "dualtalk_node"), None)
    values = final.exit_report() if final is not None else None
    if not values:
        return None
    return {k: values.get(k) for k in (
        "real_time_factor", "hop_ms_p50", "hop_ms_p95", "processing_latency_ms_p50",
        "processing_latency_ms_p95", "end_to_end_latency_ms_p50", "end_to_end_latency_ms_p95",
        "algorithmic_latency_s", "frames_published", "frames_flushed")}


def run(args) -> int:
    quiet_openmp_threads()          # inherited by the node processes
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node

    from .supervisor import NodeProcess, stop_all

    params = node_parameters(args)
    entries = conversation_nodes(args.use_file_audio, getattr(args, "play_voice", False))
    if getattr(args, "no_audio_input", False):
        entries = [e for e in entries if e.when in ("always", "play_voice")]
    names = [e.name for e in entries]
    respawn = _respawn_set(args, names)
    remaps = remap_rules(getattr(args, "remap", None) or [], entries)
    ctx = Context()
    rclpy.init(context=ctx)
    probe_node = Node("bringup_probe", context=ctx)
    probe = _Probe(probe_node, remapped(topics.AGENT_BLENDSHAPES, remaps["dualtalk_node"]))
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(probe_node)
    spec_dir = tempfile.TemporaryDirectory(prefix="dualtalk-bringup-")
    nodes = [NodeProcess(e.name, e.name, dict(params[e.name]), Path(spec_dir.name),
                         respawn=e.name in respawn,
                         respawn_delay_s=getattr(args, "respawn_delay", 1.0),
                         ros_args=_ros_args(remaps[e.name])) for e in entries]
    code, report = 0, None
    try:
        _start_graph(probe_node, executor, [n for n, e in zip(nodes, entries)
                                            if e.when != "file_audio"],
                     [n for n, e in zip(nodes, entries) if e.when == "file_audio"],
                     args.startup_timeout)
        print(f"bringup: running {names} (one process each"
              + (f", respawn {sorted(respawn)}" if respawn else "") + ")"
              + (f" for {args.duration} s" if args.duration else " (Ctrl-C to stop)"),
              file=sys.stderr)
        cpu0, wall0 = _graph_cpu_s(nodes), time.monotonic()
        try:
            _supervise(ctx, executor, nodes, args.duration)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        wall = max(time.monotonic() - wall0, 1e-9)
        cpu = _graph_cpu_s(nodes) - cpu0
        report = {"nodes": names, "wall_s": wall, "cpu_s": cpu, "cpu_load_cores": cpu / wall,
                  "cpu_load_percent_of_machine": 100.0 * cpu / wall / (os.cpu_count() or 1),
                  "cpu_count": os.cpu_count(), "machine_loadavg_1min": os.getloadavg()[0]}
        report.update(probe.summary())
    except _StartupFailed:
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop_all(nodes)
        for n in nodes:
            n.poll()
        if any(n.startup_failed or n.exits for n in nodes):
            code = 1          # a node crashed (even if respawned) or could not start
        if report is not None:
            report["processes"] = {n.name: n.summary() for n in nodes}
            node_figures = _dualtalk_node_report(nodes)
            if node_figures:
                report["dualtalk_node"] = node_figures
        executor.shutdown()
        probe_node.destroy_node()
        if ctx.ok():
            rclpy.shutdown(context=ctx)
        spec_dir.cleanup()
    if report is not None:
        text = json.dumps(report, indent=2)
        print(text)
        if args.report:
            Path(args.report).write_text(text)
    return code


class _StartupFailed(Exception):
    """A node could not start (its error was printed); the bring-up ends with status 1."""
