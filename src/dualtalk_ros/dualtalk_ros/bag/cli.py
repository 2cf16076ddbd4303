"""``dualtalk-ros bag make|replay|record|evaluate|repair|info``: bag tools on the command line."""
from __future__ import annotations

import argparse
import json
import logging

from .. import topics

LOG = logging.getLogger(__name__)


def _add_input_topics(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input topic names (as stored in the bag)")
    g.add_argument("--partner-audio-topic", default=topics.PARTNER_AUDIO)
    g.add_argument("--agent-audio-topic", default=topics.AGENT_AUDIO)
    g.add_argument("--partner-face-topic", default=topics.PARTNER_FACE)
    g.add_argument("--gt-topic", default=topics.AGENT_BLENDSHAPES_GT)


def _topics(args):
    from .make import BagTopics
    return BagTopics(partner_audio=args.partner_audio_topic, agent_audio=args.agent_audio_topic,
                     partner_face=args.partner_face_topic, agent_gt=args.gt_topic)


def register(subparsers) -> None:
    bag = subparsers.add_parser("bag", help="make, replay, evaluate rosbag2 bags (rosbags)",
                                description=__doc__)
    sub = bag.add_subparsers(dest="bag_command", required=True, metavar="BAG_COMMAND")

    p = sub.add_parser("make", help="DualTalk-layout clips -> one bag per clip-side")
    p.add_argument("root", help="data set root (or a folder holding <clip>_speakerN.wav/.npz)")
    p.add_argument("clips", nargs="*", help="clip names (<clip> or <clip>_speakerN); "
                   "default: every clip in ROOT or ROOT/SPLIT")
    p.add_argument("--split", help="train, test or ood (a sub-folder of ROOT)")
    p.add_argument("-o", "--output", required=True, help="folder for the bags")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--chunk-ms", type=float, default=20.0, help="AudioChunk length (ms)")
    p.add_argument("--start-time", type=float, default=0.0,
                   help="stamp of sample 0 in seconds (e.g. a Unix time); default 0")
    p.add_argument("--overwrite", action="store_true")
    _add_input_topics(p)
    p.set_defaults(func=run_make)

    p = sub.add_parser("replay", help="publish a bag's topics with the original timing")
    p.add_argument("bag")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor; 0 = as fast as possible")
    p.add_argument("--as-fast-as-possible", action="store_true")
    p.add_argument("--topics", nargs="+", help="only these bag topics")
    p.add_argument("--remap", nargs="+", default=[], metavar="OLD:=NEW")
    p.add_argument("--clock", action="store_true", help="publish /clock with bag time")
    p.add_argument("--clock-hz", type=float, default=100.0)
    p.add_argument("--use-sim-time", action="store_true", help="the replay node's use_sim_time")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS")
    p.set_defaults(func=run_replay)

    p = sub.add_parser("evaluate", help="replay through the live graph, record, score, report")
    p.add_argument("bags", help="a bag or a folder of bags")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.add_argument("--checkpoint", help="model checkpoint for dualtalk_node")
    p.add_argument("--params", help="bring-up parameter YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="NODE.PARAM=VALUE", help="bring-up parameter override (repeatable)")
    p.add_argument("--graph-cmd", help="command that starts the graph (replaces the bring-up)")
    p.add_argument("--no-graph", action="store_true", help="use a graph that is already running")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--clock", action="store_true",
                   help="publish /clock and start the graph with use_sim_time")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--output-topic", default=topics.AGENT_BLENDSHAPES)
    p.add_argument("--state-topic", default=topics.CONVERSATION_STATE)
    p.add_argument("--diagnostics-topic", default=topics.DIAGNOSTICS)
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--drain-idle", type=float, default=3.0)
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-recover", action="store_true",
                   help="do not evaluate the readable part of a truncated MCAP bag")
    p.add_argument("--agent-lead", type=float, default=0.32, metavar="SECONDS",
                   help="publish the agent's speech this long before its playback time, as a "
                        "TTS does (default 0.32; 0 for a bag recorded on a robot, whose "
                        "recorder already saw the lead)")
    p.add_argument("--no-voice", action="store_true",
                   help="do not play the agent's voice (voice_player into <out>/"
                        "voice_played.raw through an ALSA file device): no lip offset")
    _add_input_topics(p)
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("repair", help="copy the readable part of a truncated MCAP bag")
    p.add_argument("bag")
    p.add_argument("-o", "--output", required=True, help="new bag folder")
    p.set_defaults(func=run_repair)

    p = sub.add_parser("record", help="record topics to a bag (rosbags writer)")
    p.add_argument("topics", nargs="+", metavar="TOPIC[:=TYPE]",
                   help="topic names; the type is looked up in the graph unless given")
    p.add_argument("-o", "--output", required=True, help="bag folder to create")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (0 = until Ctrl-C)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_record)

    p = sub.add_parser("info", help="topics, types, counts and custom data of a bag")
    p.add_argument("bag")
    p.set_defaults(func=run_info)


def run_make(args) -> int:
    from .make import MakeOptions, find_clip_sources, make_bags

    options = MakeOptions(chunk_ms=args.chunk_ms, start_time_s=args.start_time,
                          storage=args.storage, topics=_topics(args), overwrite=args.overwrite)
    sources = find_clip_sources(args.root, args.clips or None, args.split)
    made, errors = make_bags(sources, args.output, options)
    for m in made:
        print(f"{m.path}: " + ", ".join(f"{t}={n}" for t, n in m.counts.items()))
    for e in errors:
        print(f"error: {e}")
    return 1 if errors else 0


def run_replay(args) -> int:
    from .replay import ReplayOptions, parse_remaps, replay

    rate = 0.0 if args.as_fast_as_possible else args.rate
    log = replay(args.bag, ReplayOptions(rate=rate, topics=args.topics,
                                         remap=parse_remaps(args.remap),
                                         publish_clock=args.clock, clock_hz=args.clock_hz,
                                         wait_for_subscribers_s=args.wait_for_subscribers),
                 use_sim_time=args.use_sim_time)
    print(f"published {sum(log.count(t) for t in log.stamps)} messages in "
          f"{(log.end_wall_ns - log.start_wall_ns) / 1e9:.2f} s: "
          + ", ".join(f"{t}={log.count(t)}" for t in sorted(log.stamps)))
    return 0


def run_evaluate(args) -> int:
    from .evaluate import EvaluateOptions, evaluate_path
    from .graph import GraphOptions
    from .score import OutputTopics

    graph = None if args.no_graph else GraphOptions(
        checkpoint=args.checkpoint, params=args.params, overrides=args.overrides,
        command=args.graph_cmd, use_sim_time=args.clock, startup_timeout_s=args.startup_timeout)
    options = EvaluateOptions(
        inputs=_topics(args), graph=graph, rate=args.rate, publish_clock=args.clock,
        storage=args.storage, drain_idle_s=args.drain_idle, plot=not args.no_plot,
        recover=not args.no_recover, agent_lead_s=args.agent_lead, play_voice=not args.no_voice,
        outputs=OutputTopics(args.output_topic, args.state_topic, args.diagnostics_topic))
    results = evaluate_path(args.bags, args.output, options)
    for ev in results:
        s = ev.summary
        print(f"{s['name']}: {s['status']}" + (f" ({'; '.join(s['errors'])})"
                                               if s.get("errors") else ""))
    print(f"reports in {args.output}")
    return 0 if all(ev.summary["status"] == "ok" for ev in results) else 1


def run_record(args) -> int:
    from .record import record

    counts = record(args.output, args.topics, duration_s=args.duration, storage=args.storage,
                    overwrite=args.overwrite)
    print(f"{args.output}: " + ", ".join(f"{t}={n}" for t, n in counts.items()))
    return 0


def run_repair(args) -> int:
    from .salvage import repair_bag

    counts, why = repair_bag(args.bag, args.output)
    print(f"{args.output}: " + ", ".join(f"{t}={n}" for t, n in counts.items())
          + (f" (input cut: {why})" if why else " (input was complete)"))
    return 0


def run_info(args) -> int:
    from . import bagio

    reader = bagio.open_reader(args.bag)
    try:
        info = {"path": str(args.bag), "messages": reader.message_count,
                "duration_s": reader.duration / 1e9,
                "topics": {t: {"type": s.msgtype, "count": s.count}
                           for t, s in bagio.topics(reader).items()},
                "custom_data": bagio.custom_data(args.bag)}
    finally:
        reader.close()
    print(json.dumps(info, indent=2))
    return 0
