"""The status line of a bag evaluation: ``ok`` only when the run really was.

Scoring (:mod:`.score`) judges the recorded output; it cannot see that the graph died half-way
(a report of "ok" over the 120 of 433 frames that arrived was the result) or that the recorder
stopped early. :func:`apply_verdict` adds what the run itself knows (:class:`RunFacts`) and the
frame count rule, and writes ``status`` (``ok`` < ``partial`` < ``failed``; ``error`` for a bag
that could not be replayed at all stays ``error``) with ``status_reason``, one line saying why.
It also collects the frames every node reports as dropped on ``/diagnostics``.
"""
from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Any

MIN_FRAME_FRACTION = 0.95        # fewer frames than this share of the expected: not ok
RANK = {"ok": 0, "partial": 1, "failed": 2, "error": 3}
# /diagnostics counters that count lost or refused items (dualtalk_node, head_driver, adapters)
DROP_KEY = re.compile(r"(dropped|invalid|out_of_order|missed|late_frames|nonfinite|overflow)")


@dataclass
class RunFacts:
    """What ``bag evaluate`` observed while running one bag."""

    graph_exit: int | None = None          # exit status of the graph process (None: none ran)
    graph_exited_early: bool = False       # it ended before we stopped it
    recorder_problems: list[str] = field(default_factory=list)
    graph_cpu_s: float | None = None       # CPU seconds of the graph's processes ...
    graph_wall_s: float | None = None      # ... over this much wall time (replay + drain)
    graph_argv: list[str] | None = None    # the command the graph ran with
    output_counts: dict[str, int] | None = None   # messages recorded per (stored) topic name

    def cpu_summary(self) -> dict[str, Any]:
        """The report's ``graph_cpu``: CPU share of the whole graph in cores (CPU seconds of
        the bring-up and every node process / wall seconds of the replay and drain)."""
        if self.graph_cpu_s is None or not self.graph_wall_s:
            return {"cores": None, "cpu_s": None, "wall_s": None,
                    "why": "no graph process of ours ran (--no-graph / failed start)"}
        return {"cores": self.graph_cpu_s / self.graph_wall_s, "cpu_s": self.graph_cpu_s,
                "wall_s": self.graph_wall_s}


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def clean_stop(code: int | None) -> bool:
    """How a graph stopped by SIGINT ends when all is well (0; -2/130 for a bare SIGINT)."""
    return code in (None, 0, -signal.SIGINT, 128 + signal.SIGINT)


def dropped_counts(diagnostics: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, int]]:
    """``{status name: {counter: n}}`` of the non-zero drop counters in the last status."""
    out: dict[str, dict[str, int]] = {}
    for name, st in sorted((diagnostics or {}).items()):
        for key, value in (st.get("values") or {}).items():
            if not DROP_KEY.search(key):
                continue
            try:
                n = int(float(value))
            except (TypeError, ValueError):
                continue
            if n:
                out.setdefault(name, {})[key] = n
    return out


def apply_verdict(summary: dict[str, Any], facts: RunFacts, graph_log: str = "") -> None:
    """Set ``summary["status"]`` / ``["status_reason"]`` (and ``["dropped"]``) from the score,
    the run facts and the frame count; reasons also go to ``summary["errors"]``."""
    status = summary.get("status", "ok")
    reasons: list[tuple[str, str]] = []
    where = f"; log {graph_log}" if graph_log else ""
    if facts.graph_exited_early:
        reasons.append(("failed", f"the graph stopped before the end of the run "
                                  f"({describe_exit(facts.graph_exit)}){where}"))
    elif not clean_stop(facts.graph_exit):
        reasons.append(("failed", f"the graph ended with {describe_exit(facts.graph_exit)} "
                                  f"(a node crashed or did not stop cleanly){where}"))
    for problem in facts.recorder_problems:
        reasons.append(("failed", f"the recorder stopped early: {problem}"))
    frames = summary.get("frames") or {}
    expected, got = frames.get("expected") or 0, frames.get("unique", frames.get("received", 0))
    if expected and got < MIN_FRAME_FRACTION * expected:
        reasons.append(("partial" if got else "failed",
                        f"{got} of {expected} expected frames ({got / expected:.0%}; "
                        f"at least {MIN_FRAME_FRACTION:.0%} needed)"))
    summary["dropped"] = dropped_counts((summary.get("diagnostics") or {}).get("last"))
    errors = summary.setdefault("errors", [])
    for level, text in reasons:
        if text not in errors:
            errors.append(text)
        if RANK[level] > RANK.get(status, 0) and status != "error":
            status = level
    if reasons and status == "ok":
        status = "partial"
    summary["status"] = status
    if status == "ok":
        summary["status_reason"] = "all expected frames arrived from a graph that ran to the end"
    elif reasons:
        summary["status_reason"] = max(reasons, key=lambda r: RANK[r[0]])[1]
    else:
        summary["status_reason"] = errors[0] if errors else status
