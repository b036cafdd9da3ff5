#!/usr/bin/env bash
# `make bench`: create (or reuse) the peers' environment, run mfrec and the peers on the same
# splits, and render benchmarks/RESULTS.md. Needs MovieLens in MFREC_DATA_DIR (or downloadable).
set -euo pipefail
cd "$(dirname "$0")/.."
PEER_ENV="${PEER_ENV:-benchmarks/.env}"
if [ ! -x "$PEER_ENV/bin/python" ]; then
  python3 -m venv "$PEER_ENV"
  "$PEER_ENV/bin/pip" install --quiet --upgrade pip
  "$PEER_ENV/bin/pip" install --quiet scikit-surprise cmfrec pandas
fi
.venv/bin/pip install --quiet -e ".[bench]"
.venv/bin/python benchmarks/run_core.py --peer-python "$PEER_ENV/bin/python" "$@"
.venv/bin/python benchmarks/render_results.py
