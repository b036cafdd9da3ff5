"""Thread control: one setting for Numba kernels and BLAS, no oversubscription."""

from __future__ import annotations

import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def _blas_limit(limits: int):
    """threadpoolctl's limit context on a controller built once: scanning the loaded libraries
    takes ~2 ms, a noticeable share of a small fit, so it is done on first use only."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=limits)


def env_threads() -> int | None:
    """The MFREC_THREADS setting (None when unset or empty); ValueError naming the variable
    when it is not an integer >= 1."""
    env = os.environ.get("MFREC_THREADS", "").strip()
    if not env:
        return None
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"MFREC_THREADS must be an integer >= 1 (the thread count), got {env!r}")
    return value


def resolve_threads(threads: int | None) -> int:
    """The thread count to use: ``threads`` if given (>= 1), else MFREC_THREADS, else all cores."""
    if threads is None:
        threads = env_threads() or os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
    return min(int(threads), numba.config.NUMBA_NUM_THREADS)


@contextmanager
def kernel_threads(threads: int | None, blas_threads: int = 1) -> Iterator[int]:
    """Run Numba kernels on ``threads`` threads with BLAS limited to ``blas_threads``.

    Numba-parallel loops that call BLAS (ALS Gram matrices) must not let BLAS spawn its own
    threads too, so BLAS is held to one thread inside kernels by default.
    """
    n = resolve_threads(threads)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _blas_limit(blas_threads):
            yield n
    finally:
        numba.set_num_threads(previous)


@contextmanager
def blas_threads(threads: int | None) -> Iterator[int]:
    """Plain NumPy/BLAS work (top-n scoring) on ``threads`` BLAS threads."""
    n = resolve_threads(threads)
    with _blas_limit(n):
        yield n


_pools: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has the pools but not their threads: start afresh
    os.register_at_fork(after_in_child=_pools.clear)


def parallel_rows(kernel: Callable[..., Any], n_rows: int, *args: Any, chunks_per_thread: int = 4) -> None:
    """Run the serial, GIL-releasing (``nogil=True``) Numba ``kernel(lo, hi, *args)`` over the rows
    ``0..n_rows-1`` on ``numba.get_num_threads()`` threads (set by `kernel_threads`).

    The same parallelism as a ``prange`` loop at a fraction of its compile time: Numba's
    ``parallel=True`` compiles the loop body and every function it calls again (~2-3x a serial
    kernel's compile, benchmarks/RESULTS.md section 11.2). Rows go in ``chunks_per_thread``
    contiguous chunks per thread, taken as threads free up (a thread slowed by a busy core does
    less). The kernel must write each row's results to its own slots (no reductions across rows),
    so the result does not depend on the thread count."""
    n = numba.get_num_threads()
    if n <= 1 or n_rows < 2:
        kernel(0, n_rows, *args)
        return
    n_chunks = min(n_rows, n * chunks_per_thread)
    bounds = np.linspace(0, n_rows, n_chunks + 1).astype(np.int64)
    pool = _pools.get(n)
    if pool is None:
        pool = _pools[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="mfrec-rows")
    futures = [pool.submit(kernel, int(lo), int(hi), *args) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    for f in futures:
        f.result()


def run_in_threads(fn: Callable[[Any], Any], tasks: Iterable[Any], threads: int) -> Iterator[Any]:
    """``fn(task)`` for every task, up to ``threads`` at a time on a thread pool (tasks taken as
    threads free up), results in task order; on the calling thread alone when ``threads <= 1``.
    ``fn`` must release the GIL for the work to overlap (NumPy's BLAS products and ``nogil``
    kernels do) and must not itself use `parallel_rows` (a pool thread waiting on the same pool
    could deadlock)."""
    tasks = list(tasks)
    if threads <= 1 or len(tasks) < 2:
        for t in tasks:
            yield fn(t)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mfrec-blocks") as pool:
        yield from pool.map(fn, tasks)

