"""DualTalkConfig: the one validated dataclass that sizes and switches every part of the model.

Defaults reproduce the released DualTalk network (see ``shared/spec/released-dualtalk-model.md``);
the paper's options (alignment-biased attention, ReLU around the modulation) and the Table 6
ablations are flags whose default is the released behaviour. Named presets live in the registry
:mod:`dualtalk_core.model.presets`; ``get_preset(name)`` returns a fresh copy of one's config.

Bad values raise ``ValueError`` naming the field, the expected values and what was given, so a
typo in a YAML file fails at load time instead of deep inside ``torch``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dualtalk_core.config_io import YamlConfigMixin

FRONTENDS = ("wav2vec2", "logmel", "mfcc")
MODULATION_ACTIVATIONS = ("none", "relu")
#: (field, lowest, highest) in seconds for the causal model's horizons
CAUSAL_HORIZONS = (("self_lookahead_s", 0.0, 0.32), ("partner_lookahead_s", -1.0, 0.32),
                   ("attention_context_s", 0.04, 60.0))


def seconds_to_frames(seconds: float) -> int:
    """A horizon in seconds (a multiple of 0.04 s) -> whole 25 fps frames."""
    return int(round(seconds * 25))

# facebook/wav2vec2-large-960h-lv60-self (the paper's audio encoder): only the values that differ
# from transformers' Wav2Vec2Config defaults, so the dict stays readable and round-trips in YAML.
WAV2VEC2_LARGE_LV60: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "do_stable_layer_norm": True,
    "feat_extract_norm": "layer",
    "conv_bias": True,
    "feat_proj_dropout": 0.1,
    "layerdrop": 0.1,
    "mask_time_prob": 0.05,
}
# facebook/wav2vec2-base-960h sizes.
WAV2VEC2_BASE: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "do_stable_layer_norm": False,
    "feat_extract_norm": "group",
    "conv_bias": False,
    "feat_proj_dropout": 0.1,
    "layerdrop": 0.1,
    "mask_time_prob": 0.05,
}
# A tiny random wav2vec2 (same layer types as the large one, total conv stride 320 = 50 Hz) so
# tests exercise the real wav2vec2 code path in milliseconds.
WAV2VEC2_TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [32, 32, 32],
    "conv_kernel": [10, 8, 8],
    "conv_stride": [5, 8, 8],
    "num_feat_extract_layers": 3,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "do_stable_layer_norm": True,
    "feat_extract_norm": "layer",
    "conv_bias": True,
    "layerdrop": 0.0,
    "mask_time_prob": 0.05,
}


@dataclass
class DualTalkConfig(YamlConfigMixin):
    """Every size and switch of :class:`dualtalk_core.model.dualtalk.DualTalk`.

    Defaults = the released model (``paper`` preset). Dimensions derived from ``d_model``:
    partner-motion encoder 56 -> d/2 -> d, interaction width 2d.
    """

    # --- joint encoder: audio front end ---------------------------------------------------------
    audio_frontend: str = "wav2vec2"
    """``wav2vec2`` (released), ``logmel`` or ``mfcc`` (the paper's MFCC ablation; light, CPU)."""
    wav2vec2: dict[str, Any] | str = field(default_factory=lambda: dict(WAV2VEC2_LARGE_LV60))
    """Hugging Face ``Wav2Vec2Config`` keyword arguments (random init), or a LOCAL directory
    holding a pretrained wav2vec2 (``config.json`` + weights), loaded with ``local_files_only``."""
    freeze_feature_extractor: bool = True
    """Freeze the wav2vec2 conv feature extractor (released: frozen)."""
    n_mels: int = 80
    n_mfcc: int = 40
    frontend_hidden: int = 256
    """Width of the light (logmel/mfcc) audio encoder's output."""
    frontend_layers: int = 2
    """Conv1d layers of the light audio encoder."""
    normalize_audio: bool = True
    """Per-clip waveform normalisation (x - mean) / sqrt(var + 1e-7), like the released code."""

    # --- sizes ---------------------------------------------------------------------------------
    d_model: int = 256
    enhancer_heads: int = 4
    lstm_layers: int = 2
    interaction_layers: int = 3
    interaction_heads: int = 4
    interaction_ffn: int = 2048
    decoder_layers: int = 1
    decoder_heads: int = 4
    decoder_ffn: int = 2048

    # --- dropout -------------------------------------------------------------------------------
    transformer_dropout: float = 0.1
    """Dropout inside the interaction encoder / synthesis decoder layers (PyTorch default)."""
    attention_dropout: float = 0.0
    """Dropout on the attention weights of the stand-alone attention blocks (released: 0)."""
    interaction_dropout: float = 0.5
    """Dropout after the interaction module's self-attention (released: 0.5)."""

    # --- paper options -------------------------------------------------------------------------
    modulation_scale: float = 0.1
    modulation_activation: str = "none"
    """``none`` (released code) or ``relu`` (the paper's equation)."""
    alignment_bias: bool = False
    """FaceFormer-style masks in the synthesis decoder: periodic biased self-attention and
    frame-aligned cross-attention. The released code has none (False)."""
    alignment_period: int = 25

    # --- input scaling (ours) ------------------------------------------------------------------
    partner_motion_scale: float = 1.0
    """Factor on the partner motion before the ``blendshape_encoder`` (1 = released). Only
    LEGACY synthetic data needs it (``dualtalk data synth --face-stats legacy``): there FLAME
    coefficients are about 0.1 in size, so with PyTorch's default init the partner-motion
    features start almost constant (their variation is ~1/40 of the audio features') and a
    short training run never learns to use them; 10 brings them to the audio features' scale
    (the bundled demo model was trained so). Real EMOCA tracks and the default, calibrated
    synthetic data are ~10x larger (exp per-dim std ~0.4, values up to ~3): use 1.
    A checkpoint keeps its value, so inference always matches training."""
    enhancer_residual: bool = False
    """Add the query (partner speech) back onto the temporal enhancer's cross-attention output,
    as a transformer block does (False = released). In the released module the partner speech
    only steers WHICH partner-motion frames are averaged: the attention has no positions and no
    residual, so when the partner stops talking reaches the BiLSTM only indirectly, and the
    listening responses that follow the partner's phrase ends are slow to learn."""

    # --- live (causal) model: dualtalk_core.model.live -------------------------------------------
    causal: bool = False
    """Build the causal, incrementally stepped model (``LiveDualTalk``) instead of the released
    offline one. Needs a log-mel/MFCC front end and no per-clip normalisation."""
    self_lookahead_s: float = 0.0
    """Causal model: frame k may use the agent's own audio up to the end of frame k + this
    (a TTS engine knows its audio ahead). 0 to 0.32 s, a multiple of 0.04 s."""
    partner_lookahead_s: float = 0.0
    """Causal model: frame k may use the partner's audio and motion up to frame k + this;
    negative = only up to k - |value| (the frame can be computed before its own time).
    -1.0 to 0.32 s, a multiple of 0.04 s."""
    attention_context_s: float = 8.0
    """Causal model: how far back every attention looks (bounds per-frame cost and memory).
    0.04 to 60 s, a multiple of 0.04 s."""

    # --- ablations (paper Table 6); all True = full model ---------------------------------------
    use_partner_audio: bool = True
    use_partner_motion: bool = True
    use_temporal_enhancer: bool = True
    use_interaction: bool = True
    use_modulation: bool = True

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        def bad(name: str, expected: str) -> None:
            raise ValueError(f"DualTalkConfig.{name}: expected {expected}, got "
                             f"{getattr(self, name)!r}")

        if self.audio_frontend not in FRONTENDS:
            bad("audio_frontend", f"one of {FRONTENDS}")
        if self.modulation_activation not in MODULATION_ACTIVATIONS:
            bad("modulation_activation", f"one of {MODULATION_ACTIVATIONS}")
        if isinstance(self.wav2vec2, Path):
            self.wav2vec2 = str(self.wav2vec2)
        if not isinstance(self.wav2vec2, (dict, str)):
            bad("wav2vec2", "a dict of Wav2Vec2Config arguments or a local directory path")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool",) and not isinstance(value, bool):
                bad(f.name, "a bool")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
                bad(f.name, "a positive int")
            if f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    bad(f.name, "a number")
                setattr(self, f.name, float(value))
        for name in ("transformer_dropout", "attention_dropout", "interaction_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                bad(name, "a probability in [0, 1)")
        if self.d_model % self.enhancer_heads:
            bad("enhancer_heads", f"a divisor of d_model={self.d_model}")
        if (2 * self.d_model) % self.interaction_heads:
            bad("interaction_heads", f"a divisor of 2*d_model={2 * self.d_model}")
        if (2 * self.d_model) % self.decoder_heads:
            bad("decoder_heads", f"a divisor of 2*d_model={2 * self.d_model}")
        if not self.partner_motion_scale > 0:
            bad("partner_motion_scale", "a number > 0")
        self._validate_causal(bad)
        if self.d_model % 2:
            bad("d_model", "an even number (the BiLSTM has d_model/2 units per direction)")

    def _validate_causal(self, bad) -> None:
        """Horizons: whole 40 ms frames within their ranges; a causal model's front end."""
        for name, lo, hi in CAUSAL_HORIZONS:
            value = getattr(self, name)
            if not lo <= value <= hi or abs(value * 25 - round(value * 25)) > 1e-6:
                bad(name, f"a multiple of 0.04 s in [{lo}, {hi}] s")
        if not self.causal:
            return
        if self.audio_frontend not in ("logmel", "mfcc"):
            bad("audio_frontend", "'logmel' or 'mfcc' when causal=True (wav2vec2 is not causal)")
        if self.normalize_audio:
            bad("normalize_audio", "False when causal=True (per-clip normalisation sees the "
                "whole clip)")
        for name in ("alignment_bias",):
            if getattr(self, name):
                bad(name, "False when causal=True (the live model's attention is banded)")
        for name in ("use_partner_audio", "use_partner_motion", "use_temporal_enhancer"):
            if not getattr(self, name):
                bad(name, "True when causal=True (this ablation is not built for the live "
                    "model)")

    # ------------------------------------------------------------------ (de)serialisation
    # to_dict / from_dict / to_yaml / from_yaml come from YamlConfigMixin; the settings and hooks
    # below keep this class's wording ("unknown field(s)"), let from_yaml take YAML text as well,
    # and accept a whole YAML with a ``model:`` section.
    _KEY_NOUN = "field"
    _YAML_SECTION = "model"

    @classmethod
    def _read_yaml_source(cls, source: str | Path) -> tuple[str, Path | None]:
        """A YAML file path, or YAML text (anything containing a newline/colon)."""
        text = str(source)
        if isinstance(source, Path) or not ("\n" in text or ": " in text or text.startswith("{")):
            path = Path(text)
            if not path.exists():
                raise FileNotFoundError(f"config file not found: {path}")
            return path.read_text(), path
        return text, None

    @classmethod
    def _unwrap_yaml(cls, data: Any) -> Any:
        """The ``model:`` section, unless the document is itself a config (has ``d_model``)."""
        if isinstance(data, dict) and "d_model" in data:
            return data
        return super()._unwrap_yaml(data)

    def replace(self, **changes: Any) -> "DualTalkConfig":
        """A validated copy with some fields changed (unknown names raise ``ValueError``)."""
        data = self.to_dict()
        data.update(changes)
        return DualTalkConfig.from_dict(data)

    # ------------------------------------------------------------------ helpers
    def wav2vec2_config(self):
        """The ``transformers.Wav2Vec2Config`` this config describes (no download ever)."""
        from transformers import Wav2Vec2Config

        if isinstance(self.wav2vec2, str):
            path = Path(self.wav2vec2)
            if path.is_file() and path.suffix == ".json":
                return Wav2Vec2Config(**json.loads(path.read_text()))
            if not (path / "config.json").is_file():
                raise ValueError(f"DualTalkConfig.wav2vec2: {path} is not a local directory with "
                                 "a config.json (downloads are never attempted)")
            return Wav2Vec2Config.from_pretrained(str(path), local_files_only=True)
        return Wav2Vec2Config(**self.wav2vec2)


def get_preset(name: str) -> DualTalkConfig:
    """A fresh copy of preset ``name``'s model config; ``ValueError`` naming the known presets
    otherwise.  The presets (model sizes and streaming defaults together) live in the registry
    :mod:`dualtalk_core.model.presets`."""
    from dualtalk_core.model.presets import preset

    return preset(name).model_config()
