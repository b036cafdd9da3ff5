"""Edge cases once found as defects that are not one model's: the MFREC_THREADS variable and
missing ids in predict. The per-model ones (rows without ratings, parameter validation,
divergence) are in the model contract (mfrec.testing) and the test_<model>.py files."""

from __future__ import annotations

import pytest

from mfrec import ALS, Baseline, Ratings


def _tiny() -> Ratings:
    import numpy as np

    rng = np.random.default_rng(0)
    return Ratings.from_arrays(np.arange(60) % 12, np.arange(60) // 12, rng.integers(1, 6, 60))


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "\uff12", "\u0662", "1_0"])  # ASCII digits only
def test_bad_mfrec_threads_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("MFREC_THREADS", value)
    with pytest.raises(ValueError, match="MFREC_THREADS"):
        ALS(factors=2, iterations=1).fit(_tiny())


def test_mfrec_threads_ok_values(monkeypatch):
    from mfrec.threads import resolve_threads

    monkeypatch.setenv("MFREC_THREADS", " 1 ")
    assert resolve_threads(None) == 1
    monkeypatch.setenv("MFREC_THREADS", "")
    assert resolve_threads(None) >= 1


# ----------------------------------------------------------------------------- hostile-input pass
@pytest.mark.parametrize("users,items,what", [([None], [1], "user"), ([float("nan")], [1], "user"),
                                              ([1, 2], [2, None], "item"), (None, 1, "user")])
def test_predict_refuses_missing_ids_instead_of_falling_back(users, items, what):
    """None/NaN ids (a hole from a join) were predicted as unknown ids: the global mean, silently."""
    from mfrec.errors import DataError

    r = Ratings.from_arrays([1, 1, 2, 2], [1, 2, 1, 2], [1.0, 2.0, 3.0, 4.0])
    m = Baseline().fit(r)
    with pytest.raises(DataError, match=f"missing {what} id"):
        m.predict(users, items)
    assert m.predict([1, 99], [1, 98]).shape == (2,)  # unknown ids still fall back
