"""Released-layout state dicts (generated from the spec's key list, random values) convert, load
and reproduce an independent reference forward of the released model to 1e-4, end to end
through ``dualtalk convert-official`` and ``dualtalk infer``; bad inputs fail clearly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from dualtalk_core.model.checkpoint import CheckpointError, load_checkpoint
from dualtalk_core.cli import main as dualtalk
from dualtalk_core.model.convert import convert_state_dict, infer_config, normalize_keys
from dualtalk_core.model.inference import predict_clip
from model_helpers import (SMALL_W2V_CUSTOM, SMALL_W2V_RELEASED_LIKE, reference_forward,
                           released_state_dict)

N = 16000 + 3200   # 1.2 s -> T = 30 frames


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(7)
    t = np.arange(N) / 16000
    self_audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (t < 0.7)
                  + 0.05 * rng.standard_normal(N)).astype(np.float32)
    partner_audio = (0.2 * rng.standard_normal(N) * (t > 0.4) + 0.01).astype(np.float32)
    partner_motion = (0.3 * rng.standard_normal((30, 56))).astype(np.float32)
    return self_audio, partner_audio, partner_motion


@pytest.fixture(scope="module")
def released_old(tmp_path_factory):
    """torch-1.12 style (weight_g / weight_v) file with a 7-layer conv stack."""
    sd = released_state_dict(SMALL_W2V_RELEASED_LIKE, seed=1, old_style=True)
    assert any(k.endswith("pos_conv_embed.conv.weight_g") for k in sd)
    path = tmp_path_factory.mktemp("released") / "DualTalk.pth"
    torch.save(sd, path)
    return path, sd


def test_convert_cli_and_infer_cli_reproduce_reference(released_old, clip, tmp_path):
    src, sd = released_old
    out = tmp_path / "dualtalk_small.pt"
    assert dualtalk(["convert-official", str(src), "-o", str(out)]) == 0
    model, payload = load_checkpoint(out)
    assert payload["extra"]["converted_from"] == "DualTalk.pth"
    assert model.config.wav2vec2["num_hidden_layers"] == 2
    reference = reference_forward(sd, SMALL_W2V_RELEASED_LIKE, *clip)
    assert reference.shape == (30, 56)

    pred = predict_clip(model, *clip)
    assert np.abs(pred - reference).max() < 1e-4

    # the same through files and the `dualtalk infer` command
    self_audio, partner_audio, partner_motion = clip
    sf.write(tmp_path / "self.wav", self_audio, 16000, subtype="FLOAT")
    sf.write(tmp_path / "partner.wav", partner_audio, 16000, subtype="FLOAT")
    np.save(tmp_path / "partner.npy", partner_motion)
    assert dualtalk(["infer", "--checkpoint", str(out), "--self-audio", str(tmp_path / "self.wav"),
                     "--partner-audio", str(tmp_path / "partner.wav"),
                     "--partner-motion", str(tmp_path / "partner.npy"),
                     "--length-from", "audio", "-o", str(tmp_path / "pred.npy")]) == 0
    cli_pred = np.load(tmp_path / "pred.npy")
    assert cli_pred.dtype == np.float32 and cli_pred.shape == (30, 56)
    assert np.abs(cli_pred - reference).max() < 1e-4


def test_new_key_style_with_wav2vec2_config_json(clip, tmp_path):
    sd = released_state_dict(SMALL_W2V_CUSTOM, seed=2, old_style=False)
    assert any(k.endswith("parametrizations.weight.original1") for k in sd)
    # the JSON claims 6 layers: the count is read from the keys (3) instead
    (tmp_path / "w2v").mkdir()
    (tmp_path / "w2v" / "config.json").write_text(json.dumps(
        {**SMALL_W2V_CUSTOM, "num_hidden_layers": 6, "model_type": "wav2vec2"}))
    torch.save(sd, tmp_path / "DualTalk.pth")
    out = tmp_path / "c.pt"
    assert dualtalk(["convert-official", str(tmp_path / "DualTalk.pth"), "-o", str(out),
                     "--wav2vec2-config", str(tmp_path / "w2v")]) == 0
    model, _ = load_checkpoint(out)
    assert model.config.wav2vec2["num_hidden_layers"] == 3
    assert model.joint_encoder.audio_encoder1.config.num_attention_heads == 2
    reference = reference_forward(sd, SMALL_W2V_CUSTOM, *clip)
    assert np.abs(predict_clip(model, *clip) - reference).max() < 1e-4


def test_inferred_config_from_key_shapes(released_old):
    _, sd = released_old
    cfg = infer_config(normalize_keys(sd))
    w = cfg.wav2vec2
    assert cfg.d_model == 32 and cfg.interaction_ffn == 64 and cfg.decoder_ffn == 64
    assert cfg.interaction_layers == 3 and cfg.lstm_layers == 2 and cfg.decoder_layers == 1
    assert w["hidden_size"] == 32 and w["intermediate_size"] == 48 and w["conv_dim"] == [16] * 7
    assert w["num_conv_pos_embeddings"] == 8 and w["num_conv_pos_embedding_groups"] == 4
    assert w["feat_extract_norm"] == "layer" and w["do_stable_layer_norm"] is True
    assert w["mask_time_prob"] > 0                 # masked_spec_embed is in the keys
    no_mask = {k: v for k, v in sd.items() if not k.endswith("masked_spec_embed")}
    assert infer_config(normalize_keys(no_mask)).wav2vec2["mask_time_prob"] == 0.0


def test_module_prefix_is_stripped(released_old):
    _, sd = released_old
    model = convert_state_dict({f"module.{k}": v for k, v in sd.items()})
    assert model.config.d_model == 32


def test_bad_state_dicts_fail_clearly(released_old, tmp_path, capsys):
    _, sd = released_old
    missing = {k: v for k, v in sd.items() if k != "interaction_module.self_attention.in_proj_bias"}
    with pytest.raises(CheckpointError, match="interaction_module.self_attention.in_proj_bias"):
        convert_state_dict(missing, source="x.pth")
    key = "synthesis_module.modulation_layer.weight"
    wrong = {**sd, key: torch.zeros(64, 60)}
    with pytest.raises(CheckpointError, match=r"modulation_layer.weight.*\[64, 60\].*\[64, 64\]"):
        convert_state_dict(wrong)
    custom = released_state_dict(SMALL_W2V_CUSTOM, old_style=True)
    with pytest.raises(ValueError, match="--wav2vec2-config"):
        convert_state_dict(custom)
    (tmp_path / "junk.pth").write_bytes(b"\x00\x01garbage" * 10)
    assert dualtalk(["convert-official", str(tmp_path / "junk.pth"), "-o",
                     str(tmp_path / "o.pt")]) == 2
    assert "junk.pth" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="joint_encoder"):
        from dualtalk_core.model.convert import load_released_state_dict
        load_released_state_dict(tmp_path / "other.pth")


def test_paper_sized_keys_infer_the_paper_config():
    """The real release (shapes only, meta device, old key style): the converter infers exactly
    the paper preset, wav2vec2-large-lv60 included, without --wav2vec2-config."""
    from transformers import Wav2Vec2Config

    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk

    paper = get_preset("paper")
    with torch.device("meta"):
        sd = DualTalk(paper).state_dict()
    sd = normalize_keys(sd, new_style=False)
    assert "joint_encoder.audio_encoder2.encoder.pos_conv_embed.conv.weight_g" in sd
    cfg = infer_config(normalize_keys(sd))
    assert cfg.replace(wav2vec2=paper.wav2vec2) == paper
    assert Wav2Vec2Config(**cfg.wav2vec2).to_dict() == Wav2Vec2Config(**paper.wav2vec2).to_dict()
