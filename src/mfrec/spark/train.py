"""Spark MLlib ALS training and cluster-side top-n, returning and reading ordinary mfrec models.

How mfrec's parameters map to Spark's (and what differs):

* ``regularization`` *is* Spark's ``regParam``. Spark's ALS is ALS-WR: each row's ridge penalty is
  ``regParam * n_row`` (its number of ratings), exactly mfrec ``ALS(weighted=True)``'s rule, so
  the returned model is ``ALS(weighted=True, regularization=regParam)`` and its fold-in of a user
  with ``n`` ratings uses ``regParam * n`` too. (mfrec's unweighted ``ALS(regularization=lam)``
  corresponds roughly to ``regParam = lam / mean ratings per row``.) Spark's default is 0.1.
* Biases: Spark's ALS has none. With ``biases=True`` the global mean and then item and user
  biases are computed by Spark aggregations, alternating ``bias_iterations`` times, with the
  same weighted penalty as mfrec ALS-WR's bias (``bias_regularization * n_row``, i.e.
  ``b = sum(residual) / (n_row * (1 + bias_regularization))``; ``bias_regularization=None``
  means ``regularization``, as in mfrec). ALS is then fitted on ``r - mu - b_u - b_i``. mfrec's
  own ALS re-solves the biases jointly with the factors every iteration; Spark cannot hold a
  factor column fixed nor start from given factors, so ``bias_rounds`` outer rounds (default 2)
  re-estimate the biases from ``r - mu - x_u.y_i`` of the last fit (one pass of aggregations)
  and refit ALS (``iterations`` each, afresh) on the new residuals: ``bias_rounds + 1`` ALS
  fits. The returned factors are the last fit's, the exact ridge solution for its targets.
  Two rounds bring ml-100k u1 and ml-latest-small within 1% RMSE of mfrec's ALS (none: 1.2%
  and 1.6% worse; benchmarks/RESULTS.md "Spark").
* Factors come back as float32 (Spark's type). Cold users/items: Spark predicts NaN for them
  unless ``coldStartStrategy="drop"``; the returned mfrec model falls back to the biases and mean
  for unknown ids, as every mfrec model does.
* A checkpoint directory is always set (a temporary one when none is given, removed at exit):
  without it long runs overflow the stack on the growing RDD lineage. On a real cluster pass
  a shared path (``hdfs://``, ``s3a://``) every executor can write.
* ``implicit=True`` runs Spark's implicit ALS (confidence ``1 + alpha * r``, preference
  ``r > 0``) and returns ``ImplicitALS(confidence="rating", alpha=alpha)``. Spark scales the
  penalty by each row's count there too, which ImplicitALS cannot express: its
  ``regularization`` is set to ``regParam * mean ratings per user``, so fold-in of new users is
  an approximation of Spark's rule (the trained factors are Spark's, unchanged).

What comes to the driver: the id tables (one row per user and per item), the factors and biases
(the model itself) and the (user, item) pairs of ``seen_`` (8 bytes per rating: 200 MB for 25M
ratings), because the model file records who rated what (for ``exclude_seen``). The ratings
themselves never do.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.ratings import Ratings
from mfrec.errors import DataError
from mfrec.models.als import ALS
from mfrec.models.base import FactorModel, check_is_fitted, ridge_penalty, sq_norm
from mfrec.models.implicit import ImplicitALS
from mfrec.models.state import ModelState

_INT32_MAX = 2**31 - 1


def _require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ImportError("mfrec.spark needs pyspark: pip install 'mfrec[spark]' (and Java 17+)") from None


def _session(spark: Any, master: str) -> tuple[Any, bool]:
    """The given session, the active one, or a new one on ``master`` (then owned: stopped after)."""
    from pyspark.sql import SparkSession

    if spark is not None:
        return spark, False
    from pyspark import SparkContext

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    if SparkContext._active_spark_context is not None:  # a running context (another thread's session)
        return SparkSession.builder.getOrCreate(), False
    builder = SparkSession.builder.master(master).appName("mfrec-train-als")
    if master.startswith("local"):  # Python workers from this interpreter (mfrec and numpy importable)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.getOrCreate(), True


def _set_checkpoint_dir(spark: Any, checkpoint_dir: str | None) -> None:
    sc = spark.sparkContext
    if checkpoint_dir is not None:
        sc.setCheckpointDir(str(checkpoint_dir))
    elif sc.getCheckpointDir() is None:
        tmp = tempfile.mkdtemp(prefix="mfrec-spark-checkpoint-")
        atexit.register(shutil.rmtree, tmp, True)
        sc.setCheckpointDir(tmp)


def _load_source(source: Any, spark: Any, user_col: str, item_col: str, rating_col: str,
                 sep: str) -> tuple[Any, tuple[float, float] | None, str]:
    """(Spark DataFrame with columns user, item, rating (double), declared scale, description)."""
    from pyspark.sql import DataFrame, functions as F
    from pyspark.sql import types as T

    scale = None
    if isinstance(source, Ratings):
        ids = {}
        for name, raw in (("user", source.raw_users), ("item", source.raw_items)):
            if raw.dtype.kind == "i":
                ids[name] = (raw.astype(np.int64), T.LongType())
            elif raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=False) == "string":
                ids[name] = (raw, T.StringType())
            else:
                raise DataError(f"Spark needs string or 64-bit integer {name} ids; these are "
                                f"{pd.api.types.infer_dtype(raw, skipna=False)} ({raw.dtype})", source="Ratings")
        pdf = pd.DataFrame({"user": ids["user"][0], "item": ids["item"][0],
                            "rating": source.values.astype(np.float64)})
        schema = T.StructType([T.StructField("user", ids["user"][1], False),
                               T.StructField("item", ids["item"][1], False),
                               T.StructField("rating", T.DoubleType(), False)])
        df = spark.createDataFrame(pdf, schema=schema)
        return df, source.rating_scale, "Ratings"
    if isinstance(source, DataFrame):
        df, what = source, "Spark DataFrame"
    elif isinstance(source, (str, os.PathLike)):
        path = str(source)
        what = path
        if "://" not in path and not os.path.exists(path.removeprefix("file:")):
            raise FileNotFoundError(f"{path}: no such file or folder")
        text = path.lower().rstrip("/").endswith((".csv", ".tsv", ".txt", ".csv.gz"))
        try:
            # text as text: ids follow mfrec's reader ("007" and "7" are two users), and a row with
            # more or fewer fields than the header fails the read (FAILFAST) instead of being cut
            df = (spark.read.csv(path, header=True, inferSchema=False, sep=sep, mode="FAILFAST") if text
                  else spark.read.parquet(path))
        except Exception as exc:  # pyspark's AnalysisException: unreadable, not CSV/Parquet, ...
            raise DataError(f"Spark cannot read it: {str(exc).splitlines()[0]}", source=path) from None
        if text:
            df = _typed_text_columns(df, (user_col, item_col), rating_col, what)
    else:
        raise TypeError(f"source must be a Spark DataFrame, a Parquet/CSV path or mfrec.Ratings, "
                        f"got {type(source).__name__}")
    missing = [c for c in (user_col, item_col, rating_col) if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; the columns are {df.columns} "
                        "(name them with user_col=, item_col=, rating_col=)", source=what)
    types = {f.name: f.dataType for f in df.schema.fields}
    for col, kind in ((user_col, "user"), (item_col, "item")):
        if not isinstance(types[col], (T.StringType, T.IntegerType, T.LongType, T.ShortType, T.ByteType)):
            raise DataError(f"{kind} ids must be strings or integers, got {types[col].simpleString()}",
                            source=what, column=col)
    if not isinstance(types[rating_col], T.NumericType):
        raise DataError(f"ratings must be numbers, got {types[rating_col].simpleString()}",
                        source=what, column=rating_col)
    def as_id(c: str) -> Any:
        return (F.col(c) if isinstance(types[c], T.StringType) else F.col(c).cast("long"))

    df = df.select(as_id(user_col).alias("user"), as_id(item_col).alias("item"),
                   F.col(rating_col).cast("double").alias("rating"))
    return df, scale, what


#: an id as mfrec's text reader takes it as an integer (`mfrec.data.idmap.int_text`): ASCII
#: digits, an optional minus sign, no leading zero; in int64 (checked with ``try_cast``)
_INT_TEXT = r"^-?(0|[1-9][0-9]{0,18})$"


def _typed_text_columns(df: Any, id_cols: tuple[str, ...], rating_col: str, what: str) -> Any:
    """A CSV read as text, typed by mfrec's rules: an id column becomes 64-bit ints when every
    value is an integer's canonical text (else it stays text, as in `Ratings.read_csv`), the
    ratings doubles (text that is no number becomes null: a "missing rating" error later).
    Surrounding white space of an id is dropped, and an id of white space only is missing."""
    from pyspark.sql import functions as F

    present = [c for c in id_cols if c in df.columns]
    if not present:
        return df
    # ids without their surrounding (Unicode: "(?U)") white space, blank ones null; then typed with
    # SQL's try_cast (Column.try_cast is PySpark 4 only; the extra allows 3.5)
    trimmed = [F.regexp_replace(F.col(c), r"(?U)^\s+|\s+$", "").alias(c) if c in present else F.col(c)
               for c in df.columns]
    df = df.select(*trimmed)
    df = df.select(*[F.when(F.col(c) != "", F.col(c)).alias(c) if c in present else F.col(c) for c in df.columns])

    def as_long(c: str) -> Any:
        return F.expr(f"try_cast(`{c}` AS BIGINT)")

    agg = [F.sum((F.col(c).isNotNull() & (~F.col(c).rlike(_INT_TEXT) | as_long(c).isNull())).cast("long"))
           .alias(c) for c in present]
    row = _spark_action(lambda: df.agg(*agg).first(), what)
    cols = []
    for c in df.columns:
        if c in present and not row[c]:
            cols.append(as_long(c).alias(c))
        elif c == rating_col:
            cols.append(F.expr(f"try_cast(trim(`{c}`) AS DOUBLE)").alias(c))
        else:
            cols.append(F.col(c))
    return df.select(*cols)


def _spark_action(action: Any, what: str) -> Any:
    """Run a Spark action; a malformed CSV row (FAILFAST) is a DataError quoting the row."""
    import re

    try:
        return action()
    except Exception as exc:
        message = str(exc)
        found = re.search(r"Malformed CSV record: (.*?)(?: SQLSTATE|\n|$)", message)
        if found is None:
            raise
        raise DataError(f"malformed row: {found.group(1)!r} has more or fewer fields than the header",
                        source=what) from None


def _check_ratings(df: Any, what: str, names: tuple[str, str, str], scale: tuple[float, float] | None) -> dict:
    """One aggregation: count, mean, range, and the nulls / non-finite ratings (DataError)."""
    from pyspark.sql import functions as F

    r = F.col("rating")
    bad_r = r.isNull() | F.isnan(r) | (F.abs(r) == float("inf"))
    row = _spark_action(lambda: df.agg(F.count(F.lit(1)).alias("n"),
                 F.sum(F.col("user").isNull().cast("long")).alias("null_user"),
                 F.sum(F.col("item").isNull().cast("long")).alias("null_item"),
                 F.sum(bad_r.cast("long")).alias("bad_rating"),
                 F.avg(F.when(~bad_r, r)).alias("mean"),
                 F.min(F.when(~bad_r, r)).alias("min"),
                 F.max(F.when(~bad_r, r)).alias("max")).first(), what)
    if row["n"] == 0:
        raise DataError("no ratings to train on: the input is empty", source=what)
    for key, col, msg in (("null_user", names[0], "missing user id"), ("null_item", names[1], "missing item id"),
                          ("bad_rating", names[2], "missing or non-finite rating")):
        if row[key]:
            raise DataError(f"{msg} ({row[key]} rows in all)", source=what, column=col)
    if scale is not None and (row["min"] < scale[0] or row["max"] > scale[1]):
        raise DataError(f"ratings span [{row['min']:g}, {row['max']:g}], outside the scale "
                        f"[{scale[0]:g}, {scale[1]:g}]", source=what, column=names[2])
    # mfrec Ratings hold no duplicate pairs (their constructor refuses them): one shuffle saved
    dup = [] if what == "Ratings" else df.groupBy("user", "item").count().where("count > 1").limit(1).collect()
    if dup:
        raise DataError(f"duplicate (user, item) pair ({dup[0]['user']!r}, {dup[0]['item']!r}) rated "
                        f"{dup[0]['count']} times; aggregate the duplicates first", source=what)
    return row.asDict()


def _index_ids(df: Any, col: str, idx: str) -> tuple[Any, np.ndarray]:
    """Distinct ids, sorted, numbered 0..n-1 on the cluster; the (id, idx) table (cached) and the
    ids in index order (the id map, collected: one row per id).

    Consecutive numbers without a Python RDD or a one-partition window: after the sort,
    ``monotonically_increasing_id`` is ``partition << 33 | row``; the per-partition counts (one
    small row per partition) give each partition's offset."""
    from pyspark.sql import functions as F

    spark = df.sparkSession
    numbered = (df.select(col).distinct().orderBy(col)
                .select(col, F.spark_partition_id().alias("_pid"), F.monotonically_increasing_id().alias("_mid"))
                .cache())
    counts = sorted((r["_pid"], r["count"]) for r in numbered.groupBy("_pid").count().collect())
    offsets, total = [], 0
    for pid, count in counts:
        offsets.append((pid, total))
        total += count
    if total > _INT32_MAX:
        raise DataError(f"{total} distinct {col}s: Spark's ALS numbers them with 32-bit ints (at most {_INT32_MAX})")
    offset_table = spark.createDataFrame(offsets, "_pid INT, _offset LONG")
    table = (numbered.join(F.broadcast(offset_table), "_pid")
             .select(col, (F.col("_offset") + F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33))
                     .cast("int").alias(idx))
             .cache())
    ids = table.orderBy(idx).select(col).toPandas()[col].to_numpy()
    numbered.unpersist()
    if ids.dtype.kind != "i":
        ids = ids.astype(object)
    return table, ids


def _biases(t: Any, lam_b: float, sweeps: int) -> tuple[Any, Any]:
    """Item then user biases of the targets ``t`` (columns uidx, iidx, t), alternating ``sweeps``
    times, with the ALS-WR bias penalty ``lam_b * n_row``:
    ``b = sum(t - other bias) / (n_row * (1 + lam_b))``. Cached tables (user, item)."""
    from pyspark.sql import functions as F

    shrink = 1.0 + lam_b
    ub = None
    ib = None
    for _ in range(max(int(sweeps), 1)):
        src = t if ub is None else t.join(ub, "uidx")
        other = F.lit(0.0) if ub is None else F.col("bu")
        new_ib = src.groupBy("iidx").agg((F.sum(F.col("t") - other) / (F.count(F.lit(1)) * shrink)).alias("bi"))
        new_ib = new_ib.cache()
        new_ub = (t.join(new_ib, "iidx").groupBy("uidx")
                  .agg((F.sum(F.col("t") - F.col("bi")) / (F.count(F.lit(1)) * shrink)).alias("bu"))).cache()
        if ib is not None:
            ib.unpersist()
            ub.unpersist()
        ib, ub = new_ib, new_ub
    return ub, ib


def _dense(table: Any, key: str, col: str, n: int, width: int | None = None) -> np.ndarray:
    """A collected (key, value) table as a dense float32 array indexed by key."""
    pdf = table.select(key, col).toPandas()
    keys = pdf[key].to_numpy(np.int64)
    if width is None:
        out = np.zeros(n, dtype=np.float32)
        out[keys] = pdf[col].to_numpy(np.float32)
    else:
        out = np.zeros((n, width), dtype=np.float32)
        if len(pdf):
            out[keys] = np.stack([np.asarray(v, dtype=np.float32) for v in pdf[col]])
    return out


def _to_model(cls: type, params: dict[str, Any], *, user_ids: np.ndarray, item_ids: np.ndarray,
              user_factors: np.ndarray, item_factors: np.ndarray, user_bias: np.ndarray, item_bias: np.ndarray,
              global_mean: float, train_mean: float, n_train: int, rating_scale: tuple[float, float],
              seen_users: np.ndarray, seen_items: np.ndarray, train_sse: float, seconds: float,
              iterations: int) -> FactorModel:
    """The ONE place that builds a fitted mfrec model from externally trained arrays: through the
    model contract's `ModelState` and ``cls.from_state`` (the path model files take), so the
    class's declared arrays and checks apply."""
    dtype = np.dtype(params.get("dtype", "float32"))
    n_users, n_items = len(user_ids), len(item_ids)
    seen = sp.csr_matrix((np.ones(len(seen_users), dtype=np.float32),
                          (np.asarray(seen_users, dtype=np.int64), np.asarray(seen_items, dtype=np.int64))),
                         shape=(n_users, n_items))
    seen.sort_indices()
    arrays = {"user_factors_": np.ascontiguousarray(user_factors, dtype=dtype),
              "item_factors_": np.ascontiguousarray(item_factors, dtype=dtype),
              "user_bias_": np.ascontiguousarray(user_bias, dtype=dtype),
              "item_bias_": np.ascontiguousarray(item_bias, dtype=dtype)}
    for name, n in (("user_factors_", n_users), ("item_factors_", n_items), ("user_bias_", n_users),
                    ("item_bias_", n_items)):
        if len(arrays[name]) != n:
            raise ValueError(f"{name} has {len(arrays[name])} rows for {n} ids")
    probe = cls(**params)
    probe.validate_params()
    sq = [sq_norm(arrays[name]) for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_")]
    # Spark runs all iterations as one job: one history row, for the final iteration, whose
    # seconds are the whole ALS fit
    history = [{"epoch": int(iterations), "loss": (float(train_sse) + ridge_penalty(probe, *sq)) / int(n_train),
                "train_rmse": float(np.sqrt(float(train_sse) / int(n_train))), "seconds": float(seconds)}]
    meta = {"rating_scale": [float(rating_scale[0]), float(rating_scale[1])],
            "global_mean": float(global_mean), "train_mean": float(train_mean),
            "n_train": int(n_train), "best_epoch": int(iterations), "history": history, "metrics": {}}
    return cls.from_state(ModelState(params=dict(params), arrays=arrays, user_ids=np.asarray(user_ids),
                                     item_ids=np.asarray(item_ids), seen=seen, meta=meta))


def train_als(
    source: Any,
    *,
    factors: int = 10,
    iterations: int = 10,
    regularization: float = 0.1,
    bias_regularization: float | None = None,
    implicit: bool = False,
    alpha: float = 1.0,
    biases: bool | None = None,
    bias_iterations: int = 2,
    bias_rounds: int = 2,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str = "rating",
    sep: str = ",",
    rating_scale: tuple[float, float] | None = None,
    spark: Any = None,
    master: str = "local[*]",
    checkpoint_dir: str | None = None,
    checkpoint_interval: int = 10,
    cold_start_strategy: str = "nan",
    blocks: int | None = None,
    seed: int = 0,
) -> FactorModel:
    """Fit Spark MLlib's ALS on ``source`` and return an ordinary fitted mfrec model.

    ``source`` is a Spark DataFrame, a Parquet or CSV path (read by Spark, so on a cluster it
    can be ``hdfs://`` or ``s3a://``) or an mfrec ``Ratings``. Raw ids (strings or 64-bit
    integers) are numbered on the cluster; ratings are never collected to the driver.
    ``regularization`` is Spark's ``regParam`` (ALS-WR: times each row's rating count); the
    result is ``ALS(weighted=True, ...)`` (``biases`` defaults to True), or with
    ``implicit=True`` an ``ImplicitALS``. ``bias_rounds`` re-estimates the biases after each
    ALS fit but the last and refits (``bias_rounds + 1`` fits; 0: biases fixed before a single
    fit). See the module docstring for the exact mapping.
    Without ``spark`` the active session is used, else one is started on ``master`` and
    stopped afterwards. ``blocks`` is Spark's ``numUserBlocks``/``numItemBlocks`` (default: the
    cluster's default parallelism; Spark's own default of 10 is slow on small local runs).
    """
    return _train_als(**locals())[0]


def _train_als(source: Any, *, factors: int, iterations: int, regularization: float,
               bias_regularization: float | None, implicit: bool, alpha: float, biases: bool | None,
               bias_iterations: int, bias_rounds: int, user_col: str, item_col: str, rating_col: str, sep: str,
               rating_scale: tuple[float, float] | None, spark: Any, master: str, checkpoint_dir: str | None,
               checkpoint_interval: int, cold_start_strategy: str, blocks: int | None,
               seed: int, _keep_rounds: bool = False) -> tuple[FactorModel, Any]:
    """`train_als`, also returning Spark's fitted ``ALSModel`` (tests compare with it). With
    ``_keep_rounds`` the model gets ``spark_rounds_``: per ALS fit, the biases its targets used
    and its factors (numpy; tests and the benchmark check every round)."""
    _require_pyspark()
    from pyspark.ml.recommendation import ALS as SparkALS
    from pyspark.sql import functions as F

    if biases is None:
        biases = not implicit
    if implicit and biases:
        raise ValueError("implicit=True has no biases (ImplicitALS ranks by preference): pass biases=False")
    for name, value, low in (("factors", factors, 1), ("iterations", iterations, 1), ("bias_rounds", bias_rounds, 0),
                             ("bias_iterations", bias_iterations, 1), ("checkpoint_interval", checkpoint_interval, 1),
                             ("blocks", 1 if blocks is None else blocks, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    for name, value in (("regularization", regularization), ("alpha", alpha),
                        ("bias_regularization", 0.0 if bias_regularization is None else bias_regularization)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if cold_start_strategy not in ("nan", "drop"):
        raise ValueError(f"cold_start_strategy must be 'nan' or 'drop', got {cold_start_strategy!r}")

    session, owned = _session(spark, master)
    try:
        session.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
        _set_checkpoint_dir(session, checkpoint_dir)
        df, declared, what = _load_source(source, session, user_col, item_col, rating_col, sep)
        scale = rating_scale if rating_scale is not None else declared
        stats = _check_ratings(df, what, (user_col, item_col, rating_col), scale)
        if implicit and stats["min"] <= 0:
            raise DataError(f"implicit=True needs ratings > 0 (confidence 1 + alpha * r, as ImplicitALS"
                            f"(confidence='rating')); the minimum is {stats['min']:g}", source=what,
                            column=rating_col)
        n, mu = int(stats["n"]), float(stats["mean"])
        umap, user_ids = _index_ids(df, "user", "uidx")
        imap, item_ids = _index_ids(df, "item", "iidx")
        rated = df.join(umap, "user").join(imap, "item").select("uidx", "iidx", "rating")
        if biases and bias_rounds:  # read once per round: kept (3 numbers a rating)
            rated = rated.cache()
        n_users, n_items = len(user_ids), len(item_ids)
        lam_b = float(regularization if bias_regularization is None else bias_regularization)
        n_blocks = int(blocks) if blocks is not None else max(1, session.sparkContext.defaultParallelism)
        als = SparkALS(rank=int(factors), maxIter=int(iterations), regParam=float(regularization),
                       implicitPrefs=bool(implicit), alpha=float(alpha), userCol="uidx", itemCol="iidx",
                       ratingCol="target", coldStartStrategy=cold_start_strategy, nonnegative=False,
                       checkpointInterval=int(checkpoint_interval), seed=int(seed),
                       numUserBlocks=n_blocks, numItemBlocks=n_blocks)
        k = int(factors)
        rounds: list[dict[str, np.ndarray]] = []
        ub = ib = None
        if biases:  # first biases: of r - mu alone
            ub, ib = _biases(rated.select("uidx", "iidx", (F.col("rating") - F.lit(mu)).alias("t")),
                             lam_b, bias_iterations)
        seconds = 0.0
        for fit_no in range(int(bias_rounds) + 1 if biases else 1):
            if biases:
                target = (rated.join(ub, "uidx").join(ib, "iidx")
                          .select("uidx", "iidx", (F.col("rating") - F.lit(mu) - F.col("bu") - F.col("bi"))
                                  .alias("target")))
            else:
                target = rated.select("uidx", "iidx", F.col("rating").alias("target"))
            target = target.cache()
            t0 = time.perf_counter()
            fitted = als.fit(target)
            seconds += time.perf_counter() - t0
            if _keep_rounds:
                rounds.append(dict(user_factors=_dense(fitted.userFactors, "id", "features", n_users, k),
                                   item_factors=_dense(fitted.itemFactors, "id", "features", n_items, k),
                                   user_bias=np.zeros(n_users, np.float32) if ub is None
                                   else _dense(ub, "uidx", "bu", n_users),
                                   item_bias=np.zeros(n_items, np.float32) if ib is None
                                   else _dense(ib, "iidx", "bi", n_items)))
            if biases and fit_no < bias_rounds:
                # outer alternation: the biases given these factors' predictions (one pass of
                # aggregations over r - mu - x_u.y_i), then ALS again on the new residuals
                # (Spark's ALS cannot start from given factors, so each refit starts afresh)
                t = (fitted.transform(rated).select("uidx", "iidx", (F.col("rating") - F.lit(mu)
                                                                     - F.col("prediction")).alias("t"))).cache()
                new_ub, new_ib = _biases(t, lam_b, bias_iterations)
                new_ub.count(), new_ib.count()  # materialize before the inputs go
                t.unpersist()
                target.unpersist()
                ub.unpersist()
                ib.unpersist()
                ub, ib = new_ub, new_ib
        goal = F.lit(1.0) if implicit else F.col("target")
        sse = fitted.transform(target).agg(F.sum((goal - F.col("prediction")) ** 2)).first()[0]
        pairs = target.select("uidx", "iidx").toPandas()
        arrays = dict(
            user_factors=_dense(fitted.userFactors, "id", "features", n_users, k),
            item_factors=_dense(fitted.itemFactors, "id", "features", n_items, k),
            user_bias=np.zeros(n_users, np.float32) if ub is None else _dense(ub, "uidx", "bu", n_users),
            item_bias=np.zeros(n_items, np.float32) if ib is None else _dense(ib, "iidx", "bi", n_items))
        target.unpersist()
        rated.unpersist()
        if implicit:
            cls: type = ImplicitALS
            params = dict(factors=k, iterations=int(iterations), alpha=float(alpha), confidence="rating",
                          regularization=float(regularization) * n / n_users, seed=int(seed))
        else:
            cls = ALS
            params = dict(factors=k, iterations=int(iterations), regularization=float(regularization),
                          bias_regularization=bias_regularization, weighted=True, use_bias=bool(biases),
                          solver="cholesky", seed=int(seed))
        model = _to_model(cls, params, user_ids=user_ids, item_ids=item_ids, **arrays, global_mean=mu,
                          train_mean=mu, n_train=n,
                          rating_scale=scale if scale is not None else (float(stats["min"]), float(stats["max"])),
                          seen_users=pairs["uidx"].to_numpy(), seen_items=pairs["iidx"].to_numpy(),
                          train_sse=float(sse or 0.0), seconds=seconds, iterations=int(iterations))
        if _keep_rounds:
            model.spark_rounds_ = rounds
        return model, fitted
    finally:
        if owned:
            session.stop()


# ----------------------------------------------------------------------------- top-n on the cluster
_EXECUTOR_MODELS: dict[str, FactorModel] = {}


def _executor_model(bc: Any, key: str) -> FactorModel:
    """The broadcast model file, loaded once per Python worker (``key``: the file's SHA-256)."""
    from mfrec.persist import load_model

    model = _EXECUTOR_MODELS.get(key)
    if model is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.mfrec"
            path.write_bytes(bc.value)
            model = _EXECUTOR_MODELS[key] = load_model(path)
    return model


_SAVE_MODES = ("error", "errorifexists", "overwrite", "append", "ignore")


def recommend_all(model_or_path: Any, spark: Any = None, n: int = 10, *, out: str, exclude_seen: bool = True,
                  item_bias_weight: float = 1.0, partitions: int | None = None, mode: str = "errorifexists",
                  master: str = "local[*]") -> str:
    """Write every user's top-``n`` to Parquet at ``out`` (columns user, item, score, rank),
    computed on the executors: the model file is broadcast and each task scores its users with
    the model's own ``recommend_many`` (numpy BLAS blocks, the same results as at home).
    Executors need mfrec installed (in local mode: ``PYSPARK_PYTHON`` set to this
    interpreter before the session starts, as `train_als`'s own sessions do). ``mode`` is Spark's
    save mode. Without ``spark`` the active session is used, else one is started on ``master``
    and stopped afterwards (as `train_als` does). Returns ``out``."""
    _require_pyspark()
    from pyspark.sql import SparkSession
    from pyspark.sql import types as T

    from mfrec.persist import load_model
    from mfrec.models.recommend import check_request

    if spark is not None and not isinstance(spark, SparkSession):
        raise TypeError(f"spark must be a SparkSession or None, got {type(spark).__name__}")
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, (int, np.integer))
                                   or partitions < 1):
        raise ValueError(f"partitions must be an integer >= 1 or None, got {partitions!r}")
    if not isinstance(mode, str) or mode.lower() not in _SAVE_MODES:
        raise ValueError(f"mode must be one of {', '.join(_SAVE_MODES)}, got {mode!r}")
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise ValueError(f"out must be a non-empty path, got {out!r}")
    if isinstance(model_or_path, (str, os.PathLike)):
        data = Path(model_or_path).read_bytes()
        model = load_model(model_or_path)
    else:
        model = model_or_path
        check_is_fitted(model)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(model.save(Path(tmp) / "model.mfrec")).read_bytes()
    check_request(n, item_bias_weight)

    def id_type(ids: np.ndarray, what: str) -> Any:
        if ids.dtype.kind == "i":
            return T.LongType()
        if ids.dtype == object and pd.api.types.infer_dtype(ids, skipna=False) == "string":
            return T.StringType()
        raise DataError(f"Parquet output needs string or 64-bit integer {what} ids, the model has "
                        f"{pd.api.types.infer_dtype(ids, skipna=False)}")

    schema = T.StructType([T.StructField("user", id_type(model.user_map_.ids, "user")),
                           T.StructField("item", id_type(model.item_map_.ids, "item")),
                           T.StructField("score", T.DoubleType()), T.StructField("rank", T.IntegerType())])
    key = hashlib.sha256(data).hexdigest()
    top, seen_off, weight = int(n), bool(exclude_seen), float(item_bias_weight)
    session, owned = _session(spark, master)
    try:
        bc = session.sparkContext.broadcast(data)

        def score(batches):  # runs on the executors
            m = _executor_model(bc, key)
            for pdf in batches:
                raw = m.user_map_.to_raw(pdf["id"].to_numpy())
                recs = m.recommend_many(users=raw, n=top, exclude_seen=seen_off, item_bias_weight=weight)
                yield recs[["user", "item", "score", "rank"]].astype({"rank": "int32"})

        n_users = len(model.user_map_)
        parts = partitions or max(1, min(session.sparkContext.defaultParallelism * 2, n_users))
        (session.range(0, n_users, numPartitions=parts).mapInPandas(score, schema)
         .write.mode(mode.lower()).parquet(str(out)))
    finally:
        if owned:
            session.stop()
    return str(out)
