"""Our ApproximateTimeSynchronizer behaves as message_filters documents it.

message_filters (ROS 2) documents: each input keeps at most ``queue_size`` messages (oldest
dropped); a set (one message per input) is emitted when all its stamps lie within ``slop`` of
each other; each message is used at most once; headerless messages are ignored unless
``allow_headerless`` (then stamped with the current ROS time on arrival).
"""
from __future__ import annotations

import time

from dualtalk_msgs.msg import Blendshapes
from rclpy.clock import ROSClock
from std_msgs.msg import String

from dualtalk_ros.conversions import sec_to_stamp, stamp_to_ns
from dualtalk_ros.sync import ApproximateTimeSynchronizer


def _msg(t: float, tag: str = "") -> Blendshapes:
    m = Blendshapes(rig=tag)
    m.header.stamp = sec_to_stamp(t)
    return m


def _sync(n=2, queue_size=10, slop=0.05, **kw):
    out = []
    s = ApproximateTimeSynchronizer([None] * n, queue_size, slop, **kw)
    s.registerCallback(lambda *msgs: out.append(msgs))
    return s, out


def _stamps(sets):
    return [tuple(round(stamp_to_ns(m.header.stamp) / 1e9, 3) for m in ms) for ms in sets]


def test_matches_within_slop_and_not_outside():
    s, out = _sync()
    s.add(_msg(1.00), 0)
    s.add(_msg(1.03), 1)          # within 50 ms -> a set
    s.add(_msg(2.00), 0)
    s.add(_msg(2.08), 1)          # 80 ms apart -> no set
    assert _stamps(out) == [(1.00, 1.03)]


def test_each_message_used_once_and_closest_partner_wins():
    s, out = _sync(slop=0.1)
    s.add(_msg(1.00), 0)
    s.add(_msg(1.04), 1)          # matches 1.00
    s.add(_msg(1.05), 1)          # 1.00 already used: no set
    assert _stamps(out) == [(1.00, 1.04)]
    s.add(_msg(1.02), 0)          # closest waiting partner is 1.05 (not the used 1.04)
    assert _stamps(out) == [(1.00, 1.04), (1.02, 1.05)]


def test_queue_overflow_drops_oldest():
    s, out = _sync(queue_size=2)
    for t in (1.0, 2.0, 3.0):      # 1.0 is pushed out of input 0's queue
        s.add(_msg(t), 0)
    s.add(_msg(1.01), 1)
    assert out == []
    s.add(_msg(2.01), 1)
    assert _stamps(out) == [(2.0, 2.01)]


def test_three_inputs_need_all_within_slop():
    s, out = _sync(n=3, slop=0.05)
    s.add(_msg(1.00), 0)
    s.add(_msg(1.04), 1)
    s.add(_msg(1.08), 2)          # 1.00..1.08 spans 80 ms > slop: no set
    assert out == []
    s.add(_msg(1.06), 0)          # 1.04, 1.06, 1.08 span 40 ms: a set
    assert _stamps(out) == [(1.06, 1.04, 1.08)]


def test_headerless_ignored_unless_allowed():
    s, out = _sync()
    s.add(String(data="a"), 0)
    s.add(String(data="b"), 1)
    assert out == [] and s.dropped_headerless == 2
    s, out = _sync(slop=1.0, allow_headerless=True, clock=ROSClock())
    s.add(String(data="a"), 0)
    time.sleep(0.01)
    s.add(String(data="b"), 1)
    assert [tuple(m.data for m in ms) for ms in out] == [("a", "b")]
