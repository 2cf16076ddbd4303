"""The DualTalk network: config and presets, modules, checkpoints, conversion, offline inference."""
