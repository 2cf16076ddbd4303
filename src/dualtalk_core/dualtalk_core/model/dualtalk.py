"""The DualTalk network (Peng et al., CVPR 2025), one readable file.

Forward order, shapes for batch B, T output frames (25 fps), d = ``config.d_model``::

    self_audio [B, n], partner_audio [B, m]  --normalise--> wav2vec2 (or log-mel) per stream
      JointEncoder
        audio_encoder1(self_audio)      -> [B, T, H]  -> audio_projection -> a_self    [B, T, d]
        audio_encoder2(partner_audio)   -> [B, T, H]  -> audio_projection -> a_partner [B, T, d]
        blendshape_encoder(partner_motion [B, S, 56])                     -> m_partner [B, S, d]
      CrossModalTemporalEnhancer
        cross_attention(q=a_partner, k=v=m_partner) -> temporal_lstm (BiLSTM) -> p     [B, T, d]
      DualSpeakerInteractionModule
        cat(a_self, p) [B, T, 2d] -> interaction_encoder -> self_attention -> dropout  [B, T, 2d]
      ExpressiveSynthesisModule
        synthesis_decoder(tgt=memory=x) -> x + 0.1 * modulation_layer(x) -> blendshape_predictor
                                                                                     -> [B, T, 56]

Submodule names equal the released state-dict keys, so the authors' ``DualTalk.pth`` loads with
``strict=True`` (after :mod:`dualtalk_core.model.convert` maps old weight-norm key names).

The wav2vec2 encoders are Hugging Face ``Wav2Vec2Model`` objects; we call their submodules
ourselves because the released model resamples the 50 Hz conv features to exactly T frames
(linear, ``align_corners=True``) *before* the feature projection, which ``Wav2Vec2Model.forward``
cannot do.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dualtalk_core.model.config import DualTalkConfig
from dualtalk_core.layout import DIM, SAMPLE_RATE, num_frames_for_samples


# ------------------------------------------------------------------------------------------------
# audio front ends
# ------------------------------------------------------------------------------------------------
def normalize_waveform(wav: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-clip (x - mean) / sqrt(var + 1e-7) over the last axis, like ``Wav2Vec2FeatureExtractor``
    with ``do_normalize=True`` (population variance). [B, n] -> [B, n]."""
    mean = wav.mean(dim=-1, keepdim=True)
    var = wav.var(dim=-1, unbiased=False, keepdim=True)
    return (wav - mean) / torch.sqrt(var + eps)


def build_wav2vec2(config: DualTalkConfig) -> nn.Module:
    """A ``transformers.Wav2Vec2Model``: from a LOCAL pretrained directory (``local_files_only``),
    or randomly initialised from config kwargs. Never downloads."""
    from transformers import Wav2Vec2Model

    if isinstance(config.wav2vec2, str) and not config.wav2vec2.endswith(".json"):
        config.wav2vec2_config()  # validates the directory with a clear error
        model = Wav2Vec2Model.from_pretrained(config.wav2vec2, local_files_only=True)
    else:
        model = Wav2Vec2Model(config.wav2vec2_config())
    if config.freeze_feature_extractor:
        model.feature_extractor._freeze_parameters()
    return model


def wav2vec2_frames(encoder: nn.Module, wav: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Released wav2vec2 forward: [B, n] waveform -> [B, T, hidden] ``last_hidden_state``.

    conv features [B, C, L] (50 Hz) are linearly interpolated to T frames (``align_corners=True``)
    before the feature projection; SpecAugment time masking only in training; no attention mask.
    """
    feats = encoder.feature_extractor(wav)                                   # [B, C, L]
    feats = F.interpolate(feats, size=num_frames, mode="linear", align_corners=True)
    hidden, _ = encoder.feature_projection(feats.transpose(1, 2))            # [B, T, hidden]
    if encoder.training and num_frames > encoder.config.mask_time_length:
        hidden = encoder._mask_hidden_states(hidden)   # SpecAugment (needs T > mask length)
    return encoder.encoder(hidden).last_hidden_state


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filterbank [n_freqs, n_mels] (same formula as torchaudio/librosa htk)."""
    f_max = f_max or sample_rate / 2

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_freqs)
    hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, center, upper = hz[:-2], hz[1:-1], hz[2:]
    up = (freqs[:, None] - lower[None]) / (center - lower)[None]
    down = (upper[None] - freqs[:, None]) / (upper - center)[None]
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II matrix [n_mels, n_mfcc] (log-mel @ dct -> MFCC)."""
    n = np.arange(n_mels)[:, None]
    k = np.arange(n_mfcc)[None]
    basis = np.cos(np.pi / n_mels * (n + 0.5) * k) * np.sqrt(2.0 / n_mels)
    basis[:, 0] *= 1.0 / np.sqrt(2.0)
    return basis.astype(np.float32)


class LogMelEncoder(nn.Module):
    """Light audio encoder: log-mel (or MFCC) at 100 Hz -> small Conv1d stack (stride 2, 50 Hz)
    -> linear interpolation to T frames (as the released wav2vec2 path) -> LayerNorm.

    [B, n] waveform -> [B, T, frontend_hidden]. STFT 25 ms Hann window, 10 ms hop.
    """

    n_fft = 400
    hop = 160

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        self.mfcc = config.audio_frontend == "mfcc"
        n_freqs = self.n_fft // 2 + 1
        # explicit CPU device: these constants must exist even when the model is built on
        # the meta device (checkpoint loading adopts the weights, but not these buffers)
        self.register_buffer("window", torch.hann_window(self.n_fft, device="cpu"),
                             persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel_filterbank(n_freqs, config.n_mels)),
                             persistent=False)
        self.register_buffer("dct", torch.from_numpy(dct_matrix(config.n_mels, config.n_mfcc)),
                             persistent=False)
        in_dim = config.n_mfcc if self.mfcc else config.n_mels
        hidden = config.frontend_hidden
        layers: list[nn.Module] = []
        for i in range(config.frontend_layers):
            layers += [nn.Conv1d(in_dim if i == 0 else hidden, hidden, kernel_size=5,
                                 stride=2 if i == 0 else 1, padding=2), nn.GELU()]
        self.conv = nn.Sequential(*layers)
        self.layer_norm = nn.LayerNorm(hidden)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, n] -> log-mel [B, n_mels, L] or MFCC [B, n_mfcc, L] at 100 Hz."""
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True,
                          return_complex=True).abs().pow(2)                  # [B, F, L]
        logmel = torch.log(torch.einsum("bfl,fm->bml", spec, self.mel_fb) + 1e-6)
        if self.mfcc:
            return torch.einsum("bml,mk->bkl", logmel, self.dct)
        return logmel

    def forward(self, wav: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.conv(self.features(wav))                                    # [B, H, L/2]
        x = F.interpolate(x, size=num_frames, mode="linear", align_corners=True)
        return self.layer_norm(x.transpose(1, 2))                            # [B, T, H]


# ------------------------------------------------------------------------------------------------
# the four modules of the paper
# ------------------------------------------------------------------------------------------------
class DualSpeakerJointEncoder(nn.Module):
    """Two audio encoders (self / partner), one shared ``audio_projection`` (H -> d), and the
    partner ``blendshape_encoder`` (56 -> d/2 -> d, ReLU after each Linear)."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        self.config = config
        d = config.d_model

        def audio_encoder() -> nn.Module:
            if config.audio_frontend == "wav2vec2":
                return build_wav2vec2(config)
            return LogMelEncoder(config)

        self.audio_encoder1 = audio_encoder()
        self.audio_encoder2 = audio_encoder() if config.use_partner_audio else None
        if config.audio_frontend == "wav2vec2":
            hidden = self.audio_encoder1.config.hidden_size
        else:
            hidden = config.frontend_hidden
        self.audio_projection = nn.Linear(hidden, d)
        self.blendshape_encoder = nn.Sequential(
            nn.Linear(DIM, d // 2), nn.ReLU(), nn.Linear(d // 2, d), nn.ReLU(),
        ) if config.use_partner_motion else None

    def encode_audio(self, encoder: nn.Module, wav: torch.Tensor, num_frames: int) -> torch.Tensor:
        """[B, n] -> [B, T, d]."""
        if self.config.audio_frontend == "wav2vec2":
            hidden = wav2vec2_frames(encoder, wav, num_frames)
        else:
            hidden = encoder(wav, num_frames)
        return self.audio_projection(hidden)

    def forward(self, self_audio, partner_audio, partner_motion, num_frames):
        """-> a_self [B,T,d], a_partner [B,T,d] | None, m_partner [B,S,d] | None."""
        a_self = self.encode_audio(self.audio_encoder1, self_audio, num_frames)
        a_partner = (self.encode_audio(self.audio_encoder2, partner_audio, num_frames)
                     if self.audio_encoder2 is not None else None)
        m_partner = (self.blendshape_encoder(partner_motion * self.config.partner_motion_scale)
                     if self.blendshape_encoder is not None else None)  # scale 1 = released
        return a_self, a_partner, m_partner


class CrossModalTemporalEnhancer(nn.Module):
    """Partner speech attends to partner motion, then a 2-layer BiLSTM: -> [B, T, d].

    Ablations: without partner speech the partner motion attends to itself; without partner
    motion the partner speech attends to itself (so the module keeps its role of temporal context).
    """

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        d = config.d_model
        self.cross_attention = nn.MultiheadAttention(d, config.enhancer_heads, batch_first=True,
                                                     dropout=config.attention_dropout)
        self.temporal_lstm = nn.LSTM(d, d // 2, num_layers=config.lstm_layers,
                                     bidirectional=True, batch_first=True)
        self.residual = config.enhancer_residual

    def forward(self, a_partner: torch.Tensor | None, m_partner: torch.Tensor | None):
        query = a_partner if a_partner is not None else m_partner
        key = m_partner if m_partner is not None else a_partner
        x, _ = self.cross_attention(query, key, key, need_weights=False)
        if self.residual:                                    # config.enhancer_residual
            x = x + query
        x, _ = self.temporal_lstm(x)
        return x


class DualSpeakerInteractionModule(nn.Module):
    """TransformerEncoder over cat(self speech, partner context) + self-attention + dropout.
    [B, T, 2d] -> [B, T, 2d]."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        width = 2 * config.d_model
        layer = nn.TransformerEncoderLayer(width, config.interaction_heads,
                                           dim_feedforward=config.interaction_ffn,
                                           dropout=config.transformer_dropout, batch_first=True)
        self.interaction_encoder = nn.TransformerEncoder(layer, config.interaction_layers,
                                                         enable_nested_tensor=False)
        self.self_attention = nn.MultiheadAttention(width, config.interaction_heads,
                                                    batch_first=True,
                                                    dropout=config.attention_dropout)
        self.dropout = nn.Dropout(config.interaction_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.interaction_encoder(x)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        return self.dropout(x)


class ExpressiveSynthesisModule(nn.Module):
    """TransformerDecoder (tgt = memory = x), adaptive expression modulation
    x + 0.1 * [relu](modulation_layer(x)), and the linear ``blendshape_predictor``.
    [B, T, 2d] -> [B, T, 56]."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        self.config = config
        width = 2 * config.d_model
        layer = nn.TransformerDecoderLayer(width, config.decoder_heads,
                                           dim_feedforward=config.decoder_ffn,
                                           dropout=config.transformer_dropout, batch_first=True)
        self.synthesis_decoder = nn.TransformerDecoder(layer, config.decoder_layers)
        self.modulation_layer = nn.Linear(width, width) if config.use_modulation else None
        self.blendshape_predictor = nn.Linear(width, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tgt_mask = memory_mask = None
        if self.config.alignment_bias:
            tgt_mask = biased_mask(self.config.decoder_heads, x.shape[1],
                                   self.config.alignment_period, x.device).repeat(x.shape[0], 1, 1)
            memory_mask = alignment_mask(x.shape[1], x.shape[1], x.device)
        x = self.synthesis_decoder(x, x, tgt_mask=tgt_mask, memory_mask=memory_mask)
        return modulate_and_predict(self, x)


def modulate_and_predict(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The synthesis module's tail, one for the released and the live model (same weights
    names): the optional modulation residual (``module.modulation_layer``, scaled by
    ``config.modulation_scale``), then ``module.blendshape_predictor`` -> [B, T, 56]."""
    if module.modulation_layer is not None:
        mod = module.modulation_layer(x)
        if module.config.modulation_activation == "relu":
            mod = F.relu(mod)
        x = x + module.config.modulation_scale * mod
    return module.blendshape_predictor(x)


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi head slopes (as FaceFormer): geometric 2^(-8/n) series, interleaved for non-powers
    of two."""
    def power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return torch.tensor(power_of_2(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = power_of_2(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(power_of_2(closest) + extra)


def biased_mask(num_heads: int, length: int, period: int, device=None) -> torch.Tensor:
    """FaceFormer's periodic, causal attention bias [heads, T, T]: frame i may attend to
    j <= i with bias -slope_h * floor((i - j) / period); future frames get -inf."""
    i = torch.arange(length, device=device)
    dist = i[:, None] - i[None, :]                                           # i - j
    bias = -(dist.clamp(min=0) // period).float()
    bias = alibi_slopes(num_heads).to(device)[:, None, None] * bias[None]
    return bias.masked_fill((dist < 0)[None], float("-inf"))


def alignment_mask(tgt_len: int, src_len: int, device=None) -> torch.Tensor:
    """FaceFormer's alignment (memory) mask [T, S]: frame i attends only to frame i.
    True = not allowed."""
    mask = torch.ones(tgt_len, src_len, dtype=torch.bool, device=device)
    idx = torch.arange(min(tgt_len, src_len), device=device)
    mask[idx, idx] = False
    return mask


# ------------------------------------------------------------------------------------------------
# the whole network
# ------------------------------------------------------------------------------------------------
class DualTalk(nn.Module):
    """DualTalk: predict the agent's 56-d face motion from both speakers' audio and the
    partner's motion. See the module docstring for the data flow.

    A config with ``causal=True`` builds the live model instead
    (:class:`dualtalk_core.model.live.LiveDualTalk`, same inputs and outputs): so the trainer,
    checkpoint loading and inference build either kind with ``DualTalk(config)``."""

    def __new__(cls, config: DualTalkConfig | None = None):
        if cls is DualTalk and config is not None and config.causal:
            from dualtalk_core.model.live import LiveDualTalk

            return LiveDualTalk(config)       # not a DualTalk: Python skips __init__ below
        return super().__new__(cls)

    def __init__(self, config: DualTalkConfig | None = None):
        super().__init__()
        config = config if config is not None else DualTalkConfig()
        config.validate()
        self.config = config
        self.joint_encoder = DualSpeakerJointEncoder(config)
        has_partner = config.use_partner_audio or config.use_partner_motion
        self.temporal_enhancer = (CrossModalTemporalEnhancer(config)
                                  if config.use_temporal_enhancer and has_partner else None)
        self.interaction_module = (DualSpeakerInteractionModule(config)
                                   if config.use_interaction else None)
        self.synthesis_module = ExpressiveSynthesisModule(config)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    def forward(self, self_audio: torch.Tensor, partner_audio: torch.Tensor,
                partner_motion: torch.Tensor, num_frames: int | None = None,
                normalize_audio: bool | None = True) -> torch.Tensor:
        """self_audio [B, n], partner_audio [B, m] (16 kHz), partner_motion [B, S, 56]
        -> agent motion [B, T, 56], T = ``num_frames`` or ceil(n / 640).

        Like the released model, each audio stream is resampled to T frames inside its encoder,
        and the partner motion is attended over all its S frames (S = T in normal use;
        :func:`dualtalk_core.model.inference.predict_clip` trims/pads it). ``normalize_audio`` applies
        the per-clip waveform normalisation (``None`` = ``config.normalize_audio``).
        """
        cfg = self.config
        check_batch(self_audio, partner_audio, partner_motion)
        T = int(num_frames) if num_frames is not None else num_frames_for_samples(
            self_audio.shape[1])
        needs_aligned = (not cfg.use_temporal_enhancer or not cfg.use_partner_audio)
        if cfg.use_partner_motion and needs_aligned and partner_motion.shape[1] != T:
            raise ValueError(f"partner_motion has {partner_motion.shape[1]} frames; this config "
                             f"needs exactly T={T}")
        if normalize_audio is None:
            normalize_audio = cfg.normalize_audio
        if normalize_audio:
            self_audio = normalize_waveform(self_audio)
            partner_audio = normalize_waveform(partner_audio)

        a_self, a_partner, m_partner = self.joint_encoder(self_audio, partner_audio,
                                                          partner_motion, T)
        if a_partner is None and m_partner is None:          # no partner input at all
            partner = torch.zeros_like(a_self)
        elif self.temporal_enhancer is not None:
            partner = self.temporal_enhancer(a_partner, m_partner)
        else:                                                # w/o temporal enhancer: sum inputs
            partner = sum(x for x in (a_partner, m_partner) if x is not None)
        x = torch.cat([a_self, partner], dim=-1)             # [B, T, 2d]
        if self.interaction_module is not None:
            x = self.interaction_module(x)
        return self.synthesis_module(x)                      # [B, T, 56]


def check_batch(self_audio, partner_audio, partner_motion) -> None:
    """The forward's input contract, shared by the released and the live model: audio
    [B, n] / [B, m], partner motion [B, S, 56], one batch size (``ValueError`` naming shapes)."""
    if self_audio.ndim != 2 or partner_audio.ndim != 2:
        raise ValueError(f"audio must be [B, n]; got self {list(self_audio.shape)}, "
                         f"partner {list(partner_audio.shape)}")
    if partner_motion.ndim != 3 or partner_motion.shape[-1] != DIM:
        raise ValueError(f"partner_motion must be [B, T, {DIM}], got "
                         f"{list(partner_motion.shape)}")
    batch = self_audio.shape[0]
    if partner_audio.shape[0] != batch or partner_motion.shape[0] != batch:
        raise ValueError("batch sizes differ: self_audio, partner_audio, partner_motion have "
                         f"{batch}, {partner_audio.shape[0]}, {partner_motion.shape[0]}")
