#!/usr/bin/env python
"""Model hop time under a real-time bag replay: the regression guard for a slow graph.

Why: once a busy-spinning executor in the bring-up slowed the model's hops ~40x only while a bag
was being replayed into it (frames then arrived in one burst at the end); the unit tests, which
replay short clips, did not notice. This benchmark runs the first three steps of ``make demo``
(``scripts/demo.py``: a 30 s synthetic conversation, packed into a bag, replayed through the
bring-up graph in real time by ``dualtalk-ros bag evaluate`` and recorded) with a model
(default: the model ``make demo`` runs, the bundled live model) and prints a Markdown table:
frames received, output rate, input-to-frame latency and the node's own processing latency
(p50/p95/max).
``--max-processing-p95-ms`` turns it into a check (exit 1 when exceeded). DDS stays on loopback
on a private domain (run it through ``make bench`` or ``scripts/with_ros_env.sh``).

    python bench/bench_bag_replay.py --seconds 30 --max-processing-p95-ms 400
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import demo  # noqa: E402  (scripts/demo.py: the conversation -> bag -> live graph steps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=demo.DEMO_MODEL)  # what make demo runs
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-processing-p95-ms", type=float, default=None,
                    help="fail (exit 1) when the node's processing latency p95 exceeds this")
    args = ap.parse_args(argv)
    from dualtalk_ros import loopback
    if not loopback.is_confined():
        sys.exit("run through `make bench` or scripts/with_ros_env.sh (DDS on loopback)")
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        try:
            checkpoint = args.checkpoint.resolve()
            report, *_ = demo.replay_conversation(Path(tmp), checkpoint, args.seconds,
                                                  args.seed, demo.face_scale_of(checkpoint))
        except subprocess.CalledProcessError:  # its output is already on stderr
            return 1
    head = demo.headline(report)
    frames, lat, node, hz = head["frames"], head["latency"], head["node"], head["hz"]
    print(f"## Bag replay through the live graph ({args.seconds:g} s conversation, "
          f"{args.checkpoint.name})\n")
    print("| frames | output Hz | input-to-frame p50 / p95 ms | node processing p50 / p95 / max ms |")
    print("|---:|---:|---:|---:|")
    print(f"| {frames.get('received')}/{frames.get('expected')} | {hz or float('nan'):.1f} | "
          f"{lat.get('p50', float('nan')):.0f} / {lat.get('p95', float('nan')):.0f} | "
          f"{node.get('p50', float('nan')):.0f} / {node.get('p95', float('nan')):.0f} / "
          f"{node.get('max', float('nan')):.0f} |")
    ok = report.get("status") == "ok"
    limit = args.max_processing_p95_ms
    if limit is not None and not (isinstance(node.get("p95"), float) and node["p95"] <= limit):
        print(f"\nFAIL: node processing p95 {node.get('p95')} ms > {limit} ms")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
