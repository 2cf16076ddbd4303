#!/usr/bin/env python
"""Streaming benchmarks: per-hop compute, real-time factor, peak RSS, streaming-vs-offline error,
CPU speed-ups.  Prints Markdown tables.

Why this shape: the targets in issue 5 are about the *streaming* path on the 2-core dev box
(2 torch threads): ``cpu`` preset at default W/L/H should reach RTF <= 0.2, p95 per-hop compute
<= 50 ms, peak RSS <= 1.5 GB, and stay within 10 % of the offline output's per-dim std.  Each
preset runs in its own subprocess so peak RSS is that preset's alone.

Input: the real sample clip in ``../shared/dualtalk-sample`` (agent = speaker 2, partner =
speaker 1 with its tracked face), or synthetic noise bursts when it is absent.  Models have random
weights unless ``--checkpoint`` names a trained one.  Pushes are realistic: 20 ms partner chunks,
agent audio 300 ms ahead (TTS), each face frame once its audio has arrived.

    python bench/bench_streaming.py                      # all sections, every registry preset
    python bench/bench_streaming.py --skip-paper --sections stream,diff
    python bench/bench_streaming.py --sections live --clip-seconds 10 --long-minutes 1
                                                         # live model vs the cpu window model
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = REPO.parent / "shared" / "dualtalk-sample"
SAMPLE_CLIP = "xkHwlcDSOjc_sub_video_109_000"
TARGETS = {"rtf": 0.2, "p95_ms": 50.0, "rss_mb": 1536.0, "diff": 0.10}
WLH_SWEEP = [  # (window_s, lookahead_s, hop_s, crossfade_s)
    (1.0, 0.2, 0.2, 0.16), (2.0, 0.4, 0.2, 0.2), (4.0, 0.4, 0.2, 0.2), (4.0, 0.4, 0.4, 0.36),
    (4.0, 0.8, 0.4, 0.4),
    (8.0, 0.4, 0.4, 0.36), (8.0, 0.8, 0.4, 0.4), (8.0, 2.0, 0.8, 0.8)]


# ------------------------------------------------------------------------------------------ data
def load_clip(seconds: float, sample_dir: Path, data_root: str | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(partner audio, agent audio, partner motion [T,56], description), ``seconds`` long.

    From the first test clip of ``data_root`` (DualTalk layout) when given, else the shared
    sample clip, else synthetic noise bursts."""
    from dualtalk_core.layout import SAMPLE_RATE, flame56_from_npz, num_frames_for_samples

    n = int(round(seconds * SAMPLE_RATE))
    npz = sample_dir / f"{SAMPLE_CLIP}_speaker1.npz"
    if data_root:
        from dualtalk_core.data.dataset import load_split

        sides, _ = load_split(data_root, "test", max_clips=1)
        side = sides[0]
        partner, agent, motion = side.partner_audio, side.self_audio, side.partner_motion
        n = min(n, partner.shape[0])
        desc = f"{side.name} from {data_root}/test ({n / SAMPLE_RATE:.1f} s)"
    elif npz.exists():
        from dualtalk_core.media.audio_io import load_wav

        partner = load_wav(sample_dir / f"{SAMPLE_CLIP}_speaker1.wav")
        agent = load_wav(sample_dir / f"{SAMPLE_CLIP}_speaker2.wav")
        motion = flame56_from_npz(np.load(npz), str(npz))
        n = min(n, partner.shape[0], agent.shape[0])
        desc = f"sample clip {SAMPLE_CLIP} ({n / SAMPLE_RATE:.1f} s)"
    else:
        rng = np.random.default_rng(0)
        t = np.arange(n) / SAMPLE_RATE
        env = (np.sin(2 * np.pi * 0.2 * t) > 0).astype(np.float32)
        partner = (0.1 * rng.standard_normal(n) * env).astype(np.float32)
        agent = (0.1 * rng.standard_normal(n) * (1 - env)).astype(np.float32)
        ft = np.arange(num_frames_for_samples(n))[:, None] / 25.0
        motion = (0.3 * np.sin(2 * np.pi * (0.2 + np.arange(56)[None] / 40) * ft)).astype(np.float32)
        desc = f"synthetic noise bursts ({n / SAMPLE_RATE:.1f} s; sample clip absent)"
    frames = num_frames_for_samples(n)
    motion = motion[:frames]
    if motion.shape[0] < frames:
        motion = np.concatenate([motion, np.repeat(motion[-1:], frames - motion.shape[0], 0)])
    return partner[:n], agent[:n], motion, desc


def build_model(preset: str, checkpoint: str | None, seed: int = 0):
    import torch

    if checkpoint:
        from dualtalk_core.model.checkpoint import load_checkpoint

        model, _ = load_checkpoint(checkpoint, map_location="cpu")
        return model.eval()
    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk

    torch.manual_seed(seed)
    return DualTalk(get_preset(preset)).eval()


def stream(model, cfg, partner, agent, motion, device="cpu", chunk=320, agent_ahead_s=0.3):
    """Feed a :class:`StreamingSession` like a live system (what the ROS node runs); returns
    (weights [T,56], runner stats, runner counters)."""
    from dualtalk_core.layout import SAMPLE_RATE, SAMPLES_PER_FRAME
    from dualtalk_core.streaming.runners import make_runner
    from dualtalk_core.streaming.session import NS_PER_FRAME, StreamingSession

    session = StreamingSession(make_runner("window", model, cfg, device=device))
    ahead = int(agent_ahead_s * SAMPLE_RATE)
    session.push_agent_audio(agent[:ahead], 0)
    hops, next_face = [], 0
    for pos in range(0, partner.shape[0], chunk):
        if pos + ahead < agent.shape[0]:
            session.push_agent_audio(agent[pos + ahead: pos + ahead + chunk], pos + ahead)
        session.push_partner_audio(partner[pos: pos + chunk], pos)
        clock = min(pos + chunk, partner.shape[0])
        while next_face < motion.shape[0] and (next_face + 1) * SAMPLES_PER_FRAME <= clock:
            session.push_partner_face(motion[next_face], next_face * NS_PER_FRAME)
            next_face += 1
        hops += session.step()
    hops += session.finish()
    runner = session.runner
    return np.concatenate([h.weights for h in hops]), runner.stats, dict(runner.counters)


def offline(model, partner, agent, motion, device="cpu"):
    import torch

    with torch.inference_mode():
        out = model(torch.from_numpy(agent)[None].to(device), torch.from_numpy(partner)[None].to(device),
                    torch.from_numpy(motion)[None].to(device), normalize_audio=True)
    return out[0].float().cpu().numpy()


def rel_diff(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute difference over frames and the 56 dims, divided by the offline output's
    per-dim standard deviation over time averaged over the 56 dims.

    A ratio of averages, not an average of ratios: a dim the model keeps (nearly) constant has a
    (nearly) zero std and would make a per-dim ratio meaningless."""
    t = min(pred.shape[0], ref.shape[0])
    std = float(ref[:t].std(axis=0).mean())
    return float(np.abs(pred[:t] - ref[:t]).mean()) / max(std, 1e-12)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------------------------------ workers
def worker_stream(args) -> dict:
    """One preset: warm up, then a full streaming run; per-hop timings, RTF, peak RSS."""
    import torch

    from dualtalk_core.model.presets import preset

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = build_model(args.preset, args.checkpoint).to(args.device)
    build_s = time.perf_counter() - t0
    cfg = preset(args.preset).streaming_config()
    partner, agent, motion, desc = load_clip(args.clip_seconds, Path(args.sample_dir))
    warm = int(min(partner.shape[0], (cfg.window_s + cfg.lookahead_s + 2 * cfg.hop_s) * 16000))
    if args.preset != "paper":
        stream(model, cfg, partner[:warm], agent[:warm], motion[: -(-warm // 640)], args.device)
    else:  # one short forward only: a paper-sized warm-up costs as much as the run itself
        offline(model, partner[:12800], agent[:12800], motion[:20], args.device)
    cpu0 = time.process_time()
    _, stats, counters = stream(model, cfg, partner, agent, motion, args.device)
    cpu_ms_per_hop = (time.process_time() - cpu0) * 1000 / max(stats["hops"], 1)
    return dict(cpu_ms_per_hop=cpu_ms_per_hop, load=os.getloadavg()[0],
                preset=args.preset, params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                build_s=build_s, clip=desc, clip_s=partner.shape[0] / 16000, config=cfg.to_dict(),
                stats=stats, rss_mb=peak_rss_mb(), threads=torch.get_num_threads(),
                face_filled=counters["partner_face_filled_frames"])


def _variant_model(model, variant: str):
    """Apply one CPU speed-up; returns a callable with the model's forward signature."""
    import torch

    if variant in ("fp32", "fp32-1thread"):
        return model
    if variant == "int8-dynamic":
        # nn.TransformerEncoderLayer's fast-path probe reads ``linear1.weight``, which is a method
        # on a quantised Linear; without the fast path the layers run their plain Python forward.
        torch.backends.mha.set_fastpath_enabled(False)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear, torch.nn.LSTM},
                                                      dtype=torch.qint8)
    if variant == "bf16-autocast":
        class Autocast(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, *a, **k):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return self.inner(*a, **k).float()
        return Autocast(model).eval()
    if variant == "torch.compile":
        return torch.compile(model)
    raise ValueError(f"unknown variant {variant!r}")


def worker_speedup(args) -> dict:
    """One (preset, variant): steady-state hop = forward on a (W+L) window of the clip."""
    import torch

    from dualtalk_core.model.presets import preset

    torch.set_num_threads(1 if args.variant == "fp32-1thread" else args.threads)
    base = build_model(args.preset, args.checkpoint)
    cfg = preset(args.preset).streaming_config()
    partner, agent, motion, _ = load_clip(max(args.clip_seconds, cfg.window_s + cfg.lookahead_s),
                                          Path(args.sample_dir))
    n = int(round((cfg.window_s + cfg.lookahead_s) * 16000))
    off = min(16000, partner.shape[0] - n) if partner.shape[0] > n else 0
    sl = slice(off, off + n)
    p, a, m = partner[sl], agent[sl], motion[off // 640: off // 640 + n // 640]
    ref = offline(base, p, a, m)
    model = _variant_model(base, args.variant)
    t0 = time.perf_counter()
    out = offline(model, p, a, m)                      # warm-up (compiles for torch.compile)
    first_s = time.perf_counter() - t0
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        out = offline(model, p, a, m)
        times.append((time.perf_counter() - t0) * 1000)
    hop_ms = float(np.median(times))
    return dict(preset=args.preset, variant=args.variant, threads=torch.get_num_threads(),
                window_s=n / 16000, hop_s=cfg.hop_s, hop_ms=hop_ms, rtf=hop_ms / 1000 / cfg.hop_s,
                first_s=first_s, max_err=float(np.abs(out - ref).max()),
                mean_err=float(np.abs(out - ref).mean()), rel=rel_diff(out, ref), rss_mb=peak_rss_mb())


def run_worker(kind: str, preset: str, args, variant: str = "", timeout: float = 1800) -> dict:
    reps = args.paper_reps if preset == "paper" else args.reps
    cmd = [sys.executable, __file__, "--worker", kind, "--preset", preset, "--threads", str(args.threads),
           "--long-minutes", str(getattr(args, "long_minutes", 1.0)),
           "--sample-dir", str(args.sample_dir), "--device", args.device, "--reps", str(reps),
           "--clip-seconds", str(args.paper_clip_seconds if preset == "paper" else args.clip_seconds)]
    if variant:
        cmd += ["--variant", variant]
    if args.checkpoint and preset == "checkpoint":
        cmd += ["--checkpoint", args.checkpoint]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"exit {proc.returncode}: {tail[0][:120]}"}


# ------------------------------------------------------------------------------------------ tables
def ok(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def section_stream(args, presets: list[str]) -> list[str]:
    lines = ["## Streaming per preset", "",
             f"{args.threads} torch threads, device {args.device}, one subprocess per preset "
             "(peak RSS is that preset alone, Python + torch included). Default W/L/H per preset "
             "(the preset registry, `dualtalk_core.model.presets`), run through `StreamingSession`; 20 ms partner chunks, agent audio 300 ms ahead. hop ms = "
             "wall clock per hop (the target); CPU ms/hop = process CPU time (all threads) per hop, "
             "which contention from other processes does not inflate; load avg = 1-min load when "
             "the preset finished.", "",
             "| preset | params (M) | W / L / H (s) | clip (s) | hops | hop p50 ms | hop p95 ms | "
             "hop p99 ms | RTF | CPU ms/hop | peak RSS MB | latency (s) | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    results = {}
    from dualtalk_core.model.presets import PRESETS

    for preset in presets:
        if preset in PRESETS and PRESETS[preset].runner != "window":
            continue                      # causal presets: the "live" section
        r = run_worker("stream", preset, args)
        results[preset] = r
        if "error" in r:
            lines.append(f"| {preset} | - | - | - | - | - | - | - | - | - | - | {r['error']} | - |")
            continue
        s, c = r["stats"], r["config"]
        lines.append(
            f"| {preset} | {r['params_m']:.1f} | {c['window_s']:g} / {c['lookahead_s']:g} / {c['hop_s']:g} | "
            f"{r['clip_s']:.1f} | {s['hops']:.0f} | {s['hop_ms_p50']:.1f} | {s['hop_ms_p95']:.1f} | "
            f"{s['hop_ms_p99']:.1f} | {s['rtf']:.3f} | {r['cpu_ms_per_hop']:.1f} | {r['rss_mb']:.0f} | "
            f"{s['latency_s']:.2f} | {r['load']:.1f} |")
    if "cpu" in results and "error" not in results["cpu"]:
        r = results["cpu"]
        lines += ["", f"`cpu` targets: RTF {r['stats']['rtf']:.3f} <= 0.2 {ok(r['stats']['rtf'], 0.2)}; "
                  f"p95 {r['stats']['hop_ms_p95']:.1f} ms <= 50 ms {ok(r['stats']['hop_ms_p95'], 50)}; "
                  f"peak RSS {r['rss_mb']:.0f} MB <= 1536 MB {ok(r['rss_mb'], 1536)}."]
    if results:
        first = next(iter(v for v in results.values() if "clip" in v), None)
        if first:
            lines += ["", f"Input: {first['clip']}."]
    return lines + [""]


def section_diff(args, checkpoint: str | None = None, data_root: str | None = None) -> list[str]:
    import torch

    from dualtalk_core.streaming.config import StreamingConfig

    torch.set_num_threads(args.threads)
    preset = args.diff_preset
    model = build_model(preset, checkpoint)
    partner, agent, motion, desc = load_clip(args.clip_seconds, Path(args.sample_dir), data_root)
    ref = offline(model, partner, agent, motion)
    std = float(ref.std(axis=0).mean())
    lines = [f"## Streaming vs offline ({'trained checkpoint' if checkpoint else 'random weights'})", "",
             f"Model: {'checkpoint ' + checkpoint if checkpoint else preset + ' preset, random weights'}; "
             f"input: {desc}. Error = mean|streaming - offline| over frames and dims / the offline "
             f"output's per-dim std over time averaged over dims ({std:.4f}); target <= "
             f"{TARGETS['diff']:.2f}. The last rows run the model alone on independent blocks: "
             "the part of the error that is the model's dependence on context, not the engine.", "",
             "| W (s) | L (s) | H (s) | crossfade (s) | norm | latency L+H (s) | hop p50 ms | RTF | error / std |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [(w, la, h, cf, "running") for w, la, h, cf in WLH_SWEEP]
    rows.insert(2, (2.0, 0.4, 0.2, 0.2, "window"))
    for w, la, h, cf, norm in rows:
        cfg = StreamingConfig(window_s=w, lookahead_s=la, hop_s=h, crossfade_s=cf, norm_mode=norm)
        pred, stats, _ = stream(model, cfg, partner, agent, motion)
        lines.append(f"| {w:g} | {la:g} | {h:g} | {cf:g} | {norm} | {la + h:.2f} | "
                     f"{stats['hop_ms_p50']:.1f} | {stats['rtf']:.3f} | {rel_diff(pred, ref):.3f} |")
    # floor: the model itself on independent windows (no streaming engine involved)
    for win_s in (2.4, 8.0):
        f = int(win_s * 25)
        parts = []
        for s in range(0, motion.shape[0], f):
            a, b = s * 640, min((s + f) * 640, partner.shape[0])
            parts.append(offline(model, partner[a:b], agent[a:b], motion[s: s + f]))
        lines.append(f"| (offline on independent {win_s:g} s blocks, no engine) | | | | per-block | | | | "
                     f"{rel_diff(np.concatenate(parts), ref):.3f} |")
    return lines + [""]


def section_speedups(args, presets: list[str]) -> list[str]:
    variants = ["fp32", "fp32-1thread", "int8-dynamic", "bf16-autocast", "torch.compile"]
    lines = ["## CPU speed-ups (steady-state hop)", "",
             "Hop compute = one forward on a full (W+L) window of the clip, median of "
             f"{args.reps} runs ({args.paper_reps} for paper) after a warm-up; RTF = hop compute / H. Error vs the float32 output "
             "on the same window (max and mean absolute, and mean/std as above).", "",
             "| preset | variant | threads | window (s) | hop ms | RTF | first call s | max abs err | "
             "mean abs err | err / std | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for preset in presets:
        best = None
        for variant in variants:
            if preset == "paper" and variant == "torch.compile" and not args.paper_compile:
                lines.append(f"| {preset} | {variant} | - | - | - | - | - | - | - | - | skipped "
                             "(--paper-compile) |")
                continue
            r = run_worker("speedup", preset, args, variant=variant, timeout=args.variant_timeout)
            if "error" in r:
                lines.append(f"| {preset} | {variant} | - | - | - | - | - | - | - | - | {r['error']} |")
                continue
            lines.append(
                f"| {preset} | {variant} | {r['threads']} | {r['window_s']:.1f} | {r['hop_ms']:.1f} | "
                f"{r['rtf']:.3f} | {r['first_s']:.1f} | {r['max_err']:.2e} | {r['mean_err']:.2e} | "
                f"{r['rel']:.4f} | {r['rss_mb']:.0f} |")
            if r["max_err"] <= 1e-2 and (best is None or r["hop_ms"] < best[1]):
                best = (variant, r["hop_ms"])
        if best:
            lines.append(f"| {preset} | **best within 1e-2: {best[0]}** | | | {best[1]:.1f} | | | | | | |")
    return lines + [""]


# ------------------------------------------------------------------------------------------ live
LIVE_TARGETS = {"rtf_200": 0.01, "p95_40": 10.0, "flat": 1.1, "diff": 1e-5, "rss_mb": 400.0}
WINDOW_S = 10.0   # cost windows of the long run: the first and the last 10 s of conversation


def timed_stream(session, partner, agent, motion, push_ms: float, lead_s: float):
    """Push a clip in ``push_ms`` pieces through a session (agent ``lead_s`` ahead, face frames
    once their audio is in) -> (frames by index, wall ms per push incl. its step)."""
    from dualtalk_core.layout import SAMPLE_RATE, SAMPLES_PER_FRAME
    from dualtalk_core.streaming.session import NS_PER_FRAME

    chunk, lead = int(push_ms * SAMPLE_RATE / 1000), int(lead_s * SAMPLE_RATE)
    out, ms, a, face = {}, [], 0, 0
    for pos in range(0, partner.shape[0], chunk):
        end = min(pos + chunk, partner.shape[0])
        t0 = time.perf_counter()
        session.push_partner_audio(partner[pos:end], pos)
        if min(end + lead, agent.shape[0]) > a:
            session.push_agent_audio(agent[a:end + lead], a)
            a = min(end + lead, agent.shape[0])
        while face < motion.shape[0] and face * SAMPLES_PER_FRAME < end:
            session.push_partner_face(motion[face], face * NS_PER_FRAME)
            face += 1
        hops = session.step()
        ms.append((time.perf_counter() - t0) * 1000)
        out.update({f.index: f.weights for h in hops for f in h.frames})
    out.update({f.index: f.weights for h in session.finish() for f in h.frames})
    return out, np.asarray(ms)


def _live_session(model, preset_name: str):
    from dualtalk_core.model.presets import preset
    from dualtalk_core.streaming.clip import default_agent_lead_s
    from dualtalk_core.streaming.runners import make_runner
    from dualtalk_core.streaming.session import StreamingSession

    entry = preset(preset_name)
    cfg = entry.streaming_config().replace(end_of_stream_s=0.0)
    session = StreamingSession(make_runner(entry.runner, model, cfg), log=lambda *a, **k: None)
    session.runner.warm_up()
    lead = default_agent_lead_s(session) if entry.runner == "live" else 0.3
    return session, lead


def worker_live(args) -> dict:
    """One model: per-push cost at 40 and 200 ms pushes, RTF, streamed-vs-offline difference,
    then a long conversation (the clip tiled) for the flat-cost check; peak RSS of it all."""
    import torch

    from dualtalk_core.model.inference import predict_clip

    torch.set_num_threads(args.threads)
    model = build_model(args.preset, args.checkpoint).to(args.device)
    partner, agent, motion, desc = load_clip(args.clip_seconds, Path(args.sample_dir))
    ref = predict_clip(model, agent, partner, motion)
    rows = {}
    for push_ms in (40, 200):
        session, lead = _live_session(model, args.preset)
        out, ms = timed_stream(session, partner, agent, motion, push_ms, lead)
        pred = np.stack([out[k] for k in range(ref.shape[0])])
        rows[push_ms] = dict(p50=float(np.percentile(ms, 50)), p95=float(np.percentile(ms, 95)),
                             rtf=float(ms.sum() / 1000 / (partner.shape[0] / 16000)),
                             diff=float(np.abs(pred - ref).max()), rel=rel_diff(pred, ref),
                             latency=session.config.latency_s, runner=session.runner.kind)
    reps = int(np.ceil(args.long_minutes * 60 * 16000 / partner.shape[0]))
    n = int(args.long_minutes * 60 * 16000)
    frames = -(-n // 640)
    long_m = np.tile(motion, (-(-frames // motion.shape[0]), 1))[:frames]
    session, lead = _live_session(model, args.preset)
    _, ms = timed_stream(session, np.tile(partner, reps)[:n], np.tile(agent, reps)[:n], long_m,
                         40, lead)
    per_window = int(WINDOW_S * 1000 / 40)
    early, late = ms[per_window:2 * per_window], ms[-per_window:]
    return dict(preset=args.preset, rows=rows, clip=desc, clip_s=partner.shape[0] / 16000,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                early_ms=float(early.mean()), late_ms=float(late.mean()),
                long_s=n / 16000, rss_mb=peak_rss_mb(), threads=torch.get_num_threads())


def section_live(args) -> list[str]:
    """The live model next to the sliding-window model, same clip, same pushes (issue 16)."""
    lines = ["## Live runner vs sliding window", "",
             f"{args.threads} torch threads, one subprocess per model (peak RSS covers both push "
             "sizes and the long run). Pushes of 40 / 200 ms through `StreamingSession` (partner "
             "audio, agent audio ahead by the runner's need - live: self - partner lookahead, "
             "window: 0.3 s -, face frames once their audio is in); per-push ms = wall time of "
             "the pushes and the session step that follows. RTF = sum of per-push ms / clip "
             f"length. Flat cost: mean per-push ms (40 ms pushes) over 10-20 s vs over the last "
             f"10 s of a {args.long_minutes:g} min conversation (the clip tiled). max |diff| = "
             "streamed vs offline `predict_clip` of the same model (random weights unless "
             "--checkpoint).", "",
             "| model | runner | params (M) | push ms | per-push p50 ms | p95 ms | RTF | "
             "peak RSS MB | cost @10 s ms | cost @end ms | end / 10 s | max abs diff | "
             "err / std | algorithmic latency (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    results = {}
    for name in [p for p in args.live_presets.split(",") if p]:
        r = run_worker("live", name, args)
        results[name] = r
        if "error" in r:
            lines.append(f"| {name} | {r['error']} |" + " - |" * 12)
            continue
        for push_ms, row in sorted(r["rows"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {name} | {row['runner']} | {r['params_m']:.1f} | {push_ms} | {row['p50']:.2f} | "
                f"{row['p95']:.2f} | {row['rtf']:.4f} | {r['rss_mb']:.0f} | {r['early_ms']:.2f} | "
                f"{r['late_ms']:.2f} | {r['late_ms'] / max(r['early_ms'], 1e-9):.2f} | "
                f"{row['diff']:.2e} | {row['rel']:.3f} | {row['latency']:.2f} |")
    live = results.get("live")
    if live and "error" not in live:
        rows, t = live["rows"], LIVE_TARGETS
        rows = {int(k): v for k, v in rows.items()}
        flat = live["late_ms"] / max(live["early_ms"], 1e-9)
        lines += ["", "`live` targets (issue 16): "
                  f"RTF {rows[200]['rtf']:.4f} <= 0.01 at 200 ms {ok(rows[200]['rtf'], t['rtf_200'])}; "
                  f"p95 {rows[40]['p95']:.2f} ms <= 10 ms at 40 ms {ok(rows[40]['p95'], t['p95_40'])}; "
                  f"cost after {live['long_s'] / 60:g} min {flat:.2f}x of after 10 s <= 1.1x "
                  f"{ok(flat, t['flat'])}"
                  f"{'' if live['long_s'] >= 600 else ' (run --long-minutes 10 for the issue target)'}; "
                  f"max |diff| {max(r['diff'] for r in rows.values()):.1e} <= 1e-5 "
                  f"{ok(max(r['diff'] for r in rows.values()), t['diff'])}; "
                  f"peak RSS {live['rss_mb']:.0f} MB <= 400 MB {ok(live['rss_mb'], t['rss_mb'])}."]
    first = next((v for v in results.values() if "clip" in v), None)
    if first:
        lines += ["", f"Input: {first['clip']}."]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from dualtalk_core.model.presets import preset_names

    ap.add_argument("--presets", default=",".join(preset_names()))
    ap.add_argument("--skip-paper", action="store_true", help="leave out the (slow, 630 M) paper preset")
    ap.add_argument("--sections", default="stream,live,diff,speedups")
    ap.add_argument("--live-presets", default="cpu,live",
                    help="the live section's models, one subprocess each (default: the "
                    "sliding-window cpu model next to the live model)")
    ap.add_argument("--long-minutes", type=float, default=1.0,
                    help="live section: length of the long conversation whose last 10 s of "
                    "per-push cost is compared with its first 10 s (issue target: 10)")
    ap.add_argument("--speedup-presets", default="cpu,paper")
    ap.add_argument("--diff-preset", default="cpu")
    ap.add_argument("--clip-seconds", type=float, default=30.0)
    ap.add_argument("--paper-clip-seconds", type=float, default=3.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--paper-reps", type=int, default=2, help="timed runs per paper variant")
    ap.add_argument("--variant-timeout", type=float, default=900.0)
    ap.add_argument("--paper-compile", action="store_true", help="also torch.compile the paper preset")
    ap.add_argument("--checkpoint", default=None, help="trained checkpoint (diff section + a stream row)")
    ap.add_argument("--sample-dir", default=str(DEFAULT_SAMPLE))
    ap.add_argument("--data-root", default=None,
                    help="DualTalk-layout data root: the checkpoint's diff table uses its first "
                    "test clip (the random-weights table always uses the sample clip)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--omp-wait-policy", default="PASSIVE",
                    help="OMP_WAIT_POLICY for the benchmark processes (PASSIVE: idle OpenMP "
                    "workers sleep instead of spinning, which on a shared/loaded CPU is the "
                    "difference between ~60 ms and ~900 ms per hop with 2 threads); '' = leave")
    args = ap.parse_args(argv)
    if args.omp_wait_policy:   # before torch is imported here or in any worker
        os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy)

    if args.worker:
        if args.preset == "checkpoint":
            args.preset = "cpu"
        workers = {"stream": worker_stream, "speedup": worker_speedup, "live": worker_live}
        result = workers[args.worker](args)
        print("RESULT " + json.dumps(result))
        return 0

    if args.device != "cpu":
        from dualtalk_core.devices import DeviceError, resolve_device
        try:
            resolve_device(args.device, "--device")
        except DeviceError as exc:
            print(f"{exc}; no GPU table")
            return 1
    presets = [p for p in args.presets.split(",") if p and not (args.skip_paper and p == "paper")]
    sections = args.sections.split(",")
    header = [f"# Streaming benchmarks ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
              f"Host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start "
              f"(shared machine: timings are noisy); OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}.",
              ""]
    print("\n".join(header), flush=True)
    if "stream" in sections:
        rows = presets + (["checkpoint"] if args.checkpoint else [])
        print("\n".join(section_stream(args, rows)), flush=True)
    if "live" in sections:
        print("\n".join(section_live(args)), flush=True)
    if "diff" in sections:
        print("\n".join(section_diff(args)), flush=True)
        if args.checkpoint:
            print("\n".join(section_diff(args, args.checkpoint, args.data_root)), flush=True)
    if "speedups" in sections:
        sp = [p for p in args.speedup_presets.split(",") if p in presets]
        print("\n".join(section_speedups(args, sp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
