#!/usr/bin/env bash
# Create the separate virtual environment TorchEEG needs for benchmarks/bench_data.py and
# tests/data/test_torcheeg_compat.py (TorchEEG pins old numpy/scipy, so it cannot share
# symaffect's .venv).
#
#   bash benchmarks/torcheeg_env.sh [VENV]      # default: benchmarks/_work/torcheeg-venv
#   SYMAFFECT_TORCHEEG_PYTHON=VENV/bin/python .venv/bin/python -m pytest tests/data/test_torcheeg_compat.py
#
# What made it install (TorchEEG 1.1.3, Python 3.11, torch 2.13.0 CPU):
# - torch==2.13.0 first (the local CPU wheel), then torcheeg with constraints pinning it;
# - numpy<2: torcheeg needs scipy<=1.10.1, which has no wheel for numpy 2; unconstrained,
#   pip backtracks to building scipy 1.9.1 from source and fails (no Fortran compiler);
# - pandas<3: wfdb (a torcheeg dependency) fails at import under pandas 3.
set -euo pipefail
VENV="${1:-$(cd "$(dirname "$0")" && pwd)/_work/torcheeg-venv}"
PY="${PYTHON:-python3}"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install torch==2.13.0
CONS="$(mktemp)"
trap 'rm -f "$CONS"' EXIT
printf 'torch==2.13.0\nnumpy<2\nscipy==1.10.1\npandas<3\n' > "$CONS"
"$VENV/bin/pip" install -c "$CONS" torcheeg==1.1.3
"$VENV/bin/python" -c "import torch, torcheeg; from torcheeg.datasets import DEAPDataset; print('torch', torch.__version__, 'torcheeg', torcheeg.__version__)"
echo "TorchEEG python: $VENV/bin/python"
