"""mfrec.threads: running whole tasks on threads, and the blocked batch top-n that uses it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import mfrec
from mfrec.threads import run_in_threads


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
        assert got.equals(ref), (threads, block)
    assert len(ref) == 400 * 7 and np.all(ref.groupby("user")["rank"].max() == 7)
