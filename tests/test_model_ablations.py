"""Paper Table 6 ablations and options: each flag changes the output, removes its module's
weights, and removes exactly the right input's influence."""
from __future__ import annotations

import pytest
import torch

from dualtalk_core.model.config import get_preset
from dualtalk_core.layout import DIM
from dualtalk_core.model.dualtalk import DualTalk

N, T = 16000, 25


@pytest.fixture(scope="module")
def full():
    torch.manual_seed(0)
    return DualTalk(get_preset("tiny")).eval()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(3)
    return {
        "sa": torch.randn(1, N, generator=g) * 0.1,
        "pa": torch.randn(1, N, generator=g) * 0.1,
        "pm": torch.randn(1, T, DIM, generator=g) * 0.3,
        # a different KIND of signal (tone bursts + silence), so even random weights notice
        "pa2": (torch.sin(torch.arange(N) * 0.2) * (torch.arange(N) % 4000 < 2000))[None] * 0.5,
        "pm2": torch.randn(1, T, DIM, generator=g) * 0.3,
    }


def ablated(full, **changes):
    """The ablated model with every weight it shares with ``full`` copied over."""
    model = DualTalk(get_preset("tiny").replace(**changes)).eval()
    shared = {k: v for k, v in full.state_dict().items() if k in model.state_dict()}
    missing = set(model.state_dict()) - set(shared)
    assert not missing, f"ablation introduced new weights: {sorted(missing)[:3]}"
    model.load_state_dict(shared)
    return model


def run(model, d, pa="pa", pm="pm"):
    with torch.no_grad():
        return model(d["sa"], d[pa], d[pm])


def test_full_model_uses_every_input(full, data):
    base = run(full, data)
    assert (base - run(full, data, pa="pa2")).abs().max() > 1e-6
    assert (base - run(full, data, pm="pm2")).abs().max() > 1e-6
    with torch.no_grad():
        other_self = full(data["pa2"], data["pa"], data["pm"])
    assert (base - other_self).abs().max() > 1e-6


def test_without_partner_speech(full, data):
    model = ablated(full, use_partner_audio=False)
    assert model.joint_encoder.audio_encoder2 is None
    assert not any(k.startswith("joint_encoder.audio_encoder2.") for k in model.state_dict())
    out = run(model, data)
    assert torch.equal(out, run(model, data, pa="pa2"))        # partner audio ignored
    assert (out - run(model, data, pm="pm2")).abs().max() > 1e-6       # motion still used
    assert (out - run(full, data)).abs().max() > 1e-6


def test_without_partner_expression(full, data):
    model = ablated(full, use_partner_motion=False)
    assert model.joint_encoder.blendshape_encoder is None
    out = run(model, data)
    assert torch.equal(out, run(model, data, pm="pm2"))        # partner motion ignored
    assert (out - run(model, data, pa="pa2")).abs().max() > 1e-6       # partner audio still used
    assert (out - run(full, data)).abs().max() > 1e-6


def test_without_any_partner_input(full, data):
    model = ablated(full, use_partner_audio=False, use_partner_motion=False)
    assert model.temporal_enhancer is None
    out = run(model, data)
    assert torch.equal(out, run(model, data, pa="pa2", pm="pm2"))
    assert out.shape == (1, T, DIM)


@pytest.mark.parametrize("flag,prefix", [
    ("use_temporal_enhancer", "temporal_enhancer."),
    ("use_interaction", "interaction_module."),
    ("use_modulation", "synthesis_module.modulation_layer."),
])
def test_module_ablations_remove_weights_and_change_output(full, data, flag, prefix):
    model = ablated(full, **{flag: False})
    assert not any(k.startswith(prefix) for k in model.state_dict())
    assert model.num_parameters() < full.num_parameters()
    out = run(model, data)
    assert out.shape == (1, T, DIM) and torch.isfinite(out).all()
    assert (out - run(full, data)).abs().max() > 1e-6
    # every partner input keeps its influence
    assert (out - run(model, data, pa="pa2")).abs().max() > 1e-6
    assert (out - run(model, data, pm="pm2")).abs().max() > 1e-6


def test_modulation_relu_option(full, data):
    model = ablated(full, modulation_activation="relu")
    assert set(model.state_dict()) == set(full.state_dict())
    assert (run(model, data) - run(full, data)).abs().max() > 1e-6


def test_mfcc_ablation_is_a_different_front_end(data):
    torch.manual_seed(0)
    model = DualTalk(get_preset("tiny").replace(audio_frontend="mfcc", n_mfcc=13,
                                                frontend_hidden=32)).eval()
    assert not any("feature_extractor" in k for k in model.state_dict())
    out = run(model, data)
    assert out.shape == (1, T, DIM)
    assert (out - run(model, data, pa="pa2")).abs().max() > 1e-6
