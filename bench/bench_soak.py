#!/usr/bin/env python
"""Soak: a long real-time conversation through the live graph; frames, rate, drops and RSS.

Why: leaks and slow drifts (a buffer that grows with the conversation, a queue that starts
dropping after minutes) do not show in the short clips of the tests. This runs the first steps
of ``make demo`` (``scripts/demo.py``) with a conversation of ``--minutes`` (default 10):
``dualtalk data synth`` -> ``dualtalk-ros bag make`` -> ``dualtalk-ros bag evaluate`` (the
bring-up graph, one process per node, replayed in real time and recorded), while sampling the
resident memory (VmRSS) of every node process once a second. It prints a Markdown table:
frames received/expected, output rate, every drop counter the nodes reported on /diagnostics,
and per node the RSS at start (``--settle`` seconds after the graph is up, once the model is
warm) and at the end of the replay, with the growth. Targets (issue 20): RSS growth <= 5 %,
0 frames lost; ``--check`` exits 1 when they are missed. DDS stays on loopback (run it through
``make bench`` or ``scripts/with_ros_env.sh``).

    python bench/bench_soak.py --minutes 10
    python bench/bench_soak.py --minutes 1      # a quick run
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import demo  # noqa: E402  (scripts/demo.py: the conversation -> bag -> live graph steps)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _node_processes(root: int) -> dict[str, int]:
    """Bring-up node processes below ``root``: node name -> pid (from their command lines)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = {}, [root]
    while frontier:
        p = frontier.pop()
        for child in [c for c, pp in parent.items() if pp == p]:
            frontier.append(child)
            try:
                cl = (Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
            if "dualtalk_ros.bringup_node" in cl:
                found[Path(cl.split("dualtalk_ros.bringup_node", 1)[1].split()[0]).stem] = child
    return found


class RssSampler(threading.Thread):
    """Once a second: the RSS of each node process below ``root`` (first and last sample kept
    per node; a node whose pid changes, i.e. was respawned, is reported as such)."""

    def __init__(self, root: int, settle_s: float) -> None:
        super().__init__(daemon=True)
        self.root, self.settle_s = root, settle_s
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.pids: dict[str, set[int]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        seen_at = None
        while not self.stop.wait(1.0):
            procs = _node_processes(self.root)
            if procs and seen_at is None:
                seen_at = time.monotonic()
            if not procs or time.monotonic() - seen_at < self.settle_s:
                continue
            for name, pid in procs.items():
                rss = _rss_mb(pid)
                if rss is None:
                    continue
                self.first.setdefault(name, rss)
                self.last[name] = rss
                self.pids.setdefault(name, set()).add(pid)


def soak(out: Path, checkpoint: Path, minutes: float, seed: int, settle_s: float):
    seconds = minutes * 60.0
    data = out / "conversation"
    demo.run(demo.BIN / "dualtalk", "data", "synth", "-o", data, "--pairs", "1", "--seed", seed,
             "--splits", "test=1", "--min-rounds", max(3, int(seconds / 6)),
             "--max-rounds", max(4, int(seconds / 4)), "--min-seconds", seconds,
             "--max-seconds", seconds, quiet=True)
    clip = sorted(p.name[:-len("_speaker1.wav")]
                  for p in (data / "test").glob("*_speaker1.wav"))[0]
    demo.run(demo.BIN / "dualtalk-ros", "bag", "make", data, f"{clip}_speaker1", "--split",
             "test", "-o", out / "input_bag", "--overwrite", quiet=True)
    (bag,) = [p for p in (out / "input_bag").iterdir() if p.is_dir()]
    from dualtalk_ros import procs
    argv = [str(demo.BIN / "dualtalk-ros"), "bag", "evaluate", str(bag), "-o", str(out / "eval"),
            "--checkpoint", str(checkpoint), "--no-plot"]
    print("$", " ".join(argv), flush=True)
    log = (out / "evaluate.log").open("w")
    proc = procs.popen(argv, stdout=log, stderr=subprocess.STDOUT)
    sampler = RssSampler(proc.pid, settle_s)
    sampler.start()
    code = proc.wait()
    sampler.stop.set()
    sampler.join(timeout=5)
    log.close()
    report = json.loads((out / "eval" / "report.json").read_text())
    return code, report, sampler


def table(minutes: float, code: int, report: dict, sampler: RssSampler) -> tuple[str, bool]:
    frames, rate = report.get("frames") or {}, report.get("rate") or {}
    dropped = report.get("dropped") or {}
    drops = ", ".join(f"{name.split(':')[0]}.{k}={n}" for name, c in dropped.items()
                      for k, n in c.items()) or "none"
    lost = (frames.get("expected") or 0) - (frames.get("unique") or 0)
    lines = [f"## Soak: {minutes:g} min real-time conversation through the graph "
             f"(status {report.get('status')}, bag evaluate exit {code})", "",
             "| frames received / expected | lost | output Hz | dropped (/diagnostics) |",
             "|---:|---:|---:|---|",
             f"| {frames.get('unique')} / {frames.get('expected')} | {lost} | "
             f"{rate.get('output_hz') or float('nan'):.2f} | {drops} |", "",
             "| node | RSS start MB | RSS end MB | growth |", "|---|---:|---:|---:|"]
    worst = 0.0
    for name in sorted(sampler.first):
        a, b = sampler.first[name], sampler.last[name]
        growth = (b - a) / a * 100.0
        worst = max(worst, growth)
        note = " (respawned)" if len(sampler.pids.get(name, ())) > 1 else ""
        lines.append(f"| {name}{note} | {a:.0f} | {b:.0f} | {growth:+.1f} % |")
    ok = code == 0 and lost == 0 and worst <= 5.0 and report.get("status") == "ok"
    lines += ["", f"targets (RSS growth <= 5 %, 0 frames lost): {'met' if ok else 'NOT met'}"]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--checkpoint", type=Path, default=demo.DEMO_MODEL)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds after the graph is up before the 'start' RSS sample")
    ap.add_argument("--keep", type=Path, help="keep the run's files in this folder")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    from dualtalk_ros import loopback
    if not loopback.is_confined():
        sys.exit("run through `make bench` or scripts/with_ros_env.sh (DDS on loopback)")
    with tempfile.TemporaryDirectory(prefix="bench_soak_") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        code, report, sampler = soak(out, args.checkpoint.resolve(), args.minutes, args.seed,
                                     args.settle)
    text, ok = table(args.minutes, code, report, sampler)
    print(text)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
