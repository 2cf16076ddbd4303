"""The live model's audio encoder: causal log-mel at a fixed 25 fps, a causal conv stack.

Why not the ``cpu`` preset's :class:`~dualtalk_core.model.dualtalk.LogMelEncoder`: it centres its
STFT windows (each reaches 12.5 ms into the future), normalises per clip upstream, and linearly
interpolates its 50 Hz features to the clip's frame count, so every frame depends on the whole
window it was computed in.  Here encoder frame ``e`` (samples ``[640 e, 640 (e + 1))``) depends
only on audio up to the END of its own 40 ms:

* four 25 ms Hann windows per frame, hop 10 ms, right-aligned: sub-frame ``j`` covers samples
  ``[160 j - 240, 160 j + 160)``, so the last one ends exactly at the frame's end; samples before
  the stream's start are zeros;
* log(mel power + 1e-6), then FIXED statistics ``(x - feature_mean) / feature_std`` (buffers
  saved with the weights: the same numbers in training and streaming, never per clip);
* the four sub-frames stacked into one vector per frame, then ``frontend_layers`` causal Conv1d
  (kernel :data:`KERNEL`, left zero padding) with GELU, then LayerNorm (per frame).

Offline (:meth:`CausalAudioEncoder.forward`) and incremental (:meth:`CausalAudioEncoder.step`)
run the same arithmetic; the stream state keeps the last 240 samples and ``KERNEL - 1`` conv
inputs per layer, so a push costs the same at minute ten as at second one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dualtalk_core.layout import SAMPLES_PER_FRAME
from dualtalk_core.model.config import DualTalkConfig
from dualtalk_core.model.dualtalk import dct_matrix, mel_filterbank

N_FFT = 400                        # 25 ms window
HOP = 160                          # 10 ms hop: 4 sub-frames per 40 ms frame
SUBFRAMES = SAMPLES_PER_FRAME // HOP
HISTORY = N_FFT - HOP              # samples before a frame that its first window reaches back
KERNEL = 3                         # causal conv kernel (frames)
MAX_FRAMES_PER_PIECE = 250         # a huge push is encoded 10 s at a time
# Rough log-mel statistics of speech at ordinary levels; trained models keep these numbers (or
# data statistics set before training) in their state dict, so training and streaming agree.
DEFAULT_MEAN = -5.0
DEFAULT_STD = 4.0


@dataclass
class EncoderStream:
    """Incremental state of one audio stream: samples not yet framed (with the 240-sample
    history in front), conv inputs each layer still needs, encoder frames emitted so far."""

    samples: torch.Tensor
    conv: list[torch.Tensor] = field(default_factory=list)
    frames_done: int = 0
    samples_seen: int = 0


class CausalAudioEncoder(nn.Module):
    """[B, n] waveform -> [B, E, frontend_hidden]; encoder frame e sees samples < 640 (e + 1)."""

    def __init__(self, config: DualTalkConfig):
        super().__init__()
        self.mfcc = config.audio_frontend == "mfcc"
        n_freqs = N_FFT // 2 + 1
        # explicit CPU device: these constants must exist even when the model is built on the
        # meta device (checkpoint loading assigns the state dict, which does not hold them)
        self.register_buffer("window", torch.hann_window(N_FFT, device="cpu"), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel_filterbank(n_freqs, config.n_mels)),
                             persistent=False)
        self.register_buffer("dct", torch.from_numpy(dct_matrix(config.n_mels, config.n_mfcc)),
                             persistent=False)
        self.register_buffer("feature_mean", torch.full((config.n_mels,), DEFAULT_MEAN))
        self.register_buffer("feature_std", torch.full((config.n_mels,), DEFAULT_STD))
        in_dim = SUBFRAMES * (config.n_mfcc if self.mfcc else config.n_mels)
        hidden = config.frontend_hidden
        self.conv = nn.ModuleList(nn.Conv1d(in_dim if i == 0 else hidden, hidden, KERNEL)
                                  for i in range(config.frontend_layers))
        self.layer_norm = nn.LayerNorm(hidden)

    # ------------------------------------------------------------------ shared arithmetic
    def frame_features(self, padded: torch.Tensor) -> torch.Tensor:
        """[B, HISTORY + 640 E] samples -> normalised log-mel (or MFCC) [B, E, 4 * n_feat]."""
        windows = padded.unfold(-1, N_FFT, HOP) * self.window                # [B, 4E, 400]
        power = torch.fft.rfft(windows, n=N_FFT).abs().pow(2)                # [B, 4E, 201]
        logmel = torch.log(power @ self.mel_fb + 1e-6)
        feats = (logmel - self.feature_mean) / self.feature_std
        if self.mfcc:
            feats = feats @ self.dct
        batch, sub, width = feats.shape
        return feats.reshape(batch, sub // SUBFRAMES, SUBFRAMES * width)

    def _convs(self, x: torch.Tensor, caches: list[torch.Tensor] | None) -> torch.Tensor:
        """[B, C, E] -> [B, hidden, E]; with ``caches`` (incremental) the left context comes from
        (and is written back to) them instead of zero padding."""
        for i, conv in enumerate(self.conv):
            if caches is None:
                x = F.pad(x, (KERNEL - 1, 0))
            else:
                x = torch.cat([caches[i], x], dim=-1)
                caches[i] = x[..., x.shape[-1] - (KERNEL - 1):]
            # im2col + one matmul: the same sums as conv1d, several times cheaper than
            # conv1d's small-input path on CPU (a push is a few frames)
            cols = x.unfold(-1, KERNEL, 1).transpose(1, 2)                # [B, E, C, K]
            w = conv.weight.reshape(conv.out_channels, -1)
            x = F.gelu(F.linear(cols.reshape(*cols.shape[:2], -1), w, conv.bias)).transpose(1, 2)
        return x

    def _encode(self, padded: torch.Tensor, caches: list[torch.Tensor] | None) -> torch.Tensor:
        x = self.frame_features(padded).transpose(1, 2)                      # [B, C, E]
        return self.layer_norm(self._convs(x, caches).transpose(1, 2))       # [B, E, H]

    @torch.no_grad()
    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Raw log-mel [sub-frames, n_mels] of a 1-D waveform (before the fixed statistics)."""
        usable = wav[:wav.shape[0] // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME]
        padded = F.pad(usable.to(self.window), (HISTORY, 0))
        power = torch.fft.rfft(padded.unfold(-1, N_FFT, HOP) * self.window, n=N_FFT).abs() ** 2
        return torch.log(power @ self.mel_fb + 1e-6)

    # ------------------------------------------------------------------ offline
    def forward(self, wav: torch.Tensor, num_frames: int) -> torch.Tensor:
        """[B, n] -> [B, num_frames, hidden]; samples past n are zeros (silence)."""
        if num_frames <= 0:
            return wav.new_zeros(wav.shape[0], 0, self.layer_norm.normalized_shape[0])
        need = num_frames * SAMPLES_PER_FRAME
        wav = wav[:, :need]
        padded = F.pad(wav, (HISTORY, need - wav.shape[1]))
        return self._encode(padded, None)

    # ------------------------------------------------------------------ incremental
    def init_stream(self, dtype: torch.dtype, device: torch.device) -> EncoderStream:
        conv_in = [self.conv[0].in_channels] + [c.out_channels for c in self.conv[:-1]]
        return EncoderStream(samples=torch.zeros(HISTORY, dtype=dtype, device=device),
                             conv=[torch.zeros(1, c, KERNEL - 1, dtype=dtype, device=device)
                                   for c in conv_in])

    def step(self, stream: EncoderStream, samples: torch.Tensor) -> list[torch.Tensor]:
        """Append ``samples`` [n]; -> the newly complete encoder frames as a list of
        [1, e_i, hidden] pieces (each at most :data:`MAX_FRAMES_PER_PIECE` frames)."""
        stream.samples_seen += samples.shape[0]
        buf = torch.cat([stream.samples, samples]) if samples.shape[0] else stream.samples
        pieces = []
        while (ready := (buf.shape[0] - HISTORY) // SAMPLES_PER_FRAME) > 0:
            n = min(ready, MAX_FRAMES_PER_PIECE)
            used = n * SAMPLES_PER_FRAME
            pieces.append(self._encode(buf[None, :HISTORY + used], stream.conv))
            buf = buf[used:]
            stream.frames_done += n
        stream.samples = buf.clone() if pieces else buf
        return pieces
