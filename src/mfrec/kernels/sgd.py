"""SGD kernels: block-parallel per-rating SGD (BiasedMF, FunkMF, SVD++) and minibatch GD.

Parallel SGD without lock contention: users and items are split into ``G`` groups, ratings are
bucketed into the ``G x G`` blocks of (user group, item group), and an epoch is the pass over
``G`` strata; stratum ``s`` holds the blocks ``(t, (t + s) mod G)``, which touch disjoint user
and item rows (the DSGD / FPSGD scheme). The threads do not walk the strata behind barriers:
each takes any block that is ready (the blocks before it in its row and in its column are done,
`claim_block`), so the epoch gives the sequential pass's result bit for bit for any thread count,
a thread slowed by another process just takes fewer blocks, and the calling thread never waits
for a helper that has not started (`parallel_epoch`). With one thread there is one block and
the kernel is plain sequential SGD; with ``t > 1`` threads ``G = t`` (`grid_groups`). Within
a block, each epoch visits the users in a fresh random order, each user's ratings in item order,
read from arrays laid out once per fit in block order (`block_layout`); the runs' random order
would begin each run with cache misses, so the kernel prefetches the run `RUNS_AHEAD` ahead.
Results are bit-identical for a seed and a thread count (``threads=1`` and ``threads=2`` differ:
one grid has 1 block, the other 4).

All factor arrays are float32 and updated in place; scalars are passed as float32 so the inner
loops stay float32 and vectorize (fastmath). The models hand the kernels factor rows padded with
zeros to a multiple of 64 bytes on 64-byte boundaries (padding stays zero under every update):
every vector load and store then stays within one cache line, ~15% faster per update at k=100
than unpadded 400-byte rows, of which three in four straddle cache lines.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Callable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from mfrec.kernels.compile import compile_with_llvm_options, specializations
from mfrec.kernels.random import splitmix
from mfrec.threads import free_threads, parallel_rows

from mfrec.kernels.compile import KERNEL_OPTIONS as _OPTS
# one vector per loop iteration over a factor row (see mfrec.kernels.compile): set for the SGD
# update kernels only; callers pad rows to a multiple of 64 bytes (`mfrec.models.sgd.padded_rows`)
_ONE_VECTOR_PER_ITERATION = (["-force-vector-interleave=1"], ["-force-vector-interleave=0"])


@njit(**_OPTS)
def _run_pass(indptr, indices, data, item_group, n_groups, pos, items_out, values_out, scatter):
    """One pass over the CSR ratings by ``(user, item group)`` pair ``u * n_groups + c``: counts
    each pair's ratings into ``pos`` (zeros), or, with ``scatter``, writes each rating to
    ``items_out`` / ``values_out`` at its pair's next position ``pos[pair]`` (the run starts)."""
    for u in range(indptr.shape[0] - 1):
        for p in range(indptr[u], indptr[u + 1]):
            key = u * n_groups + item_group[indices[p]]
            q = pos[key]
            if scatter:
                items_out[q] = indices[p]
                values_out[q] = data[p]
            pos[key] = q + 1


def block_layout(indptr, indices, data, user_group, item_group, n_groups):
    """The ratings laid out for the epochs, from the users x items CSR matrix (``indptr``,
    ``indices`` = items ascending within a user, ``data`` = values: `Ratings.by_user`).

    The ratings are ordered by block ``user_group[u] * n_groups + item_group[i]`` of the
    ``n_groups x n_groups`` grid, within a block by user, within a user by item: each user's
    ratings in a block form one run. Returns ``run_user`` (each run's user, int32),
    ``block_items`` and ``block_values`` (the ratings' items and values in that order, so an epoch
    streams each run from consecutive memory, as LibMF streams its blocks' nodes, instead of
    gathering them through an index: at 10M ratings the gathers missed the cache on nearly every
    rating, benchmarks/RESULTS.md 11.3), ``seg_ptr`` (the runs' starts, plus the end) and
    ``block_seg`` (each block's first run, plus the end).

    A counting sort, O(n): one small kernel (`_run_pass`) counts the ratings of each (user, item
    group) pair, NumPy orders the pairs by block, and the kernel scatters the ratings to their
    runs (a single kernel that allocated and did everything took ~1.7 s of a cold first fit to
    compile). One block (``threads=1``) is the CSR matrix itself. The CSR matrix is cached by
    the training data, so refits (tuning, cross-validation) only redo this pass."""
    g = int(n_groups)
    n = indices.shape[0]
    if g == 1:
        users = np.flatnonzero(np.diff(indptr)).astype(np.int32)
        seg_ptr = np.append(indptr[users], n).astype(np.int64)
        return users, np.ascontiguousarray(indices), np.ascontiguousarray(data), seg_ptr, np.array([0, len(users)], dtype=np.int64)
    n_users = indptr.shape[0] - 1
    item_group = np.ascontiguousarray(item_group, dtype=np.int64)
    pos = np.zeros(n_users * g, dtype=np.int64)
    items_out = np.empty_like(indices)
    values_out = np.empty_like(data)
    _run_pass(indptr, indices, data, item_group, g, pos, items_out, values_out, False)
    pairs = np.flatnonzero(pos)  # the runs: (user, item group) pairs with ratings, by user
    run_user, run_col = np.divmod(pairs, g)
    run_block = np.asarray(user_group, dtype=np.int64)[run_user] * g + run_col
    by_block = np.argsort(run_block, kind="stable")  # by block, then user
    pairs = pairs[by_block]
    seg_ptr = np.zeros(len(pairs) + 1, dtype=np.int64)
    np.cumsum(pos[pairs], out=seg_ptr[1:])
    block_seg = np.searchsorted(run_block[by_block], np.arange(g * g + 1), side="left").astype(np.int64)
    pos[pairs] = seg_ptr[:-1]
    _run_pass(indptr, indices, data, item_group, g, pos, items_out, values_out, True)
    return run_user[by_block].astype(np.int32), items_out, values_out, seg_ptr, block_seg


@njit(cache=True, inline="always")
def _run_permutation(s0, s1, seed, block):
    """The runs ``s0..s1-1`` of ``block`` in this epoch's random order (splitmix64 keyed by the
    epoch seed and the block: independent of the thread count)."""
    state = np.uint64(seed) ^ (np.uint64(block + 1) * np.uint64(0x9E3779B97F4A7C15))
    perm = np.empty(s1 - s0, dtype=np.int64)
    for t in range(s1 - s0):
        perm[t] = s0 + t
    for t in range(s1 - s0 - 1, 0, -1):
        state, x = splitmix(state)
        j = np.int64(x % np.uint64(t + 1))
        tmp = perm[t]
        perm[t] = perm[j]
        perm[j] = tmp
    return perm


@njit(cache=True)
def shuffle_user_runs(base, seg_ptr, block_seg, seed, out):
    """The order in which `parallel_epoch` visits the ratings for ``seed``, written to ``out``:
    in each block, the users' runs in a random order; a run keeps its ratings in ``base`` order
    (``base``: the rating positions in `block_layout`'s order, items ascending in a run).
    Keeping a user's ratings together keeps the user's row in cache and lets
    the kernel fuse consecutive updates; ascending items make the item rows' access sequential.
    Measured on ml-100k u1 and ml-latest-small (3 seeds): the same RMSE (within 0.0005) as
    shuffling each run as well, and faster. (The epoch kernel walks the runs directly; this
    materialized order is the reference it is tested against.)"""
    n_blocks = block_seg.shape[0] - 1
    for b in range(n_blocks):
        s0 = block_seg[b]
        s1 = block_seg[b + 1]
        if s1 == s0:
            continue
        perm = _run_permutation(s0, s1, seed, b)
        pos = seg_ptr[s0]
        for q in range(s1 - s0):
            s = perm[q]
            for p in range(seg_ptr[s], seg_ptr[s + 1]):
                out[pos] = base[p]
                pos += 1


def _emit_prefetch(context, builder, ptr, nbytes, write):
    """LLVM IR: one ``llvm.prefetch`` per 64-byte line that the ``nbytes`` bytes from ``ptr`` touch
    (locality 3, data cache; ``write``: write intent), counted from ``ptr``'s line: a span that
    starts inside a line can end in one line more than ``ceil(nbytes / 64)``."""
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                        "llvm.prefetch.p0i8")
    base = builder.bitcast(ptr, i8p)
    line = context.get_constant(types.intp, 64)
    offset = builder.and_(builder.ptrtoint(base, context.get_value_type(types.intp)), context.get_constant(types.intp, 63))
    n_lines = builder.udiv(builder.add(builder.add(nbytes, offset), context.get_constant(types.intp, 63)), line)
    base = builder.gep(base, [builder.neg(offset)])
    with cgutils.for_range(builder, n_lines) as loop:
        builder.call(fn, [builder.gep(base, [builder.mul(loop.index, line)]), i32(int(write)), i32(3), i32(1)])


@intrinsic
def _prefetch_row(typingctx, arr, row):
    """Ask the CPU to bring row ``row`` of the C-contiguous 2-D ``arr`` into cache, to be written
    (a hint with no effect on results)."""
    sig = types.void(arr, row)

    def codegen(context, builder, signature, args):
        aty, rty = signature.args
        ary = context.make_array(aty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [context.cast(builder, args[1], rty, types.intp),
                                                                    zero])
        row_bytes = cgutils.unpack_tuple(builder, ary.strides, 2)[0]
        _emit_prefetch(context, builder, ptr, row_bytes, write=True)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _prefetch_span(typingctx, arr, lo, hi):
    """Ask the CPU to bring ``arr[lo:hi]`` of the contiguous 1-D ``arr`` into cache, to be read
    (a hint with no effect on results)."""
    sig = types.void(arr, lo, hi)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        lo_ = context.cast(builder, args[1], signature.args[1], types.intp)
        hi_ = context.cast(builder, args[2], signature.args[2], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [lo_])
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(aty.dtype)))
        _emit_prefetch(context, builder, ptr, builder.mul(builder.sub(hi_, lo_), itemsize), write=False)
        return context.get_dummy_value()

    return sig, codegen


#: ratings ahead of the current one whose item row `_sgd_run` prefetches
PREFETCH_AHEAD = 4
#: runs ahead of the current one whose ratings (``items``, ``values``) and user row `epoch_worker`
#: prefetches. The runs of a block are visited in a random order, so each run's ratings lie
#: somewhere else in arrays larger than the cache: unprefetched, every run began with two misses
#: that the out-of-order core could not overlap (on synthetic 3M ratings, k=64, one thread, runs
#: in index order were 1.5x as fast as in the random order; prefetching 8 runs ahead recovers most
#: of that, and more on two threads: benchmarks/RESULTS.md 11.4)
RUNS_AHEAD = 8


@njit(inline="always", **_OPTS)
def _sgd_run(u, items, values, lo, hi, P, Q, bu, bi, Z, G, mu, lr, lr_bias, reg, reg_bias, use_bias, use_implicit):
    """Sequential SGD over user ``u``'s ratings ``items[lo:hi]``, ``values[lo:hi]`` (one run,
    stored contiguously: `block_layout`); returns the sum of squared errors before updates.

    One pass over the factors updates ``P[u]`` and ``Q[i]`` for this rating and already takes
    the dot product of the updated ``P[u]`` with the next rating's item row, so each rating
    costs one loop over the factors instead of two (about 25% faster at k=100, same
    arithmetic). The user's bias stays in a register over the run. Rows are indexed as
    ``P[u, f]``: a row view ``P[u]`` would count references to ``P`` on every rating.
    """
    k = P.shape[1]
    keep = np.float32(1.0) - lr * reg  # p + lr (e q - reg p) = keep p + (lr e) q
    acc = 0.0
    if hi <= lo:
        return acc
    b_u = bu[u]
    i0 = items[lo]
    dot = np.float32(0.0)
    if use_implicit:
        for f in range(k):
            dot += (P[u, f] + Z[u, f]) * Q[i0, f]
    else:
        for f in range(k):
            dot += P[u, f] * Q[i0, f]
    for t in range(lo, hi):
        i = items[t]
        if t + PREFETCH_AHEAD < hi:
            _prefetch_row(Q, items[t + PREFETCH_AHEAD])
        err = values[t] - (mu + b_u + bi[i] + dot)
        acc += err * err
        if use_bias:
            b_u += lr_bias * (err - reg_bias * b_u)
            bi[i] += lr_bias * (err - reg_bias * bi[i])
        step = lr * err
        # update, and the next rating's dot product in the same pass; the run's last rating reads
        # the run's first item row instead, a product it does not use (one loop to compile, not two)
        n = items[t + 1] if t + 1 < hi else i0
        dot = np.float32(0.0)
        if use_implicit:
            for f in range(k):
                pf = P[u, f]
                qf = Q[i, f]
                zf = Z[u, f]
                G[u, f] += err * qf
                pn = keep * pf + step * qf
                Q[i, f] = keep * qf + step * (pf + zf)
                P[u, f] = pn
                dot += (pn + zf) * Q[n, f]
        else:
            for f in range(k):
                pf = P[u, f]
                qf = Q[i, f]
                pn = keep * pf + step * qf
                Q[i, f] = keep * qf + step * pf
                P[u, f] = pn
                dot += pn * Q[n, f]
    if use_bias:
        bu[u] = b_u
    return acc


_sgd_run = compile_with_llvm_options(_sgd_run, *_ONE_VECTOR_PER_ITERATION)


@njit(inline="always", **_OPTS)
def _group_sq_norms(X, b, group, g):
    """Sums of squares of the rows of ``X`` and entries of ``b`` whose ``group`` is ``g``."""
    k = X.shape[1]
    x2 = 0.0
    b2 = 0.0
    for r in range(X.shape[0]):
        if group[r] == g:
            row = 0.0
            for f in range(k):
                row += X[r, f] * X[r, f]
            x2 += row
            b2 += b[r] * b[r]
    return x2, b2


# --------------------------------------------------------------------------- the block scheduler
# Scheduler state of one epoch, one int64 array: the lock word, the count of finished blocks,
# then per user group (row) the next step to run and a busy flag, per item group (column) the
# next step to run.
_LOCK = 0
_DONE = 1
_HEAD = 2


@intrinsic
def _compare_and_swap(typingctx, arr, idx, expected, new):
    """``arr[idx]``'s old value, and ``arr[idx] = new`` if it was ``expected`` (one atomic
    sequentially consistent compare-and-swap on an int64 array)."""
    sig = types.int64(arr, idx, expected, new)

    def codegen(context, builder, signature, args):
        aty, ity, ety, nty = signature.args
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [context.cast(builder, args[1], ity, types.intp)])
        old = builder.cmpxchg(ptr, context.cast(builder, args[2], ety, types.int64),
                              context.cast(builder, args[3], nty, types.int64), "seq_cst", "seq_cst")
        return builder.extract_value(old, 0)

    return sig, codegen


@intrinsic
def _store_release(typingctx, arr, idx, value):
    """``arr[idx] = value`` as an atomic store with release order (int64 array)."""
    sig = types.void(arr, idx, value)

    def codegen(context, builder, signature, args):
        aty, ity, vty = signature.args
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [context.cast(builder, args[1], ity, types.intp)])
        builder.store_atomic(context.cast(builder, args[2], vty, types.int64), ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _yield_cpu(typingctx):
    """``sched_yield()``: give the core to another runnable thread (a waiting worker must not
    spin on a core that the worker it waits for, or another process, could use)."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        return builder.call(fn, [])

    return sig, codegen


@njit(cache=True, inline="always")
def _lock(board):
    while _compare_and_swap(board, _LOCK, 0, 1) != 0:
        _yield_cpu()


@njit(cache=True, inline="always")
def _unlock(board):
    _store_release(board, _LOCK, 0)


def new_board(n_groups: int) -> np.ndarray:
    """A fresh scheduler state for an epoch on ``n_groups x n_groups`` blocks (NumPy: each
    epoch makes one, and a kernel for it would only add compile time)."""
    return np.zeros(_HEAD + 3 * int(n_groups), dtype=np.int64)


@njit(cache=True, inline="always")
def claim_block(board, strata, n_groups, first):
    """Claim a block that is ready: the user group (row) ``r`` whose next step ``j`` is not
    running, and whose item group (column) ``c = (r + strata[j]) mod n_groups`` has finished
    its steps before ``j``. Rows are tried from ``first`` on. Returns ``(r, j)``, ``(-1, 0)``
    when no block is ready now, ``(-2, 0)`` when the epoch is over. Call with the lock held.

    Step ``j`` of every row and of every column is the block of stratum ``strata[j]``: a block
    runs only after the blocks before it in its row and in its column, the order of the
    sequential pass over the strata. Blocks of different rows and columns touch disjoint
    factor rows and biases, so any run that keeps these two orders gives that pass's result,
    bit for bit, whichever thread takes which block and however many threads there are."""
    g = n_groups
    if board[_DONE] == g * g:
        return -2, 0
    row_step = _HEAD
    row_busy = _HEAD + g
    col_step = _HEAD + 2 * g
    for o in range(g):
        r = (first + o) % g
        j = board[row_step + r]
        if j < g and board[row_busy + r] == 0:
            c = (r + strata[j]) % g
            if board[col_step + c] == j:
                board[row_busy + r] = 1
                return r, j
    return -1, 0


@njit(cache=True, inline="always")
def finish_block(board, strata, n_groups, r, j):
    """Mark block ``(r, step j)`` done (call with the lock held)."""
    g = n_groups
    c = (r + strata[j]) % g
    board[_HEAD + r] = j + 1
    board[_HEAD + g + r] = 0
    board[_HEAD + 2 * g + c] = j + 1
    board[_DONE] += 1


@njit(cache=True, inline="always")
def _prefetch_run(s, run_user, items, values, seg_ptr, P, Z, G, use_implicit):
    """Prefetch run ``s``'s ratings and its user's rows (`RUNS_AHEAD`)."""
    _prefetch_span(items, seg_ptr[s], seg_ptr[s + 1])
    _prefetch_span(values, seg_ptr[s], seg_ptr[s + 1])
    u = run_user[s]
    _prefetch_row(P, u)
    if use_implicit:
        _prefetch_row(Z, u)
        _prefetch_row(G, u)


@njit(cache=True, inline="always")
def _prefetch_index(s, run_user, seg_ptr):
    """Prefetch run ``s``'s entries of ``seg_ptr`` and ``run_user``, which `_prefetch_run` reads
    `RUNS_AHEAD` runs later: a demand load that misses there stalls the core."""
    _prefetch_span(seg_ptr, s, s + 2)
    _prefetch_span(run_user, s, s + 1)


def _make_epoch_worker(use_implicit: bool):
    """`epoch_worker` for SVD++ (``use_implicit``) or the plain models: a compile-time choice, so
    BiasedMF/FunkMF compile no implicit-factor code (`mfrec.kernels.compile.specializations`)."""
    @njit(**_OPTS)
    def epoch_worker(w, n_workers, board, strata, run_user, items, values, seg_ptr, block_seg, seed, n_groups,
                     user_group, item_group, P, Q, bu, bi, Z, G, mu, lr, lr_bias, reg, reg_bias, use_bias, block_sse,
                     sq):
        """Worker ``w`` of an epoch on ``board`` (`new_board`): claim a ready block (`claim_block`),
        run it, mark it done, until every block is done; while no block is ready it yields the core.

        Writes each block's sum of squared errors to ``block_sse[block]`` and, after the last block
        of a user group ``r`` / item group ``c``, the squared norms of its rows to ``sq[r, 0]``,
        ``sq[r, 2]`` (``P``, ``bu``) / ``sq[c, 1]``, ``sq[c, 3]`` (``Q``, ``bi``), all before the
        block is marked done: once ``board`` counts every block done, the epoch's results are
        complete, whichever worker has returned yet. A worker that starts after that returns at
        once, touching nothing."""
        g = n_groups
        first = (w * g) // n_workers
        while True:
            _lock(board)
            r, j = claim_block(board, strata, g, first)
            _unlock(board)
            if r == -2:
                break
            if r == -1:
                _yield_cpu()
                continue
            c = (r + strata[j]) % g
            b = r * g + c
            s0 = block_seg[b]
            s1 = block_seg[b + 1]
            acc = 0.0
            if s1 > s0:
                perm = _run_permutation(s0, s1, seed, b)
                for q in range(-2 * RUNS_AHEAD, s1 - s0):  # from q < 0 on: the prefetches ahead alone
                    if q + 2 * RUNS_AHEAD < s1 - s0:
                        _prefetch_index(perm[q + 2 * RUNS_AHEAD], run_user, seg_ptr)
                    if 0 <= q + RUNS_AHEAD < s1 - s0:
                        _prefetch_run(perm[q + RUNS_AHEAD], run_user, items, values, seg_ptr, P, Z, G, use_implicit)
                    if q < 0:
                        continue
                    s = perm[q]
                    if q + 1 < s1 - s0:  # the next run's first item rows, while this run works
                        nxt = perm[q + 1]
                        for t in range(seg_ptr[nxt], min(seg_ptr[nxt] + PREFETCH_AHEAD, seg_ptr[nxt + 1])):
                            _prefetch_row(Q, items[t])
                    acc += _sgd_run(run_user[s], items, values, seg_ptr[s], seg_ptr[s + 1], P, Q, bu, bi, Z, G,
                                    mu, lr, lr_bias, reg, reg_bias, use_bias, use_implicit)
            block_sse[b] = acc
            if j == g - 1:  # the last block of user group r and of item group c: their rows are final
                for side in range(2):  # P, bu of user group r, then Q, bi of item group c (one copy of the loop)
                    grp = r if side == 0 else c
                    x2, b2 = _group_sq_norms(P if side == 0 else Q, bu if side == 0 else bi,
                                             user_group if side == 0 else item_group, grp)
                    sq[grp, side] = x2
                    sq[grp, side + 2] = b2
            _lock(board)
            finish_block(board, strata, g, r, j)
            _unlock(board)
            first = r  # the row's next block is often the next ready one

    return compile_with_llvm_options(epoch_worker, *_ONE_VECTOR_PER_ITERATION)


#: `epoch_worker` by ``use_implicit``
_EPOCH_WORKER = specializations(_make_epoch_worker)


def epoch_strata(n_groups: int, reverse: bool) -> np.ndarray:
    """The order of the strata in an epoch: ``0..n_groups-1``, or reversed."""
    strata = np.arange(int(n_groups), dtype=np.int64)
    return np.ascontiguousarray(strata[::-1]) if reverse else strata


class _Helpers:
    """Helper threads for `parallel_epoch`, started on first use and kept for the process.

    Each waits on its own queue for an epoch to work on and runs `epoch_worker` (which releases
    the GIL). The calling thread never waits for a helper to start or to return: it works on the
    epoch itself and returns once every block is done, so a helper that the OS does not run in
    time (the cores are taken) costs nothing but the blocks it holds."""

    def __init__(self) -> None:
        self._queues: list[queue.SimpleQueue] = []
        self._guard = threading.Lock()

    def submit(self, n: int, kernel: Callable[..., None], args_of: Callable[[int], tuple]) -> None:
        """Give workers ``1..n`` the epoch: run ``kernel(*args_of(w))`` (an `epoch_worker`)."""
        with self._guard:
            while len(self._queues) < n:
                q: queue.SimpleQueue = queue.SimpleQueue()
                threading.Thread(target=self._serve, args=(q,), name=f"mfrec-sgd-{len(self._queues) + 1}",
                                 daemon=True).start()
                self._queues.append(q)
            for w in range(1, n + 1):
                self._queues[w - 1].put((kernel, args_of(w)))

    @staticmethod
    def _serve(q: queue.SimpleQueue) -> None:
        while True:
            kernel, args = q.get()
            kernel(*args)

    def reset(self) -> None:
        """Forget the threads (in a forked child, where they do not exist)."""
        self._queues = []
        self._guard = threading.Lock()


_HELPERS = _Helpers()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_HELPERS.reset)


def parallel_epoch(run_user, items, values, seg_ptr, block_seg, seed, n_groups, user_group, item_group, P, Q,
                   bu, bi, Z, G, mu, lr, lr_bias, reg, reg_bias, use_bias, use_implicit, reverse, norms,
                   n_workers: int = 1) -> float:
    """One stratified epoch of per-rating SGD on ``mu + bu + bi + (P[u] + Z[u]) . Q[i]``, on up to
    ``n_workers`` threads (`mfrec.threads.free_threads`).

    ``run_user``, ``items``, ``values``, ``seg_ptr`` and ``block_seg`` come from `block_layout`
    for the groups ``user_group`` / ``item_group`` (``0..n_groups-1`` per row); each block visits
    its users' runs in the random order of `shuffle_user_runs` for ``seed``; the blocks follow the
    order of the strata ``s = 0..n_groups-1`` (blocks ``(t, (t + s) mod n_groups)``), last to first
    with ``reverse``. ``use_bias=False`` leaves ``bu``/``bi`` at zero (FunkMF: pass ``mu = 0``).
    With ``use_implicit`` (SVD++) ``Z[u]`` is the user's implicit vector, held fixed during the
    epoch, and ``G[u]`` accumulates ``sum err * Q[i]``, the gradient of the implicit factors.
    Writes the squared norms of ``P``, ``Q``, ``bu``, ``bi`` after the epoch to ``norms`` (for the
    reported loss) and returns the sum of squared errors seen before each update (the running
    training error).

    The calling thread and the helpers (`_Helpers`) each take any ready block (`claim_block`)
    instead of walking the strata behind barriers, so a thread slowed by another process takes
    fewer blocks and the others go on. The result is bit for bit that of the sequential pass over
    the strata, whatever ``n_workers`` and the timing; one-block (``threads=1``) and capped epochs
    run the same `epoch_worker` on the calling thread, so a fit compiles one epoch kernel."""
    g = int(n_groups)
    workers = min(free_threads(int(n_workers)), g)
    board = new_board(g)  # a fresh board per epoch: a late helper sees its own epoch finished
    block_sse = np.zeros(g * g, dtype=np.float64)
    sq = np.zeros((g, 4), dtype=np.float64)
    strata = epoch_strata(g, reverse)
    rest = (board, strata, run_user, items, values, seg_ptr, block_seg, seed, g, user_group, item_group, P, Q,
            bu, bi, Z, G, mu, lr, lr_bias, reg, reg_bias, use_bias, block_sse, sq)
    worker = _EPOCH_WORKER[bool(use_implicit)]
    if workers > 1:
        _HELPERS.submit(workers - 1, worker, lambda w: (w, workers) + rest)
    worker(0, workers, *rest)  # returns when every block is done
    norms[:] = sq.sum(axis=0)
    return float(block_sse.sum())


parallel_epoch.variants = _EPOCH_WORKER  # type: ignore[attr-defined]  # {use_implicit: kernel}, as als_half_step's


@njit(**_OPTS)
def _implicit_sums_rows(lo, hi, indptr, indices, Y, out):
    """Rows ``lo..hi-1`` of `implicit_sums` (serial; `mfrec.threads.parallel_rows` runs chunks on threads)."""
    k = Y.shape[1]
    for u in range(lo, hi):
        for f in range(k):
            out[u, f] = 0.0
        start = indptr[u]
        end = indptr[u + 1]
        if end == start:
            continue
        for p in range(start, end):
            j = indices[p]
            for f in range(k):
                out[u, f] += Y[j, f]
        norm = np.float32(1.0 / np.sqrt(end - start))
        for f in range(k):
            out[u, f] *= norm


def implicit_sums(indptr, indices, Y, out) -> None:
    """``out[u] = |N(u)|^-1/2 sum_{j in N(u)} Y[j]`` for every user (SVD++ implicit part), on the
    threads `kernel_threads` set (serial row kernels: a ``prange`` loop compiled 2-3x longer,
    benchmarks/RESULTS.md 11.2)."""
    parallel_rows(_implicit_sums_rows, indptr.shape[0] - 1, indptr, indices, Y, out)


@njit(**_OPTS)
def _implicit_update_rows(lo, hi, item_indptr, item_users, user_counts, G, Y, lr, reg_y):
    """Items ``lo..hi-1`` of `implicit_update` (serial; `mfrec.threads.parallel_rows` runs chunks on threads)."""
    k = Y.shape[1]
    acc = np.empty(k, dtype=Y.dtype)  # one item's summed gradient, reused across the chunk
    for j in range(lo, hi):
        start = item_indptr[j]
        end = item_indptr[j + 1]
        if end == start:
            continue
        for f in range(k):
            acc[f] = 0.0
        for p in range(start, end):
            u = item_users[p]
            norm = np.float32(1.0 / np.sqrt(user_counts[u]))
            for f in range(k):
                acc[f] += norm * G[u, f]
        step = lr / np.float32(np.sqrt(end - start))
        for f in range(k):
            Y[j, f] += step * (acc[f] - reg_y * Y[j, f])


def implicit_update(item_indptr, item_users, user_counts, G, Y, lr, reg_y) -> None:
    """Apply the epoch's implicit-factor gradients, in parallel over items (no write conflicts):
    ``Y[j] += lr / sqrt(n_j) * (sum_{u rated j} |N(u)|^-1/2 G[u] - reg_y Y[j])``.

    The summed gradient of a popular item is large; the ``1/sqrt(n_j)`` step keeps the delayed
    (once per epoch) update stable where a plain ``lr`` step diverges."""
    parallel_rows(_implicit_update_rows, item_indptr.shape[0] - 1, item_indptr, item_users, user_counts, G, Y, lr,
                  reg_y)


@njit(**_OPTS)
def minibatch_epoch(users, items, values, order, batch_size, P, Q, lr, reg, grad_P, grad_Q, touched_u, touched_i):
    """One epoch of minibatch gradient descent on ``P[u].Q[i]`` (the first seed notebook).

    Each batch takes the gradient of ``sum (x - p.q)^2 + reg (|p|^2 + |q|^2)`` (regularization
    counted per rating) at the current factors, then applies it: ``P -= lr * dP``.
    ``grad_*`` and ``touched_*`` are caller-owned scratch buffers (zeros / False on entry).
    Returns the running sum of squared errors.
    """
    n = order.shape[0]
    k = P.shape[1]
    sse = 0.0
    two = np.float32(2.0)
    for start in range(0, n, batch_size):
        end = min(n, start + batch_size)
        for t in range(start, end):
            idx = order[t]
            u = users[idx]
            i = items[idx]
            pu = P[u]
            qi = Q[i]
            gp = grad_P[u]
            gq = grad_Q[i]
            dot = np.float32(0.0)
            for f in range(k):
                dot += pu[f] * qi[f]
            err = values[idx] - dot
            sse += err * err
            touched_u[u] = True
            touched_i[i] = True
            for f in range(k):
                gp[f] += two * (reg * pu[f] - err * qi[f])
                gq[f] += two * (reg * qi[f] - err * pu[f])
        for t in range(start, end):
            idx = order[t]
            u = users[idx]
            i = items[idx]
            if touched_u[u]:
                pu = P[u]
                gp = grad_P[u]
                for f in range(k):
                    pu[f] -= lr * gp[f]
                    gp[f] = 0.0
                touched_u[u] = False
            if touched_i[i]:
                qi = Q[i]
                gq = grad_Q[i]
                for f in range(k):
                    qi[f] -= lr * gq[f]
                    gq[f] = 0.0
                touched_i[i] = False
    return sse


GROUPS_PER_THREAD = 1


def grid_groups(threads: int, n_users: int, n_items: int) -> int:
    """User (and item) groups per dimension of the block grid for an epoch on ``threads``.

    One thread: one block, plain sequential SGD. More: ``GROUPS_PER_THREAD`` groups per thread
    (``t x t`` blocks, as the strata had). A finer grid gives the scheduler more ready blocks to
    choose from but splits each user's ratings into more, shorter runs, which costs more than it
    saves: on synthetic 1M ratings (k=64, busy machine) an epoch took 1.6x as long on 4 x 4 blocks
    as on one block when it ran on one thread, and 1.3x as long on 4 x 4 as on 2 x 2 on two
    threads (benchmarks/RESULTS.md 11.3). Never more groups than users or items."""
    if threads <= 1:
        return 1
    return max(1, min(GROUPS_PER_THREAD * int(threads), int(n_users), int(n_items)))
