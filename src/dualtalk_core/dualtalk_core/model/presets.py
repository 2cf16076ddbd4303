"""The preset registry: each named preset's model sizes and its streaming defaults, together.

Why one table: a preset is a model AND the way to stream it (how much left context and
lookahead its sliding window needs, or which runner a causal model uses).  Keeping both in one
:class:`Preset` entry means ``dualtalk presets``, training (``TrainConfig.model``), checkpoints
(``payload["preset"]``), the streaming session, the ROS node's ``streaming_preset`` choices and
the benchmarks all read the same names and values.

To add a preset, add one :class:`Preset` to ``_ENTRIES`` below.  ``runner`` names the streaming
runner the session builds for models of this preset (``dualtalk_core.streaming.runners``):
``window`` = the sliding-window engine around an offline model.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from dualtalk_core.model.config import (WAV2VEC2_BASE, WAV2VEC2_TINY,
                                        DualTalkConfig)


@dataclass(frozen=True)
class Preset:
    """One named preset.  ``streaming`` holds the StreamingConfig values that differ from its
    defaults for this model (merged first, then a file, then parameters)."""

    name: str
    description: str
    model: DualTalkConfig
    streaming: Mapping[str, Any] = field(default_factory=dict)
    runner: str = "window"

    def model_config(self) -> DualTalkConfig:
        """A fresh copy of the model config (safe to modify)."""
        return copy.deepcopy(self.model)

    def streaming_defaults(self) -> dict[str, Any]:
        return dict(self.streaming)

    def streaming_config(self):
        """This preset's :class:`~dualtalk_core.streaming.config.StreamingConfig`."""
        from dualtalk_core.streaming.config import merge_streaming

        return merge_streaming(self.streaming)


# Chosen with bench/bench_streaming.py on the 2-core dev machine: for a trained ``cpu`` model
# 4 s of left context halves the streaming-vs-offline error of 2 s (8 s gains little more), and
# a 0.4 s hop keeps the real-time factor near 0.1 at 0.8 s worst-case latency.  The cross-fade
# is left unset: min(hop, lookahead - 0.04) = 0.36 s.
_SHORT_WINDOW = {"window_s": 2.0, "lookahead_s": 0.4, "hop_s": 0.4}
_LONG_WINDOW = {"window_s": 4.0, "lookahead_s": 0.4, "hop_s": 0.4}

_ENTRIES = (
    Preset("paper", "the released model: two wav2vec2-large-lv60 encoders, d=256 (~630 M)",
           DualTalkConfig(), _SHORT_WINDOW),
    Preset("base", "wav2vec2-base sized encoders, same head",
           DualTalkConfig(wav2vec2=dict(WAV2VEC2_BASE)), _SHORT_WINDOW),
    Preset("cpu", "light log-mel front end and a narrower head: many times faster than real "
           "time on 2 cores",
           DualTalkConfig(audio_frontend="logmel", wav2vec2={}, n_mels=80, frontend_hidden=192,
                          frontend_layers=2, d_model=128, interaction_layers=2,
                          interaction_ffn=512, decoder_ffn=512), _LONG_WINDOW),
    Preset("tiny", "for tests: tiny random wav2vec2 and head, the wav2vec2 path in milliseconds",
           DualTalkConfig(wav2vec2=dict(WAV2VEC2_TINY), d_model=32, interaction_layers=1,
                          interaction_ffn=64, decoder_ffn=64), _LONG_WINDOW),
    # The live model (dualtalk_core.model.live): cpu-sized, causal, stepped frame by frame.
    # Horizons: 0.16 s of the agent's own (TTS) audio ahead; the partner's signals up to
    # 0.12 s BEFORE the frame, so a frame can be computed before its time (a listener's
    # reaction trails the speaker anyway); attention looks back 8 s.
    Preset("live", "causal cpu-sized model stepped frame by frame: streamed output equals "
           "offline, flat cost per push",
           DualTalkConfig(audio_frontend="logmel", wav2vec2={}, n_mels=80, frontend_hidden=192,
                          frontend_layers=2, d_model=128, interaction_layers=2,
                          interaction_ffn=512, decoder_ffn=512, normalize_audio=False,
                          causal=True, self_lookahead_s=0.16, partner_lookahead_s=-0.12,
                          attention_context_s=8.0), runner="live"),
)

PRESETS: dict[str, Preset] = {p.name: p for p in _ENTRIES}
"""Every preset by name (read-only by convention; use :func:`preset` / ``model_config()``)."""

DEFAULT_PRESET = "cpu"
"""What a checkpoint that records no preset and matches none is streamed as."""
CAUSAL_PRESET = "live"
"""The same for a causal model (``config.causal``): only the live runner can step it."""

#: the fields that size a network: two configs equal on these are the same preset
SIZE_FIELDS = ("audio_frontend", "n_mels", "frontend_hidden", "frontend_layers", "d_model",
               "enhancer_heads", "lstm_layers", "interaction_layers", "interaction_heads",
               "interaction_ffn", "decoder_layers", "decoder_heads", "decoder_ffn", "causal")
_W2V_SIZE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> Preset:
    """The entry ``name``; ``ValueError`` naming the known presets otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {preset_names()}")
    return PRESETS[name]


def _size_signature(config: DualTalkConfig) -> tuple:
    sig = tuple(getattr(config, name) for name in SIZE_FIELDS)
    if config.audio_frontend != "wav2vec2":
        return sig
    w2v = config.wav2vec2
    if not isinstance(w2v, Mapping):
        return sig + ("<local wav2vec2 directory>",)
    from transformers import Wav2Vec2Config

    defaults = Wav2Vec2Config()
    return sig + tuple(w2v.get(k, getattr(defaults, k)) for k in _W2V_SIZE_KEYS)


def match_preset(config: DualTalkConfig) -> str | None:
    """The preset whose network sizes equal ``config``'s (options such as dropout or
    ``partner_motion_scale`` may differ), or None; when several share the sizes (``cpu`` and a
    causal variant), the one with the fewest differing fields.  ``causal`` is a size field,
    so a causal model never matches a window preset; one that matches no preset is streamed as
    :data:`CAUSAL_PRESET` (``checkpoint.checkpoint_preset``).  For checkpoints that record no
    preset."""
    sig, mine = _size_signature(config), config.to_dict()
    best: tuple[int, str] | None = None
    for p in _ENTRIES:
        if _size_signature(p.model) != sig:
            continue
        theirs = p.model.to_dict()
        differing = sum(mine.get(k) != v for k, v in theirs.items())
        if best is None or differing < best[0]:
            best = (differing, p.name)
    return None if best is None else best[1]
