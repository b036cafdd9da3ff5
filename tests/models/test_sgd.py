"""The SGD family (models/sgd.py: FunkMF, BiasedMF, SVD++): padded training storage and the
reported loss. The per-model contract and checks are in test_funk_mf.py, test_biased_mf.py and
test_svdpp.py."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from mfrec import BiasedMF, FunkMF, SVDpp

#: ModelContract settings shared by the biased SGD models (BiasedMF and SVD++: the same trainer family)
BIASED_SGD_CONTRACT: dict[str, Any] = dict(
    small={"factors": 4, "epochs": 4},
    recovery=dict(factors=8, epochs=50, learning_rate=0.03, regularization=0.01, learning_rate_decay=0.97, seed=0,
                  threads=1),
    overfit=dict(factors=30, epochs=60, learning_rate=0.05, regularization=0.0, bias_regularization=0.0,
                 learning_rate_decay=1.0, threads=1),
)

SGD: dict[str, Callable[..., Any]] = {
    "FunkMF": lambda **kw: FunkMF(**{"factors": 4, "epochs": 4, **kw}),
    "FunkMF-minibatch": lambda **kw: FunkMF(**{"factors": 4, "epochs": 4, "batch_size": 16, "learning_rate": 0.005,
                                               **kw}),
    "BiasedMF": lambda **kw: BiasedMF(**{"factors": 4, "epochs": 4, **kw}),
    "SVDpp": lambda **kw: SVDpp(**{"factors": 4, "epochs": 4, **kw}),
}


@pytest.mark.parametrize("name", list(SGD))
def test_sgd_models_train_in_padded_storage_and_publish_contiguous_arrays(name, small, monkeypatch):
    """During the fit the kernels update cache-line padded rows (the trainer's storage) whose
    padding stays zero; the fitted attributes are plain contiguous (n, factors) arrays, and the
    fitted model keeps no trainer state."""
    train, _ = small
    seen = []
    model = SGD[name](seed=0)
    trainers = []
    make = type(model)._trainer

    def capture(self, *args):
        trainers.append(make(self, *args))
        return trainers[-1]

    monkeypatch.setattr(type(model), "_trainer", capture)

    def check(record):
        published = trainers[0].arrays()
        for attr, full in trainers[0].state().items():
            if full.ndim != 2:
                continue
            k = model.factors
            seen.append(attr)
            assert full.ctypes.data % 64 == 0 and full.shape[1] % 16 == 0
            assert not full[:, k:].any(), attr
            assert any(np.shares_memory(view, full) for view in published.values()), attr

    model.fit(train, callback=check)
    assert seen
    assert not any(isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] % 16 == 0 and v.shape[1] != 4
                   for v in vars(model).values())
    for attr, (kind, _) in model._array_specs.items():
        value = getattr(model, attr)
        if kind == "factor":
            assert value.flags.c_contiguous and value.shape[1] == 4, attr


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(SGD))
def test_reported_loss_has_the_fitted_parameters_penalty(name, threads, small):
    """loss = (running squared error + penalty) / n: the penalty part of the last epoch's loss
    (the SGD kernel sums the squared norms on its threads) equals the fitted parameters' penalty."""
    train, _ = small
    model = SGD[name](seed=0, threads=threads).fit(train)
    last = model.history_.iloc[-1]
    n = len(train)
    penalty = n * (last["loss"] - last["train_rmse"] ** 2)
    reg = model.regularization
    breg = reg if getattr(model, "bias_regularization", None) is None else model.bias_regularization
    sq = lambda a: float(np.sum(np.asarray(a, dtype=np.float64) ** 2))
    user = model.explicit_user_factors_ if name == "SVDpp" else model.user_factors_
    expected = reg * (sq(user) + sq(model.item_factors_)) + breg * (sq(model.user_bias_) + sq(model.item_bias_))
    if name == "SVDpp":
        expected += reg * sq(model.implicit_factors_)
    assert penalty == pytest.approx(expected, rel=1e-5)
