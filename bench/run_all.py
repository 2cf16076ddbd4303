#!/usr/bin/env python
"""`make bench`: every benchmark, one after the other, each printing its Markdown tables.

Runs ``bench/bench_offline.py`` (offline real-time factor per preset) when it exists, then
``bench/bench_distill_teacher.py`` (the ``paper`` distillation teacher's time per hour of
conversation, written to ``bench/distill_teacher.md``; not with ``--skip-paper``), then
``bench/bench_streaming.py`` (streaming per-hop timing, RSS, streaming-vs-offline error, CPU
speed-ups), then ``bench/bench_bag_replay.py`` (model hop time under a real-time bag replay
through the live graph), then ``bench/bench_lips_on_time.py`` (lip offset, listening reaction,
release rate and graph CPU of the live and sliding-window demo models, bag replay and file-audio
bring-up, written to ``bench/lips_on_time.md``).  Each runs in its own process so their memory
does not mix.

    python bench/run_all.py                    # everything (paper preset included, short clips)
    python bench/run_all.py --skip-paper       # quick: tiny, cpu, base only
    python bench/run_all.py --checkpoint runs/x/best.pt --device cuda
Options other than those below are passed to bench_streaming.py unchanged.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="run every benchmark and print its tables")
    ap.add_argument("--skip-paper", action="store_true", help="leave out the 630 M paper preset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args, rest = ap.parse_known_args(argv)
    # Idle OpenMP workers sleep instead of spinning: on a loaded/shared CPU, spinning 2-thread
    # torch runs ~15x slower. Set before any benchmark process imports torch; override by env.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    presets = ["tiny", "cpu", "base"] + ([] if args.skip_paper else ["paper"])
    runs = []
    offline = BENCH / "bench_offline.py"
    if offline.exists():
        runs.append(("offline", [sys.executable, str(offline), "--presets", *presets,
                                 "--threads", str(args.threads), "--device", args.device]))
    else:
        print(f"(bench_offline.py not found in {BENCH}; offline table skipped)\n")
    if not args.skip_paper:   # the distillation teacher (paper preset): time per hour of audio
        runs.append(("distill teacher", [sys.executable, str(BENCH / "bench_distill_teacher.py"),
                                         "--threads", str(args.threads), "--device",
                                         args.device]))
    streaming = [sys.executable, str(BENCH / "bench_streaming.py"), "--presets", ",".join(presets),
                 "--threads", str(args.threads), "--device", args.device, *rest]
    runs.append(("streaming", streaming))
    # the live graph under a real-time bag replay (the regression guard for slow hops)
    runs.append(("bag replay", [sys.executable, str(BENCH / "bench_bag_replay.py")]))
    # issue 17: face against voice, where a person would notice (both models, both input paths)
    runs.append(("lips on time", [sys.executable, str(BENCH / "bench_lips_on_time.py")]))

    failed = []
    for name, cmd in runs:
        t0 = time.perf_counter()
        code = subprocess.call(cmd)
        print(f"\n_{name} benchmark finished in {time.perf_counter() - t0:.0f} s (exit {code})_\n",
              flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
