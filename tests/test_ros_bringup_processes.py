"""The bring-up runs one process per node; a crash stays local; nothing outlives its parent
(issue 20, items 2 and 4).

Real processes throughout: ``dualtalk-ros bringup`` with the tiny checkpoint, nodes killed with
SIGKILL, a respawned head driver checked over DDS, the bring-up and ``bag evaluate`` killed with
SIGKILL and their process trees checked through /proc.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from dualtalk_msgs.msg import Blendshapes
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from bag_helpers import write_synthetic_clip
from dualtalk_core.layout import FLAME56_NAMES
from dualtalk_ros import topics
from dualtalk_ros.bag.make import MakeOptions, find_clip_sources, make_bag
from dualtalk_ros.conversions import sec_to_stamp
from dualtalk_ros.qos import reliable_qos
from proc_helpers import alive, descendants, node_pids, wait_for
from ros_helpers import Collector, entry_point, ros_env, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.timeout(400)]

GRAPH = {"face_input_adapter", "dualtalk_node", "head_driver"}


def _frame(t: float) -> Blendshapes:
    msg = Blendshapes(rig="flame56", names=list(FLAME56_NAMES),
                      weights=np.zeros(56, np.float32))
    msg.header.stamp = sec_to_stamp(t)
    return msg


def _head_driver_answers(ctx, t0: float, joints_topic: str = topics.AGENT_JOINT_STATES) -> bool:
    """A frame sent to agent/blendshapes comes back on ``joints_topic`` (over DDS)."""
    node = Node("respawn_probe", context=ctx)
    pub = node.create_publisher(Blendshapes, topics.AGENT_BLENDSHAPES, reliable_qos())
    joints = Collector(node, JointState, joints_topic, reliable_qos())
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        if not spin_until(ex, lambda: pub.get_subscription_count() > 0
                          and joints.sub.get_publisher_count() > 0, 60.0):
            return False
        for k in range(50):
            pub.publish(_frame(t0 + 0.04 * k))
            if spin_until(ex, lambda: len(joints.msgs) > 0, 0.1):
                return True
        return False
    finally:
        ex.shutdown()
        node.destroy_node()


def test_node_crash_stays_local_respawn_resumes_and_nothing_is_orphaned(
        tmp_path, tiny_checkpoint, ros_context):
    log = (tmp_path / "bringup.log").open("w")
    report = tmp_path / "report.json"
    bringup = subprocess.Popen(
        [entry_point("dualtalk-ros"), "bringup", "conversation", "--no-audio-input",
         "--checkpoint", str(tiny_checkpoint), "--respawn", "head_driver",
         "--respawn-delay", "0.2", "--report", str(report)],
        env=ros_env(), stdout=log, stderr=subprocess.STDOUT)
    text = lambda: (tmp_path / "bringup.log").read_text()  # noqa: E731
    try:
        assert wait_for(lambda: "bringup: running" in text(), 180), text()
        pids = node_pids(bringup.pid)
        assert set(pids) == GRAPH and len(set(pids.values())) == 3, pids   # one process each
        assert bringup.pid not in pids.values()
        assert _head_driver_answers(ros_context, time.time())

        # a crash of the head driver: respawned, the others untouched, and it works again
        os.kill(pids["head_driver"], signal.SIGKILL)
        new = wait_for(lambda: (node_pids(bringup.pid).get("head_driver") not in
                                (None, pids["head_driver"])) and node_pids(bringup.pid), 30)
        assert new, text()
        assert new["dualtalk_node"] == pids["dualtalk_node"] and alive(pids["dualtalk_node"])
        assert new["face_input_adapter"] == pids["face_input_adapter"]
        assert _head_driver_answers(ros_context, time.time()), "the respawned head driver is silent"
        assert "head_driver: killed by SIGKILL; respawning" in text()

        # a crash of a node without respawn: it stays down, the others keep running
        os.kill(pids["face_input_adapter"], signal.SIGKILL)
        assert wait_for(lambda: "face_input_adapter: killed by SIGKILL; not respawned" in text(),
                        10), text()
        time.sleep(1.0)
        now = node_pids(bringup.pid)
        assert "face_input_adapter" not in now and bringup.poll() is None
        assert now["dualtalk_node"] == pids["dualtalk_node"]

        # the bring-up itself is killed: every node process is gone within a few seconds
        left = descendants(bringup.pid)
        assert left
        bringup.kill()
        bringup.wait(timeout=10)
        assert wait_for(lambda: not any(alive(p) for p in left), 10), \
            [p for p in left if alive(p)]
    finally:
        if bringup.poll() is None:
            bringup.kill()
        log.close()


def test_bringup_remap_renames_a_topic_of_one_node(tmp_path, tiny_checkpoint, ros_context):
    """``--remap head_driver:agent/joint_states:=/arm/cmd`` (issue 15): the head driver's
    commands arrive on /arm/cmd, and nothing publishes agent/joint_states any more."""
    log = (tmp_path / "bringup.log").open("w")
    bringup = subprocess.Popen(
        [entry_point("dualtalk-ros"), "bringup", "conversation", "--no-audio-input",
         "--checkpoint", str(tiny_checkpoint),
         "--remap", f"head_driver:{topics.AGENT_JOINT_STATES}:=/arm/cmd"],
        env=ros_env(), stdout=log, stderr=subprocess.STDOUT)
    text = lambda: (tmp_path / "bringup.log").read_text()  # noqa: E731
    try:
        assert wait_for(lambda: "bringup: running" in text(), 180), text()
        assert _head_driver_answers(ros_context, time.time(), joints_topic="/arm/cmd"), text()
        probe = Node("remap_probe", context=ros_context)
        ex = SingleThreadedExecutor(context=ros_context)
        ex.add_node(probe)
        try:       # once the new name's publisher is discovered, the old name has none
            new = Collector(probe, JointState, "/arm/cmd", reliable_qos())
            old = Collector(probe, JointState, topics.AGENT_JOINT_STATES, reliable_qos())
            assert spin_until(ex, lambda: new.sub.get_publisher_count() == 1, 10.0)
            assert old.sub.get_publisher_count() == 0
        finally:
            ex.shutdown()
            probe.destroy_node()
        bringup.send_signal(signal.SIGINT)
        assert bringup.wait(timeout=60) == 0, text()
    finally:
        if bringup.poll() is None:
            bringup.kill()
        log.close()


def test_bringup_stops_cleanly_and_reports_each_node(tmp_path, tiny_checkpoint):
    """--duration: every node stopped by the bring-up, exit 0, per-node exits in the report."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [entry_point("dualtalk-ros"), "bringup", "conversation", "--no-audio-input",
         "--checkpoint", str(tiny_checkpoint), "--duration", "2", "--report", str(report)],
        env=ros_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(report.read_text())
    assert set(data["processes"]) == GRAPH
    for name, p in data["processes"].items():
        assert p["exits"] == [] and p["final_exit"] == 0, (name, p)
    assert "frames_published" in data["dualtalk_node"]


def _bag(tmp_path, seconds: float):
    write_synthetic_clip(tmp_path / "data", seconds=seconds)
    src = find_clip_sources(tmp_path / "data", ["synth_clip_000_speaker1"])[0]
    return make_bag(src, tmp_path / "in" / "bag", MakeOptions()).path


def _frames_on_disk(mcap) -> int:
    """agent/blendshapes messages already readable from a recording still being written."""
    from dualtalk_ros.bag.bagio import qualified
    from dualtalk_ros.bag.salvage import salvage_mcap

    if not mcap.exists() or mcap.stat().st_size == 0:
        return 0
    sal = salvage_mcap(mcap)
    ids = {cid for cid, (topic, _) in sal.channels.items()
           if qualified(topic) == qualified(topics.AGENT_BLENDSHAPES)}
    return sum(1 for cid, _, _ in sal.messages if cid in ids)


def _start_evaluate(bag, out, checkpoint):
    return subprocess.Popen(
        [entry_point("dualtalk-ros"), "bag", "evaluate", str(bag), "-o", str(out),
         "--checkpoint", str(checkpoint), "--no-plot"],
        env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _graph_root(evaluate: subprocess.Popen) -> int | None:
    """pid of the bring-up process started by ``bag evaluate`` once its nodes are up."""
    for pid in descendants(evaluate.pid):
        if set(node_pids(pid)) == GRAPH | {"voice_player"}:    # evaluate plays the voice
            return pid
    return None


def test_graph_killed_during_evaluate_gives_failed_report(tmp_path, tiny_checkpoint):
    bag = _bag(tmp_path, seconds=12.0)
    out = tmp_path / "out"
    ev = _start_evaluate(bag, out, tiny_checkpoint)
    try:
        graph = wait_for(lambda: _graph_root(ev), 180)
        assert graph, "the graph never came up"
        mcap = out / "output_bag" / "output_bag.mcap"
        # frames are flowing (and reach the disk: the recorder flushes twice a second)
        assert wait_for(lambda: _frames_on_disk(mcap) >= 25, 60)
        os.kill(graph, signal.SIGKILL)
        stdout, _ = ev.communicate(timeout=240)
    finally:
        if ev.poll() is None:
            ev.kill()
    assert ev.returncode != 0, stdout
    report = json.loads((out / "report.json").read_text())
    assert report["status"] in ("failed", "partial"), report["status"]
    assert "SIGKILL" in report["status_reason"]
    md = (out / "report.md").read_text()
    assert f"status: **{report['status']}** (" in md and "SIGKILL" in md.splitlines()[2]


def test_killed_evaluate_takes_its_graph_down_and_keeps_its_recording(tmp_path,
                                                                       tiny_checkpoint):
    bag = _bag(tmp_path, seconds=20.0)
    out = tmp_path / "out"
    ev = _start_evaluate(bag, out, tiny_checkpoint)
    try:
        assert wait_for(lambda: _graph_root(ev), 180), "the graph never came up"
        mcap = out / "output_bag" / "output_bag.mcap"
        assert wait_for(lambda: _frames_on_disk(mcap) >= 25, 60)
        tree = descendants(ev.pid)
        ev.kill()
        ev.wait(timeout=10)
        assert wait_for(lambda: not any(alive(p) for p in tree), 15), \
            [p for p in tree if alive(p)]
    finally:
        if ev.poll() is None:
            ev.kill()
    rep = subprocess.run([entry_point("dualtalk-ros"), "bag", "repair", str(out / "output_bag"),
                          "-o", str(tmp_path / "fixed")], env=ros_env(), capture_output=True,
                         text=True, timeout=120)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert f"{topics.AGENT_BLENDSHAPES}=" in rep.stdout
    assert f"{topics.AGENT_BLENDSHAPES}=0" not in rep.stdout
