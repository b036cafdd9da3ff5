"""Type-checked by mypy in CI (`make typecheck`): user code written against the public API, as a
user's type checker sees it through ``py.typed``. Not collected by pytest (no test_ prefix)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import mfrec


def walk_through(path: str) -> float:
    ratings: mfrec.Ratings = mfrec.synthetic(50, 40, 600, seed=0)
    train, test = mfrec.split.random_split(ratings, test_size=0.2, seed=0)
    model = mfrec.BiasedMF(factors=8, epochs=3, seed=0).fit(train, validation=test)
    preds: np.ndarray = model.predict(test.users[:5], test.items[:5])
    recs: pd.DataFrame = model.recommend(train.users[0], n=5)
    new: pd.DataFrame = model.recommend_new({train.items[0]: 5.0}, n=5)
    model.save(path)
    loaded = mfrec.load_model(path)
    report = mfrec.evaluate(loaded, test, metrics=("rmse", "mae"), train=train)
    csv_ratings = mfrec.Ratings.from_dataframe(ratings.to_dataframe(), "user", "item", "rating")
    als = mfrec.ImplicitALS(factors=4, iterations=2).fit(csv_ratings)
    del preds, recs, new, report, als
    return float(model.score(test))


def errors() -> list[type[Exception]]:
    return [mfrec.DataError, mfrec.ModelFileError, mfrec.NotFittedError, mfrec.TrainingDivergedError]


version: str = mfrec.__version__
