"""The live (causal) DualTalk: streamed output equals offline output for ANY chunking, every
frame respects its horizons, a stream's state stays bounded, and it trains like the released
model.

The equality property runs in float64 (random weights, small sizes, a 0.8 s attention context
over a 4 s conversation) so that the comparison measures the algorithm, not float32 rounding;
one case checks the real ``live`` preset in float32 (the same 1e-5 bound holds there too).
"""
from __future__ import annotations

import math
import random

import pytest
import torch

from dualtalk_core.layout import DIM, SAMPLES_PER_FRAME
from dualtalk_core.model.config import DualTalkConfig, get_preset
from dualtalk_core.model.dualtalk import DualTalk
from dualtalk_core.model.live import LiveDualTalk

SR = 16_000
SMALL = dict(audio_frontend="logmel", wav2vec2={}, n_mels=16, frontend_hidden=24,
             frontend_layers=2, d_model=16, enhancer_heads=2, lstm_layers=2,
             interaction_layers=2, interaction_heads=2, interaction_ffn=32, decoder_layers=1,
             decoder_heads=2, decoder_ffn=32, normalize_audio=False, causal=True,
             attention_context_s=0.8)


def small_model(self_s: float, partner_s: float, dtype=torch.float64, seed: int = 0,
                **changes) -> LiveDualTalk:
    torch.manual_seed(seed)
    cfg = DualTalkConfig(**{**SMALL, "self_lookahead_s": self_s,
                            "partner_lookahead_s": partner_s, **changes})
    return DualTalk(cfg).to(dtype).eval()


def conversation(seconds: float, dtype=torch.float64, seed: int = 1):
    """Speech-like inputs: noise bursts with pauses (so the log-mel sees loud and silent
    frames), and a partner face that moves."""
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    env = (torch.rand(2, n // 1600 + 1, generator=gen) > 0.4).to(dtype)
    env = env.repeat_interleave(1600, dim=1)[:, :n]
    audio = 0.1 * torch.randn(2, n, generator=gen, dtype=dtype) * env
    frames = math.ceil(n / SAMPLES_PER_FRAME)
    motion = 0.1 * torch.randn(frames, DIM, generator=gen, dtype=dtype).cumsum(0) / 5
    return audio[0], audio[1], motion


def chunk_sizes(rng: random.Random, total: int, longest: int) -> list[int]:
    """Random chunk sizes summing to ``total``: log-uniform from 1 to ``longest``, with some
    empty pushes mixed in."""
    sizes = []
    while sum(sizes) < total:
        size = 0 if rng.random() < 0.1 else int(math.exp(rng.uniform(0, math.log(longest))))
        sizes.append(min(size, total - sum(sizes)))
    return sizes


def stream(model: LiveDualTalk, self_audio, partner_audio, motion, rng: random.Random):
    """Push the three streams, each chunked independently and interleaved at random, then
    flush; -> (all frames [T, 56], frames emitted before the flush)."""
    queues = {"self": chunk_sizes(rng, len(self_audio), 2 * SR),
              "partner": chunk_sizes(rng, len(partner_audio), 2 * SR),
              "motion": chunk_sizes(rng, len(motion), 50)}
    data = {"self": self_audio, "partner": partner_audio, "motion": motion}
    pos = dict.fromkeys(data, 0)
    state = model.init_state()
    out = []
    while any(queues.values()):
        push = {}
        for name in rng.sample(list(queues), rng.randint(1, 3)):
            if queues[name]:
                size = queues[name].pop(0)
                push[name] = data[name][pos[name]:pos[name] + size]
                pos[name] += size
        frames, state = model.step(state, push.get("self"), push.get("partner"),
                                   push.get("motion"))
        out.append(frames)
    streamed = torch.cat(out)
    last, state = model.flush(state)
    return torch.cat([streamed, last]), streamed


HORIZONS = [(0.0, 0.0), (0.32, -0.2), (0.16, 0.12), (0.04, -1.0), (0.32, 0.32)]


@pytest.mark.parametrize("self_s,partner_s", HORIZONS)
def test_streamed_equals_offline_for_random_chunkings(self_s, partner_s):
    model = small_model(self_s, partner_s)
    self_audio, partner_audio, motion = conversation(4.0)    # 100 frames, context 20
    with torch.no_grad():
        offline = model(self_audio[None], partner_audio[None], motion[None])[0]
    assert offline.shape == (100, DIM)
    rng = random.Random(f"{self_s}/{partner_s}")
    for _ in range(3):
        frames, before_flush = stream(model, self_audio, partner_audio, motion, rng)
        assert frames.shape == offline.shape
        err = (frames - offline).abs().max().item()
        assert err <= 1e-5, f"streamed differs from offline by {err:.3g}"
        # every frame whose inputs were all there came out before the end-of-clip flush
        assert len(before_flush) >= 100 - max(model.self_lookahead, model.partner_lookahead)


def test_live_preset_float32_streams_equal_offline():
    torch.manual_seed(0)
    model = DualTalk(get_preset("live").replace(attention_context_s=0.8)).eval()
    self_audio, partner_audio, motion = conversation(3.0, torch.float32, seed=3)
    with torch.no_grad():
        offline = model(self_audio[None], partner_audio[None], motion[None])[0]
    frames, _ = stream(model, self_audio, partner_audio, motion, random.Random(7))
    assert (frames - offline).abs().max().item() <= 1e-5
    assert offline.abs().max() > 1e-2          # a real output, not zeros


def test_live_preset_is_cpu_sized_and_built_by_dualtalk():
    cfg = get_preset("live")
    assert cfg.causal and not cfg.normalize_audio
    model = DualTalk(cfg)
    assert isinstance(model, LiveDualTalk)
    assert 2.5e6 < model.num_parameters() < 3.5e6
    # the paper's four modules, by their names
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"joint_encoder", "temporal_enhancer", "interaction_module",
                     "synthesis_module"}


@pytest.mark.parametrize("self_s,partner_s", [(0.32, -0.2), (0.0, 0.12)])
def test_each_frame_uses_exactly_its_horizon(self_s, partner_s):
    """Changing the agent's audio after the end of frame k + Ls, or the partner's audio/motion
    after frame k + Lp, leaves frames 0..k unchanged; changing the last 40 ms that frame k may
    see changes frame k."""
    model = small_model(self_s, partner_s)
    ls, lp = model.self_lookahead, model.partner_lookahead
    base = conversation(3.0)
    k = 40

    def run(self_audio, partner_audio, motion):
        with torch.no_grad():
            return model(self_audio[None], partner_audio[None], motion[None])[0]

    ref = run(*base)
    cases = {"self": ((k + ls + 1) * SAMPLES_PER_FRAME, 0), "partner": ((k + lp + 1) *
                                                                        SAMPLES_PER_FRAME, 1)}
    for name, (cut, which) in cases.items():
        inputs = [x.clone() for x in base]
        inputs[which][cut:] = 0.3 * torch.randn(len(inputs[which]) - cut, dtype=torch.float64)
        after = run(*inputs)
        assert torch.equal(after[:k + 1], ref[:k + 1]), f"{name} audio past the horizon leaked"
        assert not torch.allclose(after[k + 1:], ref[k + 1:]), name
        inputs = [x.clone() for x in base]
        inputs[which][cut - SAMPLES_PER_FRAME:cut] = 0.3 * torch.randn(SAMPLES_PER_FRAME,
                                                                      dtype=torch.float64)
        assert not torch.equal(run(*inputs)[k], ref[k]), f"{name}: frame k ignores its horizon"
    inputs = [x.clone() for x in base]
    inputs[2][k + lp + 1:] += 1.0
    assert torch.equal(run(*inputs)[:k + 1], ref[:k + 1]), "partner motion past the horizon"


def test_frames_leave_as_soon_as_the_horizons_are_covered():
    """Negative partner lookahead: frame k is out before the partner reaches frame k."""
    model = small_model(0.16, -0.12)                           # Ls = 4, Lp = -3 frames
    self_audio, partner_audio, motion = conversation(2.0)
    state = model.init_state()
    k = 20
    frames, state = model.step(state, self_audio[:(k + 4 + 1) * SAMPLES_PER_FRAME - 1],
                               partner_audio[:(k - 3 + 1) * SAMPLES_PER_FRAME],
                               motion[:k - 3 + 1])
    assert len(frames) == k                                    # one agent sample short
    frames, state = model.step(state, self_audio[(k + 5) * SAMPLES_PER_FRAME - 1:
                                                 (k + 5) * SAMPLES_PER_FRAME])
    assert len(frames) == 1 and state.next_frame == k + 1      # frame k, partner at k - 3
    frames, state = model.step(state, None, torch.zeros(0), None)  # empty push: nothing new
    assert len(frames) == 0


def test_state_stays_bounded_and_huge_pushes_are_fine():
    model = small_model(0.08, -0.04)
    context = model.context                                    # 20 frames
    self_audio, partner_audio, motion = conversation(12.0)     # 300 frames, one push each
    with torch.no_grad():
        offline = model(self_audio[None], partner_audio[None], motion[None])[0]
    state = model.init_state()
    frames, state = model.step(state, self_audio, partner_audio, motion)
    assert (frames - offline[:len(frames)]).abs().max() <= 1e-5
    caches = [v for key, v in state.trunk.items() if key != "lstm"]
    assert len(caches) == 6                                    # enhancer, 2 enc, self, 2 dec
    assert all(c.capacity <= context + 250 for c in caches)   # 250 = frames per block
    assert state.self_feats.rows.shape[0] <= model.self_lookahead + 1
    assert state.self_stream.samples.shape[0] < 240 + SAMPLES_PER_FRAME
    with pytest.raises(ValueError, match="partner_motion"):
        model.step(state, None, None, torch.zeros(3, 55))


def test_trains_with_the_released_batch_and_loss():
    from dualtalk_core.training.losses import dualtalk_loss

    model = small_model(0.16, -0.12, dtype=torch.float32).train()
    batch = 2
    audio = 0.1 * torch.randn(2, batch, 50 * SAMPLES_PER_FRAME)
    motion = 0.1 * torch.randn(batch, 50, DIM)
    target = 0.1 * torch.randn(batch, 50, DIM)
    pred = model(audio[0], audio[1], motion, num_frames=target.shape[1])
    loss, _ = dualtalk_loss(pred, target)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with pytest.raises(RuntimeError, match="eval"):
        model.step(model.init_state(), audio[0, 0, :640])
    # fixed log-mel statistics from training audio: set once, saved with the weights
    mean, _ = model.set_feature_statistics([audio[0, 0], audio[1, 1]])
    enc = model.joint_encoder.audio_encoder2
    assert enc.feature_mean.mean().item() == pytest.approx(mean)
    assert "joint_encoder.audio_encoder1.feature_std" in model.state_dict()
    with pytest.raises(ValueError, match="normalis"):
        model.eval()(audio[0], audio[1], motion, normalize_audio=True)


def test_checkpoint_round_trip(tmp_path):
    from dualtalk_core.model.checkpoint import load_checkpoint, save_checkpoint

    model = small_model(0.16, -0.12, dtype=torch.float32)
    path = save_checkpoint(tmp_path / "live.pt", model)
    loaded, _ = load_checkpoint(path)
    assert isinstance(loaded, LiveDualTalk)
    self_audio, partner_audio, motion = conversation(1.0, torch.float32)
    with torch.no_grad():
        a = model(self_audio[None], partner_audio[None], motion[None])
        b = loaded(self_audio[None], partner_audio[None], motion[None])
    assert torch.equal(a, b)


@pytest.mark.parametrize("field,value,allowed", [
    ("self_lookahead_s", 0.36, r"\[0.0, 0.32\]"), ("self_lookahead_s", 0.05, "multiple of 0.04"),
    ("self_lookahead_s", -0.04, r"\[0.0, 0.32\]"), ("partner_lookahead_s", -1.04, r"\[-1.0"),
    ("attention_context_s", 0.0, r"\[0.04, 60.0\]"), ("attention_context_s", 0.1, "0.04"),
])
def test_bad_horizons_name_field_value_and_range(field, value, allowed):
    with pytest.raises(ValueError, match=field) as err:
        DualTalkConfig(**{**SMALL, field: value})
    assert str(value) in str(err.value)
    assert err.match(allowed)


@pytest.mark.parametrize("changes,field", [
    (dict(audio_frontend="wav2vec2"), "audio_frontend"),
    (dict(normalize_audio=True), "normalize_audio"),
    (dict(use_partner_motion=False), "use_partner_motion"),
])
def test_causal_needs_a_causal_front_end(changes, field):
    with pytest.raises(ValueError, match=field):
        DualTalkConfig(**{**SMALL, **changes})
