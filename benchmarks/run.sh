#!/usr/bin/env bash
# `make bench`: create (or reuse) the peers' environment, run mfrec and the peers on the same
# splits, and render benchmarks/RESULTS.md. Needs MovieLens in MFREC_DATA_DIR (or downloadable).
#
#   bash benchmarks/run.sh                             # peers in benchmarks/.env (created if missing)
#   PEER_ENV=/work/benchenv bash benchmarks/run.sh     # reuse an existing virtualenv with the peers
#
# Extra arguments go to benchmarks/run_core.py (e.g. --skip-folds, --repeats 5).
set -euo pipefail
cd "$(dirname "$0")/.."
PEER_ENV="${PEER_ENV:-benchmarks/.env}"
if [ ! -x "$PEER_ENV/bin/python" ]; then
  python3 -m venv "$PEER_ENV"
  "$PEER_ENV/bin/pip" install --quiet --upgrade pip
fi
if ! "$PEER_ENV/bin/python" -c "import surprise, cmfrec, pandas" 2>/dev/null; then
  "$PEER_ENV/bin/pip" install --quiet scikit-surprise cmfrec pandas
fi
if ! .venv/bin/python -c "import mfrec, matplotlib" 2>/dev/null; then
  .venv/bin/pip install --quiet -e ".[bench]"
fi
export BENCH_COMMAND="${BENCH_COMMAND:-PEER_ENV=$PEER_ENV${MFREC_DATA_DIR:+ MFREC_DATA_DIR=$MFREC_DATA_DIR} bash benchmarks/run.sh${*:+ $*}}"
start=$(date +%s)
.venv/bin/python benchmarks/run_core.py --peer-python "$PEER_ENV/bin/python" "$@"
.venv/bin/python benchmarks/render_results.py
echo "benchmarks/run.sh: $(( $(date +%s) - start )) s" >&2
