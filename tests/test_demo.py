"""`make demo` in CI mode (a 12 s conversation): the bundled demo model, the live bring-up graph,
a real-time replay, the recorded output bag, the report, the curves plot and the preview.

Runs ``scripts/demo.py`` exactly as ``make demo`` does (through ``scripts/with_ros_env.sh``, so
DDS stays on loopback on a private domain), with ``CI=true`` and ``DEMO_OUT`` in a temp folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dualtalk_core import layout
from dualtalk_ros import topics

MODELS = Path(__file__).resolve().parents[1] / "models"
DEMO_MODEL = MODELS / "dualtalk_live_demo.pt"     # what `make demo` runs
RECIPES = {"dualtalk_live_demo.pt": "train_live.yaml", "dualtalk_cpu_demo.pt": "train_cpu.yaml"}


@pytest.fixture(scope="module")
def demo_run(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    env = dict(os.environ, CI="true", DEMO_OUT=str(out), DEMO_CHECKPOINT="")
    proc = subprocess.run(["bash", "scripts/with_ros_env.sh", sys.executable, "scripts/demo.py"],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_bundled_demo_models_are_small_and_labelled(name):
    from dualtalk_core.model.checkpoint import load_checkpoint

    path = MODELS / name
    assert path.stat().st_size < 8e6, "a demo model must stay a few MB"
    model, payload = load_checkpoint(path)
    assert model.config.d_model == 128 and payload["extra"]["label"].startswith("DEMO MODEL")
    assert "reproduce" in payload["extra"]["provenance"]
    assert payload["extra"]["storage_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in model.parameters())  # runs in float32
    # it is what `make demo-model` / `make live-demo-model` makes: the preset with its recipe's
    # overrides (config/train_cpu.yaml, config/train_live.yaml)
    from dualtalk_core.training.config import TrainConfig

    recipe = TrainConfig.from_yaml(MODELS.parent / "config" / RECIPES[name])
    assert model.config == recipe.model_config()


def test_demo_writes_every_output(demo_run):
    out, stdout = demo_run
    for name in ("output_bag", "input_bag", "report.md", "report.json", "report.png",
                 "preview.mp4", "preview.gif", "preview.png", "summary.txt",
                 "agent_motion.npy", "agent_motion_released.npy", "partner_motion.npy"):
        path = out / name
        assert path.exists(), f"{name} missing from {sorted(p.name for p in out.iterdir())}"
        assert path.is_dir() or path.stat().st_size > 0, f"{name} is empty"
    summary = (out / "summary.txt").read_text()
    assert summary.splitlines()[0].startswith("DualTalk demo: done") and summary in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok", report.get("errors")
    assert report["metrics"]["scaled"]["MSE"]["EXP"] > 0
    # the live model by default, and the summary says where a person would notice the timing
    assert DEMO_MODEL.name in summary
    for key in ("lip_offset_ms", "listening_reaction_ms"):
        assert report[key]["n"] > 0 and report[key]["p95"] is not None, report[key]
    assert "lip offset" in summary and "listening reaction" in summary and "n/a" not in summary
    released = np.load(out / "agent_motion_released.npy")
    assert released.shape == np.load(out / "agent_motion.npy").shape


def test_output_bag_holds_agent_frames_at_25_hz_for_the_whole_conversation(demo_run):
    from dualtalk_ros.bag import bagio
    from dualtalk_ros.bag.inputs import blendshapes_flame56, stamp_ns

    out, _ = demo_run
    report = json.loads((out / "report.json").read_text())
    duration_s = report["input"]["duration_s"]
    assert 11.0 <= duration_s <= 13.0  # CI mode: a 12 s conversation
    stamps, received = [], []
    for _, t, msg in bagio.iter_messages(out / "output_bag", [topics.AGENT_BLENDSHAPES]):
        row = blendshapes_flame56(msg)  # checks rig, names and size
        assert row.shape == (layout.DIM,) and np.isfinite(row).all()
        stamps.append(stamp_ns(msg))
        received.append(t)
    stamps = np.sort(np.asarray(stamps, np.int64))
    expected = report["frames"]["expected"]
    assert abs(expected - duration_s * layout.FRAME_RATE) <= 1
    frames = report["frames"]
    # every frame of the conversation exactly once; a live model may add the few frames of the
    # agent's speech that runs past the partner's audio (its self lookahead: at most 4)
    assert frames["unique"] == expected and frames["duplicates"] == 0, frames
    assert frames["outside_range"] <= 4 and len(stamps) == expected + frames["outside_range"]
    steps = np.diff(stamps) / 1e6
    assert np.allclose(steps, 1000 / layout.FRAME_RATE, atol=1.0), "frame stamps not 40 ms apart"
    span_s = (stamps[-1] - stamps[0]) / 1e9
    assert span_s >= duration_s - 2 / layout.FRAME_RATE  # first to last frame of the conversation
    # delivered live over the conversation, not in one burst at the end
    received_span_s = (max(received) - min(received)) / 1e9
    assert received_span_s > 0.7 * duration_s
