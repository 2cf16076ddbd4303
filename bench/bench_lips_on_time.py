#!/usr/bin/env python
"""Lips on time (issue 17): lip offset, listening reaction, release rate and the graph's CPU.

Why: what a person notices is the robot's face against its own voice (lips that trail the
voice by more than about 45 ms) and how long it takes to react to the partner; the hop time
of the model alone says neither. This benchmark runs ONE conversation (``make demo``'s
recipe, ``scripts/demo.py``: ``dualtalk data synth`` with a seed the demo models never saw,
30 s) through the whole graph, for two models - the live (causal) demo model and the
sliding-window cpu demo model - and two input paths:

(a) **bag replay**: ``dualtalk-ros bag evaluate`` of the conversation's input bag in real
    time (agent speech published 0.32 s ahead, ``voice_player`` on); the figures are its
    ``report.json``'s ``lip_offset_ms``, ``listening_reaction_ms``, ``released`` and
    ``graph_cpu``.
(b) **file-audio bring-up**: ``dualtalk-ros bringup conversation --use-file-audio
    --play-voice`` with the same two wavs (the agent's ``agent_player.lead_time_s=0.32``), the
    voice played into an ALSA file device (:mod:`dualtalk_ros.alsa_file`), while this process
    records the head driver's outputs, the per-hop sequences, the played voice, the partner
    audio and ``/diagnostics``; the same figures are computed from that bag with
    :mod:`dualtalk_ros.bag.timing`. The players stamp chunk ``i`` with ``origin + i / rate``
    on the ROS (= wall) clock, so the graph is on the wall clock and ``origin`` is the first
    partner chunk's stamp - its ``first_sample_index / rate``. The players' sample 0 is due
    ``--start-delay`` (6 s) after they start, so that dualtalk_node has matched their
    best-effort publishers before the first chunk (with the 1 s of ``conversation.yaml`` it
    lost up to the first second of audio on the loaded 2-core machine). CPU: the bring-up's
    process tree (bring-up and every node, per node) from the first partner chunk to 2 s
    after the last.

Each model gets the conversation on the face scale it was trained on
(``demo.face_scale_of``); the seed fixes the audio, which is the same for both scales (checked
and stated), so the timing comparison is fair. Prints a Markdown table and the issue's targets
(met/missed per row) and writes them to ``bench/lips_on_time.md``. DDS stays on loopback on a
private domain (run it through ``make bench`` or ``scripts/with_ros_env.sh``).

    bash scripts/with_ros_env.sh .venv/bin/python bench/bench_lips_on_time.py
    bash scripts/with_ros_env.sh .venv/bin/python bench/bench_lips_on_time.py --seconds 8 \\
        --md /tmp/lips.md --keep /tmp/lips-runs
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))
import demo  # noqa: E402  (scripts/demo.py: the conversation -> bag -> live graph steps)

MODELS = {"live": ROOT / "models" / "dualtalk_live_demo.pt",
          "cpu": ROOT / "models" / "dualtalk_cpu_demo.pt"}
NS = 1_000_000_000

# the issue's targets
LIP_ABS_P95_MS = 20.0
MIN_LEAD_S = 0.3
VOICE_DELAY_TOLERANCE_MS = 5.0     # "the loudspeaker not delayed": played at its announced time
REACTION_P95_MS = 250.0
RATE_HZ, RATE_TOLERANCE = 25.0, 0.01
MAX_GRAPH_CORES = 0.5


@dataclass
class Row:
    """The figures of one model on one input path."""

    model: str
    path: str
    lip: dict[str, Any] = field(default_factory=dict)
    reaction: dict[str, Any] = field(default_factory=dict)
    released: dict[str, Any] = field(default_factory=dict)
    cores: float | None = None
    voice_delay: dict[str, Any] = field(default_factory=dict)
    agent_late_frames: int | None = None
    frames: str = ""
    status: str = ""
    note: str = ""
    loadavg: tuple[float, float] | None = None   # 1-min load average before / after the run
    cpu_split: dict[str, float] = field(default_factory=dict)  # cores per graph process


# ---------------------------------------------------------------- shared figures


def voice_delay_ms(played: list[tuple[int, int, int, int]], origin_ns: int) -> dict[str, Any]:
    """How late the graph played the agent's voice against its announced time: for each
    ``agent/audio_played`` chunk, its stamp (when its first sample plays) - (origin +
    first_sample_index / rate). 0 = the loudspeaker is not delayed."""
    from dualtalk_ros.bag import timing

    d = [stamp - (origin_ns + first * NS // max(rate, 1)) for first, _, stamp, rate in played]
    return timing.stats_ms(np.asarray(d, np.int64), "no agent/audio_played recorded")


def late_agent_frames(diagnostics: dict[str, dict[str, Any]]) -> int | None:
    """``agent_audio_late_frames`` of dualtalk_node's last status: frames computed before the
    agent's speech for them arrived (the TTS lead was too short)."""
    for name, st in sorted(diagnostics.items()):
        value = (st.get("values") or {}).get("agent_audio_late_frames")
        if value is not None:
            try:
                return int(float(value))
            except ValueError:
                return None
    return None


def missed_inputs(diagnostics: dict[str, dict[str, Any]], sent: dict[str, int]) -> str:
    """'' when dualtalk_node got every audio chunk that was published to it, else which it
    missed (its ``partner_chunks_in`` / ``agent_chunks_in`` against ``sent``, keyed
    ``partner`` / ``agent``): lost input is a different measurement, not a slow graph. Only
    from a status sent after the conversation ended (``conversations_ended``): an earlier one
    (periodic, up to a second old) has not counted the last chunks yet."""
    got: dict[str, int] = {}
    for name, st in diagnostics.items():
        values = st.get("values") or {}
        if values.get("conversations_ended") in (None, "0"):
            continue
        for who in ("partner", "agent"):
            if f"{who}_chunks_in" in values:
                try:
                    got[who] = int(float(values[f"{who}_chunks_in"]))
                except ValueError:
                    pass
    short = [f"{who} {got[who]}/{n}" for who, n in sent.items()
             if who in got and n and got[who] < n]
    return ("dualtalk_node missed audio chunks: " + ", ".join(short)) if short else ""


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- (a) bag replay


def bag_replay(model: str, checkpoint: Path, out: Path, seconds: float, seed: int,
               faces: str) -> tuple[Row, Path, Path]:
    """(a): the conversation, bagged and replayed through ``bag evaluate`` (``make demo``'s
    steps 1-3). -> (row, agent wav, partner wav)."""
    from dualtalk_ros import topics
    from dualtalk_ros.bag import bagio, timing
    from dualtalk_ros.bag.inputs import read_input_bag
    from dualtalk_ros.bag.replay import ReplayLog
    from dualtalk_ros.bag.score import OutputTopics

    row = Row(model, "bag replay")
    load0 = os.getloadavg()[0]
    report, agent, partner, _facts = demo.replay_conversation(out, checkpoint, seconds, seed,
                                                              faces)
    row.loadavg = (load0, os.getloadavg()[0])
    row.lip = report.get("lip_offset_ms") or {}
    row.reaction = report.get("listening_reaction_ms") or {}
    row.released = report.get("released") or {}
    row.cores = (report.get("graph_cpu") or {}).get("cores")
    frames = report.get("frames") or {}
    row.frames = (f"{row.released.get('frames')} released / {frames.get('received')} "
                  f"published / {frames.get('expected')} expected")
    row.status = str(report.get("status"))
    last = (report.get("diagnostics") or {}).get("last") or {}
    row.agent_late_frames = late_agent_frames(last)
    published = (report.get("replay") or {}).get("published") or {}
    row.note = missed_inputs(last, {
        "partner": published.get(bagio.qualified(topics.PARTNER_AUDIO), 0),
        "agent": published.get(bagio.qualified(topics.AGENT_AUDIO), 0)})
    # the voice as played against the conversation clock (the replay's restamped origin)
    log_path = out / "replay_log.json"
    if log_path.exists() and report.get("output_bag"):
        log = ReplayLog.from_json_dict(json.loads(log_path.read_text()))
        inp = read_input_bag(Path(report["bag"]))
        origin = inp.origin_ns + (log.restamp_ns or 0)
        rec = timing.read_timing(report["output_bag"], OutputTopics())
        row.voice_delay = voice_delay_ms(rec.played, origin)
    return row, Path(f"{agent}.wav"), Path(f"{partner}.wav")


# ---------------------------------------------------------------- (b) file-audio bring-up


class _AudioInputsBestEffort:
    """The recorder's node, with the audio inputs subscribed best effort.

    :class:`~dualtalk_ros.bag.record.BagRecorder` subscribes reliably (right for the graph's
    outputs), but the file players publish audio with the sensor QoS (best effort), which a
    reliable subscription does not match; every other call goes to the node unchanged."""

    def __init__(self, node, best_effort: set[str]) -> None:
        self._node, self._best_effort = node, best_effort

    def create_subscription(self, msgtype, topic, callback, qos, **kwargs):
        if topic in self._best_effort:
            from rclpy.qos import QoSProfile, ReliabilityPolicy
            qos = QoSProfile(depth=qos.depth, reliability=ReliabilityPolicy.BEST_EFFORT)
        return self._node.create_subscription(msgtype, topic, callback, qos, **kwargs)

    def __getattr__(self, name):
        return getattr(self._node, name)


def partner_clock(bag: Path, topic: str) -> tuple[int | None, int | None]:
    """(origin ns, receive time ns of the last chunk) of the partner audio in ``bag``: the
    players stamp chunk ``i`` with ``origin + i / rate``, so origin = stamp - index / rate."""
    from dualtalk_ros.bag import bagio
    from dualtalk_ros.bag.inputs import stamp_ns

    origin = last = None
    for _, t, msg in bagio.iter_messages(bag, [topic]):
        o = stamp_ns(msg) - int(msg.first_sample_index) * NS // max(int(msg.sample_rate), 1)
        origin = o if origin is None else min(origin, o)
        last = t if last is None else max(last, t)
    return origin, last


def cpu_by_node(pid: int) -> dict[str, float]:
    """CPU seconds so far of the bring-up ``pid`` (``bringup``) and each node process under it,
    by node name (the bring-up starts ``python -m dualtalk_ros.bringup_node <dir>/<name>.json``;
    other descendants count under ``other``), from ``/proc`` like :func:`procs.tree_cpu_s`."""
    tick = os.sysconf("SC_CLK_TCK")
    stat: dict[int, tuple[int, float]] = {}
    for entry in (e for e in os.listdir("/proc") if e.isdigit()):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stat[int(entry)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / tick)
    out: dict[str, float] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        if p not in stat:
            continue
        todo += [c for c, (parent, _) in stat.items() if parent == p]
        name = "bringup" if p == pid else "other"
        try:
            args = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
            spec = [a for a in args if a.endswith(b".json")]
            if spec and b"dualtalk_ros.bringup_node" in args:
                name = Path(spec[0].decode()).stem
        except OSError:
            pass
        out[name] = out.get(name, 0.0) + stat[p][1]
    return out


def graph_cpu_window(proc, recorder, partner_topic: str, deadline: float,
                     tail_s: float = 2.0) -> dict[str, float] | None:
    """CPU share (cores) of the bring-up's process tree (bring-up, every node) while the
    conversation runs: from the first recorded partner chunk to ``tail_s`` after the last
    (dualtalk_node's end-of-stream flush comes 1 s after it), as ``bag evaluate`` measures its
    graph over the replay and drain, not the idle start-up wait. None when no partner audio
    came. -> cores per process (:func:`cpu_by_node`) and ``total``."""
    cpu0 = wall0 = None
    while proc.poll() is None and time.monotonic() < deadline:
        last = recorder.last_receive_monotonic.get(partner_topic)
        if last is not None and cpu0 is None:
            cpu0, wall0 = cpu_by_node(proc.pid), time.monotonic()
        if last is not None and time.monotonic() - last >= tail_s:
            cpu1, wall = cpu_by_node(proc.pid), time.monotonic() - wall0
            cores = {n: (c - cpu0.get(n, 0.0)) / wall for n, c in cpu1.items()}
            cores["total"] = sum(cores.values())
            return cores
        time.sleep(0.05)
    return None


def bringup_file_audio(model: str, checkpoint: Path, out: Path, agent_wav: Path,
                       partner_wav: Path, duration: float, lead_s: float,
                       start_delay_s: float) -> Row:
    """(b): the bring-up plays both wavs and the agent's voice while this process records.
    Both players' sample 0 is due ``start_delay_s`` after the first of them starts (the
    bring-up gives them one origin): long enough for their processes to start and for
    dualtalk_node to match their (best-effort) publishers, so the measurement is neither of a
    start-up burst nor of audio lost before discovery (checked: :func:`missed_inputs`)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from dualtalk_core import layout
    from dualtalk_core.media.audio_io import load_wav
    from dualtalk_ros import alsa_file, procs, topics
    from dualtalk_ros.bag import bagio, timing
    from dualtalk_ros.bag import typestore as ts
    from dualtalk_ros.bag.record import BagRecorder
    from dualtalk_ros.bag.score import OutputTopics, read_output_bag

    row = Row(model, "file-audio bring-up")
    out.mkdir(parents=True, exist_ok=True)
    outputs = OutputTopics()
    record_topics = {**outputs.types(), topics.PARTNER_AUDIO: ts.AUDIO_CHUNK,
                     topics.AGENT_AUDIO: ts.AUDIO_CHUNK}
    bag, report_path = out / "output_bag", out / "bringup.json"
    env = dict(os.environ)
    conf = alsa_file.write_file_playback(out / "voice_played.alsa.conf", out / "voice_played.raw")
    env.update(alsa_file.environment(conf))
    argv = [str(BIN / "dualtalk-ros"), "bringup", "conversation", "--use-file-audio",
            "--play-voice", "--partner-wav", str(partner_wav), "--agent-wav", str(agent_wav),
            "--checkpoint", str(checkpoint), "--duration", f"{duration:g}",
            "--set", f"agent_player.lead_time_s={lead_s:g}",
            "--set", f"partner_player.start_delay_s={start_delay_s:g}",
            "--set", f"agent_player.start_delay_s={start_delay_s:g}", "--report", str(report_path)]
    print("$", " ".join(argv), flush=True)

    ctx = Context()
    rclpy.init(args=[], context=ctx)
    node = rclpy.create_node("lips_on_time_recorder", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    recorder = BagRecorder(_AudioInputsBestEffort(node, {topics.PARTNER_AUDIO,
                                                         topics.AGENT_AUDIO}), bag,
                           record_topics, overwrite=True)
    spinner = threading.Thread(target=spin, name="lips-recorder", daemon=True)
    spinner.start()
    code = None
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        with (out / "bringup.log").open("wb") as log:
            proc = procs.popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
            try:
                window = graph_cpu_window(proc, recorder, topics.PARTNER_AUDIO,
                                          time.monotonic() + duration + 300)
                code = proc.wait(timeout=max(duration + 300 - (time.monotonic() - t0), 1))
            except subprocess.TimeoutExpired:
                code = procs.stop(proc, 10.0, group=True)
                row.note = "bring-up did not stop by itself; stopped"
                window = None
        time.sleep(0.5)                       # the last messages on their way
    finally:
        row.loadavg = (load0, os.getloadavg()[0])
        stop.set()
        spinner.join(timeout=5)
        recorder.close()
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=ctx)
    print(f"  ({time.monotonic() - t0:.1f} s, exit {code})", flush=True)
    row.status = "ok" if code == 0 else f"bring-up exit {code} (log {out / 'bringup.log'})"
    if window is not None:
        row.cores = window.pop("total")
        row.cpu_split = window
    elif report_path.exists():   # the bring-up's own figure (its whole --duration)
        row.cores = json.loads(report_path.read_text()).get("cpu_load_cores")

    origin, partner_end = partner_clock(bag, bagio.qualified(topics.PARTNER_AUDIO))
    if origin is None:
        row.status += "; no partner/audio recorded: nothing measured"
        return row
    expected = layout.num_frames_for_samples(
        load_wav(str(partner_wav), target_sr=layout.SAMPLE_RATE).size)
    frames = read_output_bag(bag, origin, outputs)
    rec = timing.read_timing(bag, outputs)
    row.lip = timing.lip_offset(rec, origin, on_wall_clock=True)
    row.reaction = timing.listening_reaction(rec, frames.frame_index, frames.received_ns,
                                             origin, expected, partner_end, on_wall_clock=True)
    row.released = timing.release_stats(rec, frames.diagnostics)
    row.voice_delay = voice_delay_ms(rec.played, origin)
    row.agent_late_frames = late_agent_frames(frames.diagnostics)
    sent = recorder.counts      # what the players published, as this recorder got it
    row.note = "; ".join(x for x in (row.note, missed_inputs(frames.diagnostics, {
        "partner": sent.get(topics.PARTNER_AUDIO, 0),
        "agent": sent.get(topics.AGENT_AUDIO, 0)})) if x)
    row.frames = (f"{row.released.get('frames')} released / {frames.frame_index.size} "
                  f"published / {expected} expected")
    return row


# ---------------------------------------------------------------- the table


def fmt(value, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def trio(stats: dict[str, Any], sign: str = "") -> str:
    if not stats or not stats.get("n"):
        return "n/a" + (f" ({stats.get('why')})" if stats and stats.get("why") else "")
    spec = sign + ".0f"
    return (f"{fmt(stats.get('p50'), spec)} / {fmt(stats.get('p95'), spec)} / "
            f"{fmt(stats.get('max'), spec)} ({stats['n']})")


def mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def targets(row: Row, lead_s: float) -> str:
    """The issue's four targets for one row, each met/missed with the figure behind it."""
    lip, react, rel = row.lip, row.reaction, row.released
    vd = row.voice_delay or {}
    lip_ok = None if not lip.get("n") else lip["abs_p95"] <= LIP_ABS_P95_MS
    voice_ok = (None if not vd.get("n") else
                max(abs(vd["max"]), abs(vd["min"])) <= VOICE_DELAY_TOLERANCE_MS)
    voice = {True: "not delayed", False: "DELAYED", None: "n/a"}[voice_ok]
    cond = (f"speech published {lead_s:g} s ahead ({'>=' if lead_s >= MIN_LEAD_S else '<'} "
            f"{MIN_LEAD_S:g} s), agent_audio_late_frames {fmt(row.agent_late_frames, 'd')}, "
            f"voice played vs announced time {fmt(vd.get('min'), '+.1f')} .. "
            f"{fmt(vd.get('max'), '+.1f')} ms ({voice})")
    react_ok = None if not react.get("n") else react["p95"] <= REACTION_P95_MS
    hz = rel.get("rate_hz")
    hz_ok = None if hz is None else abs(hz - RATE_HZ) <= RATE_HZ * RATE_TOLERANCE
    cpu_ok = None if row.cores is None else row.cores < MAX_GRAPH_CORES
    lip_all = None if lip_ok is None else (lip_ok and bool(voice_ok) and lead_s >= MIN_LEAD_S)
    return (f"- **{row.model}, {row.path}** ({row.frames}; status {row.status}"
            + (f"; {row.note}" if row.note else "") + ")\n"
            f"  - lip offset within +/-{LIP_ABS_P95_MS:g} ms p95: {mark(lip_all)} "
            f"(|offset| p95 {fmt(lip.get('abs_p95'), '.1f')} ms; {cond})\n"
            f"  - listening reaction <= {REACTION_P95_MS:g} ms p95: {mark(react_ok)} "
            f"(p95 {fmt(react.get('p95'), '.0f')} ms"
            + (f"; {react.get('flush_only')} partner frames reacted to only by the "
               f"end-of-stream flush, {react.get('never_used')} never used"
               if react.get("n") else "") + ")\n"
            f"  - {RATE_HZ:g} Hz +/- {RATE_TOLERANCE:.0%}: {mark(hz_ok)} "
            f"({fmt(hz, '.3f')} Hz released)\n"
            f"  - whole graph < {MAX_GRAPH_CORES:g} core: {mark(cpu_ok)} "
            f"({fmt(row.cores, '.2f')} cores"
            + ("; " + ", ".join(f"{n} {c:.2f}" for n, c in sorted(
                row.cpu_split.items(), key=lambda kv: -kv[1])) if row.cpu_split else "")
            + ")")


def table(rows: list[Row]) -> str:
    lines = ["| model | input path | lip offset p50 / p95 / max ms (n) | listening reaction "
             "p50 / p95 / max ms (n) | output Hz (released) | jitter ms | late frames | "
             "graph CPU (cores) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rel = r.released
        lines.append(f"| {r.model} | {r.path} | {trio(r.lip, '+')} | {trio(r.reaction)} | "
                     f"{fmt(rel.get('rate_hz'), '.2f')} | {fmt(rel.get('jitter_ms'), '.1f')} | "
                     f"{fmt(rel.get('late_frames'), 'd')} | {fmt(r.cores, '.2f')} |")
    return "\n".join(lines)


def busy_processes() -> list[str]:
    """Other heavy project runs on the machine (training, distillation, evaluation)."""
    try:
        out = subprocess.run(["pgrep", "-af", "dualtalk (train|distill|evaluate)"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(" ", 1)[1] for line in out.splitlines()
            if line and int(line.split()[0]) != os.getpid()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="conversation length")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--models", default="live,cpu",
                    help=f"comma-separated, of {sorted(MODELS)} or NAME=CHECKPOINT")
    ap.add_argument("--no-bringup", action="store_true",
                    help="bag replay only (the bag replay always runs: it makes the "
                         "conversation)")
    ap.add_argument("--start-delay", type=float, default=6.0,
                    help="bring-up: the file players' sample 0 this long after they start "
                         "(conversation.yaml has 1 s; on a loaded 2-core machine the players "
                         "then start late, in a burst, and dualtalk_node matches their "
                         "best-effort publishers only seconds later: with 3 s it still lost "
                         "the first ~1 s of audio)")
    ap.add_argument("--duration", type=float, default=None,
                    help="bring-up run time (default: start delay + conversation + 3 s, "
                         "for the end-of-stream flush)")
    ap.add_argument("--md", type=Path, default=ROOT / "bench" / "lips_on_time.md",
                    help="write the Markdown here too")
    ap.add_argument("--keep", type=Path, help="keep every run's files in this folder")
    args = ap.parse_args(argv)
    from dualtalk_ros import loopback
    if not loopback.is_confined():
        sys.exit("run through `make bench` or scripts/with_ros_env.sh (DDS on loopback)")
    models = {}
    for item in args.models.split(","):
        name, _, path = item.partition("=")
        models[name] = Path(path) if path else MODELS[name]
    duration = args.duration or args.start_delay + args.seconds + 3.0
    from dualtalk_ros.bag.evaluate import EvaluateOptions
    lead = EvaluateOptions().agent_lead_s  # bag evaluate's (and make demo's) TTS lead, both paths

    start = time.strftime("%Y-%m-%d %H:%M %Z")
    load_start, busy_start = os.getloadavg(), busy_processes()
    rows: list[Row] = []
    wav_sums: dict[str, tuple[str, str]] = {}
    faces_of: dict[str, str] = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench_lips_") as tmp:
        base = args.keep.resolve() if args.keep else Path(tmp)
        for name, ckpt in models.items():
            ckpt = ckpt.resolve()
            faces = faces_of[name] = demo.face_scale_of(ckpt)
            print(f"\n##### {name}: {ckpt.name} (conversation face scale {faces})", flush=True)
            out_a = base / name / "bag_replay"
            if out_a.exists():
                import shutil
                shutil.rmtree(out_a)
            out_a.mkdir(parents=True)
            try:
                row, agent_wav, partner_wav = bag_replay(name, ckpt, out_a, args.seconds,
                                                         args.seed, faces)
            except subprocess.CalledProcessError as exc:
                print(f"bag replay of {name} failed: {exc}", file=sys.stderr)
                rows.append(Row(name, "bag replay", status=f"failed: {exc}"))
                continue
            wav_sums[name] = (sha(agent_wav), sha(partner_wav))
            rows.append(row)
            if not args.no_bringup:
                rows.append(bringup_file_audio(name, ckpt, base / name / "bringup", agent_wav,
                                               partner_wav, duration, lead,
                                               args.start_delay))
    elapsed = time.monotonic() - t0
    load_end, busy_end = os.getloadavg(), busy_processes()

    same_audio = len(set(wav_sums.values())) == 1 if len(wav_sums) > 1 else None
    cpus = os.cpu_count()
    lines = [f"## Lips on time: both models, both input paths ({args.seconds:g} s conversation, "
             f"seed {args.seed})", "",
             f"Measured {start} on {cpus} CPU cores in {elapsed:.0f} s. Models: "
             + ", ".join(f"{n} = `{p.name}` (faces `{faces_of.get(n, '?')}`)"
                         for n, p in models.items())
             + ". Same conversation audio for every model: "
             + {True: "yes (agent and partner wavs identical)",
                False: "**no** (the wavs differ between face scales)",
                None: "n/a (one model)"}[same_audio]
             + f". Agent speech published {lead:g} s ahead; bring-up run "
             f"{duration:g} s, file players' sample 0 due {args.start_delay:g} s after they "
             "start.", "",
             table(rows), "",
             "Lip offset = head driver's release (recorder receive time of "
             "`/agent/joint_states`) - play time of the frame's first audio sample "
             "(`/agent/audio_played`), positive = face after voice. Listening reaction = "
             "first published frame whose hop used partner input up to t - t. Output Hz, "
             "jitter (std of release intervals) and late frames (head driver's counter) are "
             "of what the head driver released; graph CPU = CPU s of the bring-up and all "
             "node processes per wall s while the conversation runs (bag replay: replay and "
             "drain, `graph_cpu` of the report; bring-up: first partner chunk to 2 s after the "
             "last: the file players count as part of the graph there, the replayer of the "
             "bag path does not). In the bring-up path the file player publishes each "
             "partner chunk at its first sample's time (20 ms before a microphone could), "
             "the bag replay once its last sample has happened. The file players' sample 0 is "
             "due well after they start so that dualtalk_node has matched their best-effort "
             "publishers (with conversation.yaml's 1 s it lost up to the first ~1 s of audio "
             "on this machine; a row says so when it missed chunks).", "",
             "### Targets (issue 17)", ""]
    lines += [targets(r, lead) for r in rows]
    lines += ["", f"Machine load (1/5/15-min load average): {load_start[0]:.2f} / "
              f"{load_start[1]:.2f} / {load_start[2]:.2f} at the start, {load_end[0]:.2f} / "
              f"{load_end[1]:.2f} / {load_end[2]:.2f} at the end ({cpus} cores); per run "
              "(1-min, before -> after): "
              + "; ".join(f"{r.model} {r.path} {r.loadavg[0]:.2f} -> {r.loadavg[1]:.2f}"
                          for r in rows if r.loadavg) + ". Other training/evaluation runs: "
              + ("none" if not (busy_start or busy_end) else
                 f"{len(busy_start)} at the start, {len(busy_end)} at the end ("
                 + "; ".join(sorted(set(busy_start + busy_end)))[:300] + ")") + "."]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.md:
        args.md.write_text(text)
        print(f"(written to {args.md})")
    ok = rows and all(r.status == "ok" and r.lip.get("n") for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
