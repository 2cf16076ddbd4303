"""`make demo`: the main job end to end, on CPU, in about eleven minutes.

1. synthesise a small two-person conversation data set (DualTalk layout),
2. train the CPU-sized DualTalk model on it for a few minutes,
3. score it with the paper's metrics against the paper's baselines (Table 2 format),
4. predict one held-out clip offline and plot it,
5. make rosbags from held-out clips (and from the real sample clip in ../shared when present),
6. replay them in real time through the live ROS 2 node graph (bring-up), record its output and
   score it: metrics, latency, dropped frames, a report with a plot.

Everything lands under ``out/demo/`` (override with DEMO_OUT). Steps whose output already exists
are reused (set DEMO_FRESH=1 to redo everything). DEMO_TRAIN_MINUTES bounds training (default 8:
on 2 cores the cpu preset leaves its mean-motion plateau after ~400 steps, about 6 minutes).
The caller (`make demo`) confines DDS to loopback on a private domain.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = Path(os.environ.get("DEMO_OUT", ROOT / "out" / "demo"))
TRAIN_MINUTES = float(os.environ.get("DEMO_TRAIN_MINUTES", "8"))
SHARED_SAMPLE = ROOT.parent / "shared" / "dualtalk-sample"


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def run(*args: str | Path) -> None:
    cmd = [str(a) for a in args]
    print("$", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(f"  ({time.monotonic() - t0:.1f} s)", flush=True)


def main() -> int:
    if os.environ.get("DEMO_FRESH") == "1" and OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True, exist_ok=True)
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST", \
        "run the demo through `make demo` (it confines DDS to loopback)"
    dualtalk, dualtalk_ros = BIN / "dualtalk", BIN / "dualtalk-ros"
    data = OUT / "data"
    ckpt = OUT / "train" / "best.pt"

    step("1. synthetic conversations (espeak-ng voices when installed)")
    if not (data / "test").is_dir():
        run(dualtalk, "data", "synth", "-o", data, "--pairs", "40", "--seed", "0",
            "--max-seconds", "20")
    run(dualtalk, "data", "check", data, "--split", "test")

    step(f"2. train the cpu preset (at most {TRAIN_MINUTES:g} minutes)")
    if not ckpt.exists():
        run(dualtalk, "train", "--config", ROOT / "config" / "train_cpu.yaml", "--data", data,
            "--out", OUT / "train", "--max-minutes", str(TRAIN_MINUTES), "--no-progress")

    step("3. paper metrics vs baselines on the held-out split")
    run(dualtalk, "evaluate", "--checkpoint", ckpt, "--data", data, "--split", "test",
        "--baselines", "all", "--method-name", "DualTalk cpu preset (demo)",
        "--markdown", OUT / "evaluation.md", "--json", OUT / "evaluation.json",
        "--per-clip", OUT / "evaluation_per_clip.csv")

    step("4. one held-out clip: offline inference and plot")
    clip = sorted(p.name[: -len("_speaker1.wav")] for p in (data / "test").glob("*_speaker1.wav"))[0]
    side, partner = data / "test" / f"{clip}_speaker1", data / "test" / f"{clip}_speaker2"
    pred = OUT / f"{clip}_speaker1_pred.npy"
    run(dualtalk, "infer", "--checkpoint", ckpt, "--self-audio", f"{side}.wav",
        "--partner-audio", f"{partner}.wav", "--partner-motion", f"{partner}.npz", "-o", pred)
    run(dualtalk, "plot", pred, "--gt", f"{side}.npz", "--partner", f"{partner}.npz",
        "--self-audio", f"{side}.wav", "--partner-audio", f"{partner}.wav",
        "-o", OUT / f"{clip}_speaker1.png")

    step("5. rosbags from held-out clips (+ the real sample clip when ../shared has it)")
    bags = OUT / "bags"
    run(dualtalk_ros, "bag", "make", data, clip, "--split", "test", "-o", bags, "--overwrite")
    if SHARED_SAMPLE.is_dir():
        run(dualtalk_ros, "bag", "make", SHARED_SAMPLE, "-o", bags, "--overwrite")

    step("6. replay through the live node graph in real time, record, score")
    report = OUT / "bag_report"
    run(dualtalk_ros, "bag", "evaluate", bags, "-o", report, "--checkpoint", ckpt)

    step("results")
    print((OUT / "evaluation.md").read_text())
    summary = report / "summary.md"
    if summary.exists():
        print(summary.read_text())
    print(f"outputs under {OUT}:")
    for path in sorted(OUT.glob("*")) + sorted(report.glob("*")):
        print("  ", path.relative_to(OUT))
    metrics = json.loads((OUT / "evaluation.json").read_text())
    print("evaluation.json keys:", ", ".join(sorted(metrics)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
