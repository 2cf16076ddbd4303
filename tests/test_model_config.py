"""DualTalkConfig: validation names the field, YAML/dict round trips, presets are fresh copies;
the preset registry holds each preset's model and streaming defaults together."""
from __future__ import annotations

import pytest

from dualtalk_core.model.config import DualTalkConfig, get_preset
from dualtalk_core.model.presets import PRESETS, match_preset, preset, preset_names


def test_defaults_are_the_released_model():
    cfg = DualTalkConfig()
    assert cfg.audio_frontend == "wav2vec2" and cfg.d_model == 256
    assert cfg.wav2vec2["hidden_size"] == 1024 and cfg.wav2vec2["num_hidden_layers"] == 24
    assert cfg.alignment_bias is False and cfg.modulation_activation == "none"
    assert cfg.partner_motion_scale == 1.0 and cfg.enhancer_residual is False
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
    ("wav2vec2", 12), ("lstm_layers", 2.5), ("partner_motion_scale", 0), ("partner_motion_scale", -1),
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
    with pytest.raises(ValueError, match="unknown preset 'huge'.*tiny"):
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


def test_partner_motion_scale_multiplies_the_partner_motion_only():
    """scale s on motion m == scale 1 on motion s*m, with the same weights (no new tensors)."""
    import torch

    from dualtalk_core.model.dualtalk import DualTalk

    torch.manual_seed(0)
    base = get_preset("tiny").replace(use_temporal_enhancer=False)
    scaled = DualTalk(base.replace(partner_motion_scale=10.0)).eval()
    plain = DualTalk(base).eval()
    plain.load_state_dict(scaled.state_dict(), strict=True)
    T = 20
    sa, pa = torch.randn(1, T * 640) * 0.1, torch.randn(1, T * 640) * 0.1
    pm = torch.randn(1, T, 56) * 0.1
    with torch.no_grad():
        a = scaled(sa, pa, pm, num_frames=T)
        b = plain(sa, pa, 10.0 * pm, num_frames=T)
        c = plain(sa, pa, pm, num_frames=T)
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, c, atol=1e-4)


@pytest.mark.parametrize("residual", [False, True])
def test_enhancer_residual_adds_the_partner_speech_to_the_attention_output(residual):
    import torch

    from dualtalk_core.model.dualtalk import CrossModalTemporalEnhancer

    torch.manual_seed(0)
    enhancer = CrossModalTemporalEnhancer(get_preset("tiny").replace(enhancer_residual=residual))
    enhancer.eval()
    a, m = torch.randn(2, 15, 32), torch.randn(2, 15, 32)
    with torch.no_grad():
        attended, _ = enhancer.cross_attention(a, m, m, need_weights=False)
        expected, _ = enhancer.temporal_lstm(attended + a if residual else attended)
        assert torch.allclose(enhancer(a, m), expected, atol=1e-6)
        # with the residual, partner speech reaches the LSTM even when attention is uniform
        enhancer.cross_attention.in_proj_weight.zero_()
        changed = enhancer(a + 1.0, m)
    assert torch.allclose(changed, enhancer(a, m), atol=1e-6) is (not residual)


def test_registry_holds_model_and_streaming_defaults_together():
    assert preset_names() == list(PRESETS) and {"paper", "base", "cpu", "tiny"} <= set(PRESETS)
    for name in preset_names():
        entry = preset(name)
        assert entry.model_config() == get_preset(name)
        stream = entry.streaming_config()            # validated StreamingConfig
        assert stream.lookahead_s > 0 and stream.hop_frames >= 1
        # the cross-fade is derived (unset): the longest the hop and lookahead allow
        assert stream.crossfade_s is None
        assert stream.crossfade_frames == min(stream.hop_frames, stream.lookahead_frames - 1)
    assert all(preset(n).runner == "window" for n in ("paper", "base", "cpu", "tiny"))
    assert preset("cpu").streaming_config().window_s == 4.0
    assert preset("paper").streaming_config().window_s == 2.0
    with pytest.raises(ValueError, match="unknown preset 'huge'; expected one of"):
        preset("huge")


def test_match_preset_by_network_sizes():
    for name in preset_names():
        assert match_preset(get_preset(name)) == name
    # training options (dropout, input scaling, residual) do not change which preset it is
    trained = get_preset("cpu").replace(interaction_dropout=0.1, partner_motion_scale=10.0,
                                        enhancer_residual=True, alignment_bias=True)
    assert match_preset(trained) == "cpu"
    assert match_preset(get_preset("cpu").replace(d_model=64)) is None
