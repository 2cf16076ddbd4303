"""Incremental stepping of :class:`~dualtalk_core.model.live.LiveDualTalk`.

Why a state object and not hidden buffers inside the model: one model can serve several
conversations, a restart is ``model.init_state()``, and what a stream holds is visible (and
bounded): per audio stream the last 240 samples and the conv inputs the next frame needs
(:class:`~dualtalk_core.model.causal_frontend.EncoderStream`); encoded frames waiting for the
other streams to catch up (:class:`FeatureQueue`); the LSTM's (h, c); and for every attention
the keys/values of the last ``context - 1`` frames.  So a push costs the same after ten minutes
as after ten seconds.

Streams are chunked independently; a push of any size (zero samples included) is fine.  Frames
are computed in blocks of at most ``MAX_STEP_FRAMES`` and audio is encoded at most 10 s at a
time, so a push far larger than the context never allocates more than a block's activations
(plus the encoded features of what was pushed, 4 bytes x d per frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dualtalk_core.layout import DIM, SAMPLES_PER_FRAME
from dualtalk_core.model.causal_frontend import EncoderStream

#: flush feeds silence at most this many samples at a time
FLUSH_PIECE = 250 * SAMPLES_PER_FRAME


class FeatureQueue:
    """Encoded per-frame features [N, d] of source frames ``start .. end - 1`` still needed."""

    def __init__(self, width: int, dtype: torch.dtype, device: torch.device):
        self.rows = torch.zeros(0, width, dtype=dtype, device=device)
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + self.rows.shape[0]

    def append(self, rows: torch.Tensor) -> None:
        self.rows = torch.cat([self.rows, rows]) if self.rows.shape[0] else rows

    def take(self, lo: int, hi: int) -> torch.Tensor:
        """Rows for source frames lo..hi-1 (hi <= end); frames before 0 are zero rows."""
        if hi > self.end:
            raise RuntimeError(f"frames up to {hi} requested, only {self.end} encoded")
        before = max(0, min(hi, 0) - lo)
        body = self.rows[max(lo, 0) - self.start:hi - self.start] if hi > 0 else self.rows[:0]
        if not before:
            return body
        return torch.cat([self.rows.new_zeros(before, self.rows.shape[1]), body])

    def drop_before(self, index: int) -> None:
        cut = min(max(0, index - self.start), self.rows.shape[0])
        if cut:
            self.rows = self.rows[cut:]
            self.start += cut


@dataclass
class LiveState:
    """Everything one conversation's stream carries between pushes (see module docstring)."""

    self_stream: EncoderStream
    partner_stream: EncoderStream
    self_feats: FeatureQueue
    partner_feats: FeatureQueue
    motion_feats: FeatureQueue
    next_frame: int = 0
    trunk: dict = field(default_factory=dict)   # KVCaches by layer name, "lstm": (h, c)

    @classmethod
    def fresh(cls, model) -> "LiveState":
        param = next(model.parameters())
        dtype, device = param.dtype, param.device
        d = model.config.d_model
        enc = model.joint_encoder
        return cls(self_stream=enc.audio_encoder1.init_stream(dtype, device),
                   partner_stream=enc.audio_encoder2.init_stream(dtype, device),
                   self_feats=FeatureQueue(d, dtype, device),
                   partner_feats=FeatureQueue(d, dtype, device),
                   motion_feats=FeatureQueue(d, dtype, device))

    @property
    def motion_frames_seen(self) -> int:
        return self.motion_feats.end

    def computable_end(self, model) -> int:
        """One past the last frame the inputs so far allow (by the horizons)."""
        ls, lp = model.self_lookahead, model.partner_lookahead
        return min(self.self_feats.end - ls, self.partner_feats.end - lp,
                   self.motion_feats.end - lp)


def _as_tensor(x, name: str, ndim: int, dtype, device) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device) if x is not None else None
    if t is None:
        return torch.zeros((0,) * ndim if ndim == 1 else (0, DIM), dtype=dtype, device=device)
    if t.ndim != ndim or (ndim == 2 and t.shape[1] != DIM):
        expected = "[n] samples" if ndim == 1 else f"[frames, {DIM}]"
        raise ValueError(f"LiveDualTalk.step: {name} must be {expected}, got {list(t.shape)}")
    return t


def _encode_audio(model, stream: EncoderStream, encoder, queue: FeatureQueue, samples) -> None:
    for piece in encoder.step(stream, samples):
        queue.append(model.joint_encoder.audio_projection(piece)[0])


def _advance(model, state: LiveState) -> torch.Tensor:
    """Compute every frame the inputs now allow, in blocks; -> [N, 56]."""
    from dualtalk_core.model.live import MAX_STEP_FRAMES

    ls, lp = model.self_lookahead, model.partner_lookahead
    end = state.computable_end(model)
    out = []
    while state.next_frame < end:
        k0 = state.next_frame
        k1 = min(end, k0 + MAX_STEP_FRAMES)
        a_self = state.self_feats.take(k0 + ls, k1 + ls)[None]
        a_partner = state.partner_feats.take(k0 + lp, k1 + lp)[None]
        m_partner = state.motion_feats.take(k0 + lp, k1 + lp)[None]
        out.append(model.trunk(a_self, a_partner, m_partner, k0, state.trunk)[0])
        state.next_frame = k1
        state.self_feats.drop_before(k1 + ls)
        state.partner_feats.drop_before(k1 + lp)
        state.motion_feats.drop_before(k1 + lp)
    if not out:
        return state.self_feats.rows.new_zeros(0, DIM)
    return out[0] if len(out) == 1 else torch.cat(out)


def step(model, state: LiveState, self_audio=None, partner_audio=None, partner_motion=None):
    """See :meth:`LiveDualTalk.step`."""
    if model.training:
        raise RuntimeError("LiveDualTalk.step: call model.eval() first (dropout would make the "
                           "stream differ from the offline output)")
    dtype, device = state.self_feats.rows.dtype, state.self_feats.rows.device
    with torch.inference_mode():
        s = _as_tensor(self_audio, "self_audio", 1, dtype, device)
        p = _as_tensor(partner_audio, "partner_audio", 1, dtype, device)
        m = _as_tensor(partner_motion, "partner_motion", 2, dtype, device)
        enc = model.joint_encoder
        _encode_audio(model, state.self_stream, enc.audio_encoder1, state.self_feats, s)
        _encode_audio(model, state.partner_stream, enc.audio_encoder2, state.partner_feats, p)
        if m.shape[0]:
            state.motion_feats.append(enc.encode_motion(m))
        return _advance(model, state), state


def flush(model, state: LiveState, num_frames: int | None = None):
    """See :meth:`LiveDualTalk.flush`: silence and zero motion up to the horizons of frame
    ``num_frames - 1``; -> (the frames < num_frames not yet emitted, state)."""
    seen = state.self_stream.samples_seen
    total = num_frames if num_frames is not None else -(-seen // SAMPLES_PER_FRAME)
    ls, lp = model.self_lookahead, model.partner_lookahead
    dtype = state.self_feats.rows.dtype
    first = state.next_frame
    out = []

    def zeros(n):
        return torch.zeros(max(0, min(n, FLUSH_PIECE)), dtype=dtype)

    while state.next_frame < total:
        need_self = (total + ls) * SAMPLES_PER_FRAME - state.self_stream.samples_seen
        need_partner = (total + lp) * SAMPLES_PER_FRAME - state.partner_stream.samples_seen
        need_motion = min(total + lp - state.motion_feats.end, FLUSH_PIECE // SAMPLES_PER_FRAME)
        if max(need_self, need_partner, need_motion) <= 0:
            break                                   # cannot happen; never loop forever
        frames, state = step(model, state, zeros(need_self), zeros(need_partner),
                             torch.zeros(max(0, need_motion), DIM, dtype=dtype))
        out.append(frames)
    frames = torch.cat(out) if out else state.self_feats.rows.new_zeros(0, DIM)
    return frames[:max(0, total - first)], state
