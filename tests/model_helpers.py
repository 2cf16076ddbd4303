"""Test helpers for the model area: a released-layout state dict generator and an independent
reference forward pass written from the spec (``shared/spec/released-dualtalk-model.md``).

Both are deliberately written WITHOUT importing ``dualtalk_core.model.dualtalk``: the generator lists the
released keys from the spec, and the reference forward uses plain tensor ops (plus the Hugging
Face wav2vec2 submodules), so a port that drifts from the released semantics fails the tests.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# A small wav2vec2 with the large-lv60 layer types and the standard 7-layer conv stack
# (so the converter can infer it without --wav2vec2-config; head dim 64 rule -> 1 head).
SMALL_W2V_RELEASED_LIKE = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 1, "intermediate_size": 48,
    "conv_dim": [16] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "num_feat_extract_layers": 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 4,
    "do_stable_layer_norm": True, "feat_extract_norm": "layer", "conv_bias": True,
    "mask_time_prob": 0.05, "layerdrop": 0.1,
}
# A 3-layer conv stack (strides not inferable from shapes): needs --wav2vec2-config.
SMALL_W2V_CUSTOM = {
    "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64,
    "conv_dim": [32, 32, 32], "conv_kernel": [10, 8, 8], "conv_stride": [5, 8, 8],
    "num_feat_extract_layers": 3, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
    "do_stable_layer_norm": True, "feat_extract_norm": "layer", "conv_bias": True,
    "mask_time_prob": 0.05,
}
HEADS = 4  # released: every attention block has 4 heads


def hf_wav2vec2(kwargs: dict, seed: int):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Wav2Vec2Model(Wav2Vec2Config(**kwargs)).eval()


def released_state_dict(w2v_kwargs: dict, d: int = 32, ffn: int = 64, seed: int = 0,
                        old_style: bool = True) -> dict[str, torch.Tensor]:
    """Random weights under the released key names (spec list), 2 wav2vec2 encoders included.

    ``old_style``: positional conv stored as ``weight_g/weight_v`` (torch 1.12), else
    ``parametrizations.weight.original0/1``.
    """
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=None):
        scale = scale if scale is not None else 1.0 / math.sqrt(shape[-1])
        return torch.randn(*shape, generator=gen) * scale

    def norm(prefix, width):
        return {prefix + "weight": 1 + 0.1 * torch.randn(width, generator=gen),
                prefix + "bias": 0.1 * torch.randn(width, generator=gen)}

    def linear(prefix, out_f, in_f):
        return {prefix + "weight": rnd(out_f, in_f), prefix + "bias": rnd(out_f, scale=0.1)}

    def mha(prefix, width):
        return {prefix + "in_proj_weight": rnd(3 * width, width),
                prefix + "in_proj_bias": rnd(3 * width, scale=0.1),
                **linear(prefix + "out_proj.", width, width)}

    sd: dict[str, torch.Tensor] = {}
    hidden = w2v_kwargs["hidden_size"]
    for idx, name in enumerate(("audio_encoder1", "audio_encoder2")):
        w2v = hf_wav2vec2(w2v_kwargs, seed + 100 + idx)
        for key, value in w2v.state_dict().items():
            if old_style:
                key = key.replace("parametrizations.weight.original0", "weight_g")
                key = key.replace("parametrizations.weight.original1", "weight_v")
            sd[f"joint_encoder.{name}.{key}"] = value.clone()
    w = 2 * d
    sd.update(linear("joint_encoder.audio_projection.", d, hidden))
    sd.update(linear("joint_encoder.blendshape_encoder.0.", d // 2, 56))
    sd.update(linear("joint_encoder.blendshape_encoder.2.", d, d // 2))
    sd.update(mha("temporal_enhancer.cross_attention.", d))
    for layer in range(2):
        for sfx in ("", "_reverse"):
            p = "temporal_enhancer.temporal_lstm."
            sd[f"{p}weight_ih_l{layer}{sfx}"] = rnd(4 * (d // 2), d)
            sd[f"{p}weight_hh_l{layer}{sfx}"] = rnd(4 * (d // 2), d // 2)
            sd[f"{p}bias_ih_l{layer}{sfx}"] = rnd(4 * (d // 2), scale=0.1)
            sd[f"{p}bias_hh_l{layer}{sfx}"] = rnd(4 * (d // 2), scale=0.1)
    for layer in range(3):
        p = f"interaction_module.interaction_encoder.layers.{layer}."
        sd.update(mha(p + "self_attn.", w))
        sd.update(linear(p + "linear1.", ffn, w))
        sd.update(linear(p + "linear2.", w, ffn))
        sd.update(norm(p + "norm1.", w))
        sd.update(norm(p + "norm2.", w))
    sd.update(mha("interaction_module.self_attention.", w))
    p = "synthesis_module.synthesis_decoder.layers.0."
    sd.update(mha(p + "self_attn.", w))
    sd.update(mha(p + "multihead_attn.", w))
    sd.update(linear(p + "linear1.", ffn, w))
    sd.update(linear(p + "linear2.", w, ffn))
    for n in ("norm1.", "norm2.", "norm3."):
        sd.update(norm(p + n, w))
    sd.update(linear("synthesis_module.modulation_layer.", w, w))
    sd.update(linear("synthesis_module.blendshape_predictor.", 56, w))
    return sd


# ------------------------------------------------------------------------------------------------
# reference forward, plain ops following the spec
# ------------------------------------------------------------------------------------------------
def _sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _lin(x, sd, p):
    return x @ sd[p + "weight"].T + sd[p + "bias"]


def _ln(x, sd, p):
    return F.layer_norm(x, (x.shape[-1],), sd[p + "weight"], sd[p + "bias"], eps=1e-5)


def _mha(q_in, kv_in, sd, p, heads=HEADS):
    W, b = sd[p + "in_proj_weight"], sd[p + "in_proj_bias"]
    d = q_in.shape[-1]
    q = q_in @ W[:d].T + b[:d]
    k = kv_in @ W[d:2 * d].T + b[d:2 * d]
    v = kv_in @ W[2 * d:].T + b[2 * d:]
    B, T, _ = q.shape
    S = k.shape[1]
    hd = d // heads
    q = q.view(B, T, heads, hd).transpose(1, 2)
    k = k.view(B, S, heads, hd).transpose(1, 2)
    v = v.view(B, S, heads, hd).transpose(1, 2)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    out = (att @ v).transpose(1, 2).reshape(B, T, d)
    return _lin(out, sd, p + "out_proj.")


def _bilstm(x, sd, p, layers=2):
    B, T, _ = x.shape
    for layer in range(layers):
        outs = []
        for sfx, reverse in (("", False), ("_reverse", True)):
            wih, whh = sd[f"{p}weight_ih_l{layer}{sfx}"], sd[f"{p}weight_hh_l{layer}{sfx}"]
            bias = sd[f"{p}bias_ih_l{layer}{sfx}"] + sd[f"{p}bias_hh_l{layer}{sfx}"]
            H = whh.shape[1]
            h = x.new_zeros(B, H)
            c = x.new_zeros(B, H)
            out = [None] * T
            for t in (reversed(range(T)) if reverse else range(T)):
                gates = x[:, t] @ wih.T + h @ whh.T + bias
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                out[t] = h
            outs.append(torch.stack(out, dim=1))
        x = torch.cat(outs, dim=-1)
    return x


def _ffn(x, sd, p):
    return _lin(torch.relu(_lin(x, sd, p + "linear1.")), sd, p + "linear2.")


def reference_forward(sd: dict[str, torch.Tensor], w2v_kwargs: dict, self_audio: np.ndarray,
                      partner_audio: np.ndarray, partner_motion: np.ndarray) -> np.ndarray:
    """The released DualTalk forward for one clip (eval mode) -> [T, 56] numpy.

    Audio normalised in numpy float32 like ``Wav2Vec2FeatureExtractor``; T = ceil(n/16000*25).
    """
    sd = {k.replace("weight_g", "parametrizations.weight.original0")
           .replace("weight_v", "parametrizations.weight.original1"): v for k, v in sd.items()}

    def norm(a):
        a = np.asarray(a, dtype=np.float32)
        return (a - a.mean()) / np.sqrt(a.var() + 1e-7)

    T = math.ceil(len(self_audio) / 16000 * 25)

    def encode(name, audio):
        w2v = hf_wav2vec2(w2v_kwargs, 0)
        w2v.load_state_dict(_sub(sd, f"joint_encoder.{name}."), strict=True)
        wav = torch.from_numpy(norm(audio))[None]
        with torch.no_grad():
            feats = w2v.feature_extractor(wav).transpose(1, 2)            # [1, L, C]
            feats = F.interpolate(feats.transpose(1, 2), size=T, align_corners=True,
                                  mode="linear").transpose(1, 2)
            hidden = w2v.feature_projection.projection(w2v.feature_projection.layer_norm(feats))
            hidden = w2v.encoder(hidden).last_hidden_state
        return _lin(hidden, sd, "joint_encoder.audio_projection.")

    with torch.no_grad():
        a_self = encode("audio_encoder1", self_audio)
        a_partner = encode("audio_encoder2", partner_audio)
        m = torch.from_numpy(np.asarray(partner_motion, dtype=np.float32))[None]
        m = torch.relu(_lin(m, sd, "joint_encoder.blendshape_encoder.0."))
        m = torch.relu(_lin(m, sd, "joint_encoder.blendshape_encoder.2."))
        x = _mha(a_partner, m, sd, "temporal_enhancer.cross_attention.")
        x = _bilstm(x, sd, "temporal_enhancer.temporal_lstm.")
        x = torch.cat([a_self, x], dim=-1)
        for layer in range(3):
            p = f"interaction_module.interaction_encoder.layers.{layer}."
            x = _ln(x + _mha(x, x, sd, p + "self_attn."), sd, p + "norm1.")
            x = _ln(x + _ffn(x, sd, p), sd, p + "norm2.")
        x = _mha(x, x, sd, "interaction_module.self_attention.")
        p = "synthesis_module.synthesis_decoder.layers.0."
        mem = x
        x = _ln(x + _mha(x, x, sd, p + "self_attn."), sd, p + "norm1.")
        x = _ln(x + _mha(x, mem, sd, p + "multihead_attn."), sd, p + "norm2.")
        x = _ln(x + _ffn(x, sd, p), sd, p + "norm3.")
        x = x + 0.1 * _lin(x, sd, "synthesis_module.modulation_layer.")
        out = _lin(x, sd, "synthesis_module.blendshape_predictor.")
    return out[0].numpy()
