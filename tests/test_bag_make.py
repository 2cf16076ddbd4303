"""``bag make``: bags read back with rosbags give the source clip's values, counts and timing.

The bag is decoded with a typestore built ONLY from the message definitions stored in the bag,
which is what another tool (Foxglove, ros2 bag) would do: it proves the definitions are there.
"""
from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from bag_helpers import write_synthetic_clip
from dualtalk_core import layout
from dualtalk_ros import topics
from dualtalk_ros.bag.bagio import qualified as q
from dualtalk_ros.bag.make import (BagTopics, MakeOptions, find_clip_sources, make_bag,
                                   make_bags)

NS = 1_000_000_000


def read_with_stored_definitions(path):
    """{topic: [(bag_ts, msg)]} and {topic: msgtype}, decoded from the bag's own msgdefs."""
    store = get_typestore(Stores.EMPTY)
    out, types = {}, {}
    with Reader(path) as reader:
        for conn in reader.connections:
            assert conn.msgdef.data, f"{conn.topic}: no message definition stored"
            store.register(_types_from_definition(conn.msgtype, conn.msgdef.data))
            types[conn.topic] = conn.msgtype
        for conn, ts, data in reader.messages():
            out.setdefault(conn.topic, []).append(
                (ts, store.deserialize_cdr(bytes(data), conn.msgtype)))
    return out, types


def _types_from_definition(msgtype: str, text: str) -> dict:
    """Split a ros2msg definition bundle ('====' + 'MSG: pkg/Name' sections) into types."""
    types = {}
    sections = text.split("=" * 80 + "\n")
    types.update(get_types_from_msg(sections[0], msgtype))
    for sec in sections[1:]:
        head, _, body = sec.partition("\n")
        name = head.replace("MSG: ", "").strip()
        if "/msg/" not in name:
            name = name.replace("/", "/msg/")
        types.update(get_types_from_msg(body, name))
    return types


def stamp(msg) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


def test_make_synthetic_clip_roundtrip(tmp_path):
    src = write_synthetic_clip(tmp_path / "data", seconds=1.5, seed=3)
    sources = find_clip_sources(tmp_path / "data")
    assert [s.name for s in sources] == ["synth_clip_000_speaker1", "synth_clip_000_speaker2"]
    opts = MakeOptions(start_time_s=1000.25)
    made = make_bag(sources[0], tmp_path / "bag1", opts)
    assert made.has_ground_truth and made.warnings == []

    msgs, types = read_with_stored_definitions(tmp_path / "bag1")
    # stored fully qualified, as rosbag2 does (issue 17)
    assert types == {q(topics.PARTNER_AUDIO): "dualtalk_msgs/msg/AudioChunk",
                     q(topics.AGENT_AUDIO): "dualtalk_msgs/msg/AudioChunk",
                     q(topics.PARTNER_FACE): "dualtalk_msgs/msg/Blendshapes",
                     q(topics.AGENT_BLENDSHAPES_GT): "dualtalk_msgs/msg/Blendshapes"}
    start = 1000 * NS + 250_000_000
    n, t = src["samples"], src["frames"]
    chunk = 320  # 20 ms at 16 kHz
    for topic, spk in ((topics.PARTNER_AUDIO, 2), (topics.AGENT_AUDIO, 1)):
        got = msgs[q(topic)]
        assert len(got) == -(-n // chunk)
        firsts = [m.first_sample_index for _, m in got]
        assert firsts == list(range(0, n, chunk))
        for ts, m in got:
            assert ts == stamp(m) == start + m.first_sample_index * NS // 16000
            assert m.encoding == "float32" and m.sample_rate == 16000 and m.channels == 1
            assert len(m.data_int16) == 0
        audio = np.concatenate([m.data_float32 for _, m in got])
        np.testing.assert_array_equal(audio, src["audio"][spk])
    for topic, spk in ((topics.PARTNER_FACE, 2), (topics.AGENT_BLENDSHAPES_GT, 1)):
        got = msgs[q(topic)]
        assert len(got) == t
        for k, (ts, m) in enumerate(got):
            assert ts == stamp(m) == start + k * NS // layout.FRAME_RATE
            assert m.rig == "flame56"
        np.testing.assert_array_equal(np.stack([m.weights for _, m in got]), src["motion"][spk])
    # bag time order: timestamps never decrease across topics
    with Reader(tmp_path / "bag1") as reader:
        all_ts = [ts for _, ts, _ in reader.messages()]
    assert all_ts == sorted(all_ts)


def test_make_options_storage_chunk_topics(tmp_path):
    write_synthetic_clip(tmp_path / "data", seconds=0.5, seed=1)
    src = find_clip_sources(tmp_path / "data", ["synth_clip_000_speaker2"])
    assert len(src) == 1 and src[0].speaker == 2
    names = BagTopics(partner_audio="/robot/mic", agent_gt="gt/face")
    made = make_bag(src[0], tmp_path / "b", MakeOptions(storage="sqlite3", chunk_ms=32,
                                                        topics=names))
    assert list((tmp_path / "b").glob("*.db3"))
    msgs, _ = read_with_stored_definitions(tmp_path / "b")
    assert set(msgs) == {"/robot/mic", q(topics.AGENT_AUDIO), q(topics.PARTNER_FACE),
                         "/gt/face"}
    assert [m.first_sample_index for _, m in msgs["/robot/mic"]] == list(range(0, 8000, 512))
    assert made.counts["/robot/mic"] == 16
    with pytest.raises(FileExistsError, match="already exists"):
        make_bag(src[0], tmp_path / "b", MakeOptions())
    with pytest.raises(ValueError, match="storage"):
        MakeOptions(storage="bag")


def test_make_missing_partner_motion_and_audio(tmp_path):
    write_synthetic_clip(tmp_path / "data", seconds=0.5, motion_sides=(1,))
    made, errors = make_bags(find_clip_sources(tmp_path / "data"), tmp_path / "bags")
    assert errors == []
    by = {m.source.speaker: m for m in made}
    assert q(topics.PARTNER_FACE) not in by[1].counts and by[1].has_ground_truth
    assert any("partner motion" in w for w in by[1].warnings)
    assert q(topics.AGENT_BLENDSHAPES_GT) not in by[2].counts and not by[2].has_ground_truth
    assert by[2].counts["/partner/face"] == 13
    (tmp_path / "data" / "synth_clip_000_speaker2.wav").unlink()
    made, errors = make_bags(find_clip_sources(tmp_path / "data", ["synth_clip_000"]),
                             tmp_path / "bags2")
    assert len(made) == 0 and len(errors) == 2
    assert all("synth_clip_000_speaker2.wav does not exist" in e for e in errors)
    with pytest.raises(FileNotFoundError, match="nope"):
        find_clip_sources(tmp_path / "data", ["nope"])


def test_make_shared_sample(tmp_path, sample_dir):
    """The real clip: speaker1 has ground truth but no partner face (speaker2 npz is not
    shipped); speaker2 has the partner face but no ground truth."""
    made, errors = make_bags(find_clip_sources(sample_dir), tmp_path)
    assert errors == []
    s1, s2 = sorted(made, key=lambda m: m.source.speaker)
    assert set(s1.counts) == {q(topics.PARTNER_AUDIO), q(topics.AGENT_AUDIO),
                              q(topics.AGENT_BLENDSHAPES_GT)}
    assert set(s2.counts) == {q(topics.PARTNER_AUDIO), q(topics.AGENT_AUDIO),
                              q(topics.PARTNER_FACE)}
    with np.load(sample_dir / "xkHwlcDSOjc_sub_video_109_000_speaker1.npz") as npz:
        motion = layout.flame56_from_npz(npz)
    msgs, _ = read_with_stored_definitions(s1.path)
    gt = np.stack([m.weights for _, m in msgs["/agent/blendshapes_gt"]])
    np.testing.assert_array_equal(gt, motion)
    import soundfile as sf
    n_samples = sum(len(m.data_float32) for _, m in msgs["/agent/audio"])
    assert n_samples == sf.info(sample_dir / "xkHwlcDSOjc_sub_video_109_000_speaker1.wav").frames


def test_cli_make_and_info(tmp_path, capsys):
    from dualtalk_ros.cli import main

    write_synthetic_clip(tmp_path / "data" / "test", seconds=0.5)
    assert main(["bag", "make", str(tmp_path / "data"), "--split", "test",
                 "-o", str(tmp_path / "bags"), "--chunk-ms", "40"]) == 0
    assert main(["bag", "info", str(tmp_path / "bags" / "synth_clip_000_speaker1")]) == 0
    out = capsys.readouterr().out
    assert f'"{q(topics.PARTNER_AUDIO)}"' in out and '"count": 13' in out
    assert '"dualtalk.clip": "synth_clip_000"' in out
