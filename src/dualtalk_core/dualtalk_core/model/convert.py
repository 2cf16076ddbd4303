"""Import the authors' released ``DualTalk.pth`` (a plain state dict) into our checkpoint format.

What it does, and why:

- key styles: the release was saved by torch 1.12, whose weight norm stores the wav2vec2
  positional conv as ``conv.weight_g`` / ``conv.weight_v``; current PyTorch uses
  ``conv.parametrizations.weight.original0`` / ``original1``. Both are accepted and mapped to
  whatever the installed PyTorch/transformers expects. A ``module.`` prefix (DataParallel) is
  stripped.
- config: read from the key shapes (d_model, wav2vec2 hidden size, FFN sizes, layer counts,
  conv stack, ...). The wav2vec2 layer count always comes from the keys. Values that shapes
  cannot tell (attention head counts, conv strides) come from ``--wav2vec2-config`` when given,
  else from wav2vec2-large-lv60 conventions (head dim 64; the 7-layer 320x conv stack;
  ``feat_extract_norm="layer"`` implies ``do_stable_layer_norm=True``).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from dualtalk_core.model.checkpoint import CheckpointError, check_state_dict, save_checkpoint
from dualtalk_core.model.config import WAV2VEC2_LARGE_LV60, DualTalkConfig

log = logging.getLogger(__name__)

W2V1 = "joint_encoder.audio_encoder1."
_OLD_TO_NEW = {"weight_g": "parametrizations.weight.original0",
               "weight_v": "parametrizations.weight.original1"}
_NEW_TO_OLD = {v: k for k, v in _OLD_TO_NEW.items()}
_HF_META_KEYS = ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype",
                 "model_type", "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")


def load_released_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load`` a plain state dict (memory-mapped when possible: the file is ~2.6 GB)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"released state dict not found: {path}")
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch state dict: "
                              f"{type(exc).__name__}: {str(exc)[:160]}") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict) \
            and "format" not in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not any(str(k).startswith("joint_encoder.") for k in sd):
        raise CheckpointError(f"{path}: not a DualTalk state dict (no 'joint_encoder.*' keys)")
    return sd


def normalize_keys(sd: dict[str, torch.Tensor], new_style: bool = True) -> dict[str, torch.Tensor]:
    """Strip ``module.``; map weight-norm keys to the new (or old) naming."""
    out = {}
    mapping = _OLD_TO_NEW if new_style else _NEW_TO_OLD
    for key, value in sd.items():
        key = key[len("module."):] if key.startswith("module.") else key
        for old, new in mapping.items():
            if key.endswith("pos_conv_embed.conv." + old):
                key = key[: -len(old)] + new
        out[key] = value
    return out


def _count(sd: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in sd for m in [rx.match(k)] if m}
    return max(found) + 1 if found else 0


def read_wav2vec2_config(source: str | Path) -> dict[str, Any]:
    """``--wav2vec2-config``: a directory with ``config.json``, or a JSON file -> kwargs."""
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"wav2vec2 config not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    return {k: v for k, v in data.items() if k not in _HF_META_KEYS}


def infer_wav2vec2_kwargs(sd: dict[str, torch.Tensor], base: dict[str, Any] | None) -> dict:
    """wav2vec2 config kwargs for ``audio_encoder1`` from key shapes (see module docstring)."""
    kw: dict[str, Any] = dict(base) if base is not None else dict(WAV2VEC2_LARGE_LV60)
    p = W2V1
    kw["num_hidden_layers"] = _count(sd, re.escape(p) + r"encoder\.layers\.(\d+)\.")
    hidden = sd[p + "feature_projection.projection.weight"].shape[0]
    ffn = sd[p + "encoder.layers.0.feed_forward.intermediate_dense.weight"]
    kw["intermediate_size"] = int(ffn.shape[0])
    n_conv = _count(sd, re.escape(p) + r"feature_extractor\.conv_layers\.(\d+)\.")
    conv_w = [sd[f"{p}feature_extractor.conv_layers.{i}.conv.weight"] for i in range(n_conv)]
    pos_v = sd[p + "encoder.pos_conv_embed.conv.parametrizations.weight.original1"]
    if base is None:
        kw["hidden_size"] = hidden
        kw["num_attention_heads"] = max(1, hidden // 64)
        kw["conv_dim"] = [int(w.shape[0]) for w in conv_w]
        kw["conv_kernel"] = [int(w.shape[2]) for w in conv_w]
        if n_conv == 7:
            kw["conv_stride"] = [5, 2, 2, 2, 2, 2, 2]
        else:
            raise ValueError(f"released state dict has a {n_conv}-layer wav2vec2 conv stack; its "
                             "strides cannot be read from shapes: pass --wav2vec2-config")
        kw["num_feat_extract_layers"] = n_conv
        kw["num_conv_pos_embeddings"] = int(pos_v.shape[2])
        kw["num_conv_pos_embedding_groups"] = hidden // int(pos_v.shape[1])
        kw["conv_bias"] = (p + "feature_extractor.conv_layers.0.conv.bias") in sd
        layer_norm_conv = (p + "feature_extractor.conv_layers.1.layer_norm.weight") in sd
        kw["feat_extract_norm"] = "layer" if layer_norm_conv else "group"
        kw["do_stable_layer_norm"] = layer_norm_conv
    elif kw.get("hidden_size", 768) != hidden:
        raise ValueError(f"--wav2vec2-config has hidden_size {kw.get('hidden_size')} but the state "
                         f"dict's wav2vec2 has {hidden}")
    if (p + "masked_spec_embed") not in sd:   # built only when SpecAugment is configured
        kw["mask_time_prob"] = 0.0
        kw["mask_feature_prob"] = 0.0
    elif kw.get("mask_time_prob", 0.05) == 0 and kw.get("mask_feature_prob", 0) == 0:
        kw["mask_time_prob"] = 0.05
    return kw


def infer_config(sd: dict[str, torch.Tensor], wav2vec2: dict[str, Any] | None = None
                 ) -> DualTalkConfig:
    """A :class:`DualTalkConfig` matching a (key-normalised) released-layout state dict."""
    if (W2V1 + "feature_projection.projection.weight") not in sd:
        raise ValueError("state dict has no wav2vec2 'joint_encoder.audio_encoder1.*' weights; "
                         "only the released wav2vec2 layout can be converted")
    d_model = sd["joint_encoder.audio_projection.weight"].shape[0]
    fields: dict[str, Any] = {
        "audio_frontend": "wav2vec2",
        "wav2vec2": infer_wav2vec2_kwargs(sd, wav2vec2),
        "d_model": int(d_model),
        "use_partner_audio": any(k.startswith("joint_encoder.audio_encoder2.") for k in sd),
        "use_partner_motion": any(k.startswith("joint_encoder.blendshape_encoder.") for k in sd),
        "use_temporal_enhancer": any(k.startswith("temporal_enhancer.") for k in sd),
        "use_interaction": any(k.startswith("interaction_module.") for k in sd),
        "use_modulation": "synthesis_module.modulation_layer.weight" in sd,
        "decoder_layers": _count(sd, r"synthesis_module\.synthesis_decoder\.layers\.(\d+)\."),
        "decoder_ffn": int(sd["synthesis_module.synthesis_decoder.layers.0.linear1.weight"]
                           .shape[0]),
    }
    if fields["use_temporal_enhancer"]:
        fields["lstm_layers"] = _count(sd, r"temporal_enhancer\.temporal_lstm\.weight_ih_l(\d+)$")
    if fields["use_interaction"]:
        fields["interaction_layers"] = _count(
            sd, r"interaction_module\.interaction_encoder\.layers\.(\d+)\.")
        fields["interaction_ffn"] = int(
            sd["interaction_module.interaction_encoder.layers.0.linear1.weight"].shape[0])
    return DualTalkConfig(**fields)


def convert_state_dict(sd: dict[str, torch.Tensor], wav2vec2: dict[str, Any] | None = None,
                       source: str = "<state dict>"):
    """Released state dict -> (DualTalk model with those weights, in eval mode)."""
    from dualtalk_core.model.dualtalk import DualTalk

    sd = normalize_keys(sd, new_style=True)
    config = infer_config(sd, wav2vec2)
    model = DualTalk(config)
    expected = model.state_dict()
    if not any(k.endswith("parametrizations.weight.original0") for k in expected):
        sd = normalize_keys(sd, new_style=False)  # an old PyTorch that still uses weight_g/_v
    check_state_dict(model, sd, source)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def convert_official(src: str | Path, dst: str | Path,
                     wav2vec2_config: str | Path | None = None) -> Path:
    """``DualTalk.pth`` -> our checkpoint at ``dst`` (returns ``dst``)."""
    sd = load_released_state_dict(src)
    kwargs = read_wav2vec2_config(wav2vec2_config) if wav2vec2_config else None
    model = convert_state_dict(sd, kwargs, source=str(src))
    log.info("converted %s: %d tensors, %.1f M parameters, %d wav2vec2 layers",
             src, len(sd), model.num_parameters() / 1e6,
             model.config.wav2vec2["num_hidden_layers"])
    from dualtalk_core.model.presets import match_preset

    # the released architecture: its own size preset, else the paper's streaming defaults
    return save_checkpoint(dst, model, extra={"converted_from": Path(src).name,
                                              "wav2vec2_config": str(wav2vec2_config or
                                                                     "inferred from key shapes")},
                           preset=match_preset(model.config) or "paper")
