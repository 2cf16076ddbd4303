"""Write bag-evaluation reports: ``report.md`` + ``report.json`` + ``report.png`` per bag, and
``summary.md`` + ``summary.json`` for a directory of bags (metrics pooled over all scored bags
with the same ``evaluate_predictions`` as ``dualtalk evaluate``)."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from dualtalk_core import layout

LOG = logging.getLogger(__name__)


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan"
        return f"{round(v, digits) + 0.0:.{digits}f}"   # + 0.0: no "-0.00"
    return str(v)


def _frames(n: int | None) -> str:
    return "none" if not n else f"{n} frames"


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _metrics_markdown(ev) -> list[str]:
    s = ev.summary
    lines: list[str] = []
    if ev.result is not None:
        lines += ["## Metrics (paper scale, `dualtalk_core.evaluation.evaluate`)", "",
                  ev.result.to_markdown(include_paper=False).strip(), ""]
    elif s.get("metrics") and "raw_partner_free" in s["metrics"]:
        from dualtalk_core.evaluation.metrics import PAPER_SCALE
        raw = s["metrics"]["raw_partner_free"]
        lines += ["## Metrics without partner (paper scale)", "",
                  "| metric | " + " | ".join(raw) + " |", "|---|" + "---:|" * len(raw)]
        for m in ("FD", "MSE", "SID"):
            lines.append(f"| {m} | " + " | ".join(
                _fmt(raw[g][m] * PAPER_SCALE[m][g], 2) for g in raw) + " |")
        lines.append("")
    if s.get("metrics_note"):
        lines += [f"Note: {s['metrics_note']}.", ""]
    return lines


def _timing_markdown(s: dict) -> list[str]:
    """Lip offset, listening reaction, what the head driver released, graph CPU (issue 17)."""
    lines = ["## Timing a person notices", "",
             "| figure (ms) | p50 | p95 | max | n | note |", "|---|---:|---:|---:|---:|---|"]
    for key, label in (("lip_offset_ms", "lip offset: head driver release - voice played"),
                       ("listening_reaction_ms", "listening reaction: partner input -> first "
                                                 "frame computed with it")):
        r = s.get(key) or {}
        note = r.get("why", "") if not r.get("n") else (
            f"abs p95 {_fmt(r.get('abs_p95'))}" + (f"; {r['flush_only']} end-of-stream only"
                                                   if r.get("flush_only") else ""))
        lines.append(f"| {label} | {_fmt(r.get('p50'))} | {_fmt(r.get('p95'))} | "
                     f"{_fmt(r.get('max'))} | {r.get('n', 0)} | {note} |")
    lines.append("")
    rel, cpu = s.get("released") or {}, s.get("graph_cpu") or {}
    if rel:
        lines.append(f"Released by head_driver on `{rel.get('topic') or '–'}`: "
                     f"{rel.get('frames', 0)} frames at {_fmt(rel.get('rate_hz'), 2)} Hz, "
                     f"jitter (std of the release interval) {_fmt(rel.get('jitter_ms'), 2)} ms, "
                     f"late frames {_fmt(rel.get('late_frames'))}.")
    if cpu:
        lines.append(f"CPU of the whole graph: {_fmt(cpu.get('cores'), 2)} cores "
                     f"({_fmt(cpu.get('cpu_s'))} CPU s over {_fmt(cpu.get('wall_s'))} s)"
                     + (f" - {cpu['why']}" if cpu.get("why") else "") + ".")
    return lines + [""]


def bag_markdown(ev) -> str:
    """The Markdown report of one bag."""
    s = ev.summary
    inp = s["input"]
    lines = [f"# Bag evaluation: {s['name']}", "",
             f"- status: **{s['status']}**" + (f" ({s['status_reason']})"
                                                 if s.get("status_reason") else ""),
             f"- input bag: `{s['bag']}` ({inp['duration_s']:.2f} s of partner audio, "
             f"ground truth: {_frames(inp['ground_truth_frames'])}, partner face: "
             f"{_frames(inp['partner_face_frames'])})",
             f"- output bag: `{s['output_bag'] or '–'}`"]
    if "replay" in s:
        r = s["replay"]
        rate = "as fast as possible" if not r["rate"] or r["rate"] <= 0 else f"x{r['rate']:g}"
        lines.append(f"- replay: {rate}, {r['duration_s']:.2f} s wall, published "
                     + ", ".join(f"{t}={n}" for t, n in r["published"].items()))
    lines.append("")
    if s.get("errors"):
        lines += ["## Errors", ""] + [f"- {e}" for e in s["errors"]] + [""]
    if s.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {w}" for w in s["warnings"]] + [""]
    if "frames" in s:
        f, rt, lat = s["frames"], s.get("rate", {}), s.get("latency_ms", {})
        lines += ["## Output frames, rate and latency", "",
                  "| expected | received | missing | gaps (max run) | tail missing | duplicates "
                  "| out of order | rate Hz (expected) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {f['expected']} | {f['received']} | {f['missing']} | {f['gaps']} "
                  f"({f['max_gap']}) | {f['tail_missing']} | {f['duplicates']} | "
                  f"{f['out_of_order']} | {_fmt(rt.get('output_hz'), 2)} "
                  f"({_fmt(rt.get('expected_hz'), 1)}) |", "",
                  "Latency = receive time of output frame k - publish time of the partner audio "
                  "that completes frame k (ms):", "",
                  "| n | p50 | p95 | max | mean | min |", "|---:|---:|---:|---:|---:|---:|",
                  f"| {lat.get('n', 0)} | {_fmt(lat.get('p50'))} | {_fmt(lat.get('p95'))} | "
                  f"{_fmt(lat.get('max'))} | {_fmt(lat.get('mean'))} | {_fmt(lat.get('min'))} |",
                  ""]
        nl = s.get("node_latency_ms")
        if nl:
            lines += ["Measured by dualtalk_node (/diagnostics, last status; ms): processing = "
                      "arrival of the partner chunk completing a hop -> publish; end-to-end = "
                      "ROS now - frame stamp (unavailable when the stamps are not on the node's "
                      "clock):", "",
                      "| latency | p50 | p95 | max | n |", "|---|---:|---:|---:|---:|"]
            for kind in ("processing", "end_to_end"):
                r = nl.get(kind, {})
                lines.append(f"| {kind} | " + " | ".join(
                    _fmt(r.get(q)) if isinstance(r.get(q), (int, float)) or r.get(q) is None
                    else str(r.get(q)) for q in ("p50", "p95", "max", "n")) + " |")
            lines.append("")
    lines += _timing_markdown(s)
    lines += _metrics_markdown(ev)
    cs = s.get("conversation_state")
    if cs and cs.get("messages"):
        lines += ["## Conversation state", "",
                  f"{cs['messages']} messages; partner speaking "
                  f"{cs['partner_speaking_fraction']:.0%}, agent speaking "
                  f"{cs['agent_speaking_fraction']:.0%} of the time.", ""]
    if "dropped" in s:
        lines += ["## Dropped or refused (node counters on /diagnostics, last status)", ""]
        if s["dropped"]:
            lines += ["| node status | counter | count |", "|---|---|---:|"]
            lines += [f"| {name} | {key} | {n} |" for name, counts in s["dropped"].items()
                      for key, n in counts.items()]
        else:
            lines.append("none: no node reported a dropped, refused or late item.")
        lines.append("")
    dg = s.get("diagnostics")
    if dg and dg.get("messages"):
        lines += ["## Diagnostics (last status of each)", "",
                  "| name | level | message | values |", "|---|---:|---|---|"]
        for name, st in sorted(dg["last"].items()):
            vals = ", ".join(f"{k}={v}" for k, v in list(st["values"].items())[:8])
            lines.append(f"| {name} | {st['level']} | {st['message']} | {vals} |")
        lines.append("")
    if Path(s.get("plot", "")).name:
        lines += [f"![plot]({Path(s['plot']).name})", ""]
    return "\n".join(lines)


def write_plot(ev, path: Path) -> Path | None:
    """Jaw opening and head pitch (pred vs ground truth) and per-frame latency."""
    if ev.pred is None and ev.latency_ms is None:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=False)
    fps = layout.FRAME_RATE
    for ax, dim, label in ((axes[0], layout.JAW.start, "jaw rx (rad)"),
                           (axes[1], layout.POSE.start, "head rx (rad)")):
        if ev.gt is not None:
            ax.plot(np.arange(len(ev.gt)) / fps, ev.gt[:, dim], label="ground truth", lw=1)
        if ev.pred is not None:
            ax.plot(np.arange(len(ev.pred)) / fps, ev.pred[:, dim], label="recorded output",
                    lw=1)
            if ev.received_mask is not None and (~ev.received_mask).any():
                miss = np.flatnonzero(~ev.received_mask)
                ax.plot(miss / fps, ev.pred[miss, dim], "rx", ms=3, label="missing (held)")
        ax.set_ylabel(label)
        ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    if ev.latency_ms is not None and len(ev.latency_ms):
        ax.plot(np.asarray(ev.latency_frames) / fps, ev.latency_ms, ".", ms=2)
        ax.axhline(float(np.percentile(ev.latency_ms, 95)), color="r", lw=0.8, label="p95")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("media time (s)")
    fig.suptitle(ev.summary["name"])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_bag_report(ev, out_dir: Path, plot: bool = True) -> dict[str, Path]:
    """``report.md``, ``report.json`` (and ``report.png``) in ``out_dir``, plus the motion as
    arrays for other tools (e.g. ``dualtalk render``): ``agent_motion.npy`` (the received
    frames [T, 56] by frame index, a missing frame held from the previous one),
    ``agent_motion_released.npy`` (the same frames as the head driver showed them while their
    audio played: :func:`.timing.shown_frames`; when it could be measured) and
    ``partner_motion.npy`` (the partner face the bag carried)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, array in (("agent_motion", ev.pred), ("agent_motion_released", ev.released),
                       ("partner_motion", ev.partner)):
        if array is not None and len(array):
            paths[key] = out_dir / f"{key}.npy"
            np.save(paths[key], np.asarray(array, np.float32))
    if plot:
        try:
            png = write_plot(ev, out_dir / "report.png")
            if png:
                ev.summary["plot"] = str(png)
                paths["png"] = png
        except Exception as exc:  # a plot failure must not lose the report
            ev.summary.setdefault("warnings", []).append(f"plot not written: {exc}")
    paths["json"] = out_dir / "report.json"
    paths["json"].write_text(json.dumps(ev.summary, indent=2, default=_json_default))
    paths["md"] = out_dir / "report.md"
    paths["md"].write_text(bag_markdown(ev))
    LOG.info("report: %s (%s)", paths["md"], ev.summary["status"])
    return paths


def write_summary(evs: Iterable, out_dir: Path) -> dict[str, Path]:
    """Directory summary: one row per bag plus metrics pooled over every scored bag."""
    evs = list(evs)
    out_dir = Path(out_dir)
    lines = ["# Bag evaluation summary", "",
             "| bag | status | frames recv/expected | missing | latency p50 / p95 / max ms "
             "| rate Hz | FD-EXP | MSE-EXP | errors |",
             "|---|---|---:|---:|---|---:|---:|---:|---|"]
    rows = []
    for ev in evs:
        s = ev.summary
        f, lat = s.get("frames", {}), s.get("latency_ms", {})
        raw = (s.get("metrics") or {}).get("raw") or {}
        pf = (s.get("metrics") or {}).get("raw_partner_free") or {}
        fd = raw.get("FD", {}).get("EXP", pf.get("EXP", {}).get("FD"))
        ms = raw.get("MSE", {}).get("EXP", pf.get("EXP", {}).get("MSE"))
        row = {"name": s["name"], "status": s["status"], "frames": f, "latency_ms": lat,
               "lip_offset_ms": s.get("lip_offset_ms"),
               "listening_reaction_ms": s.get("listening_reaction_ms"),
               "rate_hz": s.get("rate", {}).get("output_hz"), "FD_EXP": fd, "MSE_EXP": ms,
               "errors": s.get("errors", []), "report": str(Path(s.get("plot", "")).parent)}
        rows.append(row)
        lines.append(
            f"| {s['name']} | {s['status']} | {f.get('unique', '–')}/{f.get('expected', '–')} "
            f"| {f.get('missing', '–')} | {_fmt(lat.get('p50'))} / {_fmt(lat.get('p95'))} / "
            f"{_fmt(lat.get('max'))} | {_fmt(row['rate_hz'], 2)} | {_fmt(fd, 3)} | "
            f"{_fmt(ms, 4)} | {len(row['errors'])} |")
    pooled = None
    scored = [ev for ev in evs if ev.result is not None]
    if scored:
        from dualtalk_core.evaluation.evaluate import evaluate_predictions
        name = lambda ev: ev.summary["name"]  # noqa: E731
        res = evaluate_predictions({name(e): e.pred for e in scored},
                                   {name(e): e.gt for e in scored},
                                   {name(e): e.partner for e in scored})
        pooled = res.to_json_dict()
        lines += ["", f"## Metrics over {len(scored)} bag(s) with ground truth and partner face",
                  "", res.to_markdown(include_paper=True).strip()]
    lines.append("")
    md = out_dir / "summary.md"
    md.write_text("\n".join(lines))
    js = out_dir / "summary.json"
    js.write_text(json.dumps({"bags": rows, "metrics": pooled}, indent=2,
                             default=_json_default))
    return {"md": md, "json": js}
