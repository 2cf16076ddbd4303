"""Banded causal attention with key/value caches: the live model's transformer layers.

Every attention in the live model is over one time axis (the output frame index k): query k may
attend key j only when ``0 <= k - j < context`` (causal, bounded left context; the horizons are
spent once, at the inputs, see :mod:`dualtalk_core.model.live`).  A fixed ALiBi bias
(``-slope_h * (k - j)``, FaceFormer's slopes) tells the heads how old each key is, since the
inputs carry no positional encoding.

One function, :func:`banded_attention`, serves both uses:

* offline: queries and keys are the whole clip (processed in query chunks, so memory grows with
  ``T * context``, not ``T^2``);
* incremental: queries are the new frames, keys are the cache (the last ``context - 1`` frames'
  keys/values) followed by the new ones.

The layer classes keep the submodule names of PyTorch's ``TransformerEncoderLayer`` /
``TransformerDecoderLayer`` (``self_attn``, ``multihead_attn``, ``linear1``, ``linear2``,
``norm1..3``), so the state-dict keys read like the released model's; their arithmetic is the
same post-norm layer, written out so that it can take a cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from dualtalk_core.model.dualtalk import alibi_slopes

QUERY_CHUNK = 256


@lru_cache(maxsize=None)
def _slopes(heads: int) -> torch.Tensor:
    return alibi_slopes(heads)


@dataclass
class KVCache:
    """Keys/values [B, H, L, dh] of recent positions (slot 0 is position ``start``).

    The buffer holds up to ``2 * context`` positions (or ``context + block`` for a big block):
    new keys are written in place, and only when it is full are the last ``context - 1`` moved
    to the front, so a push copies O(new frames), not O(context), on average.
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    start: int = 0
    length: int = 0

    def extend(self, k_new, v_new, q0: int, context: int):
        """-> (keys, values, first key position) for queries starting at ``q0``, i.e. the last
        ``context - 1`` cached positions followed by the new ones."""
        n = k_new.shape[2]
        if self.k is None:
            self.start = q0
            self.k, self.v = self._alloc(k_new, max(2 * context, context + n))
        if self.length + n > self.k.shape[2]:           # full: keep the last context - 1
            keep = min(context - 1, self.length)
            k, v = self._alloc(k_new, max(self.k.shape[2], keep + n))
            k[:, :, :keep] = self.k[:, :, self.length - keep:self.length]
            v[:, :, :keep] = self.v[:, :, self.length - keep:self.length]
            self.k, self.v = k, v
            self.start += self.length - keep
            self.length = keep
        self.k[:, :, self.length:self.length + n] = k_new
        self.v[:, :, self.length:self.length + n] = v_new
        self.length += n
        lo = max(0, self.length - n - (context - 1))
        return self.k[:, :, lo:self.length], self.v[:, :, lo:self.length], self.start + lo

    @staticmethod
    def _alloc(like: torch.Tensor, capacity: int):
        shape = (like.shape[0], like.shape[1], capacity, like.shape[3])
        return like.new_empty(shape), like.new_empty(shape)

    @property
    def capacity(self) -> int:
        return 0 if self.k is None else self.k.shape[2]


@lru_cache(maxsize=64)
def window_bias(offset: int, lq: int, lk: int, context: int, heads: int,
                dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[H, lq, lk] additive mask for queries at positions offset + 0..lq-1 and keys at
    0..lk-1: ALiBi ``-slope_h * (q - k)`` inside the band ``0 <= q - k < context``, -inf
    outside.  Cached: a stream asks for the same few shapes every push (do not modify)."""
    dist = (torch.arange(lq, device=device)[:, None] + offset
            - torch.arange(lk, device=device)[None, :])
    allowed = (dist >= 0) & (dist < context)
    slopes = _slopes(heads).to(device=device, dtype=dtype)
    bias = -slopes[:, None, None] * dist.clamp(min=0).to(dtype)[None]
    return bias.masked_fill(~allowed[None], float("-inf"))


def banded_attention(q, k, v, q0: int, k0: int, context: int,
                     dropout_p: float = 0.0) -> torch.Tensor:
    """q [B, H, Lq, dh] at positions q0.., k/v [B, H, Lk, dh] at k0..; every query's own
    position must be among the keys.  -> [B, H, Lq, dh]."""
    outs = []
    scale = q.shape[-1] ** -0.5
    for a in range(0, q.shape[2], QUERY_CHUNK):
        b = min(a + QUERY_CHUNK, q.shape[2])
        lo = max(0, q0 + a - context + 1 - k0)         # first key any of these queries may use
        hi = q0 + b - k0                               # one past the last query's own position
        mask = window_bias((q0 + a) - (k0 + lo), b - a, hi - lo, context, q.shape[1],
                           q.dtype, q.device)
        # written out rather than F.scaled_dot_product_attention: its CPU path scales the
        # (strided, cached) keys, a copy of the whole window per call; scaling q is one row
        scores = torch.matmul(q[:, :, a:b] * scale, k[:, :, lo:hi].transpose(-2, -1)) + mask
        weights = torch.softmax(scores, dim=-1)
        if dropout_p:
            weights = F.dropout(weights, dropout_p)
        outs.append(torch.matmul(weights, v[:, :, lo:hi]))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def causal_mha(mha: nn.MultiheadAttention, query: torch.Tensor, memory: torch.Tensor, q0: int,
               context: int, cache: KVCache | None) -> torch.Tensor:
    """``mha``'s weights applied as banded causal attention.  query/memory [B, L, E] are the
    same L positions starting at ``q0`` (memory = keys/values source).  ``cache`` None: the
    inputs are the whole sequence (offline)."""
    heads, width = mha.num_heads, mha.embed_dim
    dh = width // heads
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    batch, length, _ = query.shape

    def split(x):                                        # [B, L, E] -> [B, H, L, dh]
        return x.reshape(batch, length, heads, dh).transpose(1, 2)

    if query is memory:                                  # self-attention: one projection
        q, k, v = (split(x) for x in F.linear(query, w, bias).chunk(3, dim=-1))
    else:
        q = split(F.linear(query, w[:width], bias[:width]))
        k, v = (split(x) for x in F.linear(memory, w[width:], bias[width:]).chunk(2, dim=-1))
    k0 = q0
    if cache is not None:
        k, v, k0 = cache.extend(k, v, q0, context)
    out = banded_attention(q, k, v, q0, k0, context, mha.dropout if mha.training else 0.0)
    return mha.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class CausalEncoderLayer(nn.Module):
    """Post-norm transformer encoder layer (PyTorch's defaults: ReLU FFN) with banded causal
    self-attention."""

    def __init__(self, width: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(width, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, width)
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))

    def forward(self, x, q0: int, context: int, caches: dict | None, name: str):
        cache = caches.setdefault(name, KVCache()) if caches is not None else None
        x = self.norm1(x + self.dropout1(causal_mha(self.self_attn, x, x, q0, context, cache)))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))


class CausalDecoderLayer(CausalEncoderLayer):
    """Post-norm transformer decoder layer with tgt = memory = x (as the released synthesis
    decoder), both attentions banded and causal."""

    def __init__(self, width: int, heads: int, ffn: int, dropout: float):
        super().__init__(width, heads, ffn, dropout)
        self.multihead_attn = nn.MultiheadAttention(width, heads, dropout=dropout,
                                                    batch_first=True)
        self.norm3 = nn.LayerNorm(width)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x, q0: int, context: int, caches: dict | None, name: str):
        def cache(kind):
            return None if caches is None else caches.setdefault(f"{name}.{kind}", KVCache())

        memory = x
        x = self.norm1(x + self.dropout1(causal_mha(self.self_attn, x, x, q0, context,
                                                    cache("self"))))
        x = self.norm2(x + self.dropout2(causal_mha(self.multihead_attn, x, memory, q0, context,
                                                    cache("memory"))))
        return self.norm3(x + self.dropout3(self.feed_forward(x)))


class CausalStack(nn.Module):
    """``layers`` as in ``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` (same key names)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x, q0: int, context: int, caches: dict | None, name: str):
        for i, layer in enumerate(self.layers):
            x = layer(x, q0, context, caches, f"{name}.{i}")
        return x
