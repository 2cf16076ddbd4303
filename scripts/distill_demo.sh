#!/usr/bin/env bash
# Distil the sliding-window demo model (models/dualtalk_cpu_demo.pt, `cpu` preset) into a `live`
# student on the 200 synthetic conversations it was trained on, and compare both STREAMED on the
# test split (what a robot gets):
#   1. the data (legacy face scale, the teacher's; made only when missing),
#   2. the teacher cache: both sides of every train and ood (validation) clip, two passes each,
#      once (DATA/teacher_cache/teacher-<hash>/; a second run reuses it),
#   3. the student: config/distill_live.yaml (the live recipe on the legacy scale, validation
#      and best.pt on ood), 20 minutes on two threads, teacher outputs as targets,
#   4. student and teacher streamed through `dualtalk evaluate --streaming` on test (20 ms
#      chunks), no baselines, then the two rows side by side (MSE-EXP, jaw r).
# DISTILL_MINUTES bounds the student's training (default 20); DISTILL_STEPS instead for a
# step-exact run. One training at a time on a small machine: this script refuses to start while
# a `dualtalk train` or `dualtalk distill` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
TEACHER=${TEACHER:-models/dualtalk_cpu_demo.pt}
DATA=${DATA:-runs/live-demo/data}
RUNS=${RUNS:-runs/distill-demo}
LIMIT=(--max-minutes "${DISTILL_MINUTES:-20}")
[[ -n "${DISTILL_STEPS:-}" ]] && LIMIT=(--max-steps "$DISTILL_STEPS")
if pgrep -af "dualtalk (train|distill) " >/dev/null; then
  echo "distill_demo.sh: a training is running (pgrep -af 'dualtalk train'); not starting another" >&2
  exit 1
fi
[[ -d $DATA/train ]] || "$BIN/dualtalk" data synth -o "$DATA" --pairs 200 --seed 0 \
    --face-stats legacy
mkdir -p "$RUNS"
# 2. + 3. (the cache is built first; --max-minutes counts the student's training only)
OMP_NUM_THREADS=2 "$BIN/dualtalk" distill --teacher "$TEACHER" --data "$DATA" \
    --config config/distill_live.yaml --out "$RUNS/train" "${LIMIT[@]}" --no-progress \
    2>&1 | tee "$RUNS/distill.log"
# 4. both streamed, same split, same chunks
"$BIN/dualtalk" evaluate --checkpoint "$RUNS/train/best.pt" --data "$DATA" --split test \
    --streaming --chunk-ms 20 --baselines none --no-paper \
    --method-name "live student (distilled), streamed" \
    --markdown "$RUNS/student_test.md" --json "$RUNS/student_test.json"
"$BIN/dualtalk" evaluate --checkpoint "$TEACHER" --data "$DATA" --split test \
    --streaming --chunk-ms 20 --baselines none --no-paper \
    --method-name "cpu teacher (sliding window), streamed" \
    --markdown "$RUNS/teacher_test.md" --json "$RUNS/teacher_test.json"
"$BIN/python" - "$RUNS" <<'EOF' | tee "$RUNS/distill_table.md"
import json, sys
from pathlib import Path
runs = Path(sys.argv[1])
rows = {}
for who in ("teacher", "student"):
    data = json.loads((runs / f"{who}_test.json").read_text())
    (name, m), = data["methods"].items()
    rows[who] = (name, m["raw"]["MSE"]["EXP"], m["raw"]["FD"]["EXP"], m["extras"]["jaw_r"],
                 m["extras"]["jaw_speech_r"])
print("| model (test split, streamed, 20 ms chunks) | MSE-EXP | FD-EXP | jaw r (pred vs real) "
      "| jaw/speech r |\n|---|---:|---:|---:|---:|")
for name, *vals in rows.values():
    print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
t, s = rows["teacher"], rows["student"]
print(f"\nstudent / teacher: MSE-EXP {s[1] / t[1]:.3f} (target <= 1.10), jaw r "
      f"{s[3] / t[3]:.3f} (target >= 0.90)")
EOF
