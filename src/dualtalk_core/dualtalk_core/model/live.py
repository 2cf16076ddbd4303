"""The live DualTalk: causal by design, stepped incrementally, equal streamed and offline.

Same four modules as the paper (and :mod:`dualtalk_core.model.dualtalk`), same names, every layer
bounded in time.  Frame ``k`` is output frame k (25 fps, samples ``[640 k, 640 (k + 1))``);
``Ls`` = ``self_lookahead_s`` and ``Lp`` = ``partner_lookahead_s`` in frames, ``C`` =
``attention_context_s`` in frames::

  joint_encoder (DualSpeakerJointEncoder)
    audio_encoder1(self audio)      causal log-mel + causal convs   frame e sees audio < end of e
    audio_encoder2(partner audio)   same                            (causal_frontend.py)
    audio_projection, blendshape_encoder(partner motion)            per frame
    ALIGNMENT (the only place a horizon is spent): output index k takes self frame k + Ls,
    partner audio frame k + Lp and partner motion frame k + Lp (indices < 0: zero vectors).
  temporal_enhancer (CrossModalTemporalEnhancer)
    cross_attention(q = partner audio, k = v = partner motion): banded causal (k - C, k]
    temporal_lstm: unidirectional LSTM, state carried
  interaction_module (DualSpeakerInteractionModule)
    cat(self, partner) -> interaction_encoder (banded causal layers) -> self_attention
    (banded causal) -> dropout
  synthesis_module (ExpressiveSynthesisModule)
    synthesis_decoder (tgt = memory = x, both attentions banded causal) -> x + s * modulation
    -> blendshape_predictor

So frame k depends on the agent's audio up to the end of frame k + Ls and the partner's audio
and motion up to frame k + Lp, nothing later, and on nothing earlier than the LSTM's memory and
``C`` frames per attention layer.  ``forward`` is the whole clip in one call (training, offline
inference); ``init_state`` / ``step`` / ``flush`` compute only the frames each push makes
computable (:mod:`dualtalk_core.model.live_state`), with the same arithmetic.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dualtalk_core.layout import DIM, num_frames_for_samples
from dualtalk_core.model.causal_attention import (CausalDecoderLayer, CausalEncoderLayer,
                                                  CausalStack, KVCache, causal_mha)
from dualtalk_core.model.causal_frontend import CausalAudioEncoder
from dualtalk_core.model.config import DualTalkConfig, seconds_to_frames
from dualtalk_core.model.dualtalk import check_batch, modulate_and_predict

#: the longest block of output frames computed in one go by ``step`` (bounds its allocations)
MAX_STEP_FRAMES = 250
#: blocks up to this many frames step the LSTM cell by cell (see :func:`lstm_cells`)
SMALL_BLOCK = 8


def align(x: torch.Tensor, shift: int, num_frames: int) -> torch.Tensor:
    """[B, S, d] per-source-frame features -> [B, num_frames, d] where row k = x[k + shift]
    (zero rows where k + shift < 0).  ``x`` must hold at least num_frames + shift rows."""
    if shift >= 0:
        return x[:, shift:shift + num_frames]
    body = x[:, :max(0, num_frames + shift)]
    pad = x.new_zeros(x.shape[0], num_frames - body.shape[1], x.shape[2])
    return torch.cat([pad, body], dim=1)


class DualSpeakerJointEncoder(nn.Module):
    """Two causal audio encoders, the shared ``audio_projection`` and the partner
    ``blendshape_encoder`` (per frame, so causal)."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.audio_encoder1 = CausalAudioEncoder(config)
        self.audio_encoder2 = CausalAudioEncoder(config)
        self.audio_projection = nn.Linear(config.frontend_hidden, d)
        self.blendshape_encoder = nn.Sequential(
            nn.Linear(DIM, d // 2), nn.ReLU(), nn.Linear(d // 2, d), nn.ReLU())

    def encode_motion(self, motion: torch.Tensor) -> torch.Tensor:
        return self.blendshape_encoder(motion * self.config.partner_motion_scale)


class CrossModalTemporalEnhancer(nn.Module):
    """Partner speech attends (banded, causal) to partner motion; a unidirectional LSTM."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        d = config.d_model
        self.cross_attention = nn.MultiheadAttention(d, config.enhancer_heads, batch_first=True,
                                                     dropout=config.attention_dropout)
        self.temporal_lstm = nn.LSTM(d, d, num_layers=config.lstm_layers, batch_first=True)
        self.residual = config.enhancer_residual

    def forward(self, a_partner, m_partner, q0: int, context: int, state: dict | None):
        cache = state.setdefault("cross_attention", KVCache()) if state is not None else None
        x = causal_mha(self.cross_attention, a_partner, m_partner, q0, context, cache)
        if self.residual:
            x = x + a_partner
        hidden = state.get("lstm") if state is not None else None
        if state is not None and hidden is not None and x.shape[1] <= SMALL_BLOCK:
            x, hidden = lstm_cells(self.temporal_lstm, x, hidden)
        else:
            x, hidden = self.temporal_lstm(x, hidden)
        if state is not None:
            state["lstm"] = hidden
        return x


def lstm_cells(lstm: nn.LSTM, x: torch.Tensor, hidden):
    """``lstm(x, hidden)`` for a few frames, cell by cell (PyTorch's gate order i, f, g, o).
    Why: on CPU the fused LSTM call has a fixed cost of a few hundred microseconds that
    dominates a 40 ms push; the same arithmetic written out costs a fraction of it."""
    h_all, c_all = hidden
    hs, cs = [], []
    for layer in range(lstm.num_layers):
        w_hh = getattr(lstm, f"weight_hh_l{layer}")
        b_hh = getattr(lstm, f"bias_hh_l{layer}")
        pre = F.linear(x, getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"bias_ih_l{layer}"))
        h, c = h_all[layer], c_all[layer]
        outs = []
        for t in range(x.shape[1]):
            i, f, g, o = (pre[:, t] + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs, dim=1)
        hs.append(h)
        cs.append(c)
    return x, (torch.stack(hs), torch.stack(cs))


class DualSpeakerInteractionModule(nn.Module):
    """Banded causal transformer encoder over cat(self, partner), then banded causal
    self-attention and dropout.  [B, T, 2d] -> [B, T, 2d]."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        width = 2 * config.d_model
        self.interaction_encoder = CausalStack([
            CausalEncoderLayer(width, config.interaction_heads, config.interaction_ffn,
                               config.transformer_dropout)
            for _ in range(config.interaction_layers)])
        self.self_attention = nn.MultiheadAttention(width, config.interaction_heads,
                                                    batch_first=True,
                                                    dropout=config.attention_dropout)
        self.dropout = nn.Dropout(config.interaction_dropout)

    def forward(self, x, q0: int, context: int, state: dict | None):
        x = self.interaction_encoder(x, q0, context, state, "interaction_encoder")
        cache = state.setdefault("self_attention", KVCache()) if state is not None else None
        x = causal_mha(self.self_attention, x, x, q0, context, cache)
        return self.dropout(x)


class ExpressiveSynthesisModule(nn.Module):
    """Banded causal decoder (tgt = memory = x), modulation, ``blendshape_predictor``."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        self.config = config
        width = 2 * config.d_model
        self.synthesis_decoder = CausalStack([
            CausalDecoderLayer(width, config.decoder_heads, config.decoder_ffn,
                               config.transformer_dropout)
            for _ in range(config.decoder_layers)])
        self.modulation_layer = nn.Linear(width, width) if config.use_modulation else None
        self.blendshape_predictor = nn.Linear(width, DIM)

    def forward(self, x, q0: int, context: int, state: dict | None):
        x = self.synthesis_decoder(x, q0, context, state, "synthesis_decoder")
        return modulate_and_predict(self, x)


class LiveDualTalk(nn.Module):
    """The causal DualTalk (``config.causal``).  ``DualTalk(config)`` builds this class for a
    causal config, so training, checkpoints and inference need no second code path."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        config.validate()
        if not config.causal:
            raise ValueError("LiveDualTalk: config.causal is False; use DualTalk for the "
                             "released (offline) architecture")
        self.config = config
        self.self_lookahead = seconds_to_frames(config.self_lookahead_s)
        self.partner_lookahead = seconds_to_frames(config.partner_lookahead_s)
        self.context = seconds_to_frames(config.attention_context_s)
        self.joint_encoder = DualSpeakerJointEncoder(config)
        self.temporal_enhancer = CrossModalTemporalEnhancer(config)
        self.interaction_module = (DualSpeakerInteractionModule(config)
                                   if config.use_interaction else None)
        self.synthesis_module = ExpressiveSynthesisModule(config)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @torch.no_grad()
    def set_feature_statistics(self, waveforms) -> tuple[float, float]:
        """Set both audio encoders' fixed log-mel statistics (per mel bin) from training audio
        (an iterable of 1-D waveforms); call once before training, never per clip.  They are
        saved with the weights, so streaming uses the very same numbers.  -> (mean, std)
        averaged over bins, for the log."""
        encoder = self.joint_encoder.audio_encoder1
        feats = torch.cat([encoder.log_mel(torch.as_tensor(w)) for w in waveforms])
        mean, std = feats.mean(0), feats.std(0).clamp_min(1e-3)
        for enc in (encoder, self.joint_encoder.audio_encoder2):
            enc.feature_mean.copy_(mean)
            enc.feature_std.copy_(std)
        return float(mean.mean()), float(std.mean())

    # ------------------------------------------------------------------ shared trunk
    def trunk(self, a_self, a_partner, m_partner, q0: int, state: dict | None) -> torch.Tensor:
        """Aligned features [B, L, d] for output frames q0..q0+L-1 -> motion [B, L, 56].
        ``state`` None: the inputs are the whole clip from frame 0 (offline); else the caches
        and LSTM state of the frames before q0 (incremental)."""
        partner = self.temporal_enhancer(a_partner, m_partner, q0, self.context, state)
        x = torch.cat([a_self, partner], dim=-1)
        if self.interaction_module is not None:
            x = self.interaction_module(x, q0, self.context, state)
        return self.synthesis_module(x, q0, self.context, state)

    # ------------------------------------------------------------------ offline
    def forward(self, self_audio: torch.Tensor, partner_audio: torch.Tensor,
                partner_motion: torch.Tensor, num_frames: int | None = None,
                normalize_audio: bool | None = None) -> torch.Tensor:
        """Whole clip: self_audio [B, n], partner_audio [B, m] (16 kHz, NOT normalised per
        clip), partner_motion [B, S, 56] -> agent motion [B, T, 56], T = ``num_frames`` or
        ceil(n / 640).  Audio or motion the horizons need past what is given is taken as
        silence / zero motion (exactly what :func:`flush` feeds a stream), so longer inputs
        are used as lookahead."""
        if normalize_audio:
            raise ValueError("LiveDualTalk: per-clip audio normalisation (normalize_audio=True) "
                             "looks at the whole clip and is not causal; the live model uses "
                             "fixed log-mel statistics instead")
        check_batch(self_audio, partner_audio, partner_motion)
        T = int(num_frames) if num_frames is not None else num_frames_for_samples(
            self_audio.shape[1])
        ls, lp = self.self_lookahead, self.partner_lookahead
        enc = self.joint_encoder
        a_self = enc.audio_projection(enc.audio_encoder1(self_audio, T + ls))
        n_partner = max(0, T + lp)
        a_partner = enc.audio_projection(enc.audio_encoder2(partner_audio, n_partner))
        motion = partner_motion[:, :n_partner]
        motion = F.pad(motion, (0, 0, 0, n_partner - motion.shape[1]))
        m_partner = enc.encode_motion(motion)
        return self.trunk(align(a_self, ls, T), align(a_partner, lp, T),
                          align(m_partner, lp, T), 0, None)

    # ------------------------------------------------------------------ incremental
    def init_state(self):
        """A fresh stream (conversation start)."""
        from dualtalk_core.model.live_state import LiveState

        return LiveState.fresh(self)

    def step(self, state, self_audio=None, partner_audio=None, partner_motion=None):
        """Push chunks of any size (agent audio [n], partner audio [m], partner motion
        [f, 56]; each may be None or empty) -> (new frames [N, 56], state).  Frame k is
        emitted once agent audio covers frame k + Ls and partner audio and motion cover
        frame k + Lp."""
        from dualtalk_core.model.live_state import step

        return step(self, state, self_audio, partner_audio, partner_motion)

    def flush(self, state, num_frames: int | None = None):
        """End of the clip: feed silence / zero motion until frame ``num_frames - 1`` (default
        ceil(agent samples / 640), as :meth:`forward`) is out -> (last frames, state)."""
        from dualtalk_core.model.live_state import flush

        return flush(self, state, num_frames)
