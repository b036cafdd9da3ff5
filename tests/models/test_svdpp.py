"""SVD++ (BiasedMF plus implicit feedback factors): the model contract plus its own checks."""

from __future__ import annotations

import numpy as np

from mfrec import SVDpp
from mfrec.testing import ModelContract
from tests.models.test_sgd import BIASED_SGD_CONTRACT


class TestSVDpp(ModelContract):
    model = SVDpp
    small = BIASED_SGD_CONTRACT["small"]
    recovery = BIASED_SGD_CONTRACT["recovery"]
    overfit = BIASED_SGD_CONTRACT["overfit"]


def test_svdpp_effective_user_vectors(small):
    train, _ = small
    model = SVDpp(factors=4, epochs=3, threads=1).fit(train)
    csr = train.by_user
    implicit = np.zeros_like(model.explicit_user_factors_, dtype=np.float64)
    for u in range(train.n_users):
        cols = csr.indices[csr.indptr[u]:csr.indptr[u + 1]]
        if len(cols):
            implicit[u] = model.implicit_factors_[cols].astype(np.float64).sum(axis=0) / np.sqrt(len(cols))
    np.testing.assert_allclose(model.user_factors_, model.explicit_user_factors_ + implicit, rtol=1e-5, atol=1e-6)
    assert np.abs(implicit).max() > 0
