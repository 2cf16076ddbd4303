"""`make demo`: one conversation through the live ROS 2 graph with the bundled demo model.

1. generate a multi-round two-person conversation (espeak-ng voices; a seed the demo model
   never saw in training) in the DualTalk layout,
2. pack it into an input rosbag (partner audio, agent TTS audio, partner face, ground truth),
3. bring the node graph up with the bring-up command (`dualtalk-ros bringup conversation`, the
   same nodes and YAML as `ros2 launch dualtalk_ros conversation.launch.py`), replay the
   conversation through it in real time and record its output bag; score the recording
   (metrics, frame rate, latency) into a report with a curves plot,
4. render a preview (partner | agent faces drawn from the coefficients as the head driver
   released them while the voice played, audio muxed in) as MP4,
   GIF and a PNG still,
5. print a one-screen summary.

Everything lands in ``demo-output/`` (override with DEMO_OUT). Knobs (environment):
DEMO_CHECKPOINT (default: the bundled live model ``models/dualtalk_live_demo.pt``; point it at
``models/dualtalk_cpu_demo.pt``, your own training or a converted released checkpoint: a
sliding-window model runs the sliding-window engine), DEMO_SECONDS (conversation length; 30, or
12 when CI=true), DEMO_SEED, DEMO_FACE_STATS (the face scale of the conversation: by default the
scale the model was trained on, :func:`face_scale_of`). The caller (`make demo`) confines DDS to loopback on a private domain.
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
DEMO_MODEL = ROOT / "models" / "dualtalk_live_demo.pt"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def run(*args: str | Path, quiet: bool = False, check: bool = True) -> int:
    """Run one step; its process (and the graph it may start) dies with the demo
    (``dualtalk_ros.procs``: parent-death signal), so a killed demo leaves nothing running."""
    from dualtalk_ros import procs

    cmd = [str(a) for a in args]
    print("$", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    pipe = subprocess.PIPE if quiet else None  # quiet: show the log only when it fails
    proc = procs.popen(cmd, cwd=ROOT, stdout=pipe, stderr=pipe, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        if quiet:
            sys.stderr.write((out or "")[-4000:] + (err or "")[-4000:])
        if check:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
    print(f"  ({time.monotonic() - t0:.1f} s)", flush=True)
    return proc.returncode


def conversation_facts(data: Path, clip: str) -> dict:
    """Turns (speaker changes + 1, backchannels included), phrases and voice of the conversation."""
    meta = json.loads((data / "synth.json").read_text())
    speakers = [p[0] for p in meta["clips"][clip]["phrases"]]
    rounds = 1 + sum(1 for a, b in zip(speakers, speakers[1:]) if a != b)
    return {"rounds": rounds, "phrases": len(speakers), "voice": meta["voice"]}


def headline(report: dict) -> dict:
    """The bag report's figures the summary (and ``bench/bench_bag_replay.py``) print."""
    return {"frames": report.get("frames") or {},
            "latency": report.get("latency_ms") or {},
            "node": (report.get("node_latency_ms") or {}).get("processing") or {},
            "hz": (report.get("rate") or {}).get("output_hz")}


def face_scale_of(checkpoint: Path) -> str:
    """The face scale (``dualtalk data synth --face-stats``) the model was trained on, so the
    demo conversation is on the scale the model knows: ``face_stats`` in the checkpoint's
    provenance when the export recorded it (``scripts/train_demo_model.sh`` does); otherwise
    ``legacy`` for a model that rescales the partner's face (``partner_motion_scale`` > 1 is
    the legacy ~0.1 data's recipe, as in the bundled cpu demo model) and ``real`` for any
    other (a converted released checkpoint learnt real EMOCA faces)."""
    from dualtalk_core.model.checkpoint import read_payload

    payload = read_payload(checkpoint)
    recorded = ((payload.get("extra") or {}).get("provenance") or {}).get("face_stats")
    if recorded:
        return str(recorded)
    scale = float((payload.get("config") or {}).get("partner_motion_scale", 1.0))
    return "legacy" if scale > 1.0 else "real"


def replay_conversation(out: Path, checkpoint: Path, seconds: float, seed: int,
                        faces: str) -> tuple:
    """Steps 1 to 3: synthesise a conversation, bag it, replay it through the live graph.

    -> (report dict, agent side path stem, partner side path stem, conversation facts);
    everything is written under ``out`` (the report, output bag and motion arrays at its top).
    """
    dualtalk, dualtalk_ros = BIN / "dualtalk", BIN / "dualtalk-ros"
    step("1. a two-person conversation (held out: the demo model never saw this seed)")
    data = out / "conversation"
    run(dualtalk, "data", "synth", "-o", data, "--pairs", "1", "--seed", seed,
        "--splits", "test=1", "--min-rounds", "4" if seconds >= 20 else "3", "--max-rounds", "6",
        "--min-seconds", seconds, "--max-seconds", seconds,
        "--face-stats", faces, quiet=True)  # the scale the model learnt
    clip = sorted(p.name[: -len("_speaker1.wav")] for p in (data / "test").glob("*_speaker1.wav"))[0]
    agent, partner = data / "test" / f"{clip}_speaker1", data / "test" / f"{clip}_speaker2"

    step("2. the conversation as an input rosbag")
    bags = out / "input_bag"
    run(dualtalk_ros, "bag", "make", data, f"{clip}_speaker1", "--split", "test", "-o", bags,
        "--overwrite", quiet=True)
    (bag,) = [p for p in bags.iterdir() if p.is_dir()]

    step("3. bring the graph up, replay in real time, record and score")
    # a failed run still writes its report (status failed/partial and why): show it, exit 1
    code = run(dualtalk_ros, "bag", "evaluate", bag, "-o", out, "--checkpoint", checkpoint,
               quiet=True, check=False)
    if not (out / "report.json").exists():
        raise subprocess.CalledProcessError(code, "dualtalk-ros bag evaluate")
    report = json.loads((out / "report.json").read_text())
    report["evaluate_exit"] = code
    return report, agent, partner, conversation_facts(data, clip)


def fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def timing(stats: dict | None) -> str:
    """``p50 / p95 / max ms (n)`` of a ``{p50, p95, max, n}`` report entry."""
    if not stats or not stats.get("n"):
        return "n/a" + (f" ({stats['reason']})" if stats and stats.get("reason") else "")
    return (f"p50 {fmt(stats.get('p50'), '+.0f')} / p95 {fmt(stats.get('p95'), '+.0f')} / max "
            f"{fmt(stats.get('max'), '+.0f')} ms (n {stats['n']})")


def summary_text(out: Path, report: dict, facts: dict, checkpoint: Path, label: str,
                 seconds: float, elapsed: float, previews: list[Path]) -> str:
    from dualtalk_ros import topics

    head = headline(report)
    frames, lat, node, hz = head["frames"], head["latency"], head["node"], head["hz"]
    metrics = report.get("metrics") or {}
    scaled, extras = metrics.get("scaled") or {}, metrics.get("extras") or {}

    def metric(name: str, group: str) -> str:
        return fmt((scaled.get(name) or {}).get(group))

    rel = lambda p: os.path.relpath(p, Path.cwd())  # noqa: E731
    lines = [
        f"DualTalk demo: done in {elapsed:.0f} s  (status: {report.get('status', '?')}"
        + ("" if report.get("status") == "ok" else f": {report.get('status_reason', '')}")
        + ")",
        f"  conversation  {seconds:.1f} s, {facts['rounds']} turns / {facts['phrases']} phrases,"
        f" {facts['voice']} voices",
        f"  model         {rel(checkpoint)}" + (f"  [{label}]" if label else ""),
        "  ROS graph     dualtalk-ros bringup conversation (conversation.yaml), "
        "real-time replay",
        f"  output        {frames.get('received', 0)}/{frames.get('expected', '?')} frames on "
        f"{topics.AGENT_BLENDSHAPES} at {fmt(hz, '.1f')} Hz; input-to-frame latency p50 "
        f"{fmt(lat.get('p50'), '.0f')} ms, p95 {fmt(lat.get('p95'), '.0f')} ms; "
        f"node processing p50 {fmt(node.get('p50'), '.0f')} ms",
        f"  lips on time  lip offset (head driver release - voice played) "
        f"{timing(report.get('lip_offset_ms'))}; listening reaction (partner input -> first "
        f"frame using it) {timing(report.get('listening_reaction_ms'))}",
        f"  quality       MSE exp/jaw/pose {metric('MSE', 'EXP')} / {metric('MSE', 'JAW')} / "
        f"{metric('MSE', 'POSE')}   FD-EXP {metric('FD', 'EXP')}   jaw vs own speech "
        f"r = {fmt(extras.get('jaw_speech_r'))}  (paper scale; vs this conversation's "
        f"rule-made ground truth)",
        "  files",
    ]
    files = [(out / "output_bag", "recorded graph output (rosbag2, mcap)"),
             (out / "input_bag", "the conversation as an input rosbag"),
             (out / "report.md", "metrics, frame rate and latency report"),
             (out / "report.png", "curves: EXP/JAW/POSE, prediction vs ground truth"),
             *[(p, "preview: partner | agent faces" + (" with audio" if p.suffix == ".mp4"
                                                      else "")) for p in previews]]
    for path, what in files:
        if path.exists():
            lines.append(f"    {rel(path):<34} {what}")
    return "\n".join(lines)


def main() -> int:
    t_start = time.monotonic()
    from dualtalk_ros import loopback
    assert loopback.is_confined(), "run the demo through `make demo` (it confines DDS to loopback)"
    out = Path(os.environ.get("DEMO_OUT", ROOT / "demo-output")).resolve()
    checkpoint = Path(os.environ.get("DEMO_CHECKPOINT") or DEMO_MODEL).resolve()
    seconds = float(os.environ.get("DEMO_SECONDS", "12" if CI else "30"))
    seed = int(os.environ.get("DEMO_SEED", "2026"))
    if not checkpoint.is_file():
        sys.exit(f"demo checkpoint not found: {checkpoint} (DEMO_CHECKPOINT=... to choose one)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    faces = os.environ.get("DEMO_FACE_STATS") or face_scale_of(checkpoint)
    report, agent, partner, facts = replay_conversation(out, checkpoint, seconds, seed, faces)
    dualtalk = BIN / "dualtalk"
    if report.get("status") != "ok":
        print(f"\nDualTalk demo: FAILED (status: {report.get('status')}: "
              f"{report.get('status_reason', '')}); see {out / 'report.md'}", flush=True)
        if not (out / "agent_motion.npy").exists():
            return 1

    step("4. preview: partner | agent as the head driver released it")
    # what a robot showed while its voice played (a late frame shows as the pose held before
    # it); the raw early stream only when the release could not be timed
    motion = out / "agent_motion_released.npy"
    if not motion.exists():
        print("  (release times not measured: the preview shows the raw stream)", flush=True)
        motion = out / "agent_motion.npy"
    previews = [out / "preview.mp4", out / "preview.gif", out / "preview.png"]
    common = ["--partner", out / "partner_motion.npy", "--audio", f"{agent}.wav",
              "--partner-audio", f"{partner}.wav",  # muxed into the MP4; "speaking" bars
              "--face-stats", faces]                # the model's (and data's) scale
    run(dualtalk, "render", motion, *common, "-o", previews[0], quiet=True)
    run(dualtalk, "render", motion, *common, "--fps", "12.5",
        "--duration", min(seconds, 12.0), "-o", previews[1], quiet=True)
    run(dualtalk, "render", motion, *common, "--start", min(seconds / 2, 6.0),
        "-o", previews[2], quiet=True)

    from dualtalk_core.model.checkpoint import read_payload
    label = read_payload(checkpoint)["extra"].get("label", "")
    text = summary_text(out, report, facts, checkpoint, label, seconds,
                        time.monotonic() - t_start, previews)
    (out / "summary.txt").write_text(text + "\n")
    print("\n" + text)
    return 0 if report.get("status") == "ok" and report.get("evaluate_exit") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
