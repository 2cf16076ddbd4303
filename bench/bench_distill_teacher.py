"""What the distillation teacher costs: compute time per hour of conversation.

``dualtalk distill`` runs its teacher once per clip, four forwards per conversation (pass 1 with
a neutral partner face and pass 2 with the teacher's own partner prediction, for both speakers;
:func:`dualtalk_core.training.teacher_cache.teacher_pair`).  This times exactly that function
for the ``paper`` preset (the authors' checkpoint: two wav2vec2-large-lv60 encoders, ~630 M
parameters) on a short synthetic clip, with random weights (speed does not depend on their
values; nothing is downloaded), after a 1 s warm-up, and extrapolates linearly to an hour of
conversation (the DualTalk data are clips of tens of seconds, so an hour is many such clips).
Also timed: building the model and hashing its weights (the cache key, once per run).

    python bench/bench_distill_teacher.py                        # paper, 15 s clip, 2 threads
    python bench/bench_distill_teacher.py --preset cpu --seconds 30
    python bench/bench_distill_teacher.py --device cuda
Writes the Markdown table to ``--markdown`` (default ``bench/distill_teacher.md``) and prints it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dualtalk_core.devices import device_name, peak_memory_mb, resolve_device, synchronize
from dualtalk_core.layout import SAMPLE_RATE
from dualtalk_core.model.config import get_preset
from dualtalk_core.model.dualtalk import DualTalk
from dualtalk_core.training.teacher_cache import teacher_hash, teacher_pair

BENCH = Path(__file__).resolve().parent


def measure(preset: str, seconds: float, device: str, repeats: int) -> dict:
    """Build, hash and time the two-pass teacher on one ``seconds``-long conversation."""
    dev = resolve_device(device, "--device")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = DualTalk(get_preset(preset)).eval()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    teacher_hash(model)
    hash_s = time.perf_counter() - t0
    model.to(dev)
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    a1, a2 = ((0.1 * rng.standard_normal(n)).astype(np.float32) for _ in range(2))
    teacher_pair(model, a1[:SAMPLE_RATE], a2[:SAMPLE_RATE], dev)            # warm-up
    times = []
    for _ in range(repeats):
        synchronize(dev)
        t0 = time.perf_counter()
        teacher_pair(model, a1, a2, dev)
        synchronize(dev)
        times.append(time.perf_counter() - t0)
    compute = min(times)
    return {"preset": preset, "params": model.num_parameters(), "seconds": seconds,
            "compute": compute, "per_forward_rtf": compute / 4 / seconds,
            "hours_per_hour": compute / seconds, "build": build_s, "hash": hash_s,
            "peak_mb": peak_memory_mb(dev), "device": device_name(dev)}


def table(r: dict, repeats: int) -> str:
    per_hour = r["hours_per_hour"]
    lines = [
        f"Distillation teacher cost ({r['device']}, torch {torch.__version__}), "
        f"best of {repeats}, random weights",
        "",
        "| teacher preset | parameters | clip (s) | 2 passes x 2 sides (s) | RTF per forward "
        "| teacher time per hour of conversation | build model (s) | hash weights (s) "
        "| peak memory (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['preset']} | {r['params'] / 1e6:,.1f} M | {r['seconds']:.0f} | "
        f"{r['compute']:.1f} | {r['per_forward_rtf']:.3f} | {per_hour:.2f} h "
        f"({per_hour * 60:.0f} min) | {r['build']:.1f} | {r['hash']:.1f} | {r['peak_mb']:,.0f} |",
        "",
        "Per hour of conversation = four forwards over an hour of audio (both speakers, pass 1 "
        "with a neutral partner face and pass 2 with the teacher's own partner prediction), "
        "extrapolated linearly from the clip; the cache makes this a one-off per data set.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--seconds", type=float, default=15.0, help="clip length (s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--markdown", type=Path, default=BENCH / "distill_teacher.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    text = table(measure(args.preset, args.seconds, args.device, args.repeats), args.repeats)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
