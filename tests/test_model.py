"""DualTalk network: shape/dtype contracts per module and preset, batching, front ends, masks,
training-mode behaviour, and the paper preset's state-dict layout against the spec."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dualtalk_core.model.config import get_preset
from dualtalk_core.layout import DIM, num_frames_for_samples
from dualtalk_core.model.dualtalk import (DualTalk, LogMelEncoder, alignment_mask, biased_mask,
                                 dct_matrix, mel_filterbank, normalize_waveform)
from model_helpers import SMALL_W2V_CUSTOM, released_state_dict

N = 16000          # 1 s of audio -> 25 frames
T = num_frames_for_samples(N)


def inputs(batch=2, n=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, n, generator=g) * 0.1, torch.randn(batch, n, generator=g) * 0.1,
            torch.randn(batch, num_frames_for_samples(n), DIM, generator=g) * 0.3)


def build(name, **changes):
    torch.manual_seed(0)
    return DualTalk(get_preset(name).replace(**changes)).eval()


@pytest.fixture(scope="module")
def tiny():
    return build("tiny")


@pytest.fixture(scope="module")
def cpu():
    return build("cpu")


@pytest.mark.parametrize("preset", ["tiny", "cpu"])
def test_module_shapes_and_dtypes(preset, tiny, cpu):
    model = {"tiny": tiny, "cpu": cpu}[preset]
    d = model.config.d_model
    sa, pa, pm = inputs()
    with torch.no_grad():
        a_self, a_partner, m_partner = model.joint_encoder(normalize_waveform(sa),
                                                           normalize_waveform(pa), pm, T)
        for x in (a_self, a_partner, m_partner):
            assert x.shape == (2, T, d) and x.dtype == torch.float32
        p = model.temporal_enhancer(a_partner, m_partner)
        assert p.shape == (2, T, d)
        x = model.interaction_module(torch.cat([a_self, p], -1))
        assert x.shape == (2, T, 2 * d)
        y = model.synthesis_module(x)
        assert y.shape == (2, T, DIM) and y.dtype == torch.float32
        out = model(sa, pa, pm)
    assert out.shape == (2, T, DIM) and torch.isfinite(out).all()
    assert torch.allclose(out, y, atol=1e-5)   # forward = the four modules in order


@pytest.mark.parametrize("preset", ["tiny", "cpu"])
def test_batch_equals_per_sample(preset, tiny, cpu):
    model = {"tiny": tiny, "cpu": cpu}[preset]
    sa, pa, pm = inputs(batch=3, seed=1)
    with torch.no_grad():
        batched = model(sa, pa, pm)
        single = torch.cat([model(sa[i:i + 1], pa[i:i + 1], pm[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_num_frames_and_odd_lengths(tiny):
    sa, pa, _ = inputs(batch=1, n=16000 + 100)
    t = num_frames_for_samples(16100)
    assert t == 26
    with torch.no_grad():
        assert tiny(sa, pa, torch.zeros(1, t, DIM)).shape == (1, t, DIM)
        assert tiny(sa, pa, torch.zeros(1, 10, DIM), num_frames=10).shape == (1, 10, DIM)


def test_bad_input_shapes_are_named(tiny):
    sa, pa, pm = inputs()
    with pytest.raises(ValueError, match="partner_motion"):
        tiny(sa, pa, pm[..., :50])
    with pytest.raises(ValueError, match="batch sizes"):
        tiny(sa, pa[:1], pm)
    with pytest.raises(ValueError, match=r"\[B, n\]"):
        tiny(sa[0], pa, pm)


def test_normalisation_makes_gain_irrelevant(tiny):
    sa, pa, pm = inputs(batch=1)
    with torch.no_grad():
        a = tiny(sa, pa, pm)
        b = tiny(sa * 7.0 + 0.01, pa * 0.2, pm)
        c = tiny(sa * 7.0, pa, pm, normalize_audio=False)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    assert (a - c).abs().max() > 1e-3
    x = torch.randn(2, 1000) * 3 + 1
    y = normalize_waveform(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(-1, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)


def test_feature_extractor_frozen_and_training_step(tiny):
    model = build("tiny").train()
    frozen = [p.requires_grad for p in model.joint_encoder.audio_encoder1.feature_extractor
              .parameters()]
    assert frozen and not any(frozen)
    sa, pa, pm = inputs(batch=2, n=16000 * 2)
    out = model(sa, pa, pm)
    out.pow(2).mean().backward()
    w = model.joint_encoder.audio_encoder1.encoder.layers[0].attention.q_proj.weight
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert model.synthesis_module.blendshape_predictor.weight.grad.abs().sum() > 0
    # windows shorter than SpecAugment's mask length still train (masking is skipped)
    assert model(sa[:, :3000], pa[:, :3000], pm[:, :5]).shape == (2, 5, DIM)


@pytest.mark.parametrize("frontend", ["logmel", "mfcc"])
def test_light_frontends(frontend):
    model = build("cpu", audio_frontend=frontend, n_mfcc=20)
    enc = model.joint_encoder.audio_encoder1
    assert isinstance(enc, LogMelEncoder)
    sa, pa, pm = inputs()
    feats = enc.features(sa)
    assert feats.shape == (2, 20 if frontend == "mfcc" else 80, N // 160 + 1)
    with torch.no_grad():
        assert model(sa, pa, pm).shape == (2, T, DIM)
    # front-end buffers are not weights: the state dict holds only learnable tensors
    assert not any(k.endswith(("mel_fb", "window", "dct")) for k in model.state_dict())


def test_mel_filterbank_and_dct():
    fb = mel_filterbank(201, 40)
    assert fb.shape == (201, 40) and fb.min() >= 0 and fb.max() <= 1.0 + 1e-6
    assert (fb.sum(0) > 0).all()                    # every filter covers some bins
    peaks = fb.argmax(0)
    assert (np.diff(peaks) >= 0).all()              # centres increase with the mel index
    dct = dct_matrix(40, 40)
    np.testing.assert_allclose(dct.T @ dct, np.eye(40), atol=1e-5)   # orthonormal


def test_faceformer_masks():
    m = biased_mask(4, 6, period=2)
    assert m.shape == (4, 6, 6)
    assert torch.isinf(m[:, 0, 1:]).all() and not torch.isinf(m[:, 5]).any()   # causal
    slope = m[0, 5, 3] / -1.0                        # (5-3)//2 = 1 period back
    assert slope > 0 and m[0, 5, 5] == 0 and m[0, 5, 4] == 0
    torch.testing.assert_close(m[0, 5, 1], -2 * slope)
    a = alignment_mask(4, 4)
    assert a.dtype == torch.bool and (~a).sum() == 4 and not a.diagonal().any()


def test_alignment_bias_option_runs_and_differs(tiny):
    biased = build("tiny", alignment_bias=True)
    biased.load_state_dict(tiny.state_dict())
    sa, pa, pm = inputs()
    with torch.no_grad():
        out = biased(sa, pa, pm)
        assert out.shape == (2, T, DIM)
        assert (out - tiny(sa, pa, pm)).abs().max() > 1e-4


def test_paper_preset_layout_matches_spec():
    """Built on the meta device (no memory): every released key and shape from the spec."""
    with torch.device("meta"):
        model = DualTalk(get_preset("paper"))
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "joint_encoder.audio_projection.weight": (256, 1024),
        "joint_encoder.blendshape_encoder.0.weight": (128, 56),
        "joint_encoder.blendshape_encoder.2.weight": (256, 128),
        "temporal_enhancer.cross_attention.in_proj_weight": (768, 256),
        "temporal_enhancer.temporal_lstm.weight_ih_l1_reverse": (512, 256),
        "temporal_enhancer.temporal_lstm.weight_hh_l0": (512, 128),
        "interaction_module.interaction_encoder.layers.2.self_attn.in_proj_weight": (1536, 512),
        "interaction_module.interaction_encoder.layers.0.linear1.weight": (2048, 512),
        "interaction_module.interaction_encoder.layers.0.linear2.weight": (512, 2048),
        "interaction_module.self_attention.in_proj_weight": (1536, 512),
        "synthesis_module.synthesis_decoder.layers.0.multihead_attn.in_proj_weight": (1536, 512),
        "synthesis_module.synthesis_decoder.layers.0.norm3.weight": (512,),
        "synthesis_module.modulation_layer.weight": (512, 512),
        "synthesis_module.blendshape_predictor.weight": (56, 512),
        "joint_encoder.audio_encoder1.encoder.layers.23.feed_forward.intermediate_dense.weight":
            (4096, 1024),
        "joint_encoder.audio_encoder2.encoder.layers.23.attention.q_proj.weight": (1024, 1024),
        "joint_encoder.audio_encoder1.feature_extractor.conv_layers.6.conv.weight": (512, 512, 2),
        "joint_encoder.audio_encoder1.encoder.pos_conv_embed.conv.parametrizations.weight"
        ".original1": (1024, 64, 128),
    }
    for key, shape in expected.items():
        assert sd.get(key) == shape, key
    assert not any(k.startswith("joint_encoder.audio_encoder1.encoder.layers.24.") for k in sd)
    head = {k for k in sd if not k.startswith("joint_encoder.audio_encoder")}
    spec_head = {k for k in released_state_dict(SMALL_W2V_CUSTOM)
                 if not k.startswith("joint_encoder.audio_encoder")}
    assert head == spec_head and len(head) == 88   # exactly the spec's non-wav2vec2 tensors
    assert 600e6 < model.num_parameters() < 700e6


def test_base_preset_short_forward():
    model = build("base")
    assert model.joint_encoder.audio_encoder1.config.hidden_size == 768
    sa, pa, pm = inputs(batch=1, n=8000)
    with torch.no_grad():
        out = model(sa, pa, pm)
    assert out.shape == (1, 13, DIM) and torch.isfinite(out).all()
