"""Which streaming runner a checkpoint gets, and with which settings.

A *runner* turns pushed audio/face into computed frames.  Today there is one kind,
``window`` (:class:`~dualtalk_core.streaming.engine.StreamingEngine`: the sliding window around an
offline model); a causal model adds its kind to :data:`RUNNERS` and names it in its preset's
``runner`` (:mod:`dualtalk_core.model.presets`).  The session talks to any runner through this
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
}
"""Runner kind -> ``module:Class`` built as ``Class(model, config, device=...)``."""


def make_runner(kind: str, model: Any, config: StreamingConfig, device: str = "cpu"):
    """Build the runner ``kind`` around ``model``; ``ValueError`` naming the known kinds."""
    if kind not in RUNNERS:
        raise ValueError(f"unknown streaming runner {kind!r}; expected one of {sorted(RUNNERS)}")
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
