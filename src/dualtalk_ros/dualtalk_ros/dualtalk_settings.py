"""``dualtalk_node``'s parameters and start-up: its own settings plus every StreamingConfig field.

Why a module: the node declares its parameters from two dataclasses - :class:`NodeSettings`
(checkpoint, device, outputs, ...) and :class:`~dualtalk_core.streaming.config.StreamingConfig`
(window geometry, fault limits, conversation rules) - so names, types, ranges and descriptions
exist once.  Streaming settings merge in one order: the preset (``streaming_preset``; ``auto`` =
what the checkpoint records) -> ``streaming_config_file`` -> parameters.  The preset and the file
are resolved *before* the streaming parameters are declared, so each parameter's default is the
value the model would run with (``ros2 param get`` shows it) and an explicitly given parameter
wins.  Fields without a ``dynamic`` flag are read-only; dynamic ones are applied by
:func:`apply_parameter_changes` (the node's on-set-parameters callback).  :func:`build_session`
turns the settings into a running session (model, runner from the checkpoint, warm-up); every
failure is a :class:`~dualtalk_ros.runtime.StartupError` naming the problem.  Topic names are
not settings: they are :mod:`dualtalk_ros.topics`' and renamed by ROS remapping
(:data:`REMOVED_PARAMS` lists the old ``*_topic`` parameters, refused at start-up).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from dualtalk_core.model.presets import preset_names
from dualtalk_core.streaming.config import StreamingConfig, merge_streaming
from dualtalk_core.streaming.fields import check_fields, setting

from . import topics
from .params import Param, declare_params, params_from_dataclass, resolve_config_path
from .runtime import StartupError


@dataclass
class NodeSettings:
    """Settings of the node itself (model loading, outputs, diagnostics)."""

    checkpoint: str = setting("", "DualTalk checkpoint (.pt) to load at start (required)")
    device: str = setting("cpu", "torch device: cpu, cuda or cuda:N")
    warmup: bool = setting(True, "run the model once on silence at start, so the first real "
                           "hop is not slowed by lazy initialisation")
    torch_threads: int = setting(0, "torch intra-op CPU threads; 0 = torch's default",
                                 low=0, high=256)
    streaming_preset: str = setting("auto", "streaming defaults of this model preset; auto = "
                                    "what the checkpoint records (its preset's)",
                                    choices=("auto", *preset_names()))
    streaming_config_file: str = setting("", "optional StreamingConfig YAML, merged over the "
                                         "preset; parameters are merged over both")
    partner_face_map_file: str = setting("", "linear map YAML from the partner face rig to "
                                         "flame56; empty = flame56 only")
    frame_id: str = setting("agent_face", "frame_id of the agent face outputs", dynamic=True)
    diagnostics_period_s: float = setting(1.0, "period of /diagnostics (s); 0 = none",
                                          low=0.0, high=60.0, dynamic=True)

    def __post_init__(self) -> None:
        check_fields(self)


NODE_PARAMS = params_from_dataclass(NodeSettings)
REMOVED_PARAMS = {"partner_audio_topic": topics.PARTNER_AUDIO,
                  "agent_audio_topic": topics.AGENT_AUDIO,
                  "partner_face_topic": topics.PARTNER_FACE,
                  "blendshapes_topic": topics.AGENT_BLENDSHAPES,
                  "sequence_topic": topics.AGENT_BLENDSHAPE_SEQUENCE,
                  "state_topic": topics.CONVERSATION_STATE}
STREAMING_NAMES = tuple(f.name for f in fields(StreamingConfig) if f.name != "vad")


def streaming_params(defaults: Mapping[str, Any] | None = None) -> tuple[Param, ...]:
    """The StreamingConfig parameters, defaults resolved from the preset and file layers."""
    return params_from_dataclass(StreamingConfig, defaults)


def layered_defaults(layers: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Per streaming field, the value of the last layer that sets it (None = unset: the
    dataclass default applies)."""
    out: dict[str, Any] = {}
    for layer in layers:
        out.update({k: v for k, v in layer.items() if k in STREAMING_NAMES})
    return out


def final_config(layers: list[Mapping[str, Any]], declared: Mapping[str, Any]) -> StreamingConfig:
    """preset -> file -> declared parameter values, validated once."""
    return merge_streaming(*layers, {k: declared[k] for k in STREAMING_NAMES if k in declared})


def apply_parameter_changes(node, params: list) -> tuple[bool, str]:
    """Validate and apply run-time parameter changes; (accepted, reason).  Read-only ones
    never get here (rclpy refuses them by their descriptor)."""
    streaming = {p.name: p.value for p in params if p.name in StreamingConfig.dynamic_fields()}
    own = {p.name: p.value for p in params if p.name in NodeSettings.__dataclass_fields__}
    try:
        node.session.check_update(**streaming)
        settings = replace(node.settings, **own)
    except (ValueError, TypeError) as exc:
        return False, str(exc)
    if streaming:
        node.session.update(**streaming)
    node.settings = settings
    if "diagnostics_period_s" in own:
        node.restart_diagnostics_timer()
    changed = ", ".join(f"{k}={v!r}" for k, v in {**streaming, **own}.items())
    if changed:
        node.get_logger().info(f"parameters changed at run time: {changed}")
    return True, ""


def load_model(path: str):
    """Checkpoint -> (model, payload); any failure is a :class:`StartupError` naming the file."""
    from dualtalk_core.model.checkpoint import load_checkpoint

    if not path:
        raise StartupError("dualtalk_node: parameter 'checkpoint' is empty; give a DualTalk "
                           "checkpoint file (e.g. from `dualtalk train` or `dualtalk "
                           "convert-official`)")
    try:
        return load_checkpoint(resolve_config_path(path), map_location="cpu")
    except FileNotFoundError as exc:
        raise StartupError(f"dualtalk_node: checkpoint not found: {exc}") from exc
    except ValueError as exc:  # CheckpointError
        raise StartupError(f"dualtalk_node: invalid checkpoint: {exc}") from exc


def build_session(node, s: NodeSettings):
    """Model, streaming settings (declared on ``node``: preset -> file -> parameters), the
    runner the checkpoint's preset names, warm-up, session."""
    import torch

    from dualtalk_core.streaming.runners import make_runner, runner_kind, streaming_layers
    from dualtalk_core.streaming.session import StreamingSession

    if s.torch_threads > 0:
        torch.set_num_threads(s.torch_threads)
    from dualtalk_core.devices import DeviceError, resolve_device

    try:
        resolve_device(s.device, "parameter 'device'")
    except DeviceError as exc:
        raise StartupError(f"dualtalk_node: {exc}") from exc
    model, payload = load_model(s.checkpoint)
    try:
        file = resolve_config_path(s.streaming_config_file) if s.streaming_config_file else None
        layers = streaming_layers(payload, s.streaming_preset, file)
        declared = declare_params(node, streaming_params(layered_defaults(layers)))
        runner = make_runner(runner_kind(payload), model, final_config(layers, declared),
                             device=s.device)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise StartupError(f"dualtalk_node: {exc}") from exc
    if s.warmup:
        try:
            ms = runner.warm_up()
        except Exception as exc:
            raise StartupError(f"dualtalk_node: the model fails on a window of silence "
                               f"(checkpoint {s.checkpoint}): {exc}") from exc
        node.get_logger().info(f"warm-up pass: {ms:.0f} ms")
    if payload["extra"].get("label"):  # e.g. the bundled demo model says what it is not good for
        node.get_logger().warning(f"checkpoint label: {payload['extra']['label']}")
    return StreamingSession(runner, log=node.session_log)
