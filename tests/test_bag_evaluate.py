"""``bag evaluate``: the live graph (tiny checkpoint) against replayed bags, scored and reported.

The metrics in the report must equal ``dualtalk evaluate --pred-dir`` run on the predictions
read back independently from the recorded output bag. Broken inputs (truncated file, missing topic) give a clear error and a partial report.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from bag_helpers import write_synthetic_clip
from dualtalk_core import layout
from dualtalk_ros import topics
from dualtalk_ros.bag.evaluate import EvaluateOptions, evaluate_bag, evaluate_path
from dualtalk_ros.bag.graph import GraphOptions
from dualtalk_ros.bag.make import BagTopics, MakeOptions, find_clip_sources, make_bag
from dualtalk_ros.bag.typestore import typestore

NS = 1_000_000_000


def graph_options(checkpoint: Path) -> GraphOptions:
    """The bring-up with the tiny checkpoint (or the inference node alone when the bring-up
    module is not installed)."""
    try:
        import dualtalk_ros.bringup  # noqa: F401
        return GraphOptions(checkpoint=str(checkpoint), startup_timeout_s=180)
    except ImportError:
        exe = Path(sys.executable).parent / "dualtalk_node"
        return GraphOptions(command=f"{exe} --ros-args -p checkpoint:={checkpoint}",
                            startup_timeout_s=180)


def predictions_from_output_bag(path: Path, origin_ns: int) -> np.ndarray:
    """Independent reader: frames of agent/blendshapes placed by header stamp (k = 0..last)."""
    rows = {}
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topics.AGENT_BLENDSHAPES]
        for conn, _, data in reader.messages(connections=conns):
            msg = typestore().deserialize_cdr(bytes(data), conn.msgtype)
            assert tuple(msg.names) in ((), layout.FLAME56_NAMES)
            k = round((msg.header.stamp.sec * NS + msg.header.stamp.nanosec - origin_ns)
                      / (NS / layout.FRAME_RATE))
            rows[k] = np.asarray(msg.weights, np.float32)
    # the report's documented rule: a frame that never arrived holds the previous one
    out, prev = [], rows[min(rows)]
    for k in range(max(rows) + 1):
        prev = rows.get(k, prev)
        out.append(prev)
    return np.stack(out)


def test_evaluate_directory_with_live_graph(tmp_path, tiny_checkpoint):
    data = tmp_path / "data" / "test"
    write_synthetic_clip(data, "clipa", seconds=1.6, seed=1)
    write_synthetic_clip(data, "clipb", seconds=1.2, seed=2, motion_sides=(1,))
    bags = tmp_path / "bags"
    src = {s.name: s for s in find_clip_sources(data)}
    make_bag(src["clipa_speaker1"], bags / "a", MakeOptions(start_time_s=10.0))
    make_bag(src["clipb_speaker2"], bags / "b")          # no ground truth
    out = tmp_path / "report"
    results = evaluate_path(bags, out, EvaluateOptions(graph=graph_options(tiny_checkpoint)))
    assert (out / "summary.md").exists() and (out / "summary.json").exists()
    ra, rb = results
    for r, d in ((ra, out / "a"), (rb, out / "b")):
        assert (d / "report.md").exists() and (d / "report.png").exists()
        assert json.loads((d / "report.json").read_text())["name"] == r.summary["name"]
        assert r.summary["status"] == "ok", r.summary["errors"]
        f = r.summary["frames"]
        assert f["expected"] == layout.num_frames_for_samples(
            int(r.summary["input"]["audio_samples"]))
        # the whole clip comes out, the lookahead tail included (flushed at end of stream)
        assert f["unique"] == f["expected"] and f["received"] == f["expected"]
        assert f["tail_missing"] == 0 and f["missing"] == 0 and f["duplicates"] == 0
        lat = r.summary["latency_ms"]
        assert lat["n"] == f["received"] and 0 < lat["p50"] <= lat["p95"] <= lat["max"]
        # the node's own figures: bag stamps start at 0 / 10 s, far from the ROS clock (no sim
        # time), so only the processing latency is measurable
        nl = r.summary["node_latency_ms"]
        assert nl is not None, r.summary["diagnostics"]
        assert 0 < nl["processing"]["p50"] <= nl["processing"]["p95"] < 5000
        assert nl["end_to_end"]["p50"] == "unavailable"
        assert r.summary["conversation_state"]["messages"] > 0
    # bag a: metrics equal `dualtalk evaluate` on the predictions its output bag holds
    pred = predictions_from_output_bag(Path(ra.summary["output_bag"]), 10 * NS)
    preds = tmp_path / "preds"
    preds.mkdir()
    np.save(preds / "clipa_speaker1.npy", pred)
    from dualtalk_core.cli import main as dualtalk_main
    assert dualtalk_main(["evaluate", "--pred-dir", str(preds), "--data", str(tmp_path / "data"),
                          "--split", "test", "--baselines", "none", "--method-name", "bag",
                          "--json", str(tmp_path / "ref.json")]) == 0
    ref = json.loads((tmp_path / "ref.json").read_text())["methods"]["bag"]
    assert ref["n_clips"] == 1
    got = ra.summary["metrics"]["raw"]
    for metric, groups in ref["raw"].items():
        for g, v in groups.items():
            assert got[metric][g] == pytest.approx(v, abs=1e-6), (metric, g)
    md = (out / "a" / "report.md").read_text()
    assert "FD" in md and "| processing |" in md and "| end_to_end | unavailable" in md
    # bag b: no ground truth, still latency / rate / diagnostics
    assert rb.summary["metrics"] is None and "no ground truth" in rb.summary["metrics_note"]
    assert rb.summary["rate"]["output_hz"] > 0
    assert "clipa_speaker1" in (out / "summary.md").read_text()


def _bag(tmp_path, **make_kw) -> Path:
    write_synthetic_clip(tmp_path / "data", seconds=0.6)
    src = find_clip_sources(tmp_path / "data", ["synth_clip_000_speaker1"])[0]
    return make_bag(src, tmp_path / "in" / "bag", MakeOptions(**make_kw)).path


def test_truncated_bag_gives_error_and_partial_report(tmp_path):
    bag = _bag(tmp_path)
    mcap = next(bag.glob("*.mcap"))
    os.truncate(mcap, mcap.stat().st_size // 2)
    # without recovery: clear error, report from metadata.yaml, the graph is never started
    ev = evaluate_bag(bag, tmp_path / "out", EvaluateOptions(
        graph=GraphOptions(command="false"), recover=False))
    assert ev.summary["status"] == "error"
    assert any(str(mcap.parent) in e and "cannot open bag" in e for e in ev.summary["errors"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["input"]["topics"][topics.PARTNER_AUDIO]["count"] == 30   # from metadata.yaml
    assert "## Errors" in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "graph.log").exists()
    # with recovery: the readable part is evaluated (here the graph command fails at once,
    # so the report shows the recovered input and both errors)
    ev = evaluate_bag(bag, tmp_path / "out2", EvaluateOptions(graph=GraphOptions(
        command="false")))
    errs = " ".join(ev.summary["errors"])
    assert "cannot open bag" in errs and "recovered" in errs and "GraphError" in errs
    assert ev.summary["name"] == "synth_clip_000_speaker1"        # custom data kept
    n_audio = ev.summary["input"]["topics"][topics.PARTNER_AUDIO]["count"]
    assert 5 < n_audio < 30
    assert ev.summary["status"] == "error" and (tmp_path / "out2" / "report.md").exists()


def test_salvage_recovers_prefix_of_truncated_mcap(tmp_path):
    from dualtalk_ros.bag.salvage import repair_bag

    bag = _bag(tmp_path)
    with Reader(bag) as r:
        original = [(c.topic, t, bytes(d)) for c, t, d in r.messages()]
    mcap = next(bag.glob("*.mcap"))
    os.truncate(mcap, int(mcap.stat().st_size * 0.7))
    counts, why = repair_bag(bag, tmp_path / "fixed")
    assert why and "cut" in why
    with Reader(tmp_path / "fixed") as r:
        got = [(c.topic, t, bytes(d)) for c, t, d in r.messages()]
    assert 0 < len(got) < len(original)
    assert got == original[:len(got)]           # an exact prefix, nothing invented
    assert sum(counts.values()) == len(got)


def test_missing_topic_gives_error_and_partial_report(tmp_path):
    bag = _bag(tmp_path, topics=BagTopics(partner_audio="robot/mic"))
    ev = evaluate_bag(bag, tmp_path / "out", EvaluateOptions(graph=GraphOptions(
        command="false")))
    errs = " ".join(ev.summary["errors"])
    assert ev.summary["status"] == "error"
    assert repr(topics.PARTNER_AUDIO) in errs and "robot/mic" in errs
    # what could be read is still reported
    assert ev.summary["input"]["ground_truth_frames"] == 15
    assert (tmp_path / "out" / "report.md").exists()


def test_cli_evaluate_reports_error_for_missing_path(tmp_path, capsys):
    from dualtalk_ros.cli import main

    assert main(["bag", "evaluate", str(tmp_path / "nothing"), "-o", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
