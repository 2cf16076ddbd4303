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
        conns = [c for c in reader.connections if c.topic == "/" + topics.AGENT_BLENDSHAPES]
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


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_checkpoint):
    """One ``bag evaluate`` run over two bags (the graph is the expensive part: run it once):
    ``(tmp dir, report dir, results)``."""
    tmp_path = tmp_path_factory.mktemp("bag_evaluate")
    data = tmp_path / "data" / "test"
    write_synthetic_clip(data, "clipa", seconds=1.6, seed=1)
    write_synthetic_clip(data, "clipb", seconds=1.2, seed=2, motion_sides=(1,))
    bags = tmp_path / "bags"
    src = {s.name: s for s in find_clip_sources(data)}
    make_bag(src["clipa_speaker1"], bags / "a", MakeOptions(start_time_s=10.0))
    make_bag(src["clipb_speaker2"], bags / "b")          # no ground truth
    out = tmp_path / "report"
    results = evaluate_path(bags, out, EvaluateOptions(graph=graph_options(tiny_checkpoint)))
    return tmp_path, out, results


def test_evaluate_directory_with_live_graph(evaluated):
    tmp_path, out, results = evaluated
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
        # the node's own figures: the replay restamps the bag (stamps from 0 / 10 s) onto the
        # wall clock, so the end-to-end latency (ROS now - frame stamp) is measurable too
        nl = r.summary["node_latency_ms"]
        assert nl is not None, r.summary["diagnostics"]
        assert 0 < nl["processing"]["p50"] <= nl["processing"]["p95"] < 5000
        assert 0 < nl["end_to_end"]["p50"] <= nl["end_to_end"]["p95"] < 5000
        assert r.summary["conversation_state"]["messages"] > 0
        _check_timing(r.summary, f["expected"])
    # bag a: metrics equal `dualtalk evaluate` on the predictions its output bag holds
    restamp = json.loads((out / "a" / "replay_log.json").read_text())["restamp_ns"]
    pred = predictions_from_output_bag(Path(ra.summary["output_bag"]), 10 * NS + restamp)
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
    assert "FD" in md and "| processing |" in md and "| end_to_end |" in md
    assert "| lip offset" in md and "| listening reaction" in md and "CPU of the whole graph" in md
    # bag b: no ground truth, still latency / rate / diagnostics
    assert rb.summary["metrics"] is None and "no ground truth" in rb.summary["metrics_note"]
    assert rb.summary["rate"]["output_hz"] > 0
    assert "clipa_speaker1" in (out / "summary.md").read_text()


def _check_timing(s: dict, expected: int) -> None:
    """The issue-17 figures of one report: every key present, measured, and consistent."""
    lip, react = s["lip_offset_ms"], s["listening_reaction_ms"]
    for r in (lip, react):
        assert set(r) >= {"p50", "p95", "max", "n"}
        assert r["n"] > 0 and r["p50"] <= r["p95"] <= r["max"], r
    # every released frame's first audio sample was played (the voice runs through the clip)
    assert lip["n"] == s["released"]["frames"] == expected, (lip, s["released"])
    # the tiny model is a sliding window: frames come after their stamps, so the head driver
    # releases them at once (counted late) and the face trails the voice; a reaction can
    # never come before the input it reacts to
    assert lip["p50"] > 0 and s["released"]["late_frames"] > 0
    assert react["min"] > 0 and react["n"] + react["flush_only"] + react["never_used"] == expected
    rel = s["released"]
    assert rel["topic"] == "/agent/joint_states" and rel["rate_hz"] > 0 and rel["jitter_ms"] >= 0
    assert 0 < s["graph_cpu"]["cores"] < 16 and s["graph_cpu"]["wall_s"] > 1.0
    node = [st["values"] for name, st in s["diagnostics"]["last"].items()
            if name.startswith("dualtalk_node")]
    assert node and "agent_audio_late_frames" in node[0], s["diagnostics"]["last"].keys()


def test_output_bag_reads_back_with_a_second_mcap_reader(evaluated):
    """The recorded output is what a robot got (issue 17): the head driver's released topics
    are in it, every name fully qualified, and the MCAP project's own reader (``mcap`` +
    ``mcap-ros2-support``, not rosbags) decodes every message and finds every topic with the
    count the report gives."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    _, out, results = evaluated
    for ev in results:
        counts: dict[str, int] = {}
        (mcap,) = Path(ev.summary["output_bag"]).glob("*.mcap")
        with mcap.open("rb") as f:
            for _, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]
                                                  ).iter_decoded_messages():
                assert msg is not None
                counts[channel.topic] = counts.get(channel.topic, 0) + 1
        report = json.loads((Path(ev.summary["output_bag"]).parent / "report.json").read_text())
        assert counts == report["output_topics"], (counts, report["output_topics"])
        want = {"/" + t.lstrip("/") for t in (
            topics.AGENT_BLENDSHAPES, topics.CONVERSATION_STATE, topics.DIAGNOSTICS,
            topics.AGENT_JOINT_STATES, topics.AGENT_BLENDSHAPES_ARKIT,
            topics.AGENT_BLENDSHAPE_SEQUENCE, topics.AGENT_AUDIO_PLAYED)}
        assert set(counts) == want and all(n > 0 for n in counts.values()), counts
        n = report["frames"]["expected"]
        assert counts["/agent/joint_states"] == counts["/agent/blendshapes_arkit"] == n


def test_report_without_played_voice_says_why(evaluated, tmp_path):
    """Bad input: an output bag without ``agent/audio_played`` (no voice played) scores with
    ``lip_offset_ms`` n = 0, null values and the reason, not a crash."""
    from rosbags.rosbag2 import Writer

    from dualtalk_ros.bag.inputs import read_input_bag
    from dualtalk_ros.bag.replay import ReplayLog
    from dualtalk_ros.bag.score import score_bag

    tmp, out, results = evaluated
    ev = results[0]
    stripped = tmp_path / "no_voice"
    with Reader(ev.summary["output_bag"]) as r, Writer(stripped, version=9) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=typestore())
                 for c in r.connections if c.topic != "/" + topics.AGENT_AUDIO_PLAYED}
        for c, t, d in r.messages():
            if c.id in conns:
                w.write(conns[c.id], t, bytes(d))
    log = ReplayLog.from_json_dict(json.loads((out / "a" / "replay_log.json").read_text()))
    again = score_bag(read_input_bag(ev.summary["bag"]), stripped, log)
    lip = again.summary["lip_offset_ms"]
    assert lip["n"] == 0 and lip["p50"] is None and lip["p95"] is None and lip["max"] is None
    assert "agent/audio_played" in lip["why"]
    assert again.summary["listening_reaction_ms"]["n"] > 0        # the rest still measured


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
    assert report["input"]["topics"]["/" + topics.PARTNER_AUDIO]["count"] == 30   # metadata
    assert "## Errors" in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "graph.log").exists()
    # with recovery: the readable part is evaluated (here the graph command fails at once,
    # so the report shows the recovered input and both errors)
    ev = evaluate_bag(bag, tmp_path / "out2", EvaluateOptions(graph=GraphOptions(
        command="false")))
    errs = " ".join(ev.summary["errors"])
    assert "cannot open bag" in errs and "recovered" in errs and "GraphError" in errs
    assert ev.summary["name"] == "synth_clip_000_speaker1"        # custom data kept
    n_audio = ev.summary["input"]["topics"]["/" + topics.PARTNER_AUDIO]["count"]
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
    assert repr("/" + topics.PARTNER_AUDIO) in errs and "/robot/mic" in errs
    # what could be read is still reported
    assert ev.summary["input"]["ground_truth_frames"] == 15
    assert (tmp_path / "out" / "report.md").exists()


def test_cli_evaluate_reports_error_for_missing_path(tmp_path, capsys):
    from dualtalk_ros.cli import main

    assert main(["bag", "evaluate", str(tmp_path / "nothing"), "-o", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
