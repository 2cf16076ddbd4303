"""Conversions, parameter declaration/YAML, rig maps and audio input normalisation."""
from __future__ import annotations

import numpy as np
import pytest
from dualtalk_msgs.msg import AudioChunk, Blendshapes
from rclpy.node import Node

from dualtalk_core.layout import ARKIT52_NAMES, FLAME56_NAMES
from dualtalk_ros.audio_input import AudioInput
from dualtalk_ros.conversions import (MessageError, audio_chunk_to_numpy, blendshape_sequence_to_numpy,
                                      blendshapes_to_numpy, ns_to_stamp, numpy_to_audio_chunk,
                                      numpy_to_blendshape_sequence, numpy_to_blendshapes,
                                      sec_to_stamp, stamp_to_ns, stamp_to_sec)
from dualtalk_ros.params import (Param, ParamError, declare_params, load_params_file,
                                 parse_overrides, to_parameters)
from dualtalk_ros.rig_mapping import MapFileError, linear_map_from_dict, load_linear_map

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback


def test_stamps_roundtrip_exactly():
    for ns in (0, 1, 999_999_999, 1_795_000_000_123_456_789):
        assert stamp_to_ns(ns_to_stamp(ns)) == ns
    assert stamp_to_sec(sec_to_stamp(12.04)) == pytest.approx(12.04, abs=1e-9)


def test_audio_roundtrip_both_encodings():
    x = np.stack([np.linspace(-1, 1, 320), np.linspace(1, -1, 320)], 1).astype(np.float32)
    for enc, tol in (("float32", 0), ("int16", 1 / 32767)):
        msg = numpy_to_audio_chunk(x, 16000, 640, stamp=sec_to_stamp(1.0), encoding=enc)
        assert msg.channels == 2 and msg.first_sample_index == 640 and msg.encoding == enc
        np.testing.assert_allclose(audio_chunk_to_numpy(msg), x, atol=tol)
    loud = numpy_to_audio_chunk(np.array([2.0, -3.0]), 16000, 0, encoding="int16")
    assert list(loud.data_int16) == [32767, -32767]          # clips instead of wrapping


@pytest.mark.parametrize("field,value,match", [
    ("encoding", "mp3", "encoding"), ("channels", 0, "channels"), ("channels", 3, "multiple")])
def test_bad_audio_names_the_field(field, value, match):
    msg = numpy_to_audio_chunk(np.zeros(320), 16000, 0)
    setattr(msg, field, value)
    with pytest.raises(MessageError, match=match):
        audio_chunk_to_numpy(msg)


def test_blendshapes_names_and_sequences():
    w = np.arange(56, dtype=np.float32)
    msg = numpy_to_blendshapes(w)
    assert tuple(msg.names) == FLAME56_NAMES
    back, names = blendshapes_to_numpy(Blendshapes(rig="flame56", weights=w))   # names empty
    assert names == FLAME56_NAMES and np.array_equal(back, w)
    with pytest.raises(MessageError, match="42 weights but 56 names"):
        blendshapes_to_numpy(Blendshapes(rig="flame56", weights=np.zeros(42, np.float32)))
    seq = numpy_to_blendshape_sequence(np.stack([w, w + 1]))
    assert seq.num_frames == 2
    np.testing.assert_array_equal(blendshape_sequence_to_numpy(seq)[1], w + 1)


def test_declare_params_descriptors_ranges_and_choices(ros_context):
    specs = (Param("rate", 0.02, "chunk", low=0.005, high=0.2),
             Param("mode", "a", "mode", choices=("a", "b")),
             Param("files", [], "files", type=__import__("rclpy").Parameter.Type.STRING_ARRAY))
    node = Node("p1", context=ros_context, parameter_overrides=to_parameters({"mode": "b"}))
    values = declare_params(node, specs)
    assert values == {"rate": 0.02, "mode": "b", "files": []}
    desc = node.describe_parameter("rate")
    assert desc.description == "chunk" and desc.floating_point_range[0].to_value == 0.2
    node.destroy_node()
    bad = Node("p2", context=ros_context, parameter_overrides=to_parameters({"mode": "c"}))
    with pytest.raises(ParamError, match="'mode'.*expected one of.*'c'"):
        declare_params(bad, specs)
    bad.destroy_node()
    out_of_range = Node("p3", context=ros_context, parameter_overrides=to_parameters({"rate": 5.0}))
    with pytest.raises(ParamError, match="rate"):
        declare_params(out_of_range, specs)
    out_of_range.destroy_node()


def test_params_file_and_overrides(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/ns/dualtalk_node:\n  ros__parameters:\n    hop_s: 0.2\n    nested: {a: 1}\n"
                 "/**:\n  ros__parameters:\n    use_sim_time: false\n")
    assert load_params_file(f) == {"dualtalk_node": {"hop_s": 0.2, "nested.a": 1},
                                   "/**": {"use_sim_time": False}}
    f.write_text("dualtalk_node:\n  hop_s: 0.2\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        load_params_file(f)
    assert parse_overrides(["a.b.c=[1, 2]", "a.d=x"]) == {"a": {"b.c": [1, 2], "d": "x"}}


def test_rig_maps(repo_root):
    m = load_linear_map(repo_root / "config" / "maps" / "flame56_to_arkit52.yaml")
    x = np.zeros(56, np.float32)
    x[FLAME56_NAMES.index("jaw_rx")] = 0.15
    y = m.apply(x)
    assert y[ARKIT52_NAMES.index("JawOpen")] == pytest.approx(0.495)
    assert y.min() >= 0 and y.max() <= 1
    inv = load_linear_map(repo_root / "config" / "maps" / "arkit_to_flame56.yaml")
    out, missing = inv.apply_named(np.array([1.0]), ["JawOpen"])        # subset of the names
    assert out[FLAME56_NAMES.index("jaw_rx")] == pytest.approx(0.3) and "HeadYaw" in missing
    with pytest.raises(MapFileError, match="targets.Nope"):
        linear_map_from_dict({"source_rig": "flame56", "target_rig": "arkit52",
                              "targets": {"Nope": {"terms": {"jaw_rx": 1}}}})
    with pytest.raises(MapFileError, match=r"matrix should be \[52, 56\]"):
        linear_map_from_dict({"source_rig": "flame56", "target_rig": "arkit52",
                              "matrix": [[0.0] * 3]})


def test_audio_input_resamples_downmixes_and_keeps_the_clock():
    inp = AudioInput("partner")
    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1).astype(np.float32)
    got = []
    for i in range(0, 48000, 960):
        r = inp.convert(numpy_to_audio_chunk(stereo[i:i + 960], 48000, i))
        if r is not None:
            got.append(r)
    starts = [s for _, s in got]
    ends = [s + x.size for x, s in got]
    assert starts[0] == 0 and starts[1:] == ends[:-1]          # contiguous on the 16 kHz clock
    assert 15000 < ends[-1] <= 16000
    assert inp.counters == {"resampled_chunks": 50, "downmixed_chunks": 50}
    bad = numpy_to_audio_chunk(np.full(320, np.nan), 16000, 0)
    with pytest.raises(MessageError, match="NaN"):
        inp.convert(bad)
    with pytest.raises(MessageError, match="sample_rate"):
        inp.convert(AudioChunk(sample_rate=0, channels=1, encoding="float32"))


def test_to_parameters_coerces_ints_for_float_params():
    specs = (Param("hop_s", 0.2, "hop"), Param("channels", 1, "n"))
    params = {p.name: p.value for p in to_parameters({"hop_s": 1, "channels": 2}, specs)}
    assert params == {"hop_s": 1.0, "channels": 2} and isinstance(params["hop_s"], float)
