"""`top_n` (the parallel Numba selection behind every top-n list) against a plain sort."""

import numpy as np
import pytest

from mfrec.models.recommend import top_n


def _reference(S: np.ndarray, n: int):
    """Best first, ties by lower column, non-finite scores never chosen (padded -1 / -inf)."""
    m, w = S.shape
    n = min(n, w)
    idx = np.full((m, n), -1, dtype=np.int64)
    vals = np.full((m, n), -np.inf, dtype=S.dtype)
    for r in range(m):
        ok = np.flatnonzero(np.isfinite(S[r]))
        order = ok[np.lexsort((ok, -S[r, ok]))][:n]
        idx[r, :len(order)] = order
        vals[r, :len(order)] = S[r, order]
    return idx, vals


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_n_matches_a_sort_with_ties_exclusions_and_padding(dtype):
    rng = np.random.default_rng(3)
    S = rng.integers(0, 6, size=(40, 30)).astype(dtype)  # many ties
    S[rng.random(S.shape) < 0.3] = -np.inf
    S[5, :] = -np.inf          # nothing to recommend
    S[6, 3:] = -np.inf         # fewer finite scores than n
    S[7, 2] = np.nan           # a NaN score is never chosen
    for n in (1, 4, 10, 30, 50):
        idx, vals = top_n(S, n)
        ref_i, ref_v = _reference(S, n)
        assert idx.shape == (40, min(n, 30)) and vals.dtype == dtype
        np.testing.assert_array_equal(idx, ref_i)
        np.testing.assert_array_equal(vals, ref_v)


def test_top_n_of_empty_shapes():
    idx, vals = top_n(np.zeros((0, 5), np.float32), 3)
    assert idx.shape == (0, 3) and vals.shape == (0, 3)
    idx, vals = top_n(np.zeros((2, 0), np.float32), 3)
    assert idx.shape == (2, 0)


def test_batch_scoring_runs_on_one_blas_thread(monkeypatch):
    """recommend_many's block product runs under one BLAS thread (idle BLAS threads spinning
    after it halve the speed of the top-n that follows); one user touches no BLAS at all."""
    from threadpoolctl import threadpool_info

    import mfrec
    import mfrec.models.recommend as recmod

    r = mfrec.synthetic(60, 40, 900, seed=1)
    model = mfrec.ImplicitALS(factors=4, iterations=2, seed=1, threads=2).fit(r)
    seen = []
    real = recmod.RecommenderMixin._score_rows

    def spy(self, bias, X, cand, base):
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        seen.append(max(blas, default=1))
        return real(self, bias, X, cand, base)

    monkeypatch.setattr(recmod.RecommenderMixin, "_score_rows", spy)
    model.recommend_many(None, n=5, block_size=16)
    assert seen and all(t == 1 for t in seen)
