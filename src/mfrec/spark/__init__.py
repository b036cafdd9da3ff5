"""Train with Spark MLlib's ALS on a cluster, get an ordinary mfrec model back (extra ``mfrec[spark]``).

* :func:`train_als` maps raw ids to Spark's int ids on the cluster, computes the global mean and
  the user/item biases with Spark aggregations, fits ``pyspark.ml.recommendation.ALS`` on the
  residuals and returns an :class:`mfrec.ALS` (or :class:`mfrec.ImplicitALS`) whose fitted arrays
  are set exactly as ``fit()`` sets them: predict, recommend, fold-in, save/load and the service
  work unchanged.
* :func:`recommend_all` writes every user's top-n to Parquet, computed on the executors.

pyspark is imported lazily, so ``import mfrec`` never needs it.
"""

from mfrec.spark.train import recommend_all, train_als

__all__ = ["train_als", "recommend_all"]
