#!/usr/bin/env bash
# Build the wheel and sdist, install the wheel into a fresh virtualenv outside the source tree and
# run a smoke test from the installed package (import, a small train/save/load/recommend round trip,
# the mfrec command). Usage: bash .ci/wheel_smoke.sh [--measure]   (--measure: also print the
# site-packages size of the base install and of the install with the parquet extra).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$PWD"
PY="${PYTHON:-.venv/bin/python}"
rm -rf dist
"$PY" -m build --outdir dist . >/tmp/mfrec-build.log 2>&1 || { tail -30 /tmp/mfrec-build.log; exit 1; }
ls dist/mfrec-*.whl dist/mfrec-*.tar.gz
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
pipq() { "$WORK/venv/bin/pip" install --quiet "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
python3 -m venv "$WORK/venv"
pipq --upgrade pip
pipq "$SRC"/dist/mfrec-*.whl
site="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cd "$WORK"   # outside the source tree: the installed package, not src/
export NUMBA_CACHE_DIR="$WORK/numba_cache"
unset PYTHONPATH
"$WORK/venv/bin/mfrec" --version
"$WORK/venv/bin/mfrec" --help >/dev/null
"$WORK/venv/bin/mfrec" demo --help >/dev/null
"$WORK/venv/bin/python" - "$SRC" <<'PY'
import importlib.util, sys
from pathlib import Path
import mfrec
src = Path(sys.argv[1]).resolve()
assert src not in Path(mfrec.__file__).resolve().parents, mfrec.__file__
assert (Path(mfrec.__file__).parent / "py.typed").exists(), "py.typed missing from the wheel"
assert importlib.util.find_spec("pyarrow") is None, "pyarrow is in the base install"
r = mfrec.synthetic(200, 100, 3000, seed=0)
train, test = mfrec.split.random_split(r, test_size=0.2, seed=0)
model = mfrec.BiasedMF(factors=8, epochs=5, seed=0).fit(train)
model.save("m.mfrec")
loaded = mfrec.load_model("m.mfrec")
assert abs(loaded.score(test) - model.score(test)) < 1e-6
recs = loaded.recommend_new({train.items[0]: 5.0, train.items[1]: 4.0}, n=5)
assert len(recs) == 5, recs
try:
    mfrec.Ratings.read_parquet("x.parquet")
except ImportError as exc:
    assert "mfrec[parquet]" in str(exc), exc
else:
    raise SystemExit("read_parquet without pyarrow did not raise ImportError")
print(f"wheel smoke test passed: mfrec {mfrec.__version__} from {Path(mfrec.__file__).parent}, RMSE {model.score(test):.4f}")
PY
"$WORK/venv/bin/python" -c "import mfrec; mfrec.synthetic(100, 50, 1500, seed=0).to_dataframe().to_csv('r.csv', index=False)"
"$WORK/venv/bin/mfrec" train --ratings r.csv --model implicit-als --iterations 2 --out "$WORK/cli.mfrec" --quiet >/dev/null
"$WORK/venv/bin/mfrec" recommend "$WORK/cli.mfrec" --user 1 -n 3 >/dev/null
echo "CLI train/recommend round trip from the wheel: ok"
if [ "${1:-}" = "--measure" ]; then
    base=$(du -sm "$site" | cut -f1)
    pipq "$(ls "$SRC"/dist/mfrec-*.whl)[parquet]"
    full=$(du -sm "$site" | cut -f1)
    echo "site-packages: base install ${base} MB, with the parquet extra (pyarrow) ${full} MB"
fi
