"""Test-wide set-up: DDS confined to loopback on a private domain, shared data paths.

Every test run picks its own ROS_DOMAIN_ID (unless one is already set by ``make test``) and loads
the loopback-only Fast DDS profile (``dualtalk_ros.loopback``: SHM + UDP on 127.0.0.1, no
multicast; the same variables as ``scripts/with_ros_env.sh``) before anything imports rclpy, so
no DDS packet leaves loopback and parallel runs do not see each other, also under a plain
``pytest``. Node subprocesses inherit the environment.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from dualtalk_ros import loopback  # noqa: E402  (imports no rclpy)

loopback.apply()
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")          # never download weights in tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SAMPLE_DIR = SHARED / "dualtalk-sample"
SAMPLE_CLIP = "xkHwlcDSOjc_sub_video_109_000"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real DualTalk clip in ../shared/dualtalk-sample (skips cleanly when absent)."""
    if not (SAMPLE_DIR / f"{SAMPLE_CLIP}_speaker1.npz").exists():
        pytest.skip(f"shared sample data not present at {SAMPLE_DIR}")
    return SAMPLE_DIR


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test, shut down afterwards (nodes must use context=...)."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        if ctx.ok():
            rclpy.shutdown(context=ctx)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Path of a saved ``tiny``-preset DualTalk checkpoint with seeded random weights.

    Built once per session (fork_rng keeps the global RNG of other tests untouched).
    """
    import torch

    from dualtalk_core.model.checkpoint import save_checkpoint
    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DualTalk(get_preset("tiny")).eval()
    path = tmp_path_factory.mktemp("tiny_checkpoint") / "tiny.pt"
    return save_checkpoint(path, model, extra={"seed": 0, "note": "random tiny weights (tests)"})
