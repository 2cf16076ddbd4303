"""StreamingConfig: one merge path (preset -> file -> overrides), validated once, with messages
that name the field, the value and the allowed range; the cross-fade rule; checkpoint-driven
selection of the settings."""
from __future__ import annotations

import pytest

from dualtalk_core.model.presets import preset
from dualtalk_core.streaming.config import (StreamingConfig, merge_streaming,
                                            read_streaming_file)
from dualtalk_core.streaming.fields import allowed_text, settings_fields
from dualtalk_core.streaming.runners import streaming_config_for, streaming_layers


def test_setting_only_the_hop_works_and_the_crossfade_follows():
    cpu = preset("cpu").streaming_defaults()            # hop 0.4: derived cross-fade 0.36 s
    assert merge_streaming(cpu).crossfade_frames == 9
    cfg = merge_streaming(cpu, {"hop_s": 0.2})
    assert cfg.hop_s == 0.2 and cfg.crossfade_s is None and cfg.crossfade_frames == 5
    assert merge_streaming(cpu, {"hop_s": 0.2, "crossfade_s": 0.08}).crossfade_frames == 2
    assert merge_streaming(cpu, {"crossfade_s": 0.0}).crossfade_frames == 0


@pytest.mark.parametrize("changes, pattern", [
    ({"hop_s": 0.2, "crossfade_s": 0.36},
     r"StreamingConfig\.crossfade_s: expected a multiple of 0\.04 in \[0, 0\.2\].*got 0\.36"),
    ({"lookahead_s": 0.3}, r"StreamingConfig\.lookahead_s: expected a multiple of 0\.04 s.*0\.3"),
    ({"hop_s": 0.0}, r"StreamingConfig\.hop_s: expected a number in \[0\.04, 10\], got 0\.0"),
    ({"hop_s": "0.2"}, r"StreamingConfig\.hop_s: expected a number in \[0\.04, 10\], got '0\.2'"),
    ({"window_s": True}, r"StreamingConfig\.window_s: expected a number .*got True"),
    ({"norm_mode": "global"}, r"norm_mode: expected one of \['running', 'window', 'none'\]"),
    ({"agent_clock": "wall"}, r"agent_clock: expected one of \['index', 'stamp'\], got 'wall'"),
    ({"end_of_stream_s": -1}, r"end_of_stream_s: expected a number in \[0, 3600\], got -1"),
    ({"max_backlog_s": 5.0}, r"max_backlog_s: expected >= .* got 5"),
    ({"window": 2.0}, r"unknown key\(s\) \['window'\]"),
])
def test_bad_values_fail_once_naming_field_value_and_range(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        merge_streaming(preset("cpu").streaming_defaults(), changes)


def test_every_setting_documents_itself():
    names = []
    for f in settings_fields(StreamingConfig):
        names.append(f.name)
        assert len(f.metadata["description"]) > 20, f.name
        assert allowed_text(f)
    assert set(StreamingConfig.dynamic_fields()) == {"end_of_stream_s", "restart_after_rewind_s"}
    assert {"window_s", "lookahead_s", "hop_s", "crossfade_s", "max_backlog_s"} <= set(names)


def test_merge_order_preset_then_file_then_overrides(tmp_path, tiny_checkpoint):
    from dualtalk_core.model.checkpoint import read_payload

    payload = read_payload(tiny_checkpoint)            # records preset tiny: W 4.0
    file = tmp_path / "s.yaml"
    file.write_text("streaming:\n  lookahead_s: 0.32\n  max_gap_s: 2.0\n  vad: {on_db: -35.0}\n")
    assert read_streaming_file(file)["lookahead_s"] == 0.32
    cfg = streaming_config_for(payload, "auto", file, {"max_gap_s": 3.0})
    assert cfg.window_s == 4.0                  # preset (not dropped because a file is given)
    assert cfg.lookahead_s == 0.32              # file
    assert cfg.max_gap_s == 3.0                 # override beats file
    assert cfg.vad.on_db == -35.0 and cfg.vad.off_db == -50.0
    assert streaming_config_for(payload, "paper", file).window_s == 2.0   # named preset
    assert streaming_layers(payload, "auto") == [preset("tiny").streaming_defaults()]
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        streaming_config_for(payload, "huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("streaming:\n  hop: 0.2\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hop'\]"):
        streaming_config_for(payload, "auto", bad)


def test_yaml_round_trip_keeps_the_unset_crossfade(tmp_path):
    cfg = merge_streaming(preset("cpu").streaming_defaults(), {"max_overdue_s": 1.0})
    path = tmp_path / "s.yaml"
    cfg.to_yaml(path)
    again = StreamingConfig.from_yaml(path)
    assert again == cfg and again.crossfade_s is None and again.max_overdue_s == 1.0
