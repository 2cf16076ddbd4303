"""Approximate-time synchronizer with the semantics of ``message_filters`` (ROS 2).

``message_filters`` is not available as a wheel for the venv install, so this module provides
``Subscriber`` and ``ApproximateTimeSynchronizer`` with the same constructor arguments and the
same matching rule as ``message_filters.ApproximateTimeSynchronizer``:

* each input keeps a queue of messages keyed by header stamp, at most ``queue_size`` long
  (the oldest stamp is dropped when it overflows; a second message with the same stamp
  replaces the first);
* when a message arrives, the other queues are searched for stamps within ``slop`` of it,
  closest first; the first combination whose stamps all lie strictly within ``slop`` of each
  other is emitted through the registered callbacks and its messages leave the queues
  (each message is used at most once);
* messages without ``header.stamp`` are ignored unless ``allow_headerless`` is true, in which
  case they are stamped with the clock's current time on arrival.

:func:`make_approximate_sync` uses the real ``message_filters`` when it imports.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, Sequence

from .conversions import stamp_to_ns

try:  # pragma: no cover - depends on the install
    import message_filters as _message_filters
except ImportError:  # the venv install
    _message_filters = None

HAVE_MESSAGE_FILTERS = _message_filters is not None


class SimpleFilter:
    """Callback fan-out, as ``message_filters.SimpleFilter``."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable, tuple]] = {}

    def registerCallback(self, cb: Callable, *args: Any) -> int:  # noqa: N802 (upstream name)
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802 (upstream name)
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """A ROS subscription that feeds a filter, as ``message_filters.Subscriber``."""

    def __init__(self, node, msg_type, topic: str, **kwargs: Any) -> None:
        super().__init__()
        self.node = node
        self.topic = topic
        qos = kwargs.pop("qos_profile", 10)
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos, **kwargs)

    def callback(self, msg: Any) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 (upstream name)
        return self.topic

    def destroy(self) -> None:
        self.node.destroy_subscription(self.sub)


class ApproximateTimeSynchronizer(SimpleFilter):
    """Emit sets of messages (one per input) whose stamps lie within ``slop`` seconds.

    ``fs`` are filters (e.g. :class:`Subscriber`) or ``None`` when messages are fed with
    :meth:`add` directly (what the unit tests do). ``clock`` gives ``now()`` for headerless
    messages (an ``rclpy`` clock; defaults to the ROS clock).
    """

    def __init__(self, fs: Sequence[Any], queue_size: int, slop: float,
                 allow_headerless: bool = False, clock: Any = None) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size: expected >= 1, got {queue_size}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self.allow_headerless = bool(allow_headerless)
        self.clock = clock
        self.lock = threading.Lock()
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self.dropped_headerless = 0
        for index, f in enumerate(fs):
            if f is not None:
                f.registerCallback(self.add, index)

    def _now_ns(self) -> int:
        if self.clock is None:
            from rclpy.clock import ROSClock
            self.clock = ROSClock()
        return int(self.clock.now().nanoseconds)

    def add(self, msg: Any, my_queue_index: int) -> None:
        """Queue ``msg`` on input ``my_queue_index`` and emit the first matching set, if any."""
        header = getattr(msg, "header", None)
        if header is None or not hasattr(header, "stamp"):
            if not self.allow_headerless:
                self.dropped_headerless += 1
                return
            stamp = self._now_ns()
        else:
            stamp = stamp_to_ns(header.stamp)
        with self.lock:
            my_queue = self.queues[my_queue_index]
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            others = [q for i, q in enumerate(self.queues) if i != my_queue_index]
            candidates = []
            for queue in others:
                near = sorted(((s, abs(s - stamp)) for s in queue if abs(s - stamp) <= self.slop_ns),
                              key=lambda item: item[1])
                if not near:
                    return
                candidates.append([s for s, _ in near])
            for combo in itertools.product(*candidates):
                stamps = list(combo)
                stamps.insert(my_queue_index, stamp)
                if max(stamps) - min(stamps) < self.slop_ns and all(
                        s in q for q, s in zip(self.queues, stamps)):
                    msgs = [q[s] for q, s in zip(self.queues, stamps)]
                    for q, s in zip(self.queues, stamps):
                        del q[s]
                    break
            else:
                return
        self.signalMessage(*msgs)


def make_approximate_sync(node, inputs: Sequence[tuple[Any, str, Any]], queue_size: int,
                          slop: float, callback: Callable, allow_headerless: bool = False):
    """Subscribe ``inputs`` = [(msg_type, topic, qos), ...] and call ``callback(*msgs)`` on sets.

    Uses ``message_filters`` when it is installed (real ROS), else this module's classes with
    the same behaviour. Returns ``(synchronizer, subscribers)``.
    """
    mod = _message_filters
    if mod is not None:  # pragma: no cover - not in the venv
        subs = [mod.Subscriber(node, t, topic, qos_profile=qos) for t, topic, qos in inputs]
        sync = mod.ApproximateTimeSynchronizer(subs, queue_size, slop,
                                               allow_headerless=allow_headerless)
    else:
        subs = [Subscriber(node, t, topic, qos_profile=qos) for t, topic, qos in inputs]
        sync = ApproximateTimeSynchronizer(subs, queue_size, slop,
                                           allow_headerless=allow_headerless,
                                           clock=node.get_clock())
    sync.registerCallback(callback)
    return sync, subs
