"""Checkpoint files: round trip, self-contained config, and a clear CheckpointError (naming the
file and the problem) for every kind of bad file."""
from __future__ import annotations

import pytest
import torch

from dualtalk_core.model.checkpoint import (FORMAT, CheckpointError, checkpoint_preset,
                                           checkpoint_streaming, export_checkpoint,
                                           load_checkpoint, read_payload, save_checkpoint)
from dualtalk_core.model.config import get_preset
from dualtalk_core.layout import DIM, FLAME56_NAMES
from dualtalk_core.model.dualtalk import DualTalk


@pytest.fixture(scope="module")
def payload(tiny_checkpoint):
    return torch.load(tiny_checkpoint, weights_only=True)


def test_tiny_checkpoint_round_trip(tiny_checkpoint, payload):
    model, loaded = load_checkpoint(tiny_checkpoint)
    assert not model.training and model.config == get_preset("tiny")
    assert loaded["format"] == FORMAT and loaded["format_version"] == 1
    assert loaded["rig"] == "flame56" and tuple(loaded["names"]) == FLAME56_NAMES
    assert loaded["extra"]["seed"] == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, payload["state_dict"][key]), key
    x = torch.randn(1, 8000)
    with torch.no_grad():
        again, _ = load_checkpoint(tiny_checkpoint)
        torch.testing.assert_close(model(x, x, torch.zeros(1, 13, DIM)),
                                   again(x, x, torch.zeros(1, 13, DIM)), rtol=0, atol=0)


def test_extra_and_ablation_config_survive(tmp_path):
    torch.manual_seed(1)
    model = DualTalk(get_preset("tiny").replace(use_modulation=False, alignment_bias=True))
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, extra={"training": {"step": 7}})
    loaded, payload = load_checkpoint(path)
    assert payload["extra"] == {"training": {"step": 7}}
    assert loaded.config.use_modulation is False and loaded.config.alignment_bias is True
    assert not (tmp_path / "sub" / "m.pt.tmp").exists()


def test_local_wav2vec2_dir_is_made_self_contained(tmp_path):
    """A model built from a local pretrained dir saves its config kwargs, not the path."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = get_preset("tiny")
    w2v = Wav2Vec2Model(Wav2Vec2Config(**cfg.wav2vec2))
    w2v.save_pretrained(tmp_path / "w2v")
    model = DualTalk(cfg.replace(wav2vec2=str(tmp_path / "w2v")))
    torch.testing.assert_close(model.joint_encoder.audio_encoder1.feature_projection.projection
                               .weight, w2v.feature_projection.projection.weight)
    path = save_checkpoint(tmp_path / "m.pt", model)
    (tmp_path / "w2v" / "config.json").unlink()          # the dir is no longer needed
    loaded, payload = load_checkpoint(path)
    assert isinstance(payload["config"]["wav2vec2"], dict)
    assert loaded.joint_encoder.audio_encoder1.config.hidden_size == 32


def _write(path, obj):
    torch.save(obj, path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("cut", [0, 0.5, 0.9])
def test_truncated_file(tiny_checkpoint, tmp_path, cut):
    data = tiny_checkpoint.read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_checkpoint(bad)


def test_not_a_torch_file(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("this is not a checkpoint\n" * 20)
    with pytest.raises(CheckpointError, match=r"notes.pt.*not a readable PyTorch"):
        load_checkpoint(bad)


def test_wrong_format_and_version(payload, tmp_path):
    with pytest.raises(CheckpointError, match="'format'"):
        load_checkpoint(_write(tmp_path / "a.pt", {**payload, "format": "something-else"}))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(_write(tmp_path / "b.pt", {**payload, "format_version": 99}))
    no_cfg = {k: v for k, v in payload.items() if k != "config"}
    with pytest.raises(CheckpointError, match=r"missing field.*config"):
        load_checkpoint(_write(tmp_path / "c.pt", no_cfg))
    with pytest.raises(CheckpointError, match="rig"):
        load_checkpoint(_write(tmp_path / "d.pt", {**payload, "rig": "arkit52"}))
    bad_cfg = {**payload, "config": {**payload["config"], "d_model": -1}}
    with pytest.raises(CheckpointError, match="d_model"):
        load_checkpoint(_write(tmp_path / "e.pt", bad_cfg))


def test_wrong_shape_names_tensor_and_both_shapes(payload, tmp_path):
    sd = dict(payload["state_dict"])
    key = "synthesis_module.blendshape_predictor.weight"
    sd[key] = torch.zeros(52, sd[key].shape[1])
    path = _write(tmp_path / "shape.pt", {**payload, "state_dict": sd})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "shape.pt" in msg and key in msg and "[52, 64]" in msg and "[56, 64]" in msg


def test_missing_and_unexpected_tensor(payload, tmp_path):
    sd = dict(payload["state_dict"])
    del sd["temporal_enhancer.temporal_lstm.weight_hh_l1"]
    sd["extra_head.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(_write(tmp_path / "keys.pt", {**payload, "state_dict": sd}))
    msg = str(info.value)
    assert "temporal_enhancer.temporal_lstm.weight_hh_l1" in msg and "extra_head.weight" in msg


def test_plain_released_state_dict_gets_a_hint(payload, tmp_path):
    path = _write(tmp_path / "DualTalk.pth", dict(payload["state_dict"]))
    with pytest.raises(CheckpointError, match="convert-official"):
        read_payload(path)


def test_light_frontend_checkpoint_round_trip(tmp_path):
    """The log-mel front end's constant buffers survive the meta-device load path."""
    torch.manual_seed(2)
    model = DualTalk(get_preset("cpu")).eval()
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "cpu.pt", model))
    assert loaded.joint_encoder.audio_encoder1.window.device.type == "cpu"
    x = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, x, torch.zeros(1, 13, DIM)),
                                   model(x, x, torch.zeros(1, 13, DIM)), rtol=0, atol=0)


# ------------------------------------------------------------------ typed preset / streaming fields
def test_saved_checkpoint_records_its_preset_and_streaming_defaults(tiny_checkpoint, tmp_path):
    from dualtalk_core.model.presets import preset

    _, payload = load_checkpoint(tiny_checkpoint)
    assert payload["preset"] == "tiny"
    assert payload["streaming"] == preset("tiny").streaming_defaults()
    model, _ = load_checkpoint(tiny_checkpoint)
    path = save_checkpoint(tmp_path / "m.pt", model, preset="tiny",
                           streaming={"window_s": 2.0, "hop_s": 0.2})
    again = read_payload(path)
    assert again["preset"] == "tiny" and again["streaming"] == {"window_s": 2.0, "hop_s": 0.2}
    assert checkpoint_streaming(again) == {"window_s": 2.0, "hop_s": 0.2}


def test_older_checkpoints_resolve_preset_and_streaming(repo_root, tmp_path):
    """The bundled demo model predates the typed fields (and its training config is a path):
    its network sizes match ``cpu``; export adds the fields."""
    from dualtalk_core.model.presets import preset

    demo = repo_root / "models" / "dualtalk_cpu_demo.pt"
    payload = read_payload(demo)
    assert "preset" not in payload and "streaming" not in payload
    assert checkpoint_preset(payload) == "cpu"
    assert checkpoint_streaming(payload) == preset("cpu").streaming_defaults()
    exported = read_payload(export_checkpoint(demo, tmp_path / "demo.pt", half=True))
    assert exported["preset"] == "cpu"
    assert exported["streaming"] == preset("cpu").streaming_defaults()
    # the training config's preset wins over size matching (unless it disagrees on causal:
    # a window model must never get the live runner); nothing matching -> cpu, or live for a
    # causal model (only the live runner can step it)
    assert checkpoint_preset({"config": payload["config"], "extra": {
        "training": {"config": {"model": "tiny"}}}}) == "tiny"
    assert checkpoint_preset({"config": payload["config"], "extra": {
        "training": {"config": {"model": "live"}}}}) == "cpu"
    odd = get_preset("cpu").replace(d_model=64).to_dict()
    assert checkpoint_preset({"config": odd, "extra": {}}) == "cpu"
    odd_live = get_preset("live").replace(d_model=64).to_dict()
    assert checkpoint_preset({"config": odd_live, "extra": {}}) == "live"
    with pytest.raises(CheckpointError, match="'preset'.*got 'huge'"):
        checkpoint_preset({"preset": "huge"})
    with pytest.raises(CheckpointError, match="'streaming'"):
        checkpoint_streaming({"preset": "cpu", "streaming": [1, 2]})


def test_converted_checkpoint_records_the_paper_streaming_defaults(tmp_path):
    """convert-official: the released architecture streams with its size preset's window, the
    paper's when its sizes are custom (as here: a 2-layer test wav2vec2)."""
    from dualtalk_core.model.convert import convert_official
    from dualtalk_core.model.presets import preset
    from model_helpers import SMALL_W2V_RELEASED_LIKE, released_state_dict

    src = tmp_path / "DualTalk.pth"
    torch.save(released_state_dict(SMALL_W2V_RELEASED_LIKE, seed=1, old_style=True), src)
    payload = read_payload(convert_official(src, tmp_path / "converted.pt"))
    assert payload["preset"] == "paper"
    assert payload["streaming"] == preset("paper").streaming_defaults()
