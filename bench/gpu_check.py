#!/usr/bin/env python
"""The prepared device check (issue 18): correctness, offline and streaming speed, memory and
training throughput of the released (``paper``) model on one device, as ONE Markdown table.

Run through ``bench/gpu_check.sh`` (it sets the import path; no ROS, no downloads):

    bench/gpu_check.sh                        # cuda, full sizes: <= 8 min on one H200
    bench/gpu_check.sh --device cpu --quick   # the same rows with small presets, a few minutes

Why one script: a GPU machine is lent for minutes, from bare. Everything that must be measured
there runs in one command whose table goes straight into the README, and whose exit status is
non-zero when a *check* fails (an error, non-finite output, fp32 device-vs-cpu mismatch, a failing
``cuda`` test). Speed *targets* are reported as met / missed / not run and never fail the run:
they are what we aim for, not correctness. Models have random weights (speed and numerical
agreement do not depend on their values); the ``paper`` preset is the real wav2vec2-large size.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dualtalk_core import devices
from dualtalk_core.layout import SAMPLE_RATE, SAMPLES_PER_FRAME

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"offline_rtf": 0.003, "hop_p95_ms": 20.0, "stream_rtf": 0.1, "live_p95_ms": 2.0,
           "reduced_diff": 1e-2, "fp32_diff": 1e-3}
FAIL_REDUCED_DIFF = 0.1  # beyond this the reduced-precision path is broken, not just rounded


@dataclass
class Sizes:
    """What one run measures; ``--quick`` shrinks everything for a CPU."""

    preset: str = "paper"
    train_preset: str = "paper"
    check_s: float = 10.0
    offline_s: float = 30.0
    stream_s: float = 30.0
    train_steps: int = 50
    train_batch: int = 32
    train_window: int = 200
    repeats: int = 3
    targets_apply: bool = True

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(preset="cpu", train_preset="tiny", check_s=4.0, offline_s=10.0, stream_s=8.0,
                   train_steps=4, train_batch=4, train_window=50, repeats=1, targets_apply=False)


@dataclass
class Report:
    """Rows of the table, and whether any check failed."""

    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    targets_apply: bool = True

    def info(self, section: str, what: str, figure: str) -> None:
        self.rows.append((section, what, figure, "", "-"))

    def check(self, section: str, what: str, figure: str, limit: str, ok: bool) -> None:
        self.rows.append((section, what, figure, limit, "pass" if ok else "FAIL"))
        if not ok:
            self.failed.append(f"{section}: {what}")

    def target(self, section: str, what: str, value: float, limit: float, fmt: str) -> None:
        if not self.targets_apply:
            status = "not run (targets are for --device cuda, full sizes)"
        else:
            status = "met" if value <= limit else "missed"
        self.rows.append((section, what, fmt.format(value), f"<= {fmt.format(limit)}", status))

    def not_run(self, section: str, what: str, why: str) -> None:
        self.rows.append((section, what, "-", "", f"not run: {why}"))

    def error(self, section: str, exc: BaseException) -> None:
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:150]
        self.check(section, "error", detail.replace("|", "/"), "", False)
        traceback.print_exc(file=sys.stderr)

    def markdown(self) -> str:
        lines = ["| section | what | figure | target | status |", "|---|---|---:|---:|---|"]
        lines += [f"| {' | '.join(r)} |" for r in self.rows]
        return "\n".join(lines)


def say(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build(preset: str, seed: int = 0):
    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk

    torch.manual_seed(seed)
    return DualTalk(get_preset(preset)).eval()


def clip(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(self audio, partner audio, partner motion): speech-like noise bursts, turn-taking."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    env = (np.sin(2 * np.pi * 0.2 * t) > 0).astype(np.float32)
    partner = (0.1 * rng.standard_normal(n) * env).astype(np.float32)
    agent = (0.1 * rng.standard_normal(n) * (1 - env)).astype(np.float32)
    motion = (0.1 * rng.standard_normal((-(-n // SAMPLES_PER_FRAME), 56))).astype(np.float32)
    return agent, partner, motion


# ------------------------------------------------------------------------------------ sections
def section_correctness(rep: Report, model, device: torch.device, sizes: Sizes,
                        reduced: list[str]) -> None:
    from dualtalk_core.model.inference import predict_clip

    sec = f"correctness ({sizes.preset}, {sizes.check_s:g} s clip)"
    a, b, m = clip(sizes.check_s)
    ref = predict_clip(model, a, b, m, device="cpu")
    with devices.true_fp32():
        got = predict_clip(model, a, b, m, device=device)
    diff = float(np.abs(got - ref).max())
    rep.check(sec, f"fp32 {device.type} vs cpu, max abs diff", f"{diff:.2e}",
              f"<= {TARGETS['fp32_diff']:g}", bool(np.isfinite(got).all())
              and diff <= TARGETS["fp32_diff"])
    rep.info(sec, "fp32 output std (scale of the diffs)", f"{float(ref.std()):.3f}")
    for precision in reduced:
        out = predict_clip(model, a, b, m, device=device, precision=precision)
        d = float(np.abs(out - ref).max())
        ok = bool(np.isfinite(out).all()) and d <= FAIL_REDUCED_DIFF
        if not ok:
            rep.check(sec, f"{precision} vs fp32 cpu, max abs diff", f"{d:.2e}",
                      f"<= {FAIL_REDUCED_DIFF:g}", False)
        else:
            rep.target(sec, f"{precision} vs fp32 cpu, max abs diff", d, TARGETS["reduced_diff"],
                       "{:.2e}")
        rep.info(sec, f"{precision} vs fp32 cpu, mean abs diff",
                 f"{float(np.abs(out - ref).mean()):.2e}")


def section_offline(rep: Report, model, device: torch.device, sizes: Sizes,
                    precisions: list[str]) -> None:
    from dualtalk_core.model.inference import predict_clip

    sec = f"offline ({sizes.preset}, {sizes.offline_s:g} s clip)"
    a, b, m = clip(sizes.offline_s, seed=1)
    for precision in precisions:
        predict_clip(model, a[:SAMPLE_RATE], b[:SAMPLE_RATE], m[:25], device=device,
                     precision=precision)                                   # warm-up
        times = []
        for _ in range(sizes.repeats):
            devices.synchronize(device)
            t0 = time.perf_counter()
            predict_clip(model, a, b, m, device=device, precision=precision)
            devices.synchronize(device)
            times.append(time.perf_counter() - t0)
        rtf = min(times) / sizes.offline_s
        rep.target(sec, f"RTF {precision} (s per s of audio, best of {sizes.repeats})", rtf,
                   TARGETS["offline_rtf"], "{:.4f}")


def feed(engine, agent, partner, motion, chunk: int) -> tuple[int, list[float]]:
    """Push like a live system (partner chunks, agent audio 0.3 s ahead, each face frame once
    its audio is in), pull after every chunk; -> (frames out, ms per pull that ran a hop)."""
    ahead = int(0.3 * SAMPLE_RATE)
    engine.push_agent_audio(agent[:ahead], 0)
    frames, next_face, pulls = 0, 0, []
    for pos in range(0, partner.shape[0], chunk):
        if pos + ahead < agent.shape[0]:
            engine.push_agent_audio(agent[pos + ahead: pos + ahead + chunk], pos + ahead)
        engine.push_partner_audio(partner[pos: pos + chunk], pos)
        clock = min(pos + chunk, partner.shape[0])
        while next_face < motion.shape[0] and (next_face + 1) * SAMPLES_PER_FRAME <= clock:
            engine.push_partner_motion(motion[next_face], next_face / 25.0)
            next_face += 1
        t0 = time.perf_counter()
        got = sum(len(batch.frames) for batch in engine.pull_batches())
        if got:
            pulls.append((time.perf_counter() - t0) * 1000.0)
        frames += got
    frames += sum(len(batch.frames) for batch in engine.flush_batches())
    return frames, pulls


def section_streaming(rep: Report, model, device: torch.device, sizes: Sizes,
                      reduced: list[str]) -> None:
    from dualtalk_core.streaming.config import StreamingConfig
    from dualtalk_core.streaming.engine import StreamingEngine

    agent, partner, motion = clip(sizes.stream_s, seed=2)
    runs = [((2.0, 0.4, 0.2), "fp32"), *[((2.0, 0.4, 0.2), p) for p in reduced[:1]],
            ((4.0, 0.4, 0.4), "fp32")]
    for (w, lookahead, hop), precision in runs:
        sec = f"streaming ({sizes.preset}, W/L/H {w:g}/{lookahead:g}/{hop:g} s, {precision})"
        engine = StreamingEngine(model, StreamingConfig(window_s=w, lookahead_s=lookahead,
                                                        hop_s=hop), device=str(device))
        with devices.autocast(device, precision):
            engine.warm_up()
            engine.reset()
            frames, _ = feed(engine, agent, partner, motion, chunk=320)
        st = engine.stats
        rep.check(sec, "frames out / expected", f"{frames} / {motion.shape[0]}", "all",
                  frames == motion.shape[0])
        rep.info(sec, "hop compute p50 / p99 (ms)",
                 f"{st['hop_ms_p50']:.1f} / {st['hop_ms_p99']:.1f}")
        if hop == 0.2:
            rep.target(sec, "hop compute p95 (ms)", st["hop_ms_p95"], TARGETS["hop_p95_ms"],
                       "{:.1f}")
            rep.target(sec, "RTF (compute s per s of output)", st["rtf"],
                       TARGETS["stream_rtf"], "{:.3f}")
        else:
            rep.info(sec, "hop compute p95 (ms) / RTF",
                     f"{st['hop_ms_p95']:.1f} / {st['rtf']:.3f}")


def section_live(rep: Report, device: torch.device, sizes: Sizes) -> None:
    """The live (causal) preset at 40 ms pushes, when the preset registry has one."""
    from dualtalk_core.model.presets import PRESETS

    sec = "streaming (live preset, 40 ms pushes)"
    if "live" not in PRESETS:
        rep.not_run(sec, "per-push p50/p95/p99", "no 'live' preset in this version")
        return
    from dualtalk_core.model.dualtalk import DualTalk
    from dualtalk_core.streaming.runners import RUNNERS, make_runner

    p = PRESETS["live"]
    if p.runner not in RUNNERS:
        rep.not_run(sec, "per-push p50/p95/p99", f"preset 'live' names runner {p.runner!r}, "
                    f"not registered in streaming.runners yet")
        return
    torch.manual_seed(0)
    runner = make_runner(p.runner, DualTalk(p.model_config()).eval(), p.streaming_config(),
                         device=str(device))
    runner.warm_up()
    runner.reset()
    agent, partner, motion = clip(sizes.stream_s, seed=3)
    frames, pulls = feed(runner, agent, partner, motion, chunk=SAMPLES_PER_FRAME)
    ms = np.asarray(pulls)
    rep.check(sec, "frames out / expected", f"{frames} / {motion.shape[0]}", "all",
              frames == motion.shape[0] and ms.size > 0)
    rep.info(sec, "per-push compute p50 / p99 (ms)",
             f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f}")
    rep.target(sec, "per-push compute p95 (ms)", float(np.percentile(ms, 95)),
               TARGETS["live_p95_ms"], "{:.2f}")


# ------------------------------------------------------------------------------------ training
def train_config(sizes: Sizes, device: str, amp: str):
    from dualtalk_core.training.config import TrainConfig

    return TrainConfig(model=sizes.train_preset, batch_size=sizes.train_batch,
                       window=sizes.train_window, device=device, amp=amp, progress=False,
                       validate_at_start=False, val_split=None, seed=0)


def run_training(cfg, steps: int, out_dir: Path) -> dict:
    """``steps`` optimizer steps of the real ``Trainer.train_step`` on random windows held in
    memory (no files: nothing to decode on a bare machine); the first steps are warm-up."""
    from torch.utils.data import DataLoader

    from dualtalk_core.training.loop import Trainer
    from dualtalk_core.training.synthetic import random_sides

    per_side = 4                                      # windows per clip-side
    sides = random_sides(max(2, -(-cfg.batch_size // per_side)),
                         cfg.window * per_side / 25.0, seed=0)
    trainer = Trainer(cfg, out_dir, out_dir, None, sides=(sides, []))
    device, world = trainer.info.device, trainer.info.world_size
    loader = DataLoader(trainer.train_ds, batch_size=cfg.batch_size, drop_last=True,
                        pin_memory=device.type == "cuda")
    batches = [b for b in loader]
    warm = 2 if steps > 4 else 1
    trainer.train_model.train()
    devices.reset_peak_memory(device)
    losses, times = [], []
    for i in range(steps + warm):
        devices.synchronize(device)
        t0 = time.perf_counter()
        losses.append(trainer.train_step(batches[i % len(batches)])["loss"])
        devices.synchronize(device)
        if i >= warm:
            times.append(time.perf_counter() - t0)
    step_s = float(np.mean(times))
    return {"step_s": step_s, "samples_per_s": cfg.batch_size * world / step_s,
            "peak_mb": devices.peak_memory_mb(device), "finite": bool(np.isfinite(losses).all()),
            "params_m": trainer.model.num_parameters() / 1e6, "world": world}


def section_training(rep: Report, device: torch.device, sizes: Sizes, amp: str) -> None:
    sec = (f"training ({sizes.train_preset}, batch {sizes.train_batch} x "
           f"{sizes.train_window} frames, amp {amp}, {sizes.train_steps} steps)")
    with tempfile.TemporaryDirectory() as tmp:
        r = run_training(train_config(sizes, str(device), amp), sizes.train_steps, Path(tmp))
    rep.check(sec, "losses finite", str(r["finite"]), "True", r["finite"])
    rep.info(sec, "parameters", f"{r['params_m']:.1f} M")
    rep.info(sec, "step time (s, mean after warm-up)", f"{r['step_s']:.3f}")
    rep.info(sec, "samples/s", f"{r['samples_per_s']:.1f}")
    rep.info(sec, f"peak {'GPU memory' if device.type == 'cuda' else 'RSS'} (MiB)",
             f"{r['peak_mb']:,.0f}")


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, steps: int, tmp: str) -> None:
    """One process of the DDP row (torch.multiprocessing.spawn); rank 0 writes the result."""
    import json

    from dualtalk_core.training.config import TrainConfig

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cfg = TrainConfig.from_dict(cfg_dict)
    if cfg.device == "cpu":
        torch.set_num_threads(1)
    result = run_training(cfg, steps, Path(tmp) / f"rank{rank}")
    torch.distributed.destroy_process_group()
    if rank == 0:
        Path(tmp, "ddp.json").write_text(json.dumps(result))


def section_ddp(rep: Report, device: torch.device, sizes: Sizes, amp: str) -> None:
    """2 processes (nccl on 2 GPUs; gloo on CPU, which proves the same code path)."""
    import json
    import socket

    sec = f"training DDP, 2 processes ({'nccl' if device.type == 'cuda' else 'gloo'})"
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        rep.not_run(sec, "samples/s", f"{torch.cuda.device_count()} GPU on this machine")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = train_config(sizes, "cuda" if device.type == "cuda" else "cpu", amp).to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        torch.multiprocessing.spawn(_ddp_worker, args=(2, port, cfg, sizes.train_steps, tmp),
                                    nprocs=2, join=True)
        r = json.loads(Path(tmp, "ddp.json").read_text())
    rep.check(sec, "losses finite", str(r["finite"]), "True", r["finite"])
    rep.info(sec, "step time (s) / samples/s (both ranks)",
             f"{r['step_s']:.3f} / {r['samples_per_s']:.1f}")


def section_cuda_tests(rep: Report, device: torch.device) -> None:
    """The ``cuda``-marked tests (tests/test_gpu_path.py); they skip, saying why, on CPU."""
    sec = "tests marked cuda"
    cmd = [sys.executable, "-m", "pytest", "tests/test_gpu_path.py", "-m", "cuda", "-q", "-rs",
           "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = lines[-1].strip("= ") if lines else proc.stderr.strip()[-150:]
    if "No module named pytest" in proc.stderr:
        rep.not_run(sec, "pytest -m cuda", "pytest is not installed")
        return
    if device.type == "cuda":
        rep.check(sec, "pytest -m cuda", summary, "all pass",
                  proc.returncode == 0 and "passed" in summary and "skipped" not in summary)
    else:
        reason = next((ln.split(": ", 1)[-1] for ln in lines if ln.startswith("SKIPPED")), "")
        rep.check(sec, "pytest -m cuda", summary, "skip without a GPU", proc.returncode == 0)
        if reason:
            rep.info(sec, "skip reason", reason[:100])


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="small presets, short clips, few steps (a CPU run of a few minutes)")
    parser.add_argument("--reduced", default=None,
                        help="reduced precisions to compare, comma-separated (default: "
                             "bf16,fp16 on cuda, bf16 on cpu)")
    parser.add_argument("--amp", default="bf16", help="training AMP mode (default bf16)")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="sections that would start after this many seconds are not run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = devices.resolve_device(args.device, "--device")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = Sizes.quick() if args.quick else Sizes()
    if device.type != "cuda":
        sizes.targets_apply = False
    reduced = (args.reduced.split(",") if args.reduced
               else ["bf16", "fp16"] if device.type == "cuda" else ["bf16"])
    rep = Report(targets_apply=sizes.targets_apply)
    rep.info("machine", "device", devices.device_name(device))
    rep.info("machine", "torch / CUDA", f"{torch.__version__} / {torch.version.cuda or 'none'}")
    start = time.perf_counter()
    model = None

    def run(name: str, fn, *fn_args) -> None:
        if time.perf_counter() - start > args.budget_s:
            rep.not_run(name, "all", f"time budget of {args.budget_s:g} s spent")
            return
        say(f"{name} ...")
        try:
            fn(*fn_args)
        except Exception as exc:  # one broken section must not hide the others' figures
            rep.error(name, exc)

    def build_model() -> None:
        nonlocal model
        t0 = time.perf_counter()
        model = build(sizes.preset)
        rep.info("model", f"{sizes.preset} preset, random weights",
                 f"{model.num_parameters() / 1e6:.1f} M params, built in "
                 f"{time.perf_counter() - t0:.1f} s")

    run("model", build_model)
    if model is not None:
        devices.reset_peak_memory(device)
        run("correctness", section_correctness, rep, model, device, sizes, reduced)
        run("offline", section_offline, rep, model, device, sizes, ["fp32", *reduced])
        run("streaming", section_streaming, rep, model, device, sizes, reduced)
        rep.info("memory", f"peak {'GPU memory' if device.type == 'cuda' else 'RSS'}, "
                 "inference (MiB)", f"{devices.peak_memory_mb(device):,.0f}")
        model.to("cpu")
        model = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    run("streaming live", section_live, rep, device, sizes)
    run("training", section_training, rep, device, sizes, args.amp)
    run("training DDP", section_ddp, rep, device, sizes, args.amp)
    run("cuda tests", section_cuda_tests, rep, device)
    rep.info("total", "wall time (s)", f"{time.perf_counter() - start:.0f}")
    table = rep.markdown()
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if rep.failed:
        print(f"\nFAILED checks: {'; '.join(rep.failed)}", file=sys.stderr)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
