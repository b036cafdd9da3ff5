#!/usr/bin/env python
"""Run peer matrix-factorization libraries on a fixed train/test split.

Standalone: this script does NOT import ``mfrec``. It is meant to run under the
separate benchmark virtualenv (``/work/benchenv/bin/python``), which has
scikit-surprise, cmfrec (and implicit) installed.

Usage
-----
    python benchmarks/peers.py --train TRAIN.csv --test TEST.csv \\
        --models surprise-svd,surprise-svdpp,cmfrec-als,cmfrec-cmf \\
        --factors 100 --epochs 20 --repeats 3 [--threads 2] [--lambda 10] \\
        [--tune-lambda] [--user-attributes users.csv --item-attributes items.csv] \\
        [--cold-users cold.csv] [--topn-out 'topn_{model}.csv' --topn 10]

Inputs are CSV files with a header containing ``user,item,rating`` (extra columns
are ignored) or Parquet files (``.parquet``; needs pyarrow or fastparquet in the
running interpreter). Ids are read as strings so that train, test and attribute
files always agree on the id type.

Output: one JSON object per line on stdout, one per (library, model), with keys
``library, model, version, factors, epochs_or_iterations, params, rmse, mae,
fit_seconds_median, fit_seconds_min, fit_seconds_max, peak_rss_mb, n_unknown``
plus a few extra diagnostic keys (``n_train``, ``n_test``, ``threads``,
``rmse_per_fit``, ``predict_seconds``, ``data_prep_seconds``, ``n_nan_filled``,
``rating_scale``, ``peak_rss_method`` and, with ``--cold-users``, ``cold_rmse``,
``cold_mae``, ``n_cold``, ``cold_method``). Progress messages go to stderr.

Models
------
surprise-svd     ``surprise.SVD(n_factors=F, n_epochs=E, random_state=seed)``,
                 library defaults otherwise (lr_all=0.005, reg_all=0.02).
surprise-svdpp   ``surprise.SVDpp(n_factors=F', n_epochs=E, random_state=seed)``
                 with F' = ``--factors-svdpp`` (default 20 = Surprise's own
                 default, NOT ``--factors``), library defaults otherwise.
cmfrec-als       ``cmfrec.CMF(method="als", k=F, lambda_=L, niter=--als-iter
                 (default 10), user_bias=True, item_bias=True, nthreads=threads,
                 random_state=seed, verbose=False)``; every other argument is
                 the cmfrec default (notably use_cg=True, finalize_chol=True,
                 center=True, scale_lam=False, use_float=True); the full
                 ``get_params()`` is recorded in ``params``.
cmfrec-cmf       Same as cmfrec-als plus side information:
                 ``fit(X, U=users_df, I=items_df)`` where ``users_df`` has a
                 ``UserId`` column plus the numeric attribute columns and
                 ``items_df`` an ``ItemId`` column plus numeric columns.
                 Attribute rows are restricted to ids that appear in the
                 training ratings (cold users must not leak into the fit).
myfm             ``myfm.MyFMRegressor(rank=F, random_seed=seed)`` (Gibbs-sampled Bayesian
                 FM), ``fit(None, y, X_rel=[RelationBlock(user, XU), RelationBlock(item,
                 XI)], group_shapes=..., n_iter=--myfm-iter, n_kept_samples=--myfm-iter -
                 --myfm-burn-in)`` with ids only: XU = user one-hot, XI = item one-hot.
myfm-implicit    The same with the SVD++-style implicit features built from the training
                 ratings only (as in myFM's ml-100k example and mfrec.BayesianFM): XU =
                 [user one-hot, items the user rated / sqrt(count)], XI = [item one-hot,
                 users who rated the item / sqrt(count)]; one group per block. With
                 ``--user-attributes`` / ``--item-attributes`` (numeric columns, e.g.
                 one-hot encoded) these are appended to XU / XI as one more group each.
                 Unknown test users/items get an all-zero block row (w0 + the other side).
implicit-als     Not implemented: implicit's ALS optimises an implicit-feedback
                 (confidence-weighted) loss, so an explicit RMSE is not a
                 meaningful comparison. Requesting it prints an error line.

Lambda (cmfrec only; Surprise keeps its own reg_all default): ``--lambda``
(default 10 = cmfrec default) or ``--tune-lambda``, which carves a seeded 10%
validation set out of the training ratings (``np.random.default_rng(seed)``
permutation, first 10% = validation), fits the model on the remaining 90% for
each lambda in ``--lambda-grid`` (default 1,3,5,10,20,35,50), picks the lambda
with the lowest validation RMSE and then benchmarks on the full training set.
The grid and the validation RMSEs are recorded in ``params``. Tuning time is not
part of the fit timings.

Timing
------
For each model: one untimed warm-up fit, then ``--repeats`` timed fits
(``time.perf_counter`` around the library's fit call only). A fresh model object
is built for every fit and the previous one is dropped first. Building the
library's input structure once (Surprise ``Trainset``; the renamed pandas
DataFrames for cmfrec) is done outside the timed region and reported as
``data_prep_seconds``. Note that cmfrec's ``fit`` on a DataFrame includes its own
id re-mapping, which is therefore inside the timed region (that is its public API).
Metrics (RMSE/MAE) are computed after every timed fit; ``rmse``/``mae`` are those
of the last fit and ``rmse_per_fit`` lists all of them.

Prediction
----------
Predictions are clipped to ``[min, max]`` of the training ratings. Unknown
users/items use the library's own fallback: Surprise (SVD/SVD++) predicts
``mu + b_u + b_i`` with the unknown parts omitted; cmfrec 3.5's ``CMF.predict``
(explicit CMF) returns global mean + the known bias for invalid combinations
(not NaN, contrary to older docs). Any NaN that a library still returns is
replaced by the training global mean and counted in ``n_nan_filled``.
``n_unknown`` is counted independently of the library: the number of test rows
whose user or item does not occur in the training ratings.

Top-n lists (``--topn-out PATTERN --topn N``)
---------------------------------------------
After the timed fits (and after the peak-memory reading, so the dense score blocks below do
not count towards ``peak_rss_mb``), the last fitted model writes every test user's top-N
(default 10) to the CSV ``PATTERN`` with ``{model}`` replaced by the model name (when the
pattern has no ``{model}``, ``_MODEL`` is inserted before the extension). Columns:
``user,item,rank,score`` with the raw ids of the input files, rank 1 = best. The lists are
computed with numpy from the fitted parameters, not with the libraries' own per-pair predict:

* candidates: every item of the training ratings that the user did not rate in training;
* users: the test users that occur in the training ratings (others get no list);
* score = global mean + user bias + item bias + user vector . item vector, unclipped (the
  libraries clip predictions to the rating scale, which would tie every item above 5 at 5):
  Surprise SVD ``trainset.global_mean + bu[u] + bi[i] + pu[u] . qi[i]`` (inner ids mapped back
  with ``trainset.to_raw_uid/to_raw_iid``); Surprise SVD++ the same with
  ``pu[u] + |N(u)|^-1/2 * sum_{j in N(u)} yj[j]`` as user vector, ``N(u)`` the user's
  training items (``trainset.ur[u]``), as in ``SVDpp.estimate``; cmfrec
  ``glob_mean_ + user_bias_[u] + item_bias_[i] + A_[u] . B_[i]`` (rows in the order of
  ``user_mapping_`` / ``item_mapping_``);
* top-N by ``np.argpartition`` on blocks of users, then sorted by score (ties: lower column).

As a check, the numpy score is compared with the library's own unclipped prediction on up to
2,000 (user, item) pairs of the test set whose user and item are both known;
``topn_check_max_abs_diff`` records the largest difference (float32 for cmfrec, so ~1e-6).
The JSON line also gets ``topn_file``, ``topn_users``, ``topn_seconds``. Scoring the lists
(precision@k, ndcg@k, ...) is left to the caller (``run_core.py`` uses ``mfrec.metrics``, the
same code that scores mfrec's own lists).

Cold start (``--cold-users FILE``): ratings (user,item,rating) of users absent
from training. cmfrec-cmf predicts them with
``CMF.predict_cold_multiple(item=items, U=attr_frame)`` (one attribute row per
rating, columns as in fit; users without an attribute row get all-NaN
attributes, which cmfrec treats as missing). All other models predict them via
their unknown-user fallback (i.e. item-bias baseline). Reported as
``cold_rmse``/``cold_mae``/``n_cold``/``cold_method``.

Peak memory
-----------
Each model runs in a fresh subprocess (the script re-invokes itself with
``--single MODEL``). In the child, after the ratings are loaded into pandas and
the library is imported, the kernel's RSS high-water mark is reset by writing
``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0) and the current RSS (VmRSS)
is taken as baseline. After the warm-up fit, all timed fits and all predictions,
``peak_rss_mb = (VmHWM - baseline) / 1024`` (both from ``/proc/self/status``,
MiB). So it is the extra resident memory of building the library's data
structure + fitting + predicting, above "data loaded, library imported". If the
high-water mark cannot be reset, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
minus the baseline is used instead (may underestimate when data loading itself
peaked higher); ``peak_rss_method`` says which was used.

Threads
-------
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (and a few
siblings) are set from ``--threads`` before numpy is imported; cmfrec also gets
``nthreads=threads``. Surprise is single-threaded regardless.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

SURPRISE_MODELS = ("surprise-svd", "surprise-svdpp")
CMFREC_MODELS = ("cmfrec-als", "cmfrec-cmf")
MYFM_MODELS = ("myfm", "myfm-implicit")
ALL_MODELS = SURPRISE_MODELS + CMFREC_MODELS + MYFM_MODELS + ("implicit-als",)
DEFAULT_GRID = "1,3,5,10,20,35,50"


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--models", default="surprise-svd,cmfrec-als")
    p.add_argument("--factors", type=int, default=100)
    p.add_argument("--factors-svdpp", type=int, default=20,
                   help="n_factors for surprise-svdpp (default 20, Surprise's default)")
    p.add_argument("--epochs", type=int, default=20, help="Surprise SGD epochs")
    p.add_argument("--als-iter", type=int, default=10, help="cmfrec niter")
    p.add_argument("--myfm-iter", type=int, default=200, help="myFM Gibbs sweeps (n_iter)")
    p.add_argument("--myfm-burn-in", type=int, default=20, help="myFM sweeps not kept (n_iter - n_kept_samples)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lambda", dest="lam", type=float, default=None,
                   help="cmfrec lambda_ (default 10, cmfrec's default)")
    p.add_argument("--tune-lambda", action="store_true")
    p.add_argument("--lambda-grid", default=DEFAULT_GRID)
    p.add_argument("--user-attributes", default=None)
    p.add_argument("--item-attributes", default=None)
    p.add_argument("--cold-users", default=None)
    p.add_argument("--topn-out", default=None,
                   help="write each test user's top-N to this CSV ({model} is replaced by the model name)")
    p.add_argument("--topn", type=int, default=10, help="list length for --topn-out")
    p.add_argument("--single", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tuning-json", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


ARGS = _parse_args()
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
           "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after thread env vars)
import pandas as pd  # noqa: E402


def log(*a):
    print("[peers]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data
def read_ratings(path):
    if path.endswith(".parquet") or path.endswith(".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, dtype={"user": str, "item": str})
    missing = {"user", "item", "rating"} - set(df.columns)
    if missing:
        raise SystemExit(f"{path}: missing columns {sorted(missing)} (need user,item,rating)")
    return pd.DataFrame({
        "user": df["user"].astype(str).to_numpy(),
        "item": df["item"].astype(str).to_numpy(),
        "rating": df["rating"].astype(np.float64).to_numpy(),
    })


def read_attributes(path, kind):
    """Attribute CSV: an id column (``user``/``UserId`` or ``item``/``ItemId``,
    otherwise the first column) plus numeric columns. Returns a DataFrame with
    ``UserId``/``ItemId`` (str) + float columns."""
    if path.endswith(".parquet") or path.endswith(".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path)
    idname = "UserId" if kind == "user" else "ItemId"
    for cand in (kind, idname, f"{kind}Id", f"{kind}_id"):
        if cand in df.columns:
            idcol = cand
            break
    else:
        idcol = df.columns[0]
    out = df.drop(columns=[idcol]).astype(np.float64)
    out.insert(0, idname, df[idcol].astype(str).to_numpy())
    if out[idname].duplicated().any():
        raise SystemExit(f"{path}: duplicated ids in attribute file")
    return out


def metrics(pred, true):
    err = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(err ** 2))), float(np.mean(np.abs(err)))


def lib_version(dist):
    from importlib.metadata import version
    try:
        return version(dist)
    except Exception:  # pragma: no cover
        return "unknown"


# --------------------------------------------------------------------------- memory
from memory import PeakRSS  # noqa: E402  (shared with bench_models.py)


# --------------------------------------------------------------------------- models
class SurpriseRunner:
    library = "surprise"
    dist = "scikit-surprise"

    def __init__(self, name, args, train, lo, hi):
        self.name, self.args = name, args
        self.lo, self.hi = lo, hi
        self.train_df = train

    def prepare(self):
        from surprise import Dataset, Reader
        reader = Reader(rating_scale=(self.lo, self.hi))
        data = Dataset.load_from_df(self.train_df[["user", "item", "rating"]], reader)
        self.trainset = data.build_full_trainset()

    def make(self):
        from surprise import SVD, SVDpp
        if self.name == "surprise-svd":
            return SVD(**self.params)
        return SVDpp(**self.params)

    @property
    def params(self):
        if self.name == "surprise-svd":
            return dict(n_factors=self.args.factors, n_epochs=self.args.epochs,
                        random_state=self.args.seed)
        return dict(n_factors=self.args.factors_svdpp, n_epochs=self.args.epochs,
                    random_state=self.args.seed)

    def full_params(self, model):
        keys = ["n_factors", "n_epochs", "biased", "init_mean", "init_std_dev",
                "lr_bu", "lr_bi", "lr_pu", "lr_qi", "lr_yj", "reg_bu", "reg_bi",
                "reg_pu", "reg_qi", "reg_yj", "random_state", "cache_ratings"]
        return {k: getattr(model, k) for k in keys if hasattr(model, k)}

    def factors(self):
        return self.params["n_factors"]

    def iterations(self):
        return self.args.epochs

    def fit(self, model):
        model.fit(self.trainset)
        return model

    def predict(self, model, df):
        est = np.fromiter(
            (model.predict(u, i, clip=False).est
             for u, i in zip(df["user"].to_numpy(), df["item"].to_numpy())),
            dtype=np.float64, count=len(df))
        return est, 0

    def predict_cold(self, model, df, uattr):
        est, nfill = self.predict(model, df)
        return est, nfill, "library unknown-user fallback (mu + b_i)"

    def score_parts(self, model):
        """(raw user ids, raw item ids, user vectors, item vectors, user bias, item base) in
        Surprise's inner-id order; score = item_base[i] + user_bias[u] + P[u] . Q[i]."""
        ts = model.trainset
        users = np.array([ts.to_raw_uid(u) for u in range(ts.n_users)], dtype=object)
        items = np.array([ts.to_raw_iid(i) for i in range(ts.n_items)], dtype=object)
        P = np.asarray(model.pu, dtype=np.float64)
        Q = np.asarray(model.qi, dtype=np.float64)
        if self.name == "surprise-svdpp":  # implicit part, as in SVDpp.estimate
            import scipy.sparse as sp
            rows = np.concatenate([np.full(len(ts.ur[u]), u) for u in range(ts.n_users)])
            cols = np.concatenate([np.array([j for j, _ in ts.ur[u]], dtype=np.int64)
                                   for u in range(ts.n_users)])
            counts = np.bincount(rows, minlength=ts.n_users).astype(np.float64)
            N = sp.csr_matrix((1.0 / np.sqrt(counts[rows]), (rows, cols)), shape=(ts.n_users, ts.n_items))
            P = P + N @ np.asarray(model.yj, dtype=np.float64)
        bu = np.asarray(model.bu, dtype=np.float64) if getattr(model, "biased", True) else np.zeros(ts.n_users)
        bi = np.asarray(model.bi, dtype=np.float64) if getattr(model, "biased", True) else np.zeros(ts.n_items)
        return users, items, P, Q, bu, ts.global_mean + bi


class CmfrecRunner:
    library = "cmfrec"
    dist = "cmfrec"

    def __init__(self, name, args, train, lo, hi, lam, uattr=None, iattr=None):
        self.name, self.args = name, args
        self.lo, self.hi = lo, hi
        self.lam = lam
        self.train_df = train
        self.uattr, self.iattr = uattr, iattr

    def prepare(self):
        self.X = pd.DataFrame({"UserId": self.train_df["user"].to_numpy(),
                               "ItemId": self.train_df["item"].to_numpy(),
                               "Rating": self.train_df["rating"].to_numpy()})
        self.U = self.I = None
        if self.name == "cmfrec-cmf":
            if self.uattr is None and self.iattr is None:
                raise SystemExit("cmfrec-cmf needs --user-attributes and/or --item-attributes")
            if self.uattr is not None:
                users = pd.unique(self.X["UserId"])
                self.U = self.uattr[self.uattr["UserId"].isin(users)].reset_index(drop=True)
            if self.iattr is not None:
                items = pd.unique(self.X["ItemId"])
                self.I = self.iattr[self.iattr["ItemId"].isin(items)].reset_index(drop=True)
        self.mean = float(self.X["Rating"].mean())

    @property
    def params(self):
        return dict(method="als", k=self.args.factors, lambda_=self.lam,
                    niter=self.args.als_iter, user_bias=True, item_bias=True,
                    nthreads=self.args.threads, random_state=self.args.seed,
                    verbose=False)

    def make(self):
        import cmfrec
        return cmfrec.CMF(**self.params)

    def full_params(self, model):
        p = model.get_params()
        p = {k: v for k, v in p.items() if isinstance(v, (int, float, str, bool, type(None)))}
        if self.name == "cmfrec-cmf":
            p["n_user_attr_cols"] = 0 if self.U is None else self.U.shape[1] - 1
            p["n_item_attr_cols"] = 0 if self.I is None else self.I.shape[1] - 1
            p["n_user_attr_rows_used"] = 0 if self.U is None else len(self.U)
            p["n_item_attr_rows_used"] = 0 if self.I is None else len(self.I)
        return p

    def factors(self):
        return self.args.factors

    def iterations(self):
        return self.args.als_iter

    def fit(self, model):
        if self.name == "cmfrec-cmf":
            model.fit(self.X, U=self.U, I=self.I)
        else:
            model.fit(self.X)
        return model

    def _fill(self, est):
        est = np.asarray(est, dtype=np.float64)
        nan = ~np.isfinite(est)
        est[nan] = self.mean
        return est, int(nan.sum())

    def predict(self, model, df):
        return self._fill(model.predict(df["user"].to_numpy(), df["item"].to_numpy()))

    def predict_cold(self, model, df, uattr):
        if self.name != "cmfrec-cmf" or self.U is None:
            est, nfill = self.predict(model, df)
            return est, nfill, "library unknown-user fallback (predict: mean + item bias)"
        cols = [c for c in self.U.columns if c != "UserId"]
        attr = uattr.set_index("UserId")[cols]
        Urows = attr.reindex(df["user"].to_numpy())  # NaN rows for users w/o attributes
        Urows = Urows.reset_index(drop=True)
        est, nfill = self._fill(model.predict_cold_multiple(
            item=df["item"].to_numpy(), U=Urows.to_numpy(dtype=np.float64)))
        return est, nfill, "CMF.predict_cold_multiple(item=..., U=attribute rows)"

    def score_parts(self, model):
        """As SurpriseRunner.score_parts, rows in cmfrec's user_mapping_/item_mapping_ order."""
        users = np.asarray(model.user_mapping_).astype(str).astype(object)
        items = np.asarray(model.item_mapping_).astype(str).astype(object)
        P = np.asarray(model.A_, dtype=np.float64)
        Q = np.asarray(model.B_, dtype=np.float64)
        nu, ni = len(users), len(items)
        bu = np.asarray(model.user_bias_, dtype=np.float64) if model.user_bias else np.zeros(nu)
        bi = np.asarray(model.item_bias_, dtype=np.float64) if model.item_bias else np.zeros(ni)
        if P.shape[1] != Q.shape[1]:  # pragma: no cover (k_user/k_item extras: not used here)
            raise SystemExit("cmfrec model with k_user/k_item: top-n from parameters not supported")
        return users, items, P[:nu], Q[:ni], bu[:nu], float(model.glob_mean_) + bi[:ni]


class MyFMRunner:
    library = "myfm"
    dist = "myfm"

    def __init__(self, name, args, train, lo, hi, uattr=None, iattr=None):
        self.name, self.args = name, args
        self.lo, self.hi = lo, hi
        self.train_df = train
        self.uattr, self.iattr = uattr, iattr

    def prepare(self):
        import scipy.sparse as sps
        tr = self.train_df
        self.uids, u = np.unique(tr["user"].to_numpy(), return_inverse=True)
        self.iids, i = np.unique(tr["item"].to_numpy(), return_inverse=True)
        nu, ni = len(self.uids), len(self.iids)
        self.u, self.i = u, i
        self.y = tr["rating"].to_numpy(dtype=np.float64)

        def pad(M):  # one extra all-zero row for unknown ids
            return sps.vstack([M, sps.csr_matrix((1, M.shape[1]))], format="csr")

        def scaled(M):
            c = np.asarray(M.sum(axis=1)).ravel()
            return (sps.diags(1.0 / np.sqrt(np.maximum(c, 1))) @ M).tocsr()

        ublocks, iblocks = [sps.identity(nu, format="csr")], [sps.identity(ni, format="csr")]
        if self.name == "myfm-implicit":
            seen = sps.csr_matrix((np.ones(len(tr)), (u, i)), shape=(nu, ni))
            ublocks.append(scaled(seen))
            iblocks.append(scaled(seen.T.tocsr()))
            for blocks, attr, ids, col in ((ublocks, self.uattr, self.uids, "UserId"),
                                           (iblocks, self.iattr, self.iids, "ItemId")):
                if attr is not None:
                    table = attr.set_index(col).reindex(ids).fillna(0.0)
                    blocks.append(sps.csr_matrix(table.to_numpy(dtype=np.float64)))
        self.group_shapes = [b.shape[1] for b in ublocks + iblocks]
        self.XU = pad(sps.hstack(ublocks, format="csr"))
        self.XI = pad(sps.hstack(iblocks, format="csr"))

    def make(self):
        from myfm import MyFMRegressor
        return MyFMRegressor(rank=self.args.factors, random_seed=self.args.seed)

    @property
    def params(self):
        return dict(rank=self.args.factors, n_iter=self.args.myfm_iter,
                    n_kept_samples=self.args.myfm_iter - self.args.myfm_burn_in,
                    group_shapes=getattr(self, "group_shapes", None),
                    features="ids + implicit" if self.name == "myfm-implicit" else "ids")

    def full_params(self, model):
        return dict(self.params, random_seed=self.args.seed)

    def factors(self):
        return self.args.factors

    def iterations(self):
        return self.args.myfm_iter

    def _blocks(self, u, i):
        from myfm import RelationBlock
        return [RelationBlock(u, self.XU), RelationBlock(i, self.XI)]

    def fit(self, model):
        model.fit(None, self.y, X_rel=self._blocks(self.u, self.i), group_shapes=self.group_shapes,
                  n_iter=self.args.myfm_iter, n_kept_samples=self.args.myfm_iter - self.args.myfm_burn_in)
        return model

    @staticmethod
    def _index(ids, known):
        pos = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        return np.where(known[pos] == ids, pos, len(known))

    def predict(self, model, df):
        u = self._index(df["user"].to_numpy(), self.uids)
        i = self._index(df["item"].to_numpy(), self.iids)
        return np.asarray(model.predict(None, X_rel=self._blocks(u, i)), dtype=np.float64), 0

    def predict_cold(self, model, df, uattr):
        est, nfill = self.predict(model, df)
        return est, nfill, "all-zero user block row (w0 + item side)"

    def score_parts(self, model):
        raise SystemExit("myfm: --topn-out is not supported")


# --------------------------------------------------------------------------- top-n lists
def topn_path(pattern, model):
    if "{model}" in pattern:
        return pattern.replace("{model}", model)
    root, ext = os.path.splitext(pattern)
    return f"{root}_{model}{ext or '.csv'}"


def write_topn(runner, model, train, test, n, path, block=512):
    """Top-``n`` unseen training items for every test user known in training, from the fitted
    parameters (see "Top-n lists" in the module docstring). Returns the JSON extras."""
    t0 = time.perf_counter()
    users, items, P, Q, bu, ibase = runner.score_parts(model)
    uindex, iindex = pd.Index(users), pd.Index(items)
    tu = uindex.get_indexer(train["user"].to_numpy())
    ti = iindex.get_indexer(train["item"].to_numpy())
    if (tu < 0).any() or (ti < 0).any():
        raise SystemExit("top-n: training ids missing from the fitted model's id maps")
    order = np.argsort(tu, kind="stable")
    bounds = np.searchsorted(tu[order], np.arange(len(users) + 1))
    test_users = pd.unique(test["user"].to_numpy())
    rows = uindex.get_indexer(test_users)
    rows = rows[rows >= 0]
    n = min(int(n), len(items))
    out_u, out_i, out_r, out_s = [], [], [], []
    for start in range(0, len(rows), block):
        ub = rows[start:start + block]
        S = P[ub] @ Q.T + bu[ub, None] + ibase[None, :]
        for k, u in enumerate(ub):
            S[k, ti[order[bounds[u]:bounds[u + 1]]]] = -np.inf
        part = np.argpartition(-S, n - 1, axis=1)[:, :n] if n < S.shape[1] else np.tile(np.arange(S.shape[1]), (len(ub), 1))
        vals = np.take_along_axis(S, part, axis=1)
        srt = np.lexsort((part, -vals), axis=1)  # score descending, then column
        part = np.take_along_axis(part, srt, axis=1)
        vals = np.take_along_axis(vals, srt, axis=1)
        ok = np.isfinite(vals)
        out_u.append(np.repeat(ub, ok.sum(axis=1)))
        out_i.append(part[ok])
        out_s.append(vals[ok])
        out_r.append(np.broadcast_to(np.arange(1, n + 1), part.shape)[ok])
    recs = pd.DataFrame({
        "user": users[np.concatenate(out_u)] if out_u else np.empty(0, dtype=object),
        "item": items[np.concatenate(out_i)] if out_i else np.empty(0, dtype=object),
        "rank": np.concatenate(out_r) if out_r else np.empty(0, dtype=np.int64),
        "score": np.concatenate(out_s) if out_s else np.empty(0),
    })
    recs.to_csv(path, index=False)
    seconds = time.perf_counter() - t0

    # check: numpy scores vs the library's own unclipped prediction on known test pairs
    qu = uindex.get_indexer(test["user"].to_numpy())
    qi = iindex.get_indexer(test["item"].to_numpy())
    known = np.flatnonzero((qu >= 0) & (qi >= 0))
    if len(known) > 2000:
        known = np.random.default_rng(0).choice(known, 2000, replace=False)
    diff = None
    if len(known):
        mine = np.einsum("ij,ij->i", P[qu[known]], Q[qi[known]]) + bu[qu[known]] + ibase[qi[known]]
        lib, _ = runner.predict(model, test.iloc[known])
        diff = float(np.max(np.abs(mine - lib)))
    log(f"{runner.name}: top-{n} for {len(rows)} users -> {path} ({seconds:.2f}s, check diff {diff})")
    return {"topn_file": os.path.abspath(path), "topn": n, "topn_users": int(len(rows)),
            "topn_seconds": seconds, "topn_check_max_abs_diff": diff,
            "topn_method": "numpy scores from fitted parameters, training items excluded"}


# --------------------------------------------------------------------------- single run
def build_runner(name, args, train, lo, hi, lam, uattr, iattr):
    if name in SURPRISE_MODELS:
        return SurpriseRunner(name, args, train, lo, hi)
    if name in CMFREC_MODELS:
        return CmfrecRunner(name, args, train, lo, hi, lam, uattr, iattr)
    if name in MYFM_MODELS:
        return MyFMRunner(name, args, train, lo, hi, uattr, iattr)
    raise SystemExit(f"unknown or unsupported model {name!r}")


def run_single(args):
    name = args.single
    train = read_ratings(args.train)
    test = read_ratings(args.test)
    uattr = read_attributes(args.user_attributes, "user") if args.user_attributes else None
    iattr = read_attributes(args.item_attributes, "item") if args.item_attributes else None
    cold = read_ratings(args.cold_users) if args.cold_users else None
    lo, hi = float(train["rating"].min()), float(train["rating"].max())
    known_u = set(train["user"].unique())
    known_i = set(train["item"].unique())
    unknown_mask = ~(test["user"].isin(known_u) & test["item"].isin(known_i))
    n_unknown = int(unknown_mask.sum())
    if cold is not None:
        overlap = int(cold["user"].isin(known_u).sum())
        if overlap:
            raise SystemExit(f"--cold-users: {overlap} rows belong to users present in train")

    lam = args.lam if args.lam is not None else 10.0
    runner = build_runner(name, args, train, lo, hi, lam, uattr, iattr)
    if runner.library == "surprise":
        import surprise  # noqa: F401
    elif runner.library == "myfm":
        import myfm  # noqa: F401
    else:
        import cmfrec  # noqa: F401

    mem = PeakRSS()
    mem.start()

    t0 = time.perf_counter()
    runner.prepare()
    prep_s = time.perf_counter() - t0

    log(f"{name}: warm-up fit")
    model = runner.fit(runner.make())
    del model
    gc.collect()

    times, rmses, maes, pred_times = [], [], [], []
    for r in range(args.repeats):
        model = runner.make()
        t0 = time.perf_counter()
        runner.fit(model)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        est, nfill = runner.predict(model, test)
        pred_times.append(time.perf_counter() - t0)
        est = np.clip(est, lo, hi)
        rmse, mae = metrics(est, test["rating"].to_numpy())
        rmses.append(rmse)
        maes.append(mae)
        log(f"{name}: fit {r + 1}/{args.repeats} {times[-1]:.3f}s rmse={rmse:.4f} mae={mae:.4f}")
        if r < args.repeats - 1:
            del model
            gc.collect()

    out = {
        "library": runner.library,
        "model": name,
        "version": lib_version(runner.dist),
        "factors": runner.factors(),
        "epochs_or_iterations": runner.iterations(),
        "params": runner.full_params(model),
        "rmse": rmses[-1],
        "mae": maes[-1],
        "fit_seconds_median": float(np.median(times)),
        "fit_seconds_min": float(np.min(times)),
        "fit_seconds_max": float(np.max(times)),
        "peak_rss_mb": None,
        "n_unknown": n_unknown,
        "n_nan_filled": nfill,
        "n_train": len(train),
        "n_test": len(test),
        "threads": args.threads,
        "repeats": args.repeats,
        "rating_scale": [lo, hi],
        "fit_seconds_all": times,
        "rmse_per_fit": rmses,
        "predict_seconds": float(np.median(pred_times)),
        "data_prep_seconds": prep_s,
        "train_file": os.path.abspath(args.train),
        "test_file": os.path.abspath(args.test),
    }
    if cold is not None:
        est, cfill, method = runner.predict_cold(model, cold, uattr)
        est = np.clip(est, lo, hi)
        out["cold_rmse"], out["cold_mae"] = metrics(est, cold["rating"].to_numpy())
        out["n_cold"] = len(cold)
        out["n_cold_nan_filled"] = cfill
        out["cold_method"] = method
        if uattr is not None:
            out["n_cold_without_attributes"] = int((~cold["user"].isin(set(uattr["UserId"]))).sum())
    out["peak_rss_mb"] = round(mem.stop_mb(), 2)
    out["peak_rss_method"] = mem.method
    if args.topn_out:
        out.update(write_topn(runner, model, train, test, args.topn, args.topn_out.replace("{model}", name)))
    if args.tuning_json:
        with open(args.tuning_json) as fh:
            out["params"]["lambda_tuning"] = json.load(fh)
    return out


# --------------------------------------------------------------------------- tuning
def tune_lambda(name, args):
    """Seeded 90/10 carve-out of train; returns (best_lambda, record)."""
    import cmfrec  # noqa: F401
    train = read_ratings(args.train)
    uattr = read_attributes(args.user_attributes, "user") if args.user_attributes else None
    iattr = read_attributes(args.item_attributes, "item") if args.item_attributes else None
    lo, hi = float(train["rating"].min()), float(train["rating"].max())
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(train))
    n_val = int(round(0.1 * len(train)))
    val = train.iloc[perm[:n_val]].reset_index(drop=True)
    fit_part = train.iloc[perm[n_val:]].reset_index(drop=True)
    grid = [float(x) for x in args.lambda_grid.split(",")]
    scores = {}
    t0 = time.perf_counter()
    for lam in grid:
        runner = build_runner(name, args, fit_part, lo, hi, lam, uattr, iattr)
        runner.prepare()
        model = runner.fit(runner.make())
        est, _ = runner.predict(model, val)
        rmse, _ = metrics(np.clip(est, lo, hi), val["rating"].to_numpy())
        scores[lam] = rmse
        log(f"{name}: tune lambda={lam:g} val_rmse={rmse:.4f}")
    best = min(grid, key=lambda g: scores[g])
    rec = {
        "grid": grid,
        "val_rmse": [scores[g] for g in grid],
        "best_lambda": best,
        "validation": f"seeded 10% carve-out of train (np.random.default_rng({args.seed}).permutation, first {n_val} rows)",
        "tuning_seconds": time.perf_counter() - t0,
    }
    return best, rec


# --------------------------------------------------------------------------- driver
def child_cmd(args, model, lam, tuning_path):
    cmd = [sys.executable, os.path.abspath(__file__), "--single", model,
           "--train", args.train, "--test", args.test,
           "--factors", str(args.factors), "--factors-svdpp", str(args.factors_svdpp),
           "--epochs", str(args.epochs), "--als-iter", str(args.als_iter),
           "--myfm-iter", str(args.myfm_iter), "--myfm-burn-in", str(args.myfm_burn_in),
           "--repeats", str(args.repeats), "--threads", str(args.threads),
           "--seed", str(args.seed)]
    if lam is not None:
        cmd += ["--lambda", repr(lam)]
    for opt, val in (("--user-attributes", args.user_attributes),
                     ("--item-attributes", args.item_attributes),
                     ("--cold-users", args.cold_users),
                     ("--tuning-json", tuning_path),
                     ("--topn-out", topn_path(args.topn_out, model) if args.topn_out else None)):
        if val:
            cmd += [opt, val]
    if args.topn_out:
        cmd += ["--topn", str(args.topn)]
    return cmd


def main():
    args = ARGS
    if args.single:
        print(json.dumps(run_single(args)), flush=True)
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    status = 0
    for m in models:
        if m not in ALL_MODELS:
            print(json.dumps({"model": m, "error": f"unknown model; choose from {ALL_MODELS}"}))
            status = 1
            continue
        if m == "implicit-als":
            print(json.dumps({"library": "implicit", "model": m, "version": lib_version("implicit"),
                              "error": "skipped: implicit ALS is an implicit-feedback model; "
                                       "explicit RMSE/MAE not comparable"}), flush=True)
            continue
        lam, tuning_path = args.lam, None
        if m in CMFREC_MODELS and args.tune_lambda:
            import tempfile
            lam, rec = tune_lambda(m, args)
            fd, tuning_path = tempfile.mkstemp(prefix="peers_tune_", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(rec, fh)
        log(f"running {m} in a fresh subprocess")
        proc = subprocess.run(child_cmd(args, m, lam, tuning_path),
                              stdout=subprocess.PIPE, text=True)
        if tuning_path:
            os.unlink(tuning_path)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
        if proc.returncode != 0 or not lines:
            print(json.dumps({"model": m, "error": f"child exited with {proc.returncode}"}), flush=True)
            status = 1
            continue
        print(lines[-1], flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
