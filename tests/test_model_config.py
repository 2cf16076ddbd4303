"""DualTalkConfig: validation names the field, YAML/dict round trips, presets are fresh copies."""
from __future__ import annotations

import pytest

from dualtalk_core.config import PRESETS, DualTalkConfig, get_preset


def test_defaults_are_the_released_model():
    cfg = DualTalkConfig()
    assert cfg.audio_frontend == "wav2vec2" and cfg.d_model == 256
    assert cfg.wav2vec2["hidden_size"] == 1024 and cfg.wav2vec2["num_hidden_layers"] == 24
    assert cfg.alignment_bias is False and cfg.modulation_activation == "none"
    assert all(getattr(cfg, f) for f in ("use_partner_audio", "use_partner_motion",
                                         "use_temporal_enhancer", "use_interaction",
                                         "use_modulation"))
    assert get_preset("paper") == cfg


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_and_dict_round_trip(name, tmp_path):
    cfg = get_preset(name)
    assert DualTalkConfig.from_dict(cfg.to_dict()) == cfg
    assert DualTalkConfig.from_yaml(cfg.to_yaml()) == cfg
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    assert DualTalkConfig.from_yaml(path) == cfg


@pytest.mark.parametrize("field,value", [
    ("audio_frontend", "spectrogram"), ("modulation_activation", "gelu"), ("d_model", 0),
    ("d_model", 33), ("enhancer_heads", 3), ("interaction_dropout", 1.5),
    ("use_interaction", "yes"),
    ("wav2vec2", 12), ("lstm_layers", 2.5),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DualTalkConfig(**{field: value})


def test_unknown_keys_are_rejected_by_name():
    with pytest.raises(ValueError, match="d_modle"):
        DualTalkConfig.from_dict({"d_modle": 128})
    with pytest.raises(ValueError, match="d_modle"):
        get_preset("tiny").replace(d_modle=3)


def test_unknown_preset_and_fresh_copies():
    with pytest.raises(ValueError, match="tiny"):
        get_preset("huge")
    a = get_preset("tiny")
    a.wav2vec2["hidden_size"] = 999
    assert get_preset("tiny").wav2vec2["hidden_size"] == 32


def test_missing_yaml_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        DualTalkConfig.from_yaml(tmp_path / "nope.yaml")


def test_wav2vec2_dir_must_be_local(tmp_path):
    cfg = get_preset("tiny").replace(wav2vec2=str(tmp_path))
    with pytest.raises(ValueError, match="config.json"):
        cfg.wav2vec2_config()
