"""``bag evaluate``: replay a bag through the live graph, record its outputs, score, report.

Per bag: start the graph (``graph.GraphProcess``; or use one already running with
``graph=None``), wait until it subscribes the input topics, replay the inputs with their timing
while recording the outputs to ``<out>/<bag>/output_bag``, wait for the last frames, stop the
graph, then score the recording (``score.score_bag``) and write the report
(``report.write_bag_report``).

The run is what a robot would live through (issue 17): at real time the replay restamps the
inputs onto the wall clock (``head_driver`` then releases frames at their stamps), publishes the
agent's speech ``agent_lead_s`` ahead of its playback time as a TTS does, and the graph plays
that speech with ``voice_player`` into ``<out>/voice_played.raw`` through an ALSA file device
(:mod:`dualtalk_ros.alsa_file`; no sound card needed). The output bag holds what the head
driver released (``agent/joint_states``, ``agent/blendshapes_arkit``), the node's raw stream and
per-hop sequences, ``conversation_state``, ``/diagnostics`` and ``agent/audio_played``, under
fully qualified names; the report adds the lip offset, the listening reaction latency
(:mod:`.timing`), release rate and jitter, and the CPU share of the whole graph.

A directory of bags gives one report per bag plus a summary.
Failures (unreadable bag, missing topic, graph crash) end in a report with the error and
whatever was measured, never in a traceback, and the report's status says so
(:mod:`.verdict`: a graph that died or ended badly, a recorder that stopped early or fewer than
95 % of the expected frames is never ``ok``).
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dualtalk_core import layout

from . import bagio
from .graph import GraphError, GraphOptions, GraphProcess
from .inputs import InputBag, read_input_bag
from .make import BagTopics
from .record import BagRecorder
from .replay import BagReplayer, ReplayLog, ReplayOptions
from .report import write_bag_report, write_summary
from .score import BagEvaluation, OutputTopics, score_bag
from .verdict import RunFacts, apply_verdict

LOG = logging.getLogger(__name__)


@dataclass
class EvaluateOptions:
    """Everything ``bag evaluate`` can be told. ``graph=None``: a graph is already running."""

    inputs: BagTopics = field(default_factory=BagTopics)
    outputs: OutputTopics = field(default_factory=OutputTopics)
    graph: GraphOptions | None = field(default_factory=GraphOptions)
    rate: float = 1.0
    publish_clock: bool = False
    storage: str = "mcap"
    drain_idle_s: float = 3.0      # stop waiting when no output arrived for this long ...
    drain_max_s: float = 30.0      # ... or after this long (+ 2x the clip duration) past the end
    discovery_timeout_s: float = 30.0
    sid_fit_on: str = "pred"
    plot: bool = True
    recover: bool = True           # evaluate the readable part of a truncated MCAP bag
    agent_lead_s: float = 0.32     # publish the agent's speech this early (README TTS contract)
    play_voice: bool = True        # voice_player plays it into <out>/voice_played.raw


def _replay_topics(inp: InputBag, topics: BagTopics) -> list[str]:
    q = topics.qualified()
    return [t for t in (q.partner_audio, q.agent_audio, q.partner_face) if t in inp.topics]


def _graph_for(options: EvaluateOptions, out_dir: Path, restamp: bool) -> GraphProcess | None:
    """The graph process of one run (None: a graph is already running): release at stamps
    when the inputs are on the wall clock, the agent's voice into the run's file device."""
    if options.graph is None:
        return None
    voice = out_dir / "voice_played.raw" if options.play_voice else None
    return GraphProcess(replace(options.graph, stamps_on_clock=restamp, voice_file=voice),
                        out_dir / "graph.log")


def _spin_in_thread(executor, stop: threading.Event, failures: list[str]) -> threading.Thread:
    """Spin the recorder's (and replayer's) node; an exception that ends the thread (and with
    it the recording) is kept in ``failures`` for the report."""
    def spin() -> None:
        try:
            while not stop.is_set():
                executor.spin_once(timeout_sec=0.05)
        except Exception as exc:
            failures.append(f"its executor thread died: {type(exc).__name__}: {exc}")
            LOG.error("recorder executor thread died: %s", exc)

    th = threading.Thread(target=spin, name="bag-eval-spin", daemon=True)
    th.start()
    return th


def _replay_options(inp: InputBag, options: EvaluateOptions, restamp: bool) -> ReplayOptions:
    """Replay as a robot's sources deliver: the TTS's speech ``agent_lead_s`` early, each
    microphone chunk once its last sample has happened (a bag from ``bag make`` holds it at its
    first sample's time, one chunk before a microphone could deliver it)."""
    chunk_s = (float(np.median(inp.chunk_end - inp.chunk_first)) / layout.SAMPLE_RATE
               if inp.chunk_first.size else 0.0)
    return ReplayOptions(
        rate=options.rate, topics=_replay_topics(inp, options.inputs),
        publish_clock=options.publish_clock, wait_for_subscribers_s=options.discovery_timeout_s,
        wait_topics=[options.inputs.partner_audio], start_delay_s=1.0, restamp=restamp,
        lead_s={options.inputs.agent_audio: options.agent_lead_s,
                options.inputs.partner_audio: -chunk_s})


def _wait_graph(graph: GraphProcess, node, recorder: BagRecorder, inp: InputBag,
                options: EvaluateOptions, errors: list[str]) -> None:
    """Start the graph and wait until it takes the inputs and the recorder hears its outputs
    (the voice player's too, so the first agent speech is played and recorded)."""
    outs = [options.outputs.blendshapes]
    if graph is not None:
        graph.start()
        if graph.options.voice_file is not None:
            outs.append(options.outputs.audio_played)
        face = bagio.qualified(options.inputs.partner_face)
        graph.wait_ready(node, subscribed=[t for t in _replay_topics(inp, options.inputs)
                                           if t != face], published=outs)
        LOG.info("graph ready")
    for topic in outs:     # the recorder must be matched with the publishers before data flows
        if not recorder.wait_matched(topic, options.discovery_timeout_s):
            errors.append(f"no publisher of {topic!r} matched within "
                          f"{options.discovery_timeout_s:.0f} s; recording anyway")


def run_live(inp: InputBag, out_dir: Path, options: EvaluateOptions, facts: RunFacts | None = None
             ) -> tuple[Path | None, ReplayLog | None, list[str]]:
    """Graph + replay + record for one bag. Returns (output bag, replay log, errors); what
    happened to the graph and the recorder (and the graph's CPU) goes into ``facts``."""
    facts = facts if facts is not None else RunFacts()
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    errors: list[str] = []
    out_bag = out_dir / "output_bag"
    restamp = options.rate == 1.0 and not options.publish_clock   # real time on the wall clock
    graph = _graph_for(options, out_dir, restamp)
    facts.graph_argv = graph.options.argv() if graph is not None else None
    ctx = Context()
    rclpy.init(args=[], context=ctx)  # never parse our CLI as ROS args
    node = rclpy.create_node("dualtalk_bag_evaluate", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    stop = threading.Event()
    spin_thread = None
    recorder = replayer = log = None
    try:
        recorder = BagRecorder(node, out_bag, options.outputs.types(), storage=options.storage,
                               overwrite=True, custom_data={"dualtalk.input_bag": str(inp.path)})
        spin_thread = _spin_in_thread(executor, stop, facts.recorder_problems)
        _wait_graph(graph, node, recorder, inp, options, errors)
        replayer = BagReplayer(node, inp.path, _replay_options(inp, options, restamp))
        LOG.info("replaying %s at rate %s", inp.path, options.rate)
        cpu0, wall0 = (graph.cpu_s() if graph else 0.0), time.monotonic()
        try:
            log = replayer.run()
        except bagio.BagReadError as exc:
            errors.append(f"replay stopped: {exc}")
        LOG.info("replay done; waiting for the last frames")
        _drain(recorder, inp, options, graph)
        if graph is not None and graph.alive():
            facts.graph_cpu_s = graph.cpu_s() - cpu0
            facts.graph_wall_s = time.monotonic() - wall0
    except (GraphError, OSError, ValueError, KeyError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        _stop(graph, facts)
        stop.set()
        if spin_thread is not None:
            spin_thread.join(timeout=5)
        if recorder is not None:
            recorder.close()
            facts.output_counts = recorder.stored_counts()
        if replayer is not None:
            replayer.destroy()
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=ctx)
    if log is not None:
        (out_dir / "replay_log.json").write_text(json.dumps(log.to_json_dict()))
    return (out_bag if recorder is not None else None), log, errors


def _stop(graph: GraphProcess | None, facts: RunFacts) -> None:
    if graph is None:
        return
    LOG.info("stopping graph")
    code = graph.stop()
    facts.graph_exit, facts.graph_exited_early = code, graph.exited_by_itself
    if code not in (0, None, -2, 130):
        LOG.warning("graph exited with code %s (log %s)", code, graph.log_path)


def _drain(recorder: BagRecorder, inp: InputBag, options: EvaluateOptions,
           graph: GraphProcess | None) -> None:
    """Wait for the frames still in flight after the last input was published.

    Stops when every expected frame arrived, when frames stopped arriving for
    ``drain_idle_s`` (after at least one came), or after ``drain_max_s`` plus twice the clip's
    duration (a graph up to 3x slower than real time can work through its backlog).
    """
    expected = inp.expected_frames
    topic = options.outputs.blendshapes
    t_end = time.monotonic()
    limit = options.drain_max_s + 2.0 * inp.partner_audio_samples / layout.SAMPLE_RATE
    while time.monotonic() - t_end < limit:
        if recorder.counts.get(topic, 0) >= expected:
            return _drain_released(recorder, options)
        last = recorder.last_receive_monotonic.get(topic)
        if last is not None and time.monotonic() - max(last, t_end) > options.drain_idle_s:
            return
        if graph is not None and not graph.alive():
            return
        time.sleep(0.05)
    LOG.warning("stopped waiting for %s after %.0f s (%d of %d frames)", topic, limit,
                recorder.counts.get(topic, 0), expected)


def _drain_released(recorder: BagRecorder, options: EvaluateOptions, max_s: float = 3.0) -> None:
    """Every frame came out of the node: wait (up to ``max_s``) until the head driver released
    as many, since it holds frames until their stamps (up to the TTS lead with a live model)."""
    deadline = time.monotonic() + max_s
    want = recorder.counts.get(options.outputs.blendshapes, 0)
    while time.monotonic() < deadline:
        if max(recorder.counts.get(options.outputs.joint_states, 0),
               recorder.counts.get(options.outputs.arkit, 0)) >= want:
            return
        time.sleep(0.05)


def evaluate_bag(bag: str | Path, out_dir: str | Path,
                 options: EvaluateOptions | None = None) -> BagEvaluation:
    """Evaluate one bag into ``out_dir`` (report.md/json/png, output_bag/, replay_log.json)."""
    options = options or EvaluateOptions()
    bag, out_dir = Path(bag), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recovered_errors: list[str] = []
    try:
        inp = read_input_bag(bag, options.inputs)
    except bagio.BagReadError as exc:
        inp = _recover(bag, out_dir / "recovered_input", options) if options.recover else None
        if inp is None:
            inp = InputBag(path=bag, name=bag.name, topics=_topics_from_metadata(bag),
                           origin_ns=0, errors=[str(exc)])
        else:
            recovered_errors.append(f"{exc}; evaluated the part recovered into {inp.path}")
    out_bag = log = None
    live_errors: list[str] = list(recovered_errors)
    facts = RunFacts()
    if not inp.errors:
        out_bag, log, errors = run_live(inp, out_dir, options, facts)
        live_errors += errors
    else:
        LOG.error("%s: not replayed: %s", bag, "; ".join(inp.errors))
    ev = score_bag(inp, out_bag, log, partner_topic=options.inputs.partner_audio,
                   outputs=options.outputs, rate=options.rate, sid_fit_on=options.sid_fit_on)
    ev.summary["errors"] = live_errors + ev.summary["errors"]
    if live_errors and ev.summary["status"] == "ok":
        ev.summary["status"] = "partial"
    graph_log = str(out_dir / "graph.log") if options.graph is not None else ""
    ev.summary["graph_cpu"] = facts.cpu_summary()
    if facts.output_counts is not None:
        ev.summary["output_topics"] = dict(sorted(facts.output_counts.items()))
    apply_verdict(ev.summary, facts, graph_log)
    if options.graph is not None:
        ev.summary["graph"] = {
            "argv": facts.graph_argv or options.graph.argv(), "log": graph_log,
            "exit": facts.graph_exit, "agent_lead_s": options.agent_lead_s,
            "voice_file": str(out_dir / "voice_played.raw") if options.play_voice else None}
    write_bag_report(ev, out_dir, plot=options.plot)
    return ev


def _recover(bag: Path, target: Path, options: EvaluateOptions) -> InputBag | None:
    """A truncated MCAP bag -> its readable part as a new bag (None when nothing is usable)."""
    from .salvage import repair_bag

    if not any(bag.glob("*.mcap")):
        return None
    if target.exists():
        shutil.rmtree(target)
    try:
        counts, why = repair_bag(bag, target)
    except (ValueError, OSError) as exc:
        LOG.error("%s: recovery failed: %s", bag, exc)
        return None
    LOG.warning("%s is damaged (%s); recovered %s", bag, why, counts)
    try:
        inp = read_input_bag(target, options.inputs)
    except bagio.BagReadError:
        return None
    inp.warnings.append(f"input bag {bag} is damaged ({why}); recovered "
                        + ", ".join(f"{t}={n}" for t, n in counts.items()))
    return inp


def _topics_from_metadata(bag: Path) -> dict[str, bagio.TopicSummary]:
    """Topic list from metadata.yaml when the storage file itself cannot be opened."""
    import yaml
    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return {bagio.qualified(e["topic_metadata"]["name"]): bagio.TopicSummary(
            bagio.qualified(e["topic_metadata"]["name"]), e["topic_metadata"]["type"],
            int(e["message_count"])) for e in info.get("topics_with_message_count", [])}
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}


def evaluate_path(path: str | Path, out_dir: str | Path,
                  options: EvaluateOptions | None = None) -> list[BagEvaluation]:
    """One bag, or every bag in a directory (then also ``summary.md``/``summary.json``)."""
    bags = bagio.find_bags(path)
    out_dir = Path(out_dir)
    single = len(bags) == 1 and bagio.is_bag_dir(Path(path))
    results = []
    for bag in bags:
        target = out_dir if single else out_dir / bag.name
        LOG.info("evaluating %s -> %s", bag, target)
        results.append(evaluate_bag(bag, target, options))
    if not single:
        write_summary(results, out_dir)
    return results
