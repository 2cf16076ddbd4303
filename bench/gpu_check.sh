#!/usr/bin/env bash
# The prepared device check (issue 18): one command, one Markdown table, non-zero exit on a
# failed check. On a GPU machine from bare (Python + torch, transformers, numpy, scipy,
# scikit-learn; no ROS, no network):
#     bench/gpu_check.sh                         # --device cuda, full sizes, <= 8 min on one H200
#     bench/gpu_check.sh --device cpu --quick    # the same rows on a CPU, a few minutes
#     bench/gpu_check.sh --markdown $OUT/gpu_check.md
# dualtalk_core is imported from the source tree (PYTHONPATH): nothing is installed, so nothing
# can pull a dependency. Wheels of missing pure-Python packages may travel in .whl/ (see the
# device tool's notes); they are installed to a private folder first.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/dualtalk-site .whl/*.whl
    export PYTHONPATH="/tmp/dualtalk-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src/dualtalk_core${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false

# gpu_check.py keeps to its own time budget (--budget-s, 450 s); this is the hard stop.
exec timeout --signal=INT --kill-after=20 "${GPU_CHECK_TIMEOUT_S:-480}" "$PY" bench/gpu_check.py "$@"
