"""Shared helpers for the metrics/evaluate/baselines/plot tests.

A small synthetic DualTalk-layout set (``dualtalk data synth``'s Python API, procedural voice,
4-6 s clips) is built once per session and reused by every module; the ``dualtalk`` sub-commands
are run through their own ``register`` so these tests do not depend on other commands.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

_CACHE: dict[str, Path] = {}

SYNTH_PAIRS = 10
SYNTH_SPLITS = "train=0.6,test=0.4"   # 6 train pairs, 4 test pairs (8 test clip-sides)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """Root of a tiny synthetic DualTalk set (train/test), built once per session."""
    if "root" not in _CACHE:
        from dualtalk_core.data.synth import synthesize_dataset

        root = tmp_path_factory.mktemp("metrics_synth")
        synthesize_dataset(root, pairs=SYNTH_PAIRS, seed=7, splits=SYNTH_SPLITS,
                           voice="procedural", min_seconds=4.0, max_seconds=6.0, max_rounds=3)
        _CACHE["root"] = root
    return _CACHE["root"]


def run_command(module_name: str, argv: list[str]) -> int:
    """Parse ``argv`` with the one ``dualtalk_core.commands.<module_name>`` parser and run it."""
    import importlib

    module = importlib.import_module(f"dualtalk_core.commands.{module_name}")
    parser = argparse.ArgumentParser(prog="dualtalk")
    module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
