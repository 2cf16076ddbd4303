"""Record topics to a rosbag2 bag with rosbags (what ``ros2 bag record`` does, for the venv).

Subscriptions are raw (``raw=True``): the serialized CDR bytes from DDS go into the bag
unchanged, so recording costs no Python (de)serialisation. The bag timestamp of each message is
its receive time (``MessageInfo.received_timestamp``, system clock ns, like rosbag2); the
publisher's source timestamp is kept in :attr:`BagRecorder.source_ns` for latency analysis.

A recording must survive the recorder's crash (``kill -9``, power cut of a robot): rosbags'
MCAP writer keeps messages in an in-memory chunk until it holds 1 MiB (minutes of our 25 Hz
output) and writes the summary only on ``close()``, so a killed recorder used to leave a 0-byte
file. :class:`BagRecorder` therefore closes the pending chunk and flushes the file at least every
``flush_period_s`` (0.5 s; a timer on the caller's executor, plus a check on each write), so a
crash loses at most that much; ``dualtalk-ros bag repair`` (:mod:`.salvage`) turns the cut file
into a valid bag. For sqlite3 storage the same timer commits the open transaction.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from rosbags.rosbag2 import Writer

from . import typestore as ts
from .make import BAG_VERSION, STORAGES

LOG = logging.getLogger(__name__)

FLUSH_PERIOD_S = 0.5    # at most this much recorded output is lost when the recorder is killed


def flush_storage(writer: Writer) -> bool:
    """Put everything written so far on disk as complete records; True when it did.

    MCAP: close rosbags' pending chunk (a self-contained chunk record plus its message index,
    readable by :mod:`.salvage` even without the file's summary) and flush the file; sqlite3:
    commit. Relies on rosbags' storage objects (``McapWriter.close_chunk``, ``.bio``,
    ``.chunk``; ``Sqlite3Writer.conn``), stable in the pinned rosbags version
    (requirements/constraints.txt).
    """
    storage = getattr(writer, "storage", None)
    if storage is None:
        return False
    if hasattr(storage, "close_chunk"):
        if not storage.chunk.msgs:          # nothing new: no empty chunk records
            return False
        storage.close_chunk()
        storage.bio.flush()
        return True
    conn = getattr(storage, "conn", None)
    if conn is not None:
        conn.commit()
        return True
    return False


class BagRecorder:
    """Subscribe ``topics`` (name -> msgtype) on ``node`` and write each message as it arrives.

    The caller spins ``node``. ``close()`` finishes the bag; until then the file is incomplete.
    """

    def __init__(self, node, out_path: str | Path, topics: dict[str, str], *,
                 storage: str = "mcap", qos_depth: int = 1000, overwrite: bool = False,
                 custom_data: dict[str, str] | None = None,
                 flush_period_s: float = FLUSH_PERIOD_S):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.node = node
        self.path = Path(out_path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"output bag {self.path} already exists")
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for msgtype in topics.values():
            ts.check_known(msgtype)
        self._lock = threading.Lock()
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, str(value))
        self._writer.open()
        # stored under the name the subscription resolves to (``/agent/blendshapes``), as
        # rosbag2 does; counts and the other per-topic figures keep the caller's spelling
        self.stored_names = {t: node.resolve_topic_name(t) for t in topics}
        self._conns = {t: self._writer.add_connection(self.stored_names[t], m,
                                                      typestore=ts.typestore())
                       for t, m in topics.items()}
        self.counts: dict[str, int] = {t: 0 for t in topics}
        self.received_ns: dict[str, list[int]] = {t: [] for t in topics}
        self.source_ns: dict[str, list[int]] = {t: [] for t in topics}
        self.last_receive_monotonic: dict[str, float] = {}
        qos = QoSProfile(depth=qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        self._subs = {
            t: node.create_subscription(ts.rclpy_message_class(m), t, self._callback(t), qos,
                                        raw=True)
            for t, m in topics.items()}
        self._closed = False
        self.flush_period_s = float(flush_period_s)
        self.flushes = 0
        self._last_flush = time.monotonic()
        self._flush_timer = (node.create_timer(self.flush_period_s, self.flush)
                             if self.flush_period_s > 0 else None)

    def flush(self) -> None:
        """Write what was recorded so far to disk (see the module docstring)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        if self._closed:
            return
        try:
            if flush_storage(self._writer):
                self.flushes += 1
        except Exception as exc:  # a failed flush must not stop the recording
            LOG.warning("recorder %s: flush failed: %s: %s", self.path, type(exc).__name__, exc)

    def _callback(self, topic: str):
        def on_message(data: bytes, info=None) -> None:
            recv = source = 0
            if info is not None:
                recv = int(info.get("received_timestamp", 0)) if isinstance(info, dict) else int(
                    getattr(info, "received_timestamp", 0))
                source = int(info.get("source_timestamp", 0)) if isinstance(info, dict) else int(
                    getattr(info, "source_timestamp", 0))
            recv = recv or time.time_ns()
            with self._lock:
                if self._closed:
                    return
                self._writer.write(self._conns[topic], recv, data)
                self.counts[topic] += 1
                self.received_ns[topic].append(recv)
                self.source_ns[topic].append(source)
                self.last_receive_monotonic[topic] = time.monotonic()
                if (self.flush_period_s > 0
                        and time.monotonic() - self._last_flush >= self.flush_period_s):
                    self._flush_locked()    # also when the executor is too busy for the timer
        return on_message

    def publisher_count(self, topic: str) -> int:
        """Publishers matched with our subscription of ``topic`` (0 after close)."""
        sub = self._subs.get(topic)
        return sub.get_publisher_count() if sub is not None else 0

    def wait_matched(self, topic: str, timeout_s: float) -> bool:
        """Wait until a publisher of ``topic`` is matched; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.publisher_count(topic) == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stored_counts(self) -> dict[str, int]:
        """Messages written per topic, under the (fully qualified) names the bag stores."""
        with self._lock:
            return {self.stored_names[t]: n for t, n in self.counts.items()}

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def close(self) -> Path:
        """Stop recording and finish the bag file (idempotent)."""
        with self._lock:
            if self._closed:
                return self.path
            self._closed = True
            if self._flush_timer is not None:
                self.node.destroy_timer(self._flush_timer)
                self._flush_timer = None
            for sub in self._subs.values():
                self.node.destroy_subscription(sub)
            self._subs = {}
            self._writer.close()
        LOG.info("recorded %s: %s", self.path,
                 ", ".join(f"{t}={n}" for t, n in self.counts.items()))
        return self.path


def discover_types(node, topics: list[str], timeout_s: float) -> dict[str, str]:
    """Topic -> msgtype from the ROS graph (waits up to ``timeout_s`` for every topic).

    Raises ``ValueError`` naming the topics nobody publishes.
    """
    wanted = {node.resolve_topic_name(t): t for t in topics}
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        for name, types in node.get_topic_names_and_types():
            if name in wanted and types:
                found[wanted[name]] = types[0]
        missing = [t for t in topics if t not in found]
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise ValueError(f"no publisher of topic(s) {missing} within {timeout_s:.0f} s; "
                             f"give the type explicitly as TOPIC:=pkg/msg/Type")
        time.sleep(0.1)


def record(out_path: str | Path, topics: list[str], *, duration_s: float = 0.0,
           storage: str = "mcap", discovery_timeout_s: float = 10.0,
           overwrite: bool = False) -> dict[str, int]:
    """Record ``topics`` (``name`` or ``name:=pkg/msg/Type``) until ``duration_s`` passes
    (0 = until Ctrl-C); returns the message counts (the ``bag record`` command)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    explicit = {t.split(":=")[0]: t.split(":=")[1] for t in topics if ":=" in t}
    plain = [t for t in topics if ":=" not in t]
    ctx = Context()
    rclpy.init(args=[], context=ctx)  # never parse our CLI as ROS args
    node = rclpy.create_node("dualtalk_bag_record", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    recorder = None
    try:
        types = dict(explicit)
        if plain:
            types.update(discover_types(node, plain, discovery_timeout_s))
        recorder = BagRecorder(node, out_path, types, storage=storage, overwrite=overwrite)
        end = time.monotonic() + duration_s if duration_s > 0 else float("inf")
        try:
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
        except KeyboardInterrupt:
            pass
        return dict(recorder.counts)
    finally:
        if recorder is not None:
            recorder.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
