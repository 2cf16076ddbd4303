"""Offline real-time factor of DualTalk per preset: seconds of compute per second of audio.

Runs ``predict_clip`` on a synthetic clip (random weights: speed does not depend on their
values) with a fixed number of torch threads, after one warm-up run, and prints a Markdown
table. RTF < 1 means faster than real time; "x real time" is 1 / RTF.

    python bench/bench_offline.py                       # all presets, 30 s clips, 2 threads
    python bench/bench_offline.py --presets cpu tiny --seconds 30 --threads 2
    python bench/bench_offline.py --device cuda         # on a GPU
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dualtalk_core.devices import resolve_device, synchronize
from dualtalk_core.model.config import get_preset
from dualtalk_core.model.presets import preset_names
from dualtalk_core.model.inference import predict_clip
from dualtalk_core.layout import SAMPLE_RATE, num_frames_for_samples
from dualtalk_core.model.dualtalk import DualTalk


def bench_preset(name: str, seconds: float, device: str, repeats: int) -> dict:
    torch.manual_seed(0)
    dev = resolve_device(device, "--device")
    t0 = time.perf_counter()
    model = DualTalk(get_preset(name)).eval().to(device)
    build_s = time.perf_counter() - t0
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    self_audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
    partner_audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
    motion = (0.1 * rng.standard_normal((num_frames_for_samples(n), 56))).astype(np.float32)
    predict_clip(model, self_audio[: SAMPLE_RATE], partner_audio[: SAMPLE_RATE],
                 motion[:25], device=device)                                   # warm-up
    times = []
    for _ in range(repeats):
        synchronize(dev)
        t0 = time.perf_counter()
        predict_clip(model, self_audio, partner_audio, motion, device=device)
        synchronize(dev)
        times.append(time.perf_counter() - t0)
    compute = min(times)
    return {"preset": name, "params": model.num_parameters(), "seconds": seconds,
            "compute": compute, "rtf": compute / seconds, "build": build_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=preset_names())
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    parser.add_argument("--paper-seconds", type=float, default=10.0,
                        help="shorter clip for the ~650 M-parameter paper preset on CPU")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.presets:
        seconds = args.paper_seconds if (name == "paper" and args.device == "cpu") else args.seconds
        rows.append(bench_preset(name, seconds, args.device, args.repeats))
    device = args.device if args.device != "cpu" else f"cpu, {args.threads} threads"
    print(f"Offline inference ({device}, torch {torch.__version__}), best of {args.repeats}\n")
    print("| preset | parameters | audio (s) | compute (s) | RTF (s/s) | x real time |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} | {r['params'] / 1e6:,.2f} M | {r['seconds']:.0f} | "
              f"{r['compute']:.2f} | {r['rtf']:.4f} | {1 / r['rtf']:,.1f} |")


if __name__ == "__main__":
    main()
