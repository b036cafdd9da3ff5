"""mfrec.threads: running whole tasks on threads, and the blocked batch top-n that uses it."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import mfrec
from mfrec import threads as th
from mfrec.threads import free_threads, kernel_threads, run_in_threads


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_run_in_threads_keeps_task_order_and_runs_each_task_once(threads):
    seen: list[int] = []
    lock = threading.Lock()

    def task(x: int) -> int:
        with lock:
            seen.append(x)
        return x * x

    assert list(run_in_threads(task, range(20), threads)) == [x * x for x in range(20)]
    assert sorted(seen) == list(range(20))


def test_run_in_threads_uses_other_threads_only_when_asked():
    names = set(run_in_threads(lambda _: threading.current_thread().name, range(6), 1))
    assert names == {threading.current_thread().name}
    names = set(run_in_threads(lambda _: threading.current_thread().name, range(6), 2))
    assert all(n.startswith("mfrec-blocks") for n in names)


def test_run_in_threads_passes_errors_on():
    def task(x: int) -> int:
        if x == 3:
            raise ValueError("task 3")
        return x

    with pytest.raises(ValueError, match="task 3"):
        list(run_in_threads(task, range(6), 2))


@pytest.mark.parametrize("name", ["ImplicitALS", "BiasedMF"])
def test_blocked_batch_top_n_does_not_depend_on_threads_or_block_size(name):
    train = mfrec.synthetic(400, 300, 8000, seed=5)
    model = getattr(mfrec, name)(factors=8, threads=2, seed=1).fit(train)
    ref = model.recommend_many(n=7, block_size=10_000)  # one block, rows selected in parallel
    for threads, block in ((2, None), (2, 13), (1, 13), (1, None)):
        model.threads = threads
        got = model.recommend_many(n=7, block_size=block)
        # the same lists; scores to float tolerance (BLAS picks kernels by block shape and thread
        # count, so the last bits of a score may differ between code paths on some CPUs)
        assert got[["user", "item", "rank"]].equals(ref[["user", "item", "rank"]]), (threads, block)
        np.testing.assert_allclose(got["score"], ref["score"], rtol=1e-5, atol=1e-6, err_msg=str((threads, block)))
    assert len(ref) == 400 * 7 and np.all(ref.groupby("user")["rank"].max() == 7)


def test_free_threads_leaves_taken_cores(monkeypatch):
    monkeypatch.setattr(th, "_cores", lambda: 2)
    monkeypatch.setattr(th, "_OWN_TTL", -1.0)  # read our own threads at every call
    monkeypatch.setattr(th, "_SEEN", [None, 0])
    monkeypatch.setattr(th, "_own_runnable", lambda: 1)
    monkeypatch.setattr(th, "_runnable", lambda: 1)  # only the caller
    assert free_threads(2) == 2
    monkeypatch.setattr(th, "_runnable", lambda: 2)  # one busy process beside it
    assert free_threads(2) == 2  # one busy snapshot: not yet (snapshots are noisy)
    assert free_threads(2) == 1  # seen twice in a row: capped
    monkeypatch.setattr(th, "_runnable", lambda: 9)
    assert free_threads(2) == 1 and free_threads(1) == 1
    monkeypatch.setattr(th, "_runnable", lambda: 1)
    assert free_threads(2) == 1  # one quiet snapshot: still capped (snapshots are noisy both ways)
    assert free_threads(2) == 2  # seen twice: all threads again
    monkeypatch.setattr(th, "_runnable", lambda: 2)
    assert free_threads(2) == 2
    monkeypatch.setattr(th, "_own_runnable", lambda: 2)  # our own pool finishing a loop is no load
    monkeypatch.setattr(th, "_runnable", lambda: 2)
    assert free_threads(2) == 2
    monkeypatch.setattr(th, "_runnable", lambda: 0)  # cannot tell
    assert free_threads(2) == 2


def test_bpr_epoch_runs_on_the_free_threads_and_restores_the_count(monkeypatch):
    import numba

    from mfrec.kernels import bpr

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    seen = []
    monkeypatch.setattr(bpr, "free_threads", lambda threads: 1)
    real = bpr._bpr_epoch

    def spy(*args):
        seen.append(numba.get_num_threads())
        return real(*args)

    monkeypatch.setattr(bpr, "_bpr_epoch", spy)
    indptr = np.array([0, 2, 3], dtype=np.int64)
    indices = np.array([0, 1, 2], dtype=np.int64)
    rows = np.array([0, 0, 1], dtype=np.int64)
    rng = np.random.default_rng(0)
    P = rng.normal(0, 0.1, (2, 4)).astype(np.float32)
    Q = rng.normal(0, 0.1, (4, 4)).astype(np.float32)
    b = np.zeros(4, dtype=np.float32)
    with kernel_threads(2):
        loss, correct, skipped = bpr.bpr_epoch(indptr, indices, rows, P, Q, b, np.float32(0.1), np.float32(0.0),
                                               np.uint64(3), 3, 8)
        assert numba.get_num_threads() == 2
    assert seen == [1]
    assert np.isfinite(loss) and correct + skipped <= 3


def test_own_thread_count_is_read_again_only_after_its_ttl(monkeypatch):
    reads = []
    monkeypatch.setattr(th, "_own_runnable", lambda: reads.append(1) or 1)
    monkeypatch.setattr(th, "_OWN_SEEN", [-1.0, 1])
    monkeypatch.setattr(th, "_OWN_TTL", 60.0)
    assert [th._own_runnable_cached() for _ in range(5)] == [1] * 5
    assert len(reads) == 1
    monkeypatch.setattr(th, "_OWN_TTL", -1.0)
    th._own_runnable_cached()
    assert len(reads) == 2


def test_runnable_reads_the_load_again_after_its_descriptor_is_closed():
    """`_runnable` keeps /proc/loadavg open; a descriptor closed under it is opened again."""
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg")
    assert th._runnable() >= 1  # this thread runs
    os.close(th._LOADAVG[0])
    assert th._runnable() >= 1
    assert th._runnable() >= 1


def test_start_threads_needs_a_busy_snapshot_and_a_busy_window(monkeypatch):
    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", "1")
    monkeypatch.setattr(th, "_cores", lambda: 2)
    monkeypatch.setattr(th, "_own_runnable_cached", lambda: 1)
    monkeypatch.setattr(th, "_runnable", lambda: 1)
    monkeypatch.setattr(th, "_others_load", lambda: 1.0)
    assert th.start_threads(2) == 2  # room for all now
    monkeypatch.setattr(th, "_runnable", lambda: 2)
    assert th.start_threads(2) == 1 and th.start_threads(1) == 1
    assert th.start_threads(4) == 1  # more threads than cores: the free ones
    for others, want in ((0.4, 2), (0.6, 1), (1.9, 1), (None, 1)):
        monkeypatch.setattr(th, "_others_load", lambda o=others: o)
        assert th.start_threads(2) == want, others
    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", "0")
    assert th.start_threads(2) == 2
    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", " 2 ")
    with pytest.raises(ValueError, match="MFREC_DYNAMIC_THREADS"):
        th.start_threads(2)


def test_others_load_is_the_machine_time_less_our_own_over_a_window(monkeypatch):
    samples = iter([(0.0, 100.0, 5.0), (0.05, 100.1, 5.04), (0.2, 100.5, 5.1), (0.25, 100.6, 5.15),
                    (0.5, 100.9, 5.4)])
    monkeypatch.setattr(th, "_cpu_sample", lambda: next(samples))
    monkeypatch.setattr(th, "_CPU_SEEN", [None, None])
    assert th._others_load() is None  # the first window starts
    assert th._others_load() is None  # 50 ms: too short, and no window before it
    assert th._others_load() == pytest.approx((0.5 - 0.1) / 0.2)  # 0.2 s: 0.5 busy, 0.1 ours
    assert th._others_load() == pytest.approx(2.0)  # 50 ms later: the window before
    assert th._others_load() == pytest.approx(max(0.0, (0.4 - 0.3) / 0.3))
    monkeypatch.setattr(th, "_cpu_sample", lambda: None)
    assert th._others_load() is None


def test_cpu_sample_reads_this_machine():
    got = th._cpu_sample()
    if not os.path.exists("/proc/stat"):
        assert got is None
        return
    t, busy, own = got
    later = th._cpu_sample()
    assert later[0] >= t and later[1] >= busy and later[2] >= own >= 0


def test_a_stale_window_says_nothing_and_starts_a_new_one(monkeypatch):
    """An average over a quiet minute and a busy second says neither (it made identical fits on
    a busy machine start on 2, 2, 2, then 1 thread)."""
    samples = iter([(0.0, 100.0, 5.0), (0.5, 100.5, 5.0), (10.0, 101.0, 5.1), (10.2, 101.4, 5.2)])
    monkeypatch.setattr(th, "_cpu_sample", lambda: next(samples))
    monkeypatch.setattr(th, "_CPU_SEEN", [None, None])
    assert th._others_load() is None
    assert th._others_load() == pytest.approx(1.0)
    assert th._others_load() is None  # 9.5 s since the last sample: stale
    assert th._others_load() == pytest.approx((0.4 - 0.1) / 0.2)  # the new window


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_window():
    """The child's CPU time starts afresh: the parent's sample made others' load negative-own,
    up to 10 cores on a quiet 2-core machine."""
    th._others_load()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, repr((th._CPU_SEEN[1], th._CPU_SEEN[0] is not None and th._CPU_SEEN[0][2] < 1.0)).encode())
        finally:
            os._exit(0)
    os.close(write)
    got = os.read(read, 200).decode()
    os.waitpid(pid, 0)
    assert got == "(None, True)"  # no window yet, and a sample of the child's own CPU time
