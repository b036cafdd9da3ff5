"""SGD-trained factor models: `FunkMF` (the seed notebooks' model) and `BiasedMF` (Surprise's SVD)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.kernels.sgd import block_layout, grid_groups, minibatch_epoch, parallel_epoch
from mfrec.models.base import FactorModel, Trainer, sq_norm, float_param, ridge_penalty
from mfrec.models.params import Integral, Interval, Real
from mfrec.models.registry import register_model
from mfrec.threads import start_threads

log = logging.getLogger("mfrec.models")


def padded_rows(n: int, k: int, dtype: np.dtype, align: int = 64) -> np.ndarray:
    """Zeros of shape ``(n, k_padded)``: ``k`` rounded up so a row is a multiple of ``align``
    bytes, the first row starting on an ``align``-byte boundary (one row = whole cache lines)."""
    dtype = np.dtype(dtype)
    per_line = max(1, align // dtype.itemsize)
    kp = -(-k // per_line) * per_line
    buf = np.zeros(n * kp * dtype.itemsize + align, dtype=np.uint8)
    start = (-buf.ctypes.data) % align
    return buf[start:start + n * kp * dtype.itemsize].view(dtype).reshape(n, kp)


def balanced_groups(counts: np.ndarray, n_groups: int, rng: np.random.Generator, chunk: int = 32) -> np.ndarray:
    """Assign rows to ``n_groups`` groups with nearly equal total counts.

    Rows go in runs of ``chunk`` consecutive indices (snake order over the runs sorted by count,
    ties broken at random): rows next to each other in memory then belong to the same thread,
    so two threads rarely write the same cache line of the factor and bias arrays (scattering
    single rows made 2-thread epochs ~30% slower through false sharing)."""
    n = len(counts)
    chunk = max(1, min(chunk, n // (8 * n_groups)))
    run_counts = np.add.reduceat(counts, np.arange(0, n, chunk)) if n else counts
    order = np.lexsort((rng.random(len(run_counts)), -run_counts))
    snake = np.arange(len(run_counts)) % (2 * n_groups)
    snake = np.where(snake < n_groups, snake, 2 * n_groups - 1 - snake)
    groups = np.empty(len(run_counts), dtype=np.int64)
    groups[order] = snake
    return np.repeat(groups, chunk)[:n]


class _SGDTrainer(Trainer):
    """Scratch state of one SGD fit: factor matrices in `padded_rows` storage (rows of whole
    cache lines, see mfrec.kernels.sgd) that the kernels update, and the stratified blocks. The
    published ``*_factors_`` are ``[:, :factors]`` views of it (contiguous copies at the end)."""

    def __init__(self, model: "_SGDModel", train: Ratings, rng: np.random.Generator, dtype: np.dtype,
                 factor_mean: float = 0.0, blocks: bool = True) -> None:
        """``blocks=False``: epochs that do not run on the block grid (minibatch FunkMF), whose
        result then follows no thread count (their grid is the one block of ``threads=1``)."""
        super().__init__(model, train)
        import numba

        asked = numba.get_num_threads() if blocks else 1
        first = start_threads(asked)  # a first look at the machine; the second after the factors' set-up
        k = int(model.factors)
        self.k = k
        self.P = self.padded_factors(rng, train.n_users, k, dtype, factor_mean)
        self.Q = self.padded_factors(rng, train.n_items, k, dtype, factor_mean)
        # biases on a 64-byte boundary too: groups are runs of 32 rows (`balanced_groups`), so each
        # group's biases are whole cache lines and two threads never write the same line
        self.bu = padded_rows(1, train.n_users, dtype)[0, :train.n_users]
        self.bi = padded_rows(1, train.n_items, dtype)[0, :train.n_items]
        self.zero_untrained(users=(self.P, self.bu), items=(self.Q, self.bi))
        self.threads = asked if first == asked else max(first, start_threads(asked))
        if self.threads < asked:  # the whole fit as that of threads=self.threads (`_fit`'s kernel_threads restores it)
            numba.set_num_threads(self.threads)
            log.info("%s: other processes take the cores, so this fit runs on %d of the %d threads asked: its "
                     "model is that of threads=%d (MFREC_DYNAMIC_THREADS=0 keeps %d)", type(model).__name__,
                     self.threads, asked, self.threads, asked)
        self.result_threads = self.threads if blocks else None
        self._setup_blocks(rng)
        self.sq_norms: np.ndarray | None = None

    def padded_factors(self, rng: np.random.Generator, n: int, k: int, dtype: np.dtype, mean: float = 0.0,
                       scale: float = 1.0) -> np.ndarray:
        """Random factors (as `Trainer.init_factors`) in padded storage."""
        full = padded_rows(n, k, dtype)
        self.init_factors(rng, n, k, dtype, mean, out=full)
        if scale != 1.0:
            full[:, :k] *= dtype.type(scale)
        return full

    def _setup_blocks(self, rng: np.random.Generator) -> None:
        """Split users and items into groups (`grid_groups` for ``self.threads``) and bucket the
        ratings by block."""
        train = self.train
        g = grid_groups(self.threads, train.n_users, train.n_items)
        self.n_groups = g
        ug = self.user_group = balanced_groups(train.user_counts, g, rng)
        ig = self.item_group = balanced_groups(train.item_counts, g, rng)
        by_user = train.by_user  # cached by the data: a refit redoes only the block pass
        self.run_user, self.block_items, self.block_values, self.seg_ptr, self.block_seg = block_layout(
            by_user.indptr, by_user.indices, by_user.data, ug, ig, g)
        self.reverse_strata = True  # flipped before each epoch: the first runs forward

    def learning_rate(self, epoch: int) -> float:
        m = self.model
        return float(m.learning_rate) * float(m.learning_rate_decay) ** epoch

    def sgd_epoch(self, rng: np.random.Generator, lr: float, lr_bias: float, reg: float, reg_bias: float,
                  use_bias: bool, P: np.ndarray | None = None, Z: np.ndarray | None = None,
                  G: np.ndarray | None = None) -> float:
        Q = self.Q
        dt = Q.dtype
        use_implicit = Z is not None
        if Z is None:
            Z = G = np.zeros((1, Q.shape[1]), dtype=dt)
        P = self.P if P is None else P
        seed = np.uint64(rng.integers(0, 2**63))
        self.reverse_strata = not self.reverse_strata
        self.sq_norms = np.empty(4)
        return parallel_epoch(self.run_user, self.block_items, self.block_values, self.seg_ptr, self.block_seg,
                              seed, self.n_groups, self.user_group, self.item_group, P, Q, self.bu, self.bi, Z, G,
                              float_param(self.mu, dt), float_param(lr, dt), float_param(lr_bias, dt),
                              float_param(reg, dt), float_param(reg_bias, dt), use_bias, use_implicit,
                              self.reverse_strata, self.sq_norms, self.threads)

    def penalty(self) -> float:
        """From the squared norms the epoch kernel leaves (each thread sums the rows in its
        cache; recomputing them here took ~2% of a small fit)."""
        norms, self.sq_norms = self.sq_norms, None
        if norms is None:  # minibatch FunkMF
            return ridge_penalty(self.model, sq_norm(self.P), sq_norm(self.Q), sq_norm(self.bu), sq_norm(self.bi))
        return ridge_penalty(self.model, *(float(x) for x in norms))

    def arrays(self) -> dict[str, np.ndarray]:
        k = self.k
        return {"user_factors_": self.P[:, :k], "item_factors_": self.Q[:, :k],
                "user_bias_": self.bu, "item_bias_": self.bi}

    def state(self) -> dict[str, np.ndarray]:
        return {"P": self.P, "Q": self.Q, "bu": self.bu, "bi": self.bi}


class _SGDModel(FactorModel):
    """Shared declaration of the per-rating SGD models: their parameters and fold-in rule."""

    _parameter_constraints = {
        "epochs": [Interval(Integral, 1, None)],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "regularization": [Interval(Real, 0, None)],
        "learning_rate_decay": [Interval(Real, 0, 1, closed="right")],
    }

    def _fold_in_lambdas(self, n_ratings: int) -> tuple[float, float]:
        """SGD objectives count the regularization per rating: lambda = reg * n (and the bias
        regularization likewise; FunkMF has no bias)."""
        return float(self.regularization) * n_ratings, float(self._param("bias_regularization")) * n_ratings


class _FunkTrainer(_SGDTrainer):
    def __init__(self, model: "FunkMF", train: Ratings, rng: np.random.Generator, dtype: np.dtype) -> None:
        start = float(np.sqrt(max(train.global_mean, 0.0) / max(int(model.factors), 1)))
        super().__init__(model, train, rng, dtype, start, blocks=int(model.batch_size) == 1)
        if int(model.batch_size) > 1:
            self.grad_P = np.zeros_like(self.P)
            self.grad_Q = np.zeros_like(self.Q)
            self.touched_u = np.zeros(train.n_users, dtype=np.bool_)
            self.touched_i = np.zeros(train.n_items, dtype=np.bool_)

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        m, train = self.model, self.train
        lr = self.learning_rate(epoch)
        if int(m.batch_size) > 1:
            dt = self.P.dtype
            order = rng.permutation(len(train)).astype(np.int64)
            return minibatch_epoch(train.user_indices, train.item_indices, train.values, order, int(m.batch_size),
                                   self.P, self.Q, float_param(lr, dt), float_param(m.regularization, dt),
                                   self.grad_P, self.grad_Q, self.touched_u, self.touched_i)
        return self.sgd_epoch(rng, lr, 0.0, float(m.regularization), 0.0, use_bias=False)


@register_model("funk-mf")
class FunkMF(_SGDModel):
    """``P[u] . Q[i]``, no biases: squared loss + L2, the seed notebooks' model exactly.

    ``batch_size=1`` is per-rating SGD (the second notebook); ``batch_size > 1`` is minibatch
    gradient descent on ``sum (x - p.q)^2 + regularization (|P|^2 + |Q|^2)`` (the first notebook).
    Factors start near ``sqrt(mean / factors)`` so first predictions are near the mean rating.
    """

    _has_bias = False
    # no biases: with no factors every prediction would be 0
    _parameter_constraints = {"factors": [Interval(Integral, 1, None)], "batch_size": [Interval(Integral, 1, None)]}

    def __init__(
        self,
        *,
        factors: int = 50,
        epochs: int = 30,
        learning_rate: float = 0.01,
        regularization: float = 0.05,
        batch_size: int = 1,
        learning_rate_decay: float = 1.0,
        init_std: float = 0.1,
        early_stopping: int | None = None,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> _FunkTrainer:
        return _FunkTrainer(self, train, rng, dtype)


@register_model("biased-mf")
class BiasedMF(_SGDModel):
    """``mu + b_u + b_i + P[u] . Q[i]`` by per-rating SGD (what Surprise calls SVD), with
    learning-rate decay and separate learning rate / regularization for the biases.

    The biases learn slower than the factors (``bias_learning_rate=0.005``): with the factors'
    rate, a rarely rated item's bias jumps with its few ratings and such items top every ranked
    list; the slower rate gives slightly lower RMSE and 4-5x better ndcg@10 on validation
    carve-outs of ml-latest-small and ml-100k u1. ``None`` uses ``learning_rate``.

    Epochs run in parallel over ``threads`` on disjoint blocks (see mfrec.kernels.sgd); a seed
    and the thread count the fit followed (``history_["threads"]``) give bit-identical results. A
    fit that starts while other processes take the cores follows the free ones
    (`mfrec.threads.start_threads`; ``MFREC_DYNAMIC_THREADS=0`` keeps ``threads``).
    """

    _parameter_constraints = {
        "bias_learning_rate": [None, Interval(Real, 0, None, closed="neither")],
        "bias_regularization": [None, Interval(Real, 0, None)],
    }

    def __init__(
        self,
        *,
        factors: int = 100,
        epochs: int = 20,
        learning_rate: float = 0.03,
        regularization: float = 0.08,
        bias_learning_rate: float | None = 0.005,
        bias_regularization: float | None = 0.02,
        learning_rate_decay: float = 0.95,
        init_std: float = 0.05,
        early_stopping: int | None = None,
        seed: int = 0,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self._store_params(locals())

    def _trainer(self, train: Ratings, rng: np.random.Generator, dtype: np.dtype, side: Any) -> "_BiasedTrainer":
        return _BiasedTrainer(self, train, rng, dtype)


class _BiasedTrainer(_SGDTrainer):
    def bias_rates(self, epoch: int) -> tuple[float, float]:
        m = self.model
        decay = float(m.learning_rate_decay) ** epoch
        return float(m._param("bias_learning_rate")) * decay, float(m._param("bias_regularization"))

    def epoch(self, epoch: int, rng: np.random.Generator) -> float:
        blr, breg = self.bias_rates(epoch)
        return self.sgd_epoch(rng, self.learning_rate(epoch), blr, float(self.model.regularization), breg,
                              use_bias=True)
