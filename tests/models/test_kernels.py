"""Correctness of the Numba kernels against NumPy references and finite-difference gradients.

The kernels are called with float64 arrays and np.float64 scalars (Numba compiles a float64
specialization), so the comparisons can be tight. A float32 run (what the models use) is checked
against the same references with a float32 tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mfrec.kernels.als import cg_solve, als_half_step, bias_als_step, ridge_solve
from mfrec.kernels.predict import pair_dots
from mfrec.kernels.sgd import (
    _sgd_run,
    block_layout,
    implicit_sums,
    implicit_update,
    minibatch_epoch,
    _EPOCH_WORKER,
    parallel_epoch,
    shuffle_user_runs,
)

F64 = np.float64
N_USERS, N_ITEMS, K = 5, 6, 3
MU, LR, LR_B, REG, REG_B = F64(3.2), F64(0.05), F64(0.03), F64(0.07), F64(0.02)


# ------------------------------------------------------------------------------ helpers
def tiny_data(seed: int = 0, n_users: int = N_USERS, n_items: int = N_ITEMS, n: int = 15, k: int = K):
    """Distinct (user, item) pairs, ratings in [1, 5], random float64 parameters."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n, replace=False)
    users = (pairs // n_items).astype(np.int32)
    items = (pairs % n_items).astype(np.int32)
    values = rng.uniform(1.0, 5.0, n)
    params = {
        "P": rng.normal(0.0, 0.5, (n_users, k)),
        "Q": rng.normal(0.0, 0.5, (n_items, k)),
        "bu": rng.normal(0.0, 0.3, n_users),
        "bi": rng.normal(0.0, 0.3, n_items),
        "Z": rng.normal(0.0, 0.2, (n_users, k)),
    }
    return users, items, values, params


def numerical_grad(f, params: dict, name: str, h: float = 1e-5) -> np.ndarray:
    """Central finite differences of f(params) with respect to every entry of params[name]."""
    x = params[name]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + h
        up = f(params)
        x[idx] = old - h
        down = f(params)
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def rating_loss(u, i, r, use_bias=True, use_implicit=False, mu=MU, reg=REG, reg_b=REG_B):
    """Per-rating SGD objective ``(r - mu - bu - bi - (p [+ z]).q)^2 / 2 + reg/2 (|p|^2 + |q|^2)
    + reg_b/2 (bu^2 + bi^2)`` as a function of the parameter dict."""

    def f(p):
        user_vec = p["P"][u] + (p["Z"][u] if use_implicit else 0.0)
        pred = mu + p["bu"][u] + p["bi"][i] + user_vec @ p["Q"][i]
        loss = 0.5 * (r - pred) ** 2 + 0.5 * reg * (p["P"][u] @ p["P"][u] + p["Q"][i] @ p["Q"][i])
        if use_bias:
            loss += 0.5 * reg_b * (p["bu"][u] ** 2 + p["bi"][i] ** 2)
        return loss

    return f


def sgd_reference(users, items, values, order, P, Q, bu, bi, mu, lr, lr_b, reg, reg_b, use_bias,
                  Z=None, G=None):
    """Plain-Python sequential SGD (the documented update), in place; returns the SSE before updates."""
    sse = 0.0
    for idx in order:
        u, i = users[idx], items[idx]
        zu = Z[u] if Z is not None else 0.0
        err = values[idx] - (mu + bu[u] + bi[i] + (P[u] + zu) @ Q[i])
        sse += err * err
        if use_bias:
            bu[u] += lr_b * (err - reg_b * bu[u])
            bi[i] += lr_b * (err - reg_b * bi[i])
        p_old, q_old = P[u].copy(), Q[i].copy()
        if G is not None:
            G[u] += err * q_old
        P[u] = p_old + lr * (err * q_old - reg * p_old)
        Q[i] = q_old + lr * (err * (p_old + zu) - reg * q_old)
    return sse


def copy_params(params: dict) -> dict:
    return {k: v.copy() for k, v in params.items()}


def sgd_runs(users, items, values, order, P, Q, bu, bi, Z, G, mu, lr, lr_b, reg, reg_b, use_bias, use_implicit):
    """``_sgd_run`` over the ratings ``order`` lists, cut into runs of one user, on the ratings
    copied into that order (as `block_order` lays them out for the epochs)."""
    order = np.asarray(order, dtype=np.int64)
    us, it, val = users[order], items[order], values[order]
    cuts = np.flatnonzero(np.r_[True, us[1:] != us[:-1], True])
    return sum(_sgd_run(us[lo], it, val, lo, hi, P, Q, bu, bi, Z, G, mu, lr, lr_b, reg, reg_b, use_bias, use_implicit)
               for lo, hi in zip(cuts[:-1], cuts[1:]))


def run_block(users, items, values, order, p, use_bias, use_implicit, G=None, mu=MU, lr=LR):
    Z = p["Z"] if use_implicit else np.zeros((1, p["P"].shape[1]))
    if G is None:
        G = np.zeros_like(Z)
    return sgd_runs(users, items, values, order, p["P"], p["Q"], p["bu"], p["bi"], Z, G, mu, lr, LR_B, REG, REG_B,
                    use_bias, use_implicit)


# ------------------------------------------------------------------------------ per-rating SGD
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("rating", [0, 7, 14])
def test_sgd_step_is_negative_gradient_step(rating, use_bias):
    users, items, values, params = tiny_data(seed=rating)
    mu = MU if use_bias else F64(0.0)
    if not use_bias:  # FunkMF: biases stay zero and the mean is 0
        params["bu"][:] = 0.0
        params["bi"][:] = 0.0
    u, i, r = users[rating], items[rating], values[rating]
    f = rating_loss(u, i, r, use_bias=use_bias, mu=mu)
    grads = {name: numerical_grad(f, params, name) for name in ("P", "Q", "bu", "bi")}
    err = r - (mu + params["bu"][u] + params["bi"][i] + params["P"][u] @ params["Q"][i])

    new = copy_params(params)
    sse = run_block(users, items, values, [rating], new, use_bias, False, mu=mu)

    assert sse == pytest.approx(err**2, rel=1e-12)
    assert np.abs(new["P"] - params["P"]).max() > 1e-3  # the step is not trivially small
    np.testing.assert_allclose(new["P"], params["P"] - LR * grads["P"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(new["Q"], params["Q"] - LR * grads["Q"], rtol=0, atol=1e-9)
    if use_bias:
        np.testing.assert_allclose(new["bu"], params["bu"] - LR_B * grads["bu"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(new["bi"], params["bi"] - LR_B * grads["bi"], rtol=0, atol=1e-9)
    else:
        assert not new["bu"].any() and not new["bi"].any()
    # only the rating's own rows move
    moved_p = np.flatnonzero(np.any(new["P"] != params["P"], axis=1))
    moved_q = np.flatnonzero(np.any(new["Q"] != params["Q"], axis=1))
    assert set(moved_p) <= {u} and set(moved_q) <= {i}


@pytest.mark.parametrize("rating", [2, 9])
def test_svdpp_step_is_negative_gradient_step_and_accumulates_implicit_gradient(rating):
    users, items, values, params = tiny_data(seed=100 + rating)
    u, i, r = users[rating], items[rating], values[rating]
    f = rating_loss(u, i, r, use_implicit=True)
    grads = {name: numerical_grad(f, params, name) for name in ("P", "Q", "bu", "bi", "Z")}

    new = copy_params(params)
    G = np.random.default_rng(1).normal(size=params["Z"].shape)
    G0 = G.copy()
    run_block(users, items, values, [rating], new, True, True, G=G)

    np.testing.assert_allclose(new["P"], params["P"] - LR * grads["P"], atol=1e-9)
    np.testing.assert_allclose(new["Q"], params["Q"] - LR * grads["Q"], atol=1e-9)
    np.testing.assert_allclose(new["bu"], params["bu"] - LR_B * grads["bu"], atol=1e-9)
    np.testing.assert_allclose(new["bi"], params["bi"] - LR_B * grads["bi"], atol=1e-9)
    # G[u] gathers minus the data-loss gradient of the implicit vector (z has no penalty here)
    np.testing.assert_allclose(G, G0 - grads["Z"], atol=1e-9)
    np.testing.assert_array_equal(new["Z"], params["Z"])  # Z is read-only during the epoch


def test_one_block_epoch_of_a_single_rating_matches_the_run_kernel():
    users, items, values, params = tiny_data(seed=3)
    a, b = copy_params(params), copy_params(params)
    Z = G = np.zeros((1, K))
    order = np.array([5], dtype=np.int64)
    runs = np.array([0, 1], dtype=np.int64)
    one_group_u, one_group_i = np.zeros(N_USERS, dtype=np.int64), np.zeros(N_ITEMS, dtype=np.int64)
    sse_a = parallel_epoch(users[order], items[order], values[order], runs, runs, np.uint64(0), 1,
                             one_group_u, one_group_i,
                             a["P"], a["Q"], a["bu"], a["bi"], Z, G, MU, LR, LR_B, REG, REG_B, True, False, False,
                             np.empty(4))
    sse_b = run_block(users, items, values, [5], b, True, False)
    assert sse_a == sse_b
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("use_bias,use_implicit", [(True, False), (False, False), (True, True)])
def test_sgd_block_sequential_pass_matches_python_reference(use_bias, use_implicit):
    users, items, values, params = tiny_data(seed=11)
    mu = MU if use_bias else F64(0.0)
    if not use_bias:
        params["bu"][:] = 0.0
        params["bi"][:] = 0.0
    order = np.random.default_rng(5).permutation(len(values))
    got, ref = copy_params(params), copy_params(params)
    G_got = np.zeros((N_USERS, K)) if use_implicit else None
    G_ref = np.zeros((N_USERS, K)) if use_implicit else None
    sse = run_block(users, items, values, order, got, use_bias, use_implicit, G=G_got, mu=mu)
    sse_ref = sgd_reference(users, items, values, order, ref["P"], ref["Q"], ref["bu"], ref["bi"], mu, LR, LR_B,
                            REG, REG_B, use_bias, Z=ref["Z"] if use_implicit else None, G=G_ref)
    assert sse == pytest.approx(sse_ref, rel=1e-10)
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-10, atol=1e-12)
    if use_implicit:
        np.testing.assert_allclose(G_got, G_ref, rtol=1e-10, atol=1e-12)


def test_sgd_float32_kernel_matches_float64_reference():
    users, items, values, params = tiny_data(seed=21)
    order = np.random.default_rng(2).permutation(len(values)).astype(np.int64)
    ref = copy_params(params)
    sse_ref = sgd_reference(users, items, values, order, ref["P"], ref["Q"], ref["bu"], ref["bi"], MU, LR, LR_B,
                            REG, REG_B, True)
    f32 = {k: v.astype(np.float32) for k, v in params.items()}
    Z = G = np.zeros((1, K), dtype=np.float32)
    s = np.float32
    sse = sgd_runs(users, items, values.astype(np.float32), order, f32["P"], f32["Q"], f32["bu"], f32["bi"], Z, G,
                   s(MU), s(LR), s(LR_B), s(REG), s(REG_B), True, False)
    assert f32["P"].dtype == np.float32
    assert sse == pytest.approx(sse_ref, rel=1e-4)
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_allclose(f32[name], ref[name], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ stratified blocks
def _groups(n: int, g: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, g, n).astype(np.int64)


def _csr(users, items, values, n_users, n_items):
    """``indptr, indices, data`` of the users x items CSR matrix (items ascending), as `Ratings.by_user`."""
    m = sp.csr_matrix((values, (users, items)), shape=(n_users, n_items))
    m.sort_indices()
    return m.indptr, m.indices, m.data


def _blocks(users, items, ug, ig, g, values=None):
    """`block_layout` of the ratings (distinct pairs), and the reference: ``base``, the rating
    positions in its order (by block, then user, then item: NumPy sorts) and ``ptr``,
    the block boundaries in it. Returns ``base, ptr, seg, block_seg, layout``."""
    values = np.zeros(len(users), dtype=np.float32) if values is None else values
    layout = block_layout(*_csr(users, items, values, len(ug), len(ig)), ug, ig, g)
    order = np.lexsort((items, users))
    keys = ug[users[order]] * g + ig[items[order]]
    base = order[np.argsort(keys, kind="stable")]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=g * g))])
    return base, ptr, layout[3], layout[4], layout


@pytest.mark.parametrize("g", [1, 2, 3])
@pytest.mark.parametrize("n_users,n_items,n", [(9, 8, 40), (4, 200, 600)])  # short runs, and runs > 32
def test_block_layout_orders_ratings_by_block_user_item_and_marks_user_runs(g, n_users, n_items, n):
    users, items, _, _ = tiny_data(seed=4, n_users=n_users, n_items=n_items, n=n)
    values = np.random.default_rng(5).uniform(1, 5, n).astype(np.float32)
    ug, ig = _groups(n_users, g, 0), _groups(n_items, g, 1)
    base, ptr, seg, block_seg, (run_user, b_items, b_values, _, _) = _blocks(users, items, ug, ig, g, values)
    np.testing.assert_array_equal(b_items, items[base])
    np.testing.assert_array_equal(b_values, values[base])
    assert b_items.dtype == np.int32 and b_values.dtype == values.dtype and run_user.dtype == np.int32
    # runs: maximal stretches of one user inside a block, in position order
    starts = [p for b in range(g * g) for p in range(ptr[b], ptr[b + 1])
              if p == ptr[b] or users[base[p]] != users[base[p - 1]]]
    np.testing.assert_array_equal(seg, starts + [len(users)])
    np.testing.assert_array_equal(run_user, users[base[starts]])
    np.testing.assert_array_equal(block_seg, [np.searchsorted(starts, ptr[b]) for b in range(g * g)] + [len(starts)])


def test_shuffle_user_runs_permutes_within_blocks_keeping_users_together():
    users, items, _, _ = tiny_data(seed=4, n_users=9, n_items=8, n=40)
    g = 2
    base, ptr, seg, block_seg, _ = _blocks(users, items, _groups(9, g, 0), _groups(8, g, 1), g)
    a, b, c = (np.empty_like(base) for _ in range(3))
    shuffle_user_runs(base, seg, block_seg, np.uint64(123), a)
    shuffle_user_runs(base, seg, block_seg, np.uint64(123), b)
    shuffle_user_runs(base, seg, block_seg, np.uint64(124), c)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for blk in range(g * g):
        sl = slice(ptr[blk], ptr[blk + 1])
        assert sorted(a[sl].tolist()) == sorted(base[sl].tolist())
        run_users = users[a[sl]]
        # each user's ratings form one contiguous run inside the block
        n_runs = (len(np.flatnonzero(np.diff(run_users))) + 1) if len(run_users) else 0
        assert n_runs == len(np.unique(run_users))
        # and keeps the order it has in base
        for u in np.unique(run_users):
            np.testing.assert_array_equal(a[sl][run_users == u], base[sl][users[base[sl]] == u])


@pytest.mark.parametrize("use_implicit", [False, True])
def test_epoch_equals_sequential_blocks_in_stratum_order(use_implicit):
    """Blocks of one stratum touch disjoint users and items, so the parallel epoch equals the
    sequential pass over blocks (t, (t + s) mod G) for s = 0..G-1, t = 0..G-1, each in the run order
    of shuffle_user_runs for the same seed."""
    users, items, values, params = tiny_data(seed=8, n_users=10, n_items=9, n=45)
    g = 3
    ug, ig = _groups(10, g, 2), _groups(9, g, 3)
    base, ptr, seg, block_seg, (run_user, b_items, b_values, _, _) = _blocks(users, items, ug, ig, g, values)
    order = np.empty_like(base)
    shuffle_user_runs(base, seg, block_seg, np.uint64(77), order)
    got, ref = copy_params(params), copy_params(params)
    G_got = np.zeros((10, K))
    G_ref = np.zeros((10, K))
    Z_got = got["Z"] if use_implicit else np.zeros((1, K))
    norms = np.empty(4)
    sse = parallel_epoch(run_user, b_items, b_values, seg, block_seg, np.uint64(77), g, ug, ig, got["P"], got["Q"],
                           got["bu"], got["bi"], Z_got, G_got if use_implicit else np.zeros((1, K)), MU, LR, LR_B, REG,
                           REG_B, True, use_implicit, False, norms)
    seq = [order[ptr[t * g + (t + s) % g]:ptr[t * g + (t + s) % g + 1]] for s in range(g) for t in range(g)]
    sse_ref = sgd_reference(users, items, values, np.concatenate(seq), ref["P"], ref["Q"], ref["bu"], ref["bi"], MU,
                            LR, LR_B, REG, REG_B, True, Z=ref["Z"] if use_implicit else None,
                            G=G_ref if use_implicit else None)
    assert sse == pytest.approx(sse_ref, rel=1e-10)
    for name in ("P", "Q", "bu", "bi"):
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-10, atol=1e-12)
    if use_implicit:
        np.testing.assert_allclose(G_got, G_ref, rtol=1e-10, atol=1e-12)
    # the squared norms after the epoch, summed by the threads over their groups' rows
    expected = [np.sum(got[name] ** 2) for name in ("P", "Q", "bu", "bi")]
    np.testing.assert_allclose(norms, expected, rtol=1e-12)


# ------------------------------------------------------------------------------ minibatch GD
def minibatch_objective(users, items, values, reg):
    """``sum_r (x - p.q)^2 + reg (|p_u|^2 + |q_i|^2)``: regularization counted per rating."""

    def f(p):
        P, Q = p["P"], p["Q"]
        total = 0.0
        for u, i, x in zip(users, items, values):
            total += (x - P[u] @ Q[i]) ** 2 + reg * (P[u] @ P[u] + Q[i] @ Q[i])
        return total

    return f


def _minibatch(users, items, values, order, batch, P, Q, lr, reg):
    gP, gQ = np.zeros_like(P), np.zeros_like(Q)
    tu, ti = np.zeros(P.shape[0], dtype=np.bool_), np.zeros(Q.shape[0], dtype=np.bool_)
    sse = minibatch_epoch(users, items, values, np.asarray(order, dtype=np.int64), batch, P, Q, lr, reg, gP, gQ, tu, ti)
    # scratch buffers are handed back clean
    assert not gP.any() and not gQ.any() and not tu.any() and not ti.any()
    return sse


def test_minibatch_single_batch_is_full_gradient_step():
    users, items, values, params = tiny_data(seed=31)
    order = np.random.default_rng(0).permutation(len(values))
    f = minibatch_objective(users, items, values, REG)
    gP = numerical_grad(f, params, "P")
    gQ = numerical_grad(f, params, "Q")
    P, Q = params["P"].copy(), params["Q"].copy()
    sse = _minibatch(users, items, values, order, len(values), P, Q, LR, REG)
    resid = values - np.einsum("ij,ij->i", params["P"][users], params["Q"][items])
    assert sse == pytest.approx(resid @ resid, rel=1e-12)
    np.testing.assert_allclose(P, params["P"] - LR * gP, rtol=0, atol=1e-8)
    np.testing.assert_allclose(Q, params["Q"] - LR * gQ, rtol=0, atol=1e-8)


def test_minibatch_batches_are_sequential_gradient_steps():
    users, items, values, params = tiny_data(seed=32)
    order = np.random.default_rng(1).permutation(len(values))
    batch = 4
    P, Q = params["P"].copy(), params["Q"].copy()
    sse = _minibatch(users, items, values, order, batch, P, Q, LR, REG)
    ref = {"P": params["P"].copy(), "Q": params["Q"].copy()}
    sse_ref = 0.0
    for start in range(0, len(order), batch):
        sel = order[start:start + batch]
        resid = values[sel] - np.einsum("ij,ij->i", ref["P"][users[sel]], ref["Q"][items[sel]])
        sse_ref += resid @ resid
        f = minibatch_objective(users[sel], items[sel], values[sel], REG)
        gP, gQ = numerical_grad(f, ref, "P"), numerical_grad(f, ref, "Q")
        ref["P"] -= LR * gP
        ref["Q"] -= LR * gQ
    assert sse == pytest.approx(sse_ref, rel=1e-10)
    np.testing.assert_allclose(P, ref["P"], atol=1e-8)
    np.testing.assert_allclose(Q, ref["Q"], atol=1e-8)


# ------------------------------------------------------------------------------ SVD++ implicit part
def test_implicit_sums_matches_numpy():
    rng = np.random.default_rng(0)
    m = sp.random(7, 9, density=0.4, random_state=1, format="lil")
    m[3, :] = 0  # a user with no items
    m = m.tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    Y = rng.normal(size=(9, 4))
    out = np.full((7, 4), np.nan)
    implicit_sums(m.indptr, m.indices, Y, out)
    for u in range(7):
        cols = m.indices[m.indptr[u]:m.indptr[u + 1]]
        want = Y[cols].sum(axis=0) / np.sqrt(len(cols)) if len(cols) else np.zeros(4)
        np.testing.assert_allclose(out[u], want, rtol=1e-6, atol=1e-12)


def test_implicit_update_matches_docstring():
    """``Y[j] += lr / sqrt(n_j) * (sum_{u rated j} |N(u)|^-1/2 G[u] - reg_y Y[j])``; unrated items stay."""
    rng = np.random.default_rng(1)
    by_user = sp.random(8, 6, density=0.5, random_state=2, format="lil")
    by_user[:, 4] = 0  # an item nobody rated
    by_user = by_user.tocsr()
    by_user.eliminate_zeros()
    by_item = by_user.T.tocsr()
    by_item.sort_indices()
    user_counts = np.diff(by_user.indptr).astype(np.int64)
    G = rng.normal(size=(8, 3))
    Y = rng.normal(size=(6, 3))
    lr, reg_y = F64(0.1), F64(0.3)
    want = Y.copy()
    for j in range(6):
        us = by_item.indices[by_item.indptr[j]:by_item.indptr[j + 1]]
        if len(us):
            acc = (G[us] / np.sqrt(user_counts[us])[:, None]).sum(axis=0)
            want[j] = Y[j] + lr / np.sqrt(len(us)) * (acc - reg_y * Y[j])
    implicit_update(by_item.indptr, by_item.indices, user_counts, G, Y, lr, reg_y)
    np.testing.assert_allclose(Y, want, rtol=1e-6, atol=1e-9)


def test_implicit_gradient_of_svdpp_data_loss():
    """With the SGD step frozen (lr = 0), the epoch's accumulated G gives, through implicit_update,
    a step along minus the gradient of ``sum_r (r - pred)^2 / 2`` with respect to each ``y_j``
    (scaled by 1/sqrt(n_j))."""
    users, items, values, params = tiny_data(seed=41)
    n_users, n_items = N_USERS, N_ITEMS
    by_user = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    by_user.sort_indices()
    by_item = by_user.T.tocsr()
    by_item.sort_indices()
    counts = np.diff(by_user.indptr).astype(np.int64)
    Y = np.random.default_rng(3).normal(0, 0.3, (n_items, K))

    def data_loss(p):
        Z = np.zeros((n_users, K))
        implicit_sums(by_user.indptr, by_user.indices, p["Y"], Z)
        pred = MU + p["bu"][users] + p["bi"][items] + np.einsum("ij,ij->i", params["P"][users] + Z[users],
                                                                  params["Q"][items])
        return 0.5 * np.sum((values - pred) ** 2)

    state = {"Y": Y.copy(), "bu": params["bu"], "bi": params["bi"]}
    gY = numerical_grad(data_loss, state, "Y", h=1e-6)

    Z = np.zeros((n_users, K))
    implicit_sums(by_user.indptr, by_user.indices, Y, Z)
    G = np.zeros((n_users, K))
    P, Q, bu, bi = (params[n].copy() for n in ("P", "Q", "bu", "bi"))
    runs = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True]).astype(np.int64)
    parallel_epoch(users[runs[:-1]], items, values, runs, np.array([0, len(runs) - 1]), np.uint64(0), 1,
                     np.zeros(n_users, dtype=np.int64), np.zeros(Q.shape[0], dtype=np.int64), P, Q, bu, bi, Z, G, MU,
                     F64(0.0), F64(0.0), REG, REG_B, True, True, False, np.empty(4))
    np.testing.assert_array_equal(P, params["P"])  # lr = 0: nothing moved
    step = F64(0.2)
    Y_new = Y.copy()
    implicit_update(by_item.indptr, by_item.indices, counts, G, Y_new, step, F64(0.0))
    n_j = np.diff(by_item.indptr)
    scale = np.where(n_j > 0, step / np.sqrt(np.maximum(n_j, 1)), 0.0)[:, None]
    np.testing.assert_allclose(Y_new, Y - scale * gY, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------ prediction
def test_pair_dots_matches_einsum_and_zeroes_unknown():
    rng = np.random.default_rng(0)
    P, Q = rng.normal(size=(5, 3)), rng.normal(size=(6, 3))
    u = np.array([0, 4, -1, 2, 3], dtype=np.int64)
    i = np.array([5, 0, 1, -1, 3], dtype=np.int64)
    out = np.full(5, np.nan)
    pair_dots(P, Q, u, i, out)
    want = np.where((u >= 0) & (i >= 0), np.einsum("ij,ij->i", P[u], Q[i]), 0.0)
    np.testing.assert_allclose(out, want, rtol=1e-12)


# ------------------------------------------------------------------------------ ALS
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("lam,lam_bias", [(0.5, 2.0), (3.0, 0.0), (1e-3, 1e-3)])
def test_ridge_solve_matches_augmented_lstsq(use_bias, lam, lam_bias):
    rng = np.random.default_rng(int(lam * 1000) + use_bias)
    n, k = 12, 4
    Y = rng.normal(size=(n, k))
    X = np.hstack([np.ones((n, 1)), Y]) if use_bias else Y
    t = rng.normal(size=n)
    lam_vec = np.full(X.shape[1], lam)
    if use_bias:
        lam_vec[0] = lam_bias
    A = np.vstack([X, np.diag(np.sqrt(lam_vec))])
    b = np.concatenate([t, np.zeros(X.shape[1])])
    want = np.linalg.lstsq(A, b, rcond=None)[0]
    got = ridge_solve(X, t, lam, lam_bias, use_bias)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_ridge_solve_underdetermined_row():
    """Fewer ratings than unknowns: the ridge term alone makes the system solvable."""
    rng = np.random.default_rng(3)
    X = np.hstack([np.ones((2, 1)), rng.normal(size=(2, 5))])
    t = rng.normal(size=2)
    got = ridge_solve(X, t, 0.7, 0.2, True)
    lam_vec = np.array([0.2] + [0.7] * 5)
    want = np.linalg.solve(X.T @ X + np.diag(lam_vec), X.T @ t)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def als_problem(seed=0, n_rows=7, n_cols=9, k=3, density=0.45):
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, random_state=seed, format="lil")
    m[2, :] = 0  # a row without ratings
    m = m.tocsr()
    m.eliminate_zeros()
    m.data = rng.uniform(1, 5, m.nnz)
    m.sort_indices()
    Y = rng.normal(0, 0.5, (n_cols, k))
    other_bias = rng.normal(0, 0.3, n_cols)
    return m, Y, other_bias


def dense_als_reference(m, Y, other_bias, mu, lam, lam_b, use_bias, weighted):
    k = Y.shape[1]
    n_rows = m.shape[0]
    Xo, bo = np.zeros((n_rows, k)), np.zeros(n_rows)
    sse = 0.0
    for row in range(n_rows):
        cols = m.indices[m.indptr[row]:m.indptr[row + 1]]
        if len(cols) == 0:
            continue
        t = m.data[m.indptr[row]:m.indptr[row + 1]] - mu - other_bias[cols]
        X = np.hstack([np.ones((len(cols), 1)), Y[cols]]) if use_bias else Y[cols]
        scale = len(cols) if weighted else 1.0
        lam_vec = np.full(X.shape[1], lam * scale)
        if use_bias:
            lam_vec[0] = lam_b * scale
        w = np.linalg.solve(X.T @ X + np.diag(lam_vec), X.T @ t)
        if use_bias:
            bo[row], Xo[row] = w[0], w[1:]
        else:
            Xo[row] = w
        sse += np.sum((t - X @ w) ** 2)
    return Xo, bo, sse


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_als_half_step_exact_matches_dense_solve(use_bias, weighted):
    m, Y, ob = als_problem(seed=1 + 2 * use_bias + weighted)
    mu, lam, lam_b = 3.1, 0.8, 0.3
    Xo = np.full((m.shape[0], Y.shape[1]), 9.0)  # garbage in: must be overwritten
    bo = np.full(m.shape[0], 9.0)
    sse = als_half_step(m.indptr, m.indices, m.data, Y, ob, mu, Xo, bo, lam, lam_b, use_bias, weighted, False, 1)
    X_ref, b_ref, sse_ref = dense_als_reference(m, Y, ob, mu, lam, lam_b, use_bias, weighted)
    np.testing.assert_allclose(Xo, X_ref, rtol=1e-9, atol=1e-12)
    if use_bias:
        np.testing.assert_allclose(bo, b_ref, rtol=1e-9, atol=1e-12)
    assert sse == pytest.approx(sse_ref, rel=1e-9)
    assert not Xo[2].any() and (not use_bias or bo[2] == 0.0)  # empty row -> zeros


@pytest.mark.parametrize("use_bias", [True, False])
def test_als_half_step_cg_converges_to_exact_solution(use_bias):
    m, Y, ob = als_problem(seed=5, k=4)
    k = Y.shape[1]
    mu, lam, lam_b = 3.0, 0.5, 0.2
    X_ref, b_ref, sse_ref = dense_als_reference(m, Y, ob, mu, lam, lam_b, use_bias, False)
    rng = np.random.default_rng(0)
    start_X, start_b = rng.normal(size=(m.shape[0], k)), rng.normal(size=m.shape[0])

    errors = []
    for steps in (1, k + 1, k + 3):
        Xo, bo = start_X.copy(), start_b.copy()
        sse = als_half_step(m.indptr, m.indices, m.data, Y, ob, mu, Xo, bo, lam, lam_b, use_bias, False, True, steps)
        errors.append(np.abs(Xo - X_ref).max() + (np.abs(bo - b_ref).max() if use_bias else 0.0))
    # k + 1 >= number of unknowns: CG is exact up to rounding
    assert errors[1] < 1e-8 and errors[2] < 1e-8
    assert errors[0] > errors[1]
    assert sse == pytest.approx(sse_ref, rel=1e-8)


def test_cg_warm_started_at_solution_stays_there():
    rng = np.random.default_rng(2)
    X = np.hstack([np.ones((10, 1)), rng.normal(size=(10, 3))])
    t = rng.normal(size=10)
    lam_vec = np.array([0.1, 1.0, 1.0, 1.0])
    exact = np.linalg.solve(X.T @ X + np.diag(lam_vec), X.T @ t)
    w = cg_solve(X, t, lam_vec, exact.copy(), 3)
    np.testing.assert_allclose(w, exact, rtol=1e-10, atol=1e-12)


def test_bias_als_step_closed_form():
    m, _, ob = als_problem(seed=9)
    mu, reg = 3.3, 4.0
    out = np.full(m.shape[0], np.nan)
    bias_als_step(m.indptr, m.indices, m.data, ob, mu, out, reg)
    for row in range(m.shape[0]):
        sl = slice(m.indptr[row], m.indptr[row + 1])
        want = np.sum(m.data[sl] - mu - ob[m.indices[sl]]) / (reg + (m.indptr[row + 1] - m.indptr[row]))
        assert out[row] == pytest.approx(want, rel=1e-12, abs=1e-15)
    # it is the minimizer of sum (r - mu - b_j - b)^2 + reg b^2 for each row
    for row in (0, 1, 3):
        sl = slice(m.indptr[row], m.indptr[row + 1])
        resid = m.data[sl] - mu - ob[m.indices[sl]]
        grad = -2 * np.sum(resid - out[row]) + 2 * reg * out[row]
        assert abs(grad) < 1e-9


# ------------------------------------------------------------------------------ padded factor rows
@pytest.mark.parametrize("use_implicit", [False, True])
def test_sgd_on_padded_rows_equals_unpadded_and_padding_stays_zero(use_implicit):
    """The models give the kernels rows padded with zeros to whole cache lines: the first K
    columns must evolve exactly as without padding, and the padding must stay zero."""
    from mfrec.models.sgd import padded_rows

    users, items, values, params = tiny_data(seed=13)
    order = np.random.default_rng(4).permutation(len(values))
    plain = copy_params(params)
    padded = {}
    for name, value in params.items():
        if value.ndim == 2:
            padded[name] = padded_rows(value.shape[0], K, value.dtype)
            padded[name][:, :K] = value
        else:
            padded[name] = value.copy()
    assert padded["P"].shape[1] == 8 and padded["P"].ctypes.data % 64 == 0
    G_plain = np.zeros((N_USERS, K))
    G_pad = np.zeros((N_USERS, 8))
    sse_plain = run_block(users, items, values, order, plain, True, use_implicit, G=G_plain)
    sse_pad = run_block(users, items, values, order, padded, True, use_implicit, G=G_pad)
    assert sse_pad == pytest.approx(sse_plain, rel=1e-12)
    for name in ("P", "Q"):
        np.testing.assert_allclose(padded[name][:, :K], plain[name], rtol=1e-12, atol=1e-14)
        assert not padded[name][:, K:].any()
    np.testing.assert_allclose(G_pad[:, :K], G_plain, rtol=1e-12, atol=1e-14)
    assert not G_pad[:, K:].any()


def test_padded_rows_are_cache_line_multiples_on_cache_line_boundaries():
    from mfrec.models.sgd import padded_rows

    for k, dtype, width in ((100, np.float32, 112), (16, np.float32, 16), (1, np.float32, 16), (100, np.float64, 104)):
        a = padded_rows(7, k, np.dtype(dtype))
        assert a.shape == (7, width) and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % 64 == 0 and a.strides[0] % 64 == 0
        assert not a.any()


# ------------------------------------------------------------------------------ scoped LLVM options
def test_llvm_options_are_set_only_while_a_wrapped_kernel_compiles(monkeypatch):
    import llvmlite.binding as llvm
    from numba import njit

    from mfrec.kernels import compile as kc

    calls = []
    monkeypatch.setattr(llvm, "set_option", lambda name, option: calls.append(option))

    @njit(cache=False)
    def add_one(x):
        return x + 1

    kc.compile_with_llvm_options(add_one, ["-opt=1"], ["-opt=0"])
    assert add_one(1) == 2
    assert calls == ["-opt=1", "-opt=0"]
    assert add_one(5) == 6  # compiled already: options untouched
    assert calls == ["-opt=1", "-opt=0"]
    assert add_one(1.5) == 2.5  # a new specialization compiles in the scope again
    assert calls == ["-opt=1", "-opt=0"] * 2


def test_sgd_kernels_compile_with_one_vector_per_iteration():
    for kernel in (_sgd_run, *_EPOCH_WORKER.values()):
        assert kernel._compile_for_args.__name__ == "compile_scoped"


def test_uniform_fill_gives_the_same_values_in_padded_rows():
    from mfrec.kernels.random import uniform_fill
    from mfrec.models.sgd import padded_rows

    plain = np.empty((9, 5), dtype=np.float32)
    uniform_fill(plain, 5, np.uint64(42), 0.5, 0.1)
    padded = padded_rows(9, 5, np.dtype(np.float32))
    uniform_fill(padded, 5, np.uint64(42), 0.5, 0.1)
    np.testing.assert_array_equal(padded[:, :5], plain)
    assert not padded[:, 5:].any()
    assert abs(plain.mean() - 0.5) < 0.05 and 0.05 < plain.std() < 0.15
