"""Which streaming runner a checkpoint gets, and with which settings.

A *runner* turns pushed audio/face into computed frames.  Two kinds: ``window``
(:class:`~dualtalk_core.streaming.engine.StreamingEngine`: the sliding window around an offline
model) and ``live`` (:class:`~dualtalk_core.streaming.live_runner.LiveRunner`: a causal model
stepped incrementally); a preset names its kind in ``runner`` (:mod:`dualtalk_core.model.presets`)
and a checkpoint's preset picks it (:func:`runner_kind`).  The session talks to any runner through this
contract (the engine's methods are the reference):

* ``config`` (:class:`StreamingConfig`), ``counters`` (dict, see ``frames.COUNTER_NAMES``),
  ``last_rejection`` (str), ``clock_s`` / ``clock_samples`` (partner audio covered),
  ``buffered_samples`` (largest buffer held), ``stats`` (dict with ``rtf``, ``hop_ms_*``);
* ``push_partner_audio(x, first)``, ``push_agent_audio(x, first)``,
  ``push_partner_motion(frame, t)`` -> accepted (never raise on bad data);
* ``pull_batches()`` / ``flush_batches()`` -> ``list[FrameBatch]``; ``reset()``; ``warm_up()``.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

from dualtalk_core.streaming.config import StreamingConfig, merge_streaming, read_streaming_file

RUNNERS: dict[str, str] = {
    "window": "dualtalk_core.streaming.engine:StreamingEngine",
    "live": "dualtalk_core.streaming.live_runner:LiveRunner",
}
"""Runner kind -> ``module:Class`` built as ``Class(model, config, device=...)``."""


def make_runner(kind: str, model: Any, config: StreamingConfig, device: str = "cpu"):
    """Build the runner ``kind`` around ``model``; ``ValueError`` naming the known kinds, or
    naming both values when ``config`` asks for horizons the model does not have."""
    if kind not in RUNNERS:
        raise ValueError(f"unknown streaming runner {kind!r}; expected one of {sorted(RUNNERS)}")
    if kind != "live" and config.is_live:
        asked = {k: getattr(config, k) for k in ("self_lookahead_s", "partner_lookahead_s")
                 if getattr(config, k) is not None}
        raise ValueError(f"StreamingConfig {asked} was requested, but the checkpoint's model "
                         f"has no live horizons (it streams with the {kind!r} runner: "
                         f"lookahead_s / hop_s); unset them or use a live checkpoint")
    module, cls = RUNNERS[kind].split(":")
    return getattr(importlib.import_module(module), cls)(model, config, device=device)


def streaming_layers(payload: Mapping[str, Any], preset_choice: str = "auto",
                     config_file: str | Path | None = None) -> list[dict[str, Any]]:
    """The first two layers of the merge for a checkpoint: its streaming defaults (``auto``:
    what the checkpoint records, else its preset's) or the named preset's, then the file."""
    from dualtalk_core.model.checkpoint import checkpoint_streaming
    from dualtalk_core.model.presets import preset

    base = (checkpoint_streaming(payload) if preset_choice == "auto"
            else preset(preset_choice).streaming_defaults())
    layers = [dict(base)]
    if config_file:
        layers.append(read_streaming_file(config_file))
    return layers


def streaming_config_for(payload: Mapping[str, Any], preset_choice: str = "auto",
                         config_file: str | Path | None = None,
                         overrides: Mapping[str, Any] | None = None) -> StreamingConfig:
    """preset (or checkpoint) -> file -> overrides, validated once."""
    return merge_streaming(*streaming_layers(payload, preset_choice, config_file), overrides)


def runner_kind(payload: Mapping[str, Any]) -> str:
    """The runner a checkpoint's model needs, from the preset it records."""
    from dualtalk_core.model.checkpoint import checkpoint_preset
    from dualtalk_core.model.presets import preset

    return preset(checkpoint_preset(payload)).runner
