"""Thread control: one setting for Numba kernels and BLAS, no oversubscription."""

from __future__ import annotations

import functools
import numbers
import os
import time
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
    value = int(env) if env.isascii() and env.isdigit() else 0  # ASCII digits only ("\uff12" is no 2)
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


_LOADAVG: list = [None]  # the open descriptor of /proc/loadavg (None: not yet)


def _runnable() -> int:
    """Threads running or ready to run on the machine now (Linux /proc/loadavg; 0 if unknown).

    Read through a descriptor kept open: ``os.pread`` at offset 0 makes the kernel regenerate
    the file, ~2 us a read against ~14 us for open-read-close (~47 us per `free_threads` call on
    a busy machine, where every SGD epoch asks: ~1.6% of a 20-epoch u1 fit, RESULTS.md 11.7)."""
    for _ in range(2):  # a descriptor closed under us (a child that closed its files): open again
        try:
            if _LOADAVG[0] is None:
                _LOADAVG[0] = os.open("/proc/loadavg", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            return int(os.pread(_LOADAVG[0], 128, 0).split()[3].split(b"/")[0])
        except OSError:
            _LOADAVG[0] = None
        except (ValueError, IndexError):
            return 0
    return 0


#: (when, value) of the last `_own_runnable` reading: reading every thread's stat file costs
#: ~100 us in a fitting process (5 threads) and more on a busy machine, 2% of a 20-epoch u1 fit
#: when every epoch asked (benchmarks/RESULTS.md 11.3, 11.7)
_OWN_SEEN = [-1.0, 1]
_OWN_TTL = 0.2  # seconds a reading is reused


@functools.lru_cache(maxsize=None)
def _cores() -> int:
    """The machine's CPU count, read once (``os.cpu_count`` costs ~10 us, every epoch asks)."""
    return os.cpu_count() or 1


def _own_runnable_cached() -> int:
    """`_own_runnable`, read again at most every ``_OWN_TTL`` seconds."""
    now = time.monotonic()
    if now - _OWN_SEEN[0] > _OWN_TTL:
        _OWN_SEEN[0], _OWN_SEEN[1] = now, _own_runnable()
    return int(_OWN_SEEN[1])


def _own_runnable() -> int:
    """This process's threads running or ready to run now (at least 1: the caller)."""
    own = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat", "rb") as fh:
                own += fh.read().rsplit(b")", 1)[1].split()[0] == b"R"
    except (OSError, IndexError):
        pass
    return max(own, 1)


#: what the last `free_threads` call saw (the thread count the snapshot allowed) and the count it
#: returned (0: none yet). A snapshot of the runnable count is noisy both ways: capping on one busy
#: snapshot cost 20% of quiet 2-thread speed, and lifting the cap on one quiet snapshot of a busy
#: machine ran an epoch on a taken core now and then (benchmarks/RESULTS.md 11.3)
_SEEN: list = [None, 0]


def free_threads(threads: int) -> int:
    """Threads for the next parallel step (an SGD or BPR epoch): ``threads``, but no more than the
    cores not taken by other processes (and at least one). The count changes only when two calls in a row agree: it is
    capped once two snapshots saw the cores taken, and lifted once two saw room for all. An
    extra thread on a taken core only slows the epoch down: whenever the OS parks it while it
    holds a block, the others run out of work and wait for it (the same rule as GNU
    OpenMP's ``OMP_DYNAMIC``, on the runnable count instead of the load average). The result
    does not depend on the count."""
    if threads <= 1:
        return 1
    cores = _cores()
    runnable = _runnable()
    if runnable - 1 <= cores - threads:  # room for all (the caller is one of the runnable)
        allowed = threads
    else:  # other threads of this process (Numba's or BLAS's pools finishing a loop) are no load
        allowed = max(1, min(threads, cores - (runnable - _own_runnable_cached())))
    seen_before, current = _SEEN
    use = allowed if allowed == seen_before else min(current or threads, threads)
    _SEEN[0], _SEEN[1] = allowed, use
    return use
