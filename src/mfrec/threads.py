"""Thread control: one setting for Numba kernels and BLAS, no oversubscription."""

from __future__ import annotations

import functools
import numbers
import os
import threading
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
    dynamic_threads()  # a bad MFREC_DYNAMIC_THREADS is refused by every fit, not only by those it steers
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


_FIXED = [0]  # open `fixed_threads` contexts, process-wide (tune's trials may run on other threads)
_FIXED_LOCK = threading.Lock()


def dynamic_threads() -> bool:
    """Whether fits whose result follows their thread count may start on fewer threads than
    asked when other processes take the cores (`start_threads`): the MFREC_DYNAMIC_THREADS
    setting, on unless it is 0 (ValueError naming the variable for anything but 0 or 1), and
    not inside `fixed_threads`."""
    env = os.environ.get("MFREC_DYNAMIC_THREADS", "").strip()
    if env not in ("", "0", "1"):
        raise ValueError(f"MFREC_DYNAMIC_THREADS must be 0 (fits always use the threads asked for) or 1, got {env!r}")
    return env != "0" and _FIXED[0] == 0


@contextmanager
def fixed_threads() -> Iterator[None]:
    """Inside it every fit (in any thread of the process) follows the thread count asked for,
    whatever the load, as with MFREC_DYNAMIC_THREADS=0: `mfrec.tune` and `mfrec.cross_validate`
    compare fits, and promise the same scores for the same seed and threads."""
    with _FIXED_LOCK:
        _FIXED[0] += 1
    try:
        yield
    finally:
        with _FIXED_LOCK:
            _FIXED[0] -= 1


#: the last `_others_load` sample: (monotonic seconds, busy CPU seconds of the machine, this
#: process's CPU seconds), and the other processes' load (cores) over the window that ended there
_CPU_SEEN: list = [None, None]
_CPU_WINDOW = 0.1  # seconds: a shorter window is left to the next call (jiffies are 10 ms)
_CPU_STALE = 1.0  # seconds: a longer window says what the machine did then, not now


def _cpu_sample() -> tuple[float, float, float] | None:
    """(now, busy CPU seconds of all cores since boot, this process's CPU seconds) from the first
    line of Linux /proc/stat (busy: all but idle and iowait); None where it cannot be read."""
    try:
        with open("/proc/stat", "rb") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
        busy = sum(fields) - fields[3] - fields[4]
        return time.monotonic(), busy / _clock_ticks(), time.process_time()
    except (OSError, ValueError, IndexError):
        return None


@functools.lru_cache(maxsize=None)
def _clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100


def _others_load() -> float | None:
    """The cores that other processes kept busy on average over the last window of
    ``_CPU_WINDOW`` to ``_CPU_STALE`` seconds (the machine's busy time less this process's CPU
    time): since the previous sample when that is long enough ago, else the window before it.
    None: no window yet, the last one ended over ``_CPU_STALE`` seconds ago (an average over a
    quiet minute and a busy second says neither; a new window starts), or no /proc/stat.
    Unlike a snapshot of the runnable count, which sees a task that runs for a few milliseconds
    now and then (on a quiet machine here 1.6% of snapshots, two 2 ms apart 0.5%:
    benchmarks/RESULTS.md 11.12), it says whether the cores have been taken."""
    now = _cpu_sample()
    last = _CPU_SEEN[0]
    if now is None:
        return None
    if last is None or now[0] - last[0] > _CPU_STALE:
        _CPU_SEEN[0], _CPU_SEEN[1] = now, None
    elif now[0] - last[0] >= _CPU_WINDOW:
        _CPU_SEEN[1] = max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0]))
        _CPU_SEEN[0] = now
    return _CPU_SEEN[1]


def _forget_cpu_window() -> None:
    """In a forked child: its CPU time starts afresh, so the parent's sample says nothing."""
    _CPU_SEEN[0] = _CPU_SEEN[1] = None
    _others_load()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_cpu_window)
_others_load()  # the first window starts at import


def _allowed_now(threads: int) -> int:
    """What one snapshot allows: ``threads``, or the cores other processes leave free (at least 1)."""
    cores = _cores()
    runnable = _runnable()
    if runnable - 1 <= cores - threads:  # room for all (the caller is one of the runnable)
        return threads
    # other threads of this process (Numba's or BLAS's pools finishing a loop) are no load
    return max(1, min(threads, cores - (runnable - _own_runnable_cached())))


def start_threads(threads: int) -> int:
    """The thread count a fit whose result follows it (the SGD models' block grid) is set up for:
    ``threads``, or the cores other processes leave free, when a snapshot of the runnable count
    says the cores are taken and so does the other processes' CPU time over the last window
    (`_others_load`). A caller takes two snapshots some work apart and keeps the larger.

    On a busy machine a ``threads=2`` SGD fit whose epochs are all capped to one thread still
    walks its 2 x 2 grid, 4-5% slower than a ``threads=1`` fit (benchmarks/RESULTS.md 11.7,
    11.11); set up for one thread, it *is* that fit, so its model is the ``threads=1`` model.
    With MFREC_DYNAMIC_THREADS=0 every fit uses the threads asked for (the model then follows
    the thread count alone, whatever the load)."""
    if threads <= 1 or not dynamic_threads():
        return max(1, int(threads))
    threads = int(threads)
    allowed = _allowed_now(threads)
    if allowed < threads:  # the snapshot says taken: and have the cores been taken lately?
        others = _others_load()
        if others is not None:
            allowed = max(allowed, min(threads, int(_cores() - others + 0.5)))
    return allowed


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
    allowed = _allowed_now(threads)
    seen_before, current = _SEEN
    use = allowed if allowed == seen_before else min(current or threads, threads)
    _SEEN[0], _SEEN[1] = allowed, use
    return use
