"""``dualtalk presets``: list the model presets (the registry in ``dualtalk_core.model.presets``)
with their parameter counts and streaming defaults.

Models are built on PyTorch's ``meta`` device (shapes only, no memory, no weights), so even the
~650 M-parameter ``paper`` preset is counted in seconds.
"""
from __future__ import annotations

import argparse


def preset_table(names: list[str] | None = None) -> str:
    """Markdown table: preset, front end, d_model, total and trainable parameters, and how it
    streams (runner, W / L / H)."""
    import torch

    from dualtalk_core.model.dualtalk import DualTalk
    from dualtalk_core.model.presets import preset, preset_names

    rows = ["| preset | audio front end | d_model | parameters | trainable | streaming: runner, "
            "W / L / H (s) |", "|---|---|---:|---:|---:|---|"]
    for name in names or preset_names():
        entry = preset(name)
        config, stream = entry.model_config(), entry.streaming_config()
        with torch.device("meta"):
            model = DualTalk(config)
        frontend = config.audio_frontend
        if frontend == "wav2vec2":
            w2v = model.joint_encoder.audio_encoder1.config
            frontend += f" ({w2v.num_hidden_layers} x {w2v.hidden_size})"
        rows.append(f"| {name} | {frontend} | {config.d_model} | "
                    f"{model.num_parameters() / 1e6:,.2f} M | "
                    f"{model.num_parameters(trainable_only=True) / 1e6:,.2f} M | {entry.runner}, "
                    f"{stream.window_s:g} / {stream.lookahead_s:g} / {stream.hop_s:g} |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from dualtalk_core.model.config import get_preset

    if args.yaml:
        print(get_preset(args.yaml).to_yaml(), end="")
        return 0
    print(preset_table(args.names or None))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("presets", help="list model presets with parameter counts",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these presets (default: all)")
    parser.add_argument("--yaml", metavar="PRESET", help="print one preset's config as YAML")
    parser.set_defaults(func=run)
