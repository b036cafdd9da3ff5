"""First-call compile (issue 18, section 4): where kernels cache, the first-use notice, and how
many specializations a fit compiles. Each check runs in a fresh process: the cache locator is
installed at import and a process compiles a signature only once."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mfrec.kernels import compile as C

SRC = Path(C.__file__).resolve().parents[2]  # the directory holding the mfrec package

CHILD = r"""
import json, logging, sys
from mfrec.kernels.compile import record_compiles
compiled = record_compiles()
notices = []
class Keep(logging.Handler):
    def emit(self, record):
        notices.append(record.getMessage())
logging.getLogger("mfrec.kernels").addHandler(Keep())
logging.getLogger("mfrec.kernels").setLevel(logging.INFO)
import mfrec
from mfrec.kernels.compile import kernel_cache_dir, show_compile_notices
if "--stderr" in sys.argv:
    show_compile_notices()
r = mfrec.synthetic(30, 20, 150, seed=1)
mfrec.Baseline(iterations=2).fit(r)
print(json.dumps({"compiled": compiled, "notices": notices, "cache_dir": str(kernel_cache_dir())}))
"""


def _run(code: str, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def _env(tmp_path: Path, pythonpath: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "MFREC_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(pythonpath), HOME=str(tmp_path / "home"), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_user_cache_dir_follows_mfrec_cache_dir_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert C.user_cache_dir() == tmp_path / "m" / "numba"
    monkeypatch.delenv("MFREC_CACHE_DIR")
    assert C.user_cache_dir() == tmp_path / "x" / "mfrec" / "numba"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert C.user_cache_dir() == tmp_path / "h" / ".cache" / "mfrec" / "numba"


def test_locator_is_installed_once_after_the_in_tree_one():
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    C.install_cache_locator()
    C.install_cache_locator()
    names = [c.__name__ for c in impl._locator_classes]
    assert names.count("MfrecUserCacheLocator") == 1
    assert names.index("MfrecUserCacheLocator") == names.index("InTreeCacheLocator") + 1


def test_read_only_package_caches_in_the_user_dir_and_the_second_process_is_warm(tmp_path):
    """A package whose directory cannot be written (site-packages of a system install): the
    kernels cache under $XDG_CACHE_HOME/mfrec/numba, not next to the source nor in Numba's own
    ~/.cache/numba, and a second process loads them (nothing compiles, no notice)."""
    site = tmp_path / "site"
    shutil.copytree(SRC / "mfrec", site / "mfrec", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (site / "mfrec" / "kernels" / "__pycache__").write_text("")  # a file: no cache dir can be made there (even as root)
    for p in [site, *site.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        env = _env(tmp_path, site, XDG_CACHE_HOME=str(tmp_path / "xdg"))
        user_dir = tmp_path / "xdg" / "mfrec" / "numba"
        cold = _run(CHILD, env)
        assert cold["cache_dir"] == str(user_dir)
        assert "bias_als_step" in cold["compiled"]
        assert any(f.suffix == ".nbi" for f in _files(user_dir)), "no kernel cached in the user dir"
        assert not _files(tmp_path / "home" / ".cache" / "numba")  # Numba's generic fallback unused
        warm = _run(CHILD, env)
        assert warm["compiled"] == [] and warm["notices"] == []
    finally:
        for p in [site, *site.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_notice_on_a_cold_cache_only(tmp_path):
    """One INFO line naming the model when a fit compiles; none when the cache is warm."""
    env = _env(tmp_path, SRC, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    cold = _run(CHILD, env, "--stderr")
    assert cold["cache_dir"] == str(tmp_path / "numba")
    assert len(cold["notices"]) == 1
    notice = cold["notices"][0]
    assert notice.startswith("compiling mfrec kernels for Baseline (first use, ~1 s; cached afterwards in ")
    assert notice.endswith(str(tmp_path / "numba") + ")")
    assert notice in cold["stderr"].splitlines()  # show_compile_notices: the CLI's line on stderr
    warm = _run(CHILD, env, "--stderr")
    assert warm["compiled"] == [] and warm["notices"] == [] and "compiling" not in warm["stderr"]
    assert cold["compiled"] and not cold["stderr"].replace(notice, "").strip()  # nothing else printed


SPECIALIZATIONS = r"""
import json, sys
import numpy as np, pandas as pd
import mfrec
from numba.core.registry import CPUDispatcher
import mfrec.kernels.als, mfrec.kernels.cmf, mfrec.kernels.bayes, mfrec.kernels.random

def dispatchers():
    out = {}
    for mod in [m for n, m in sys.modules.items() if n.startswith("mfrec.kernels.")]:
        for name, v in vars(mod).items():
            if isinstance(v, CPUDispatcher):
                out[mod.__name__ + "." + name] = v
            elif isinstance(v, dict):
                for key, d in v.items():
                    if isinstance(d, CPUDispatcher):
                        out[f"{mod.__name__}.{name}[{key}]"] = d
    return out

name = sys.argv[1]
rng = np.random.default_rng(0)
n = 400
a = mfrec.Ratings.from_arrays(rng.integers(0, 40, n), rng.integers(0, 30, n), rng.integers(1, 6, n).astype(np.float64),
                             duplicates="mean")
kw = {"iterations": 4, "burn_in": 1} if name == "BayesianMF" else {}
getattr(mfrec, name)(seed=1, threads=2, **kw).fit(a)
first = {k: len(d.signatures) for k, d in dispatchers().items()}
df = pd.DataFrame({"user": [f"u{i}" for i in rng.integers(0, 50, n)], "item": rng.integers(100, 140, n).astype(np.int32),
                   "rating": rng.integers(1, 6, n).astype(np.float32)})
b = mfrec.Ratings.from_dataframe(df, duplicates="last")
getattr(mfrec, name)(seed=2, threads=1, factors=7, **kw).fit(b)
second = {k: len(d.signatures) for k, d in dispatchers().items()}
print(json.dumps({"first": first, "second": second}))
"""


@pytest.mark.parametrize("name", ["ALS", "CMF", "ImplicitALS", "BayesianMF", "BiasedMF", "SVDpp"])
def test_a_fit_compiles_one_specialization_per_kernel_and_only_its_solver(name, tmp_path):
    """Other input dtypes, id types, thread and factor counts compile nothing new (the second fit
    runs on one thread: a one-block SGD layout needs no kernel, so a 2-thread fit may add one); the prange
    index passed to a helper (uint64 in Numba's parallel body, int64 outside) does not make two
    specializations; the unused solver (exact, with ``solver="cg"``) is never compiled."""
    env = _env(tmp_path, SRC, NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", str(tmp_path / "numba")))
    res = _run(SPECIALIZATIONS, env, name)
    assert res["second"] == res["first"], "the second fit compiled new specializations"
    used = {k: v for k, v in res["first"].items() if v}
    assert used and all(v == 1 for v in used.values()), used
    # cg is the default: the exact variant of a half step stays uncompiled
    assert not any(k.endswith("_HALF_STEP[False]") for k in used), used
    # the SGD epoch compiles the implicit-factor (SVD++) code only for SVD++
    epoch = {k for k in used if "_EPOCH_WORKER" in k}
    assert epoch == ({"mfrec.kernels.sgd._EPOCH_WORKER[True]"} if name == "SVDpp" else
                     {"mfrec.kernels.sgd._EPOCH_WORKER[False]"} if name == "BiasedMF" else set()), used
    assert "mfrec.kernels.als._implicit_exact_row" not in used


SAME_BITS = r"""
import hashlib, json
import numpy as np
import mfrec
train = mfrec.synthetic(300, 200, 6000, seed=3)
out = {}
def digest(*arrays):
    return hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()

for threads in (1, 2):
    m = mfrec.SVDpp(factors=8, epochs=3, threads=threads, seed=4).fit(train)
    out[f"svdpp{threads}"] = digest(m.user_factors_, m.item_factors_, m.implicit_factors_, m.user_bias_)
# the models whose kernels still use prange: the ImplicitALS CG step, BPR, and scoring + top-n
for name in ("ImplicitALS", "BPR"):
    m = getattr(mfrec, name)(factors=8, threads=1, seed=4).fit(train)
    out[name] = digest(m.user_factors_, m.item_factors_)
    top = m.recommend_many(list(train.raw_users[:40]), n=5)
    out[name + "-top"] = digest(top["item"].to_numpy(), top["score"].to_numpy())
print(json.dumps(out))
"""


def test_a_cold_compiled_and_a_cache_loaded_kernel_give_the_same_bits(tmp_path):
    """One seed, one model: the process that compiles the kernels and the next one, which loads
    them from the cache, fit bit-identical models (with fast-math's ``arcp`` flag, SVD++'s implicit
    update and ImplicitALS's float32 CG did not: Numba's JIT and its cached object code lower
    approximate reciprocals differently, mfrec.kernels.compile.FASTMATH)."""
    env = _env(tmp_path, SRC, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    cold = _run(SAME_BITS, env)
    warm = _run(SAME_BITS, env)
    assert _files(tmp_path / "numba")
    keys = {k for k in cold if k != "stderr"}
    assert len(keys) == 6 and {k: cold[k] for k in keys} == {k: warm[k] for k in keys}


BFM_COLD = r"""
import json, sys
import numpy as np, pandas as pd
from numba.core import event
from mfrec.kernels.compile import record_compiles
compiled = record_compiles()
internal = []
class Every(event.Listener):
    def on_start(self, ev):
        py_func = getattr((ev.data or {}).get("dispatcher"), "py_func", None)
        internal.append(getattr(py_func, "__module__", "") or "")
    def on_end(self, ev):
        pass
event.register("numba:compile", Every())
import mfrec
rng = np.random.default_rng(0)
n = 400
a = mfrec.Ratings.from_arrays(rng.integers(0, 40, n), rng.integers(0, 30, n), rng.integers(1, 6, n).astype(np.float64),
                              duplicates="mean")
mfrec.BayesianFM(seed=1, threads=1, iterations=4, burn_in=1).fit(a)
first = list(compiled)
numba_modules = sorted(set(internal))
df = pd.DataFrame({"user": [f"u{i}" for i in rng.integers(0, 50, n)], "item": rng.integers(100, 140, n).astype(np.int32),
                   "rating": rng.integers(1, 6, n).astype(np.float32)})
b = mfrec.Ratings.from_dataframe(df, duplicates="last")
users = pd.DataFrame({"age": rng.uniform(10, 70, b.n_users), "job": rng.choice(["x", "y", "z"], b.n_users)},
                     index=b.user_map.ids)
items = pd.DataFrame({"genre": rng.choice(["p", "q"], b.n_items)}, index=b.item_map.ids)
mfrec.BayesianFM(seed=2, threads=2, factors=7, iterations=5, burn_in=2, implicit=False, noise_precision=2.0,
                 dtype="float64").fit(b, user_attributes=users, item_attributes=items)
print(json.dumps({"first": first, "second": compiled[len(first):], "numba_modules": numba_modules}))
"""

# BayesianFM's kernel specializations on an empty cache (issue 18, section 4): 11 before the
# first-call work, these 7 after it. A new kernel, helper or twin makes this test fail: add it
# here only if its compile time is worth it (bench_first_fit --models BayesianFM).
BFM_KERNELS = ["mfrec.kernels.random.uniform_fill", "mfrec.kernels.fm.side_state", "mfrec.kernels.fm.residuals",
               "mfrec.kernels.fm.residual_sums", "mfrec.kernels.fm.sample_side_linear",
               "mfrec.kernels.fm.update_residual_linear", "mfrec.kernels.fm.factor_sweep"]


def test_bayesian_fm_cold_fit_compiles_its_pinned_kernels_once(tmp_path):
    """On an empty cache a BayesianFM fit compiles exactly `BFM_KERNELS`, each once (the factor
    sweep's steps are inlined into `factor_sweep`, no twin); no Numba string formatting
    (pulled in by NumPy's broadcasting and strided-copy checks, ~2 s: ``M[:, f] = v``); and a
    second fit with other ids, dtypes, factors, fixed noise, no implicit block and attribute
    tables compiles nothing new."""
    env = _env(tmp_path, SRC, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    res = _run(BFM_COLD, env)
    names = {name: res["first"].count(name.rsplit(".", 1)[1]) for name in BFM_KERNELS}
    assert names == {name: 1 for name in BFM_KERNELS}, names
    assert len(res["first"]) == len(BFM_KERNELS), res["first"]
    assert res["second"] == []
    assert not [m for m in res["numba_modules"] if m.startswith("numba.cpython.unicode")], res["numba_modules"]


def test_parallel_rows_runs_every_row_once_on_any_thread_count():
    import numpy as np
    from numba import njit

    from mfrec.threads import kernel_threads, parallel_rows

    @njit(nogil=True)
    def mark(lo, hi, out):
        for r in range(lo, hi):
            out[r] += r + 1

    for threads in (1, 2):
        for n in (0, 1, 7, 1000):
            out = np.zeros(n, dtype=np.int64)
            with kernel_threads(threads):
                parallel_rows(mark, n, out)
            assert (out == np.arange(1, n + 1)).all()


@pytest.mark.parametrize("name", ["ALS", "BayesianMF"])
def test_thread_driven_half_steps_do_not_depend_on_the_thread_count(name):
    """Each row's solve writes only its own slots: threads=1 and threads=2 give identical fits."""
    import numpy as np

    import mfrec

    r = mfrec.synthetic(60, 40, 600, seed=3)
    kw = {"iterations": 3, "burn_in": 1} if name == "BayesianMF" else {"iterations": 3}
    a = getattr(mfrec, name)(seed=1, threads=1, **kw).fit(r)
    b = getattr(mfrec, name)(seed=1, threads=2, **kw).fit(r)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_parallel_rows_works_in_a_forked_child():
    """The pool's threads do not survive fork(); the child must not wait on them forever."""
    import numpy as np
    from numba import njit

    from mfrec.threads import kernel_threads, parallel_rows

    @njit(nogil=True)
    def mark(lo, hi, out):
        for r in range(lo, hi):
            out[r] = 1

    with kernel_threads(2):
        parallel_rows(mark, 10, np.zeros(10, dtype=np.int64))  # the parent's pool exists now
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                out = np.zeros(10, dtype=np.int64)
                parallel_rows(mark, 10, out)
                code = 0 if out.all() else 1
            finally:
                os._exit(code)
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("parallel_rows hung in a forked child")
