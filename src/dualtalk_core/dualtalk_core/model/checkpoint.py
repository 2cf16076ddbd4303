"""DualTalk checkpoints: one self-describing file (format version, config, rig, weights).

Layout (a plain dict saved with ``torch.save``; loads with ``weights_only=True``)::

    {"format": "dualtalk-checkpoint", "format_version": 1, "config": DualTalkConfig.to_dict(),
     "rig": "flame56", "names": FLAME56_NAMES, "state_dict": {...}, "extra": {...},
     "preset": "cpu", "streaming": {"window_s": 4.0, ...}}

``preset`` (a name in :mod:`dualtalk_core.model.presets`) and ``streaming`` (the StreamingConfig
values to stream this model with) are typed fields, so the streaming session picks the runner
and ``streaming_preset: auto`` works for every saved, exported or converted checkpoint; files
written before they existed are read through :func:`checkpoint_preset` /
:func:`checkpoint_streaming` (the training config's preset, else the preset whose network sizes
match, else ``cpu``).

Loading validates everything and raises :class:`CheckpointError` (a ``ValueError``) whose message
names the file and what is wrong (not a torch file, truncated, wrong format or version, missing
field, missing/unexpected tensor, shape mismatch naming the tensor and both shapes), instead of a
pickle traceback or a half-loaded model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dualtalk_core.model.config import DualTalkConfig
from dualtalk_core.layout import FLAME56, FLAME56_NAMES

FORMAT = "dualtalk-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "rig", "names", "state_dict", "extra")
_HF_META_KEYS = ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype",
                 "model_type", "output_hidden_states", "output_attentions", "return_dict")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def self_contained_config(model: torch.nn.Module) -> DualTalkConfig:
    """The model's config with a wav2vec2 directory path replaced by its config kwargs, so the
    checkpoint rebuilds the network anywhere (weights come from the checkpoint, not the dir)."""
    config: DualTalkConfig = model.config
    if config.audio_frontend == "wav2vec2" and isinstance(config.wav2vec2, str):
        hf = model.joint_encoder.audio_encoder1.config
        kwargs = {k: v for k, v in hf.to_diff_dict().items() if k not in _HF_META_KEYS}
        config = config.replace(wav2vec2=kwargs)
    return config


def save_checkpoint(path: str | Path, model: torch.nn.Module, extra: dict | None = None,
                    preset: str | None = None, streaming: dict | None = None) -> Path:
    """Write ``model`` (a :class:`~dualtalk_core.model.dualtalk.DualTalk`) to ``path``; returns the path.

    ``extra`` holds anything JSON-like the caller wants kept (e.g. ``{"training": {...}}``).
    ``preset`` / ``streaming``: the typed fields (default: resolved as for an old file, see
    :func:`checkpoint_preset`; streaming = that preset's defaults).
    Tensors are stored contiguous on CPU. Written to a temporary file then renamed, so a crash
    never leaves a truncated checkpoint under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": self_contained_config(model).to_dict(),
        "rig": FLAME56,
        "names": list(FLAME56_NAMES),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    if preset is not None:
        payload["preset"] = preset
    payload.update(typed_preset_fields(payload))
    if streaming is not None:
        payload["streaming"] = dict(streaming)
    return _save_atomically(payload, path)


def checkpoint_preset(payload: dict) -> str:
    """The preset a checkpoint's model belongs to: its ``preset`` field; for older files the
    training config's ``model`` (when it agrees on ``causal``), else the preset whose network
    sizes match, else ``live`` for a causal model (it needs the live runner whatever its size)
    and ``cpu`` for any other.  An unknown recorded name is a :class:`CheckpointError`."""
    from dualtalk_core.model.presets import CAUSAL_PRESET, DEFAULT_PRESET, PRESETS, match_preset

    name = payload.get("preset")
    if name is not None:
        if name not in PRESETS:
            raise CheckpointError(f"checkpoint field 'preset': expected one of {list(PRESETS)}, "
                                  f"got {name!r}")
        return name
    try:
        config = DualTalkConfig.from_dict(payload["config"])
    except (KeyError, ValueError, TypeError):
        config = None
    training = (payload.get("extra") or {}).get("training") or {}
    trained = (training.get("config") or {}).get("model") if isinstance(training, dict) else None
    if isinstance(trained, str) and trained in PRESETS and (
            config is None or PRESETS[trained].model.causal == config.causal):
        return trained
    if config is None:
        return DEFAULT_PRESET
    return match_preset(config) or (CAUSAL_PRESET if config.causal else DEFAULT_PRESET)


def checkpoint_streaming(payload: dict) -> dict:
    """The StreamingConfig values recorded with a checkpoint (``streaming``), else its preset's
    streaming defaults."""
    from dualtalk_core.model.presets import preset

    recorded = payload.get("streaming")
    if recorded is not None:
        if not isinstance(recorded, dict):
            raise CheckpointError(f"checkpoint field 'streaming': expected a mapping of "
                                  f"StreamingConfig values, got {type(recorded).__name__}")
        return dict(recorded)
    return preset(checkpoint_preset(payload)).streaming_defaults()


def typed_preset_fields(payload: dict) -> dict:
    """``{"preset": ..., "streaming": ...}`` for a payload, resolved as for an old file."""
    return {"preset": checkpoint_preset(payload), "streaming": checkpoint_streaming(payload)}


def _save_atomically(payload: dict, path: Path) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a truncated file
    under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_payload(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load and validate the dict of a checkpoint file (weights not yet applied)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a DualTalk checkpoint")
    try:
        try:  # memory-mapped: a paper-size checkpoint is not copied into RAM twice
            payload = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
        except Exception:
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # the unpickler raises many types (KeyError, EOFError, ...)
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupted, truncated or "
                              f"another format): {type(exc).__name__}: {detail}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(payload).__name__}")
    if "format" not in payload and any(str(k).startswith("joint_encoder.") for k in payload):
        raise CheckpointError(f"{path}: this is a plain released DualTalk state dict; convert it "
                              "first: dualtalk convert-official IN.pth -o OUT.pt")
    if payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: field 'format' should be {FORMAT!r}, got "
                              f"{payload.get('format')!r}")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version "
                              f"{payload.get('format_version')!r}; this version reads "
                              f"{FORMAT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: missing field(s) {missing}")
    if payload["rig"] != FLAME56 or tuple(payload["names"]) != FLAME56_NAMES:
        raise CheckpointError(f"{path}: rig {payload['rig']!r} with {len(payload['names'])} "
                              f"names; expected {FLAME56!r} (the 56-layout)")
    if not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"{path}: field 'state_dict' should be a dict")
    return payload


def check_state_dict(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Raise :class:`CheckpointError` listing missing/unexpected tensors and shape mismatches."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        problems.append(f"missing tensor(s) {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected tensor(s) {_short(unexpected)}")
    for key, want in expected.items():
        got = state_dict.get(key)
        if got is not None and tuple(got.shape) != tuple(want.shape):
            problems.append(f"tensor {key!r} has shape {list(got.shape)}, model expects "
                            f"{list(want.shape)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def _short(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)} in all)"


HALF_DTYPES = (torch.float16, torch.bfloat16)


def export_checkpoint(src: str | Path, dst: str | Path, half: bool = False,
                      label: str | None = None, info: dict | None = None) -> Path:
    """Write a deployable copy of checkpoint ``src`` to ``dst``: weights only.

    Why: a training checkpoint carries the optimizer state and RNG states for resuming (about
    3x the weights). The export keeps the config and weights, a short summary of how it was
    trained (``extra["provenance"]``: step, epoch, validation loss, data, training config), an
    optional human ``label`` (e.g. "demo model: trained on synthetic conversations"), and with
    ``half`` stores float weights as float16 (half the size; :func:`load_checkpoint` casts
    them back to float32, a rounding of about 1e-3 relative).
    """
    payload = read_payload(src)
    training = payload["extra"].get("training") or {}
    provenance = {k: training[k] for k in ("step", "epoch", "best_val", "data", "config")
                  if k in training}
    extra = {k: v for k, v in payload["extra"].items() if k != "training"}
    extra["provenance"] = {"source": str(src), **provenance, **(info or {})}
    if label:
        extra["label"] = label
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
             for k, v in payload["state_dict"].items()}
    extra["storage_dtype"] = "float16" if half else "float32"
    out = dict(payload, state_dict=state, extra=extra)
    out.update(typed_preset_fields(payload))   # before "training" (the preset it names) is gone
    return _save_atomically(out, Path(dst))


def _float32_weights(state_dict: dict) -> dict:
    """Half-precision weights (an exported checkpoint) back to float32 for CPU inference."""
    return {k: v.float() if v.dtype in HALF_DTYPES else v for k, v in state_dict.items()}


def load_checkpoint(path: str | Path, map_location: Any = "cpu", check: bool = True):
    """-> (model in eval mode, payload dict). Raises :class:`CheckpointError` on any problem.

    ``check`` (default): every weight must be finite and a short warm-up forward must give
    finite output (:mod:`dualtalk_core.model.sanity`), else ``NonFiniteModelError`` naming the
    file and the first bad tensor; ``False`` only for tools that inspect broken files."""
    from dualtalk_core.model.dualtalk import DualTalk
    from dualtalk_core.model.sanity import check_model

    payload = read_payload(path, map_location)
    payload["state_dict"] = _float32_weights(payload["state_dict"])
    try:
        config = DualTalkConfig.from_dict(payload["config"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: bad 'config': {exc}") from exc
    if isinstance(config.wav2vec2, str) and config.audio_frontend == "wav2vec2":
        model = DualTalk(config)      # hand-made config naming a local dir: build it for real
        check_state_dict(model, payload["state_dict"], str(path))
        model.load_state_dict(payload["state_dict"], strict=True)
    else:
        # Build on the meta device and adopt the loaded tensors: no random init of ~650 M
        # parameters that would be overwritten anyway (seconds and gigabytes for `paper`).
        with torch.device("meta"):
            model = DualTalk(config)
        check_state_dict(model, payload["state_dict"], str(path))
        model.load_state_dict(payload["state_dict"], strict=True, assign=True)
        left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if left:  # a module that made a tensor not covered by the state dict
            raise CheckpointError(f"{path}: tensors not restored from the file: {left[:5]}")
    if map_location is not None and not callable(map_location):
        model.to(map_location)
    model.eval()
    if check:
        check_model(model, str(path))
    return model, payload
