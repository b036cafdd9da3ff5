"""The ready-block scheduler of the parallel SGD epoch (mfrec.kernels.sgd): the schedule logic on
small grids, deterministically, and the epoch's result for any thread count."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import mfrec
from mfrec.kernels import sgd
from mfrec.kernels.sgd import (claim_block, epoch_strata, finish_block, grid_groups, new_board,
                               parallel_epoch)


def _block(r: int, j: int, strata: np.ndarray, g: int) -> tuple[int, int]:
    return r, int((r + strata[j]) % g)


def _simulate(g: int, reverse: bool, n_workers: int, seed: int):
    """Run the board with ``n_workers`` simulated workers: at each tick a random worker either
    finishes its block or claims one. Returns the blocks in finishing order and, for each
    claim, the blocks running at that moment."""
    rng = np.random.default_rng(seed)
    board = new_board(g)
    strata = epoch_strata(g, reverse)
    held: dict[int, tuple[int, int]] = {}
    finished: list[tuple[int, int]] = []
    running_sets: list[list[tuple[int, int]]] = []
    for _ in range(100 * g * g):
        w = int(rng.integers(n_workers))
        if w in held:
            r, j = held.pop(w)
            finish_block(board, strata, g, r, j)
            finished.append(_block(r, j, strata, g))
            continue
        r, j = claim_block(board, strata, g, int(rng.integers(g)))
        if r == -2:
            break
        if r >= 0:
            held[w] = (r, j)
            running_sets.append([_block(*rj, strata, g) for rj in held.values()])
    return finished, running_sets, strata


@pytest.mark.parametrize("g,reverse,n_workers,seed", [(1, False, 1, 0), (2, False, 2, 1), (3, True, 2, 2),
                                                      (4, False, 3, 3), (8, True, 2, 4), (8, False, 5, 5)])
def test_every_block_runs_once_and_concurrent_blocks_share_no_group(g, reverse, n_workers, seed):
    finished, running_sets, strata = _simulate(g, reverse, n_workers, seed)
    # every block of the g x g grid exactly once per epoch
    assert sorted(finished) == [(r, c) for r in range(g) for c in range(g)]
    # blocks running at the same time never share a user group (row) or an item group (column)
    for running in running_sets:
        rows = [r for r, _ in running]
        cols = [c for _, c in running]
        assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    # each row and each column sees its blocks in the order of the strata: the sequential pass
    step_of = {(r, int((r + strata[j]) % g)): j for r in range(g) for j in range(g)}
    for r in range(g):
        assert [step_of[b] for b in finished if b[0] == r] == list(range(g))
    for c in range(g):
        assert [step_of[b] for b in finished if b[1] == c] == list(range(g))


def test_claim_waits_for_the_row_and_column_before_it():
    g = 3
    board, strata = new_board(g), epoch_strata(g, False)
    # step 0 of every row is ready; a row never runs two blocks at once
    assert claim_block(board, strata, g, 0) == (0, 0)
    assert claim_block(board, strata, g, 0) == (1, 0)
    assert claim_block(board, strata, g, 0) == (2, 0)
    assert claim_block(board, strata, g, 0) == (-1, 0)
    finish_block(board, strata, g, 0, 0)  # row 0 -> step 1: column 1, still held by row 1's step 0
    assert claim_block(board, strata, g, 0) == (-1, 0)
    finish_block(board, strata, g, 1, 0)  # column 1 free: row 0 step 1 ready, row 1 step 1 needs column 2
    assert claim_block(board, strata, g, 1) == (0, 1)
    finish_block(board, strata, g, 2, 0)
    assert claim_block(board, strata, g, 0) == (1, 1)


def test_claim_reports_the_end_of_the_epoch():
    g = 2
    board, strata = new_board(g), epoch_strata(g, True)
    for _ in range(g * g):
        r, j = claim_block(board, strata, g, 0)
        assert r >= 0
        finish_block(board, strata, g, r, j)
    assert claim_block(board, strata, g, 0) == (-2, 0)


def test_grid_groups():
    assert grid_groups(1, 1000, 1000) == 1
    assert grid_groups(2, 1000, 1000) == 2
    assert grid_groups(8, 5, 1000) == 5  # never more groups than users or items


def _grid_problem(g: int, seed: int = 0, n_users: int = 40, n_items: int = 30, n: int = 600, k: int = 8):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n, replace=False)
    users, items = (pairs // n_items).astype(np.int64), (pairs % n_items).astype(np.int64)
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    values = rng.uniform(1, 5, n).astype(np.float32)
    ug = rng.integers(0, g, n_users).astype(np.int64)
    ig = rng.integers(0, g, n_items).astype(np.int64)
    P = rng.normal(0, 0.1, (n_users, k)).astype(np.float32)
    Q = rng.normal(0, 0.1, (n_items, k)).astype(np.float32)
    m = sp.csr_matrix((values, (users, items)), shape=(n_users, n_items))
    m.sort_indices()
    return (*sgd.block_layout(m.indptr, m.indices, m.data, ug, ig, g), ug, ig, P, Q)


@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_epoch_equals_the_single_thread_epoch_bit_for_bit(monkeypatch, reverse):
    """Whatever the thread count, the epoch is the sequential pass over the strata."""
    monkeypatch.setattr(sgd, "free_threads", lambda threads: threads)  # the machine's load aside
    g = 6
    run_user, items, values, seg, block_seg, ug, ig, P0, Q0 = _grid_problem(g)
    f = np.float32
    results = []
    for workers in (1, 2, 3, 6):
        P, Q = P0.copy(), Q0.copy()
        bu, bi = np.zeros(P.shape[0], f), np.zeros(Q.shape[0], f)
        Z = G = np.zeros((1, P.shape[1]), f)
        norms = np.empty(4)
        sse = parallel_epoch(run_user, items, values, seg, block_seg, np.uint64(9), g, ug, ig, P, Q, bu, bi, Z,
                             G, f(3.0), f(0.02), f(0.01), f(0.05), f(0.02), True, False, reverse, norms, workers)
        results.append((sse, P, Q, bu, bi, norms))
    ref = results[0]  # one worker: the sequential pass over the strata (tests/models/test_kernels.py)
    for got in results[1:]:
        assert got[0] == ref[0]
        for a, b in zip(got[1:], ref[1:]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ref[5], [np.sum(ref[1].astype(np.float64) ** 2), np.sum(ref[2].astype(np.float64) ** 2),
                                        np.sum(ref[3].astype(np.float64) ** 2), np.sum(ref[4].astype(np.float64) ** 2)],
                               rtol=1e-5)


def test_two_thread_fit_does_not_depend_on_the_load(monkeypatch):
    """A 2-thread BiasedMF fit is the same model whether its epochs ran on 1 or 2 threads; and
    threads=1 stays bit-reproducible for a seed."""
    train = mfrec.synthetic(300, 200, 6000, seed=3)
    fits = []
    for workers in (1, 2):
        monkeypatch.setattr(sgd, "free_threads", lambda threads, w=workers: min(threads, w))
        fits.append(mfrec.BiasedMF(factors=8, epochs=3, seed=4, threads=2).fit(train))
    np.testing.assert_array_equal(fits[0].user_factors_, fits[1].user_factors_)
    np.testing.assert_array_equal(fits[0].item_factors_, fits[1].item_factors_)
    np.testing.assert_array_equal(fits[0].item_bias_, fits[1].item_bias_)
    a = mfrec.BiasedMF(factors=8, epochs=3, seed=4, threads=1).fit(train)
    b = mfrec.BiasedMF(factors=8, epochs=3, seed=4, threads=1).fit(train)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
