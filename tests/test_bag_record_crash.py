"""A recording survives ``kill -9`` of the recorder (issue 20, item 3).

A real ``dualtalk-ros bag record`` process records a 50 Hz topic over DDS; it is killed with
SIGKILL mid-run; ``bag repair`` turns the cut MCAP file into a valid bag, read back with the
plain rosbags Reader: an exact, gap-free prefix of what was published, missing at most ~1 s.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosbags.rosbag2 import Reader

from dualtalk_ros.bag.typestore import typestore
from dualtalk_ros.conversions import sec_to_stamp, stamp_to_ns
from dualtalk_ros.qos import reliable_qos
from ros_helpers import entry_point, ros_env, spin_for, spin_until

pytestmark = pytest.mark.ros  # real rclpy nodes, a real recorder process, real bag files

RATE_HZ = 50


def test_killed_recording_is_recovered(tmp_path, ros_context):
    out = tmp_path / "rec"
    proc = subprocess.Popen(
        [entry_point("dualtalk-ros"), "bag", "record", "crash/topic:=dualtalk_msgs/msg/Blendshapes",
         "-o", str(out)], env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    node = Node("crash_publisher", context=ros_context)
    pub = node.create_publisher(Blendshapes, "crash/topic", reliable_qos())
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    sent = 0
    try:
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0, 60.0), \
            "the recorder never subscribed"
        t_end = time.monotonic() + 4.0
        while time.monotonic() < t_end:
            msg = Blendshapes(rig="flame56", weights=np.full(56, sent, np.float32))
            msg.header.stamp = sec_to_stamp(sent / RATE_HZ)
            pub.publish(msg)
            sent += 1
            spin_for(ex, 1.0 / RATE_HZ)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        ex.shutdown()
        node.destroy_node()
    assert proc.returncode == -signal.SIGKILL
    mcap = next(out.glob("*.mcap"))
    assert mcap.stat().st_size > 0, "nothing reached the disk before the kill"
    fixed = tmp_path / "fixed"
    rep = subprocess.run([entry_point("dualtalk-ros"), "bag", "repair", str(out), "-o", str(fixed)],
                         env=ros_env(), capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    with Reader(fixed) as reader:
        got = [typestore().deserialize_cdr(bytes(d), c.msgtype) for c, _, d in reader.messages()]
    index = [round(stamp_to_ns(m.header.stamp) * RATE_HZ / 1e9) for m in got]
    assert index == list(range(len(index))), "not a gap-free prefix of what was published"
    assert all(float(m.weights[0]) == k for k, m in zip(index, got))
    # at most ~1 s lost (0.5 s flush period, plus DDS delivery in flight)
    assert len(got) >= sent - RATE_HZ, f"recovered {len(got)} of {sent} messages"
