#!/usr/bin/env python
"""How far ahead a TTS must publish ``agent/audio`` for the live model (issue 17, TTS contract).

Runs the real nodes over DDS (loopback, one process): two file players (partner on time, agent
``lead`` seconds ahead), ``dualtalk_node`` with the bundled live demo model and ``head_driver``
releasing frames at their stamps, on the shared sample clip; for each lead prints the agent audio
that came too late for the model (``agent_late_chunks``, frames computed without it), how early
frames reached the head driver (stamp - arrival: must stay > 0 for on-time lips) and the head
driver's ``late_frames``. The contract is ``self_lookahead_s - partner_lookahead_s`` (0.28 s for
``live``) plus what this shows a margin must cover.

    bash scripts/with_ros_env.sh .venv/bin/python bench/bench_tts_lead.py --leads 0.24,0.28,0.3
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
import soundfile as sf
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "dualtalk-sample" / "xkHwlcDSOjc_sub_video_109_000"
NS = 1_000_000_000


def run_once(lead: float, seconds: float, wav_dir: Path) -> dict:
    from dualtalk_msgs.msg import Blendshapes

    from dualtalk_ros import topics
    from dualtalk_ros.audio_file_player_node import AudioFilePlayerNode
    from dualtalk_ros.conversions import stamp_to_ns
    from dualtalk_ros.dualtalk_node import DualTalkNode
    from dualtalk_ros.head_driver_node import HeadDriverNode
    from dualtalk_ros.params import to_parameters
    from dualtalk_ros.qos import reliable_qos

    ctx = Context()
    rclpy.init(context=ctx)
    node = DualTalkNode(context=ctx, parameter_overrides=to_parameters({
        "checkpoint": str(ROOT / "models" / "dualtalk_live_demo.pt"), "end_of_stream_s": 0.5,
        "torch_threads": 1, "diagnostics_period_s": 0.0}))
    head = HeadDriverNode(context=ctx, parameter_overrides=to_parameters({
        "joint_map_file": "head_6dof.yaml", "diagnostics_period_s": 0.0}))
    probe = Node("lead_probe", context=ctx)
    early_ms: list[float] = []
    probe.create_subscription(Blendshapes, topics.AGENT_BLENDSHAPES, lambda m: early_ms.append(
        (stamp_to_ns(m.header.stamp) - time.time_ns()) / 1e6), reliable_qos())
    origin_s = time.time() + 1.5
    players = [AudioFilePlayerNode(
        context=ctx, name=f"{who}_player", parameter_overrides=to_parameters({
            "wav_files": [str(wav_dir / f"{who}.wav")], "origin_stamp_s": origin_s,
            "frame_id": who, "lead_time_s": ahead}),
        cli_args=["--ros-args", "-r", f"{topics.PLAYER_AUDIO}:={topic}"])
        for who, topic, ahead in (("partner", topics.PARTNER_AUDIO, 0.0),
                                  ("agent", topics.AGENT_AUDIO, lead))]
    ex = SingleThreadedExecutor(context=ctx)
    for x in [node, head, probe, *players]:
        ex.add_node(x)
    deadline = time.monotonic() + seconds + 6.0
    try:
        while time.monotonic() < deadline and node.counters["conversations_ended"] < 1:
            ex.spin_once(timeout_sec=0.02)
        values = node.diagnostics_values()
        late = head.counters["late_frames"]
    finally:
        ex.shutdown()
        node.close()
        for x in [node, head, probe, *players]:
            x.destroy_node()
        rclpy.shutdown(context=ctx)
    e = np.array(early_ms)
    return {"lead_s": lead, "frames": int(e.size),
            "agent_late_chunks": sum(int(v) for k, v in values.items()
                                     if k.endswith("agent_late_chunks")),
            "early_ms_p5": float(np.percentile(e, 5)), "early_ms_p50": float(np.median(e)),
            "early_ms_min": float(e.min()), "head_late_frames": int(late)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", default="0.24,0.28,0.30,0.34")
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for who, spk in (("partner", 1), ("agent", 2)):
            x, sr = sf.read(f"{CLIP}_speaker{spk}.wav", dtype="float32")
            sf.write(Path(tmp) / f"{who}.wav", x[:int(args.seconds * sr)], sr, subtype="FLOAT")
        print("| agent lead (s) | frames | agent_late_chunks | frame early by p5 / p50 / min "
              "(ms) | head late_frames |\n|---|---|---|---|---|")
        for lead in (float(v) for v in args.leads.split(",")):
            r = run_once(lead, args.seconds, Path(tmp))
            print(f"| {r['lead_s']:.2f} | {r['frames']} | {r['agent_late_chunks']} | "
                  f"{r['early_ms_p5']:.0f} / {r['early_ms_p50']:.0f} / {r['early_ms_min']:.0f} | "
                  f"{r['head_late_frames']} |", flush=True)


if __name__ == "__main__":
    main()
