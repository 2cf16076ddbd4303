"""``bag replay``: publish a bag's messages with their original timing (the venv has no ros2 bag).

The CDR bytes stored in the bag are published as they are (``Publisher.publish(bytes)`` ->
``publish_raw``), so replay never re-encodes and works for any type whose rclpy class is
installed (the class is only needed to create the publisher). Timing: message i goes out at
``t0 + (stamp_i - stamp_0) / rate`` on the monotonic clock; ``rate <= 0`` publishes as fast as
possible, still in bag order. With ``publish_clock`` a ``rosgraph_msgs/Clock`` carrying bag time
goes to ``/clock`` at ``clock_hz`` (like ``ros2 bag play --clock``), so nodes started with
``use_sim_time:=true`` run on the bag's clock.

Every publication is logged (topic, bag stamp, wall time) — the evaluator measures latency from
these wall times.

Two options make a bag replay what a robot's graph would see (``bag evaluate`` uses both):
``restamp`` moves every header stamp onto the wall clock (stamp + the wall time of the first
publication - its bag time), so nodes that run on the system clock - ``head_driver`` releasing
frames at their stamps, ``voice_player`` playing the agent's speech at its announced time -
work on a bag made at t = 0 without sim time; only the stamp bytes of the CDR change
(:func:`.typestore.shift_header_stamp`). ``lead_s`` publishes some topics that much before their
bag time: ``bag make`` stores the agent's speech at its playback time, but a TTS publishes it
ahead (the README's TTS contract), which a live model needs; a negative lead publishes later
(a microphone's chunk exists only once its last sample was captured).
"""
from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import bagio
from . import typestore as ts

LOG = logging.getLogger(__name__)


def parse_remaps(items: list[str] | None) -> dict[str, str]:
    """``["old:=new", ...]`` -> ``{"old": "new"}``; a malformed item raises ``ValueError``."""
    out: dict[str, str] = {}
    for item in items or []:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"remap {item!r} is not of the form old:=new")
        out[old] = new
    return out


@dataclass
class ReplayOptions:
    """``rate``: 1.0 = real time, 2.0 = twice as fast, <= 0 = as fast as possible (in order)."""

    rate: float = 1.0
    topics: list[str] | None = None          # bag topic names to publish (None = all)
    remap: dict[str, str] = field(default_factory=dict)   # bag topic -> published topic
    publish_clock: bool = False
    clock_hz: float = 100.0
    qos_depth: int = 1000
    wait_for_subscribers_s: float = 0.0      # wait until every publisher has a subscriber
    wait_topics: list[str] | None = None     # bag topics that must be subscribed (None = all)
    start_delay_s: float = 0.0               # pause after discovery, before the first message
    linger_s: float = 2.0                    # wait for reliable delivery (acks) at the end
    restamp: bool = False                    # header stamps onto the wall clock (docstring)
    lead_s: dict[str, float] = field(default_factory=dict)   # bag topic -> published earlier by
                                                             # (s; negative: later)

    def out_topic(self, topic: str) -> str:
        """Where bag topic ``topic`` is published: its remap target (a rule may name it in
        either spelling, :mod:`.bagio`), else its qualified name."""
        for old, new in self.remap.items():
            if bagio.qualified(old) == bagio.qualified(topic):
                return new
        return bagio.qualified(topic)


@dataclass
class ReplayLog:
    """What was published: per published topic, bag stamps and wall publish times (ns)."""

    bag: Path
    start_wall_ns: int = 0
    end_wall_ns: int = 0
    stamps: dict[str, list[int]] = field(default_factory=dict)
    wall_ns: dict[str, list[int]] = field(default_factory=dict)
    aborted: bool = False
    missing_subscribers: list[str] = field(default_factory=list)
    restamp_ns: int | None = None     # added to every header stamp (None: stamps as in the bag)
    lead_ns: dict[str, int] = field(default_factory=dict)   # topic -> published this early

    def add(self, topic: str, stamp: int, wall: int) -> None:
        topic = bagio.qualified(topic)
        self.stamps.setdefault(topic, []).append(stamp)
        self.wall_ns.setdefault(topic, []).append(wall)

    def count(self, topic: str) -> int:
        return len(self.stamps.get(bagio.qualified(topic), []))

    def to_json_dict(self) -> dict:
        return {"bag": str(self.bag), "start_wall_ns": self.start_wall_ns,
                "end_wall_ns": self.end_wall_ns, "aborted": self.aborted,
                "missing_subscribers": self.missing_subscribers,
                "restamp_ns": self.restamp_ns, "lead_ns": self.lead_ns,
                "topics": {t: {"stamps_ns": self.stamps[t], "wall_ns": self.wall_ns[t]}
                           for t in self.stamps}}

    @classmethod
    def from_json_dict(cls, d: dict) -> "ReplayLog":
        log = cls(bag=Path(d["bag"]), start_wall_ns=d["start_wall_ns"],
                  end_wall_ns=d["end_wall_ns"], aborted=d.get("aborted", False),
                  missing_subscribers=list(d.get("missing_subscribers", [])),
                  restamp_ns=d.get("restamp_ns"),
                  lead_ns={bagio.qualified(t): int(v) for t, v in d.get("lead_ns", {}).items()})
        for t, v in d["topics"].items():
            log.stamps[bagio.qualified(t)] = list(v["stamps_ns"])
            log.wall_ns[bagio.qualified(t)] = list(v["wall_ns"])
        return log

    def arrays(self, topic: str) -> tuple[np.ndarray, np.ndarray]:
        topic = bagio.qualified(topic)
        return (np.asarray(self.stamps.get(topic, []), dtype=np.int64),
                np.asarray(self.wall_ns.get(topic, []), dtype=np.int64))


def select_connections(reader, options: ReplayOptions) -> dict[str, str]:
    """Qualified bag topic -> msgtype of the topics to replay; clear errors for missing/unknown
    ones (names in either spelling, :mod:`.bagio`)."""
    available = {bagio.qualified(c.topic): c.msgtype for c in reader.connections}
    wanted = ([bagio.qualified(t) for t in options.topics] if options.topics is not None
              else list(available))
    missing = [t for t in wanted if t not in available]
    if missing:
        raise ValueError(f"bag {reader.path}: topic(s) {missing} not in the bag "
                         f"(it has {sorted(available)})")
    unknown_remaps = [t for t in options.remap if bagio.qualified(t) not in available]
    if unknown_remaps:
        LOG.warning("remap of topic(s) %s not in the bag ignored", unknown_remaps)
    selected = {t: available[t] for t in wanted}
    for msgtype in set(selected.values()):
        ts.rclpy_message_class(msgtype)   # raises UnknownMessageType naming the type
    return selected


class BagReplayer:
    """Publishes one bag through ``node`` (which the caller owns and may spin elsewhere)."""

    def __init__(self, node, bag: str | Path, options: ReplayOptions | None = None):
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.node = node
        self.bag = Path(bag)
        self.options = options or ReplayOptions()
        self.stop_event = threading.Event()
        reader = bagio.open_reader(self.bag)
        try:
            self.selected = select_connections(reader, self.options)
        finally:
            reader.close()
        qos = QoSProfile(depth=self.options.qos_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {
            topic: node.create_publisher(ts.rclpy_message_class(msgtype),
                                         self.options.out_topic(topic), qos)
            for topic, msgtype in self.selected.items()}
        self.clock_pub = None
        if self.options.publish_clock:
            from rosgraph_msgs.msg import Clock
            self.clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))

    def wait_for_subscribers(self) -> list[str]:
        """Wait up to ``wait_for_subscribers_s`` for subscribers; return topics still without."""
        wanted = [bagio.qualified(t) for t in self.options.wait_topics or list(self.publishers)]
        deadline = time.monotonic() + self.options.wait_for_subscribers_s
        while True:
            missing = [t for t in wanted
                       if t in self.publishers and self.publishers[t].get_subscription_count() == 0]
            if not missing or time.monotonic() >= deadline or self.stop_event.is_set():
                return missing
            time.sleep(0.05)

    def _publish_clock(self, bag_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.clock_pub.publish(msg)

    def _messages(self):
        """``(publish time on the bag clock, topic, bag stamp, bytes)`` in publish order: the
        ``lead_s`` topics ``lead`` earlier (negative: later) than their bag time."""
        lead = {bagio.qualified(t): int(v * 1e9) for t, v in self.options.lead_s.items()
                if bagio.qualified(t) in self.selected and v != 0}
        plain = [t for t in self.selected if t not in lead]
        streams = [((stamp - lead[topic], topic, stamp, data) for topic, stamp, data
                    in bagio.iter_messages(self.bag, [t], decode=False)) for t in lead]
        if plain:
            streams.append((stamp, topic, stamp, data) for topic, stamp, data
                           in bagio.iter_messages(self.bag, plain, decode=False))
        return lead, heapq.merge(*streams, key=lambda m: m[0])

    def _wait_until(self, target: float, t0: float, bag0: int, state: dict) -> None:
        """Sleep until monotonic ``target``, publishing /clock on the way when asked."""
        opts = self.options
        while True:
            now = time.monotonic()
            if now >= target or self.stop_event.is_set():
                return
            if self.clock_pub is not None and now >= state["next_clock"]:
                self._publish_clock(bag0 + int((now - t0) * opts.rate * 1e9))
                state["next_clock"] = now + state["period"]
            wait = target - now
            if self.clock_pub is not None:
                wait = min(wait, max(state["next_clock"] - now, 0.0))
            time.sleep(max(wait, 0.0))

    def run(self) -> ReplayLog:
        """Publish every selected message; returns the publication log (also when stopped)."""
        opts = self.options
        log = ReplayLog(bag=self.bag)
        if opts.wait_for_subscribers_s > 0:
            log.missing_subscribers = self.wait_for_subscribers()
            if log.missing_subscribers:
                LOG.warning("no subscriber on %s after %.1f s; replaying anyway",
                            [opts.out_topic(t) for t in log.missing_subscribers],
                            opts.wait_for_subscribers_s)
        if opts.start_delay_s > 0:
            time.sleep(opts.start_delay_s)
        state = {"period": 1.0 / opts.clock_hz if opts.clock_hz > 0 else 0.01, "next_clock": 0.0}
        t0 = bag0 = None
        headers = {t: ts.has_header(m) for t, m in self.selected.items()}
        log.start_wall_ns = time.time_ns()
        lead, messages = self._messages()
        log.lead_ns = {opts.out_topic(t): v for t, v in lead.items()}
        try:
            for when, topic, stamp, data in messages:
                if self.stop_event.is_set():
                    log.aborted = True
                    break
                if t0 is None:
                    t0, bag0 = time.monotonic(), when
                    if opts.restamp:
                        log.restamp_ns = time.time_ns() - when
                if opts.rate > 0:
                    self._wait_until(t0 + (when - bag0) / 1e9 / opts.rate, t0, bag0, state)
                if self.clock_pub is not None and time.monotonic() >= state["next_clock"]:
                    self._publish_clock(when)
                    state["next_clock"] = time.monotonic() + state["period"]
                if log.restamp_ns is not None and headers[topic]:
                    data = ts.shift_header_stamp(data, log.restamp_ns)
                self.publishers[topic].publish(data)
                log.add(opts.out_topic(topic), stamp, time.time_ns())
        finally:
            log.end_wall_ns = time.time_ns()
            self._linger()
        return log

    def _linger(self) -> None:
        """Give reliable publishers time to deliver what is queued before they go away."""
        if self.options.linger_s <= 0:
            return
        for pub in self.publishers.values():
            try:
                pub.wait_for_all_acked(
                    timeout=_duration(self.options.linger_s))
            except Exception:  # older rclpy without wait_for_all_acked: plain sleep
                time.sleep(min(self.options.linger_s, 0.5))
                break

    def destroy(self) -> None:
        for pub in list(self.publishers.values()) + ([self.clock_pub] if self.clock_pub else []):
            self.node.destroy_publisher(pub)
        self.publishers = {}
        self.clock_pub = None


def _duration(seconds: float):
    from rclpy.duration import Duration

    return Duration(nanoseconds=int(seconds * 1e9))


def replay(bag: str | Path, options: ReplayOptions | None = None, *,
           node_name: str = "dualtalk_bag_replay", use_sim_time: bool = False) -> ReplayLog:
    """Replay ``bag`` from a fresh rclpy context (the ``bag replay`` command)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    ctx = Context()
    rclpy.init(args=[], context=ctx)  # never parse our CLI as ROS args
    node = rclpy.create_node(node_name, context=ctx, parameter_overrides=[
        Parameter("use_sim_time", Parameter.Type.BOOL, use_sim_time)])
    try:
        replayer = BagReplayer(node, bag, options)
        try:
            return replayer.run()
        finally:
            replayer.destroy()
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)
