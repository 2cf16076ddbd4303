#!/usr/bin/env python
"""The whole ROS graph in real time from file audio: output rate, end-to-end latency, CPU load.

Runs ``dualtalk-ros bringup conversation --use-file-audio`` (partner and agent wavs of the shared
sample clip, players -> face adapter -> dualtalk_node -> head_driver, one process) for each preset
with seeded random weights (or ``--checkpoint``), and prints a Markdown table from the bring-up's
``--report``: frames/s seen by a subscriber, latency from a frame's input sample time (its stamp)
to its arrival at that subscriber (p50/p95), the process's CPU time per wall second, the model's
hop time and real-time factor. DDS stays on loopback on a private domain.

    python bench/bench_ros_bringup.py --presets tiny,cpu --duration 20
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "dualtalk-sample" / "xkHwlcDSOjc_sub_video_109_000"


def make_checkpoint(preset: str, directory: Path) -> Path:
    import torch

    from dualtalk_core.model.checkpoint import save_checkpoint
    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk

    torch.manual_seed(0)
    return save_checkpoint(directory / f"{preset}.pt", DualTalk(get_preset(preset)).eval(),
                           extra={"preset": preset, "note": "random weights (bench)"})


def run(checkpoint: Path, duration: float, report: Path, extra: list[str]) -> dict:
    from dualtalk_ros import loopback
    env = loopback.apply(dict(os.environ,
                              ROS_DOMAIN_ID=str(random.SystemRandom().randint(101, 200))))
    cmd = [str(Path(sys.executable).parent / "dualtalk-ros"), "bringup", "conversation",
           "--checkpoint", str(checkpoint), "--use-file-audio",
           "--partner-wav", f"{CLIP}_speaker1.wav", "--agent-wav", f"{CLIP}_speaker2.wav",
           "--duration", str(duration), "--report", str(report), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 300)
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"bring-up failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,cpu")
    ap.add_argument("--checkpoint", help="use this checkpoint instead of random-weight presets")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="passed to bringup --set (e.g. dualtalk_node.torch_threads=1)")
    args = ap.parse_args(argv)
    if not CLIP.with_name(CLIP.name + "_speaker1.wav").exists():
        print(f"sample clip not found at {CLIP}*; nothing to run")
        return 1
    extra = [x for o in args.overrides for x in ("--set", o)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [("checkpoint", Path(args.checkpoint))] if args.checkpoint else [
            (p, make_checkpoint(p, tmp)) for p in args.presets.split(",")]
        for name, ckpt in runs:
            r = run(ckpt, args.duration, tmp / f"{name}.json", extra)
            if args.overrides:
                name += " (" + ", ".join(args.overrides) + ")"
            d = r["dualtalk_node"]
            rows.append(f"| {name} | {r['wall_s']:.0f} | {r['frames']:.0f} | {r['rate_hz']:.2f} | "
                        f"{r['latency_ms_p50']:.0f} | {r['latency_ms_p95']:.0f} | "
                        f"{r['interval_ms_p50']:.0f} / {r['interval_ms_p95']:.0f} | "
                        f"{d['algorithmic_latency_s'] * 1000:.0f} | {d['hop_ms_p50']:.0f} / "
                        f"{d['hop_ms_p95']:.0f} | {d['real_time_factor']:.2f} | "
                        f"{r['cpu_load_cores']:.2f} of {r['cpu_count']} | "
                        f"{r['machine_loadavg_1min']:.1f} |")
    print("| model | run s | frames | rate Hz | latency p50 ms | latency p95 ms | "
          "frame interval ms p50/p95 | L+H ms | hop ms p50/p95 | RTF | CPU cores used | "
          "machine load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
