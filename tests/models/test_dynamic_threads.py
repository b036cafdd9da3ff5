"""A multi-thread SGD fit that starts while other processes take the cores is set up for the
threads they leave free (`mfrec.threads.start_threads`): its model is then that smaller thread
count's model, bit for bit, and its history says so (issue 18, section 3)."""

from __future__ import annotations

import logging

import numba
import numpy as np
import pytest

import mfrec
import mfrec.threads as th


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine whose runnable count the test sets (``machine(n)``; ``machine(a, b, ...)``
    for successive readings, the last one repeated)."""
    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", "1")
    monkeypatch.setattr(th, "_cores", lambda: 2)
    monkeypatch.setattr(th, "_own_runnable_cached", lambda: 1)
    monkeypatch.setattr(th, "_SEEN", [None, 0])
    monkeypatch.setattr(th, "_others_load", lambda: 1.0)  # one core kept busy by others lately

    def set_runnable(*counts: int) -> list[int]:
        seen: list[int] = []
        left = list(counts)

        def reading() -> int:
            value = left.pop(0) if len(left) > 1 else left[0]
            seen.append(value)
            return value

        monkeypatch.setattr(th, "_runnable", reading)
        return seen

    return set_runnable


@pytest.fixture(scope="module")
def train():
    return mfrec.synthetic(120, 80, 3000, seed=7)


def _same(a, b) -> None:
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("cls", [mfrec.BiasedMF, mfrec.FunkMF, mfrec.SVDpp])
def test_a_fit_started_on_a_busy_machine_is_the_one_thread_fit(cls, train, machine, caplog):
    kw = dict(factors=8, epochs=4, seed=3)
    machine(1)  # quiet
    one = cls(threads=1, **kw).fit(train)
    two = cls(threads=2, **kw).fit(train)
    assert two.history_["threads"].tolist() == [2] * 4 and one.history_["threads"].tolist() == [1] * 4
    with pytest.raises(AssertionError):
        _same(one, two)  # two grids, two models
    seen = machine(3)  # one process busy beside this one, in both readings
    with caplog.at_level(logging.INFO, logger="mfrec.models"):
        busy = cls(threads=2, **kw).fit(train)
    assert seen[:2] == [3, 3]
    _same(busy, one)
    assert busy.history_["threads"].tolist() == [1] * 4
    assert any("runs on 1 of the 2 threads" in r.getMessage() and "threads=1" in r.getMessage()
               for r in caplog.records)


def test_one_busy_reading_is_not_enough(train, machine):
    """Two readings some work apart, the larger kept: a busy snapshot followed by a quiet one (or
    the reverse) keeps the threads asked for."""
    kw = dict(factors=8, epochs=3, seed=5)
    machine(1)
    quiet = mfrec.BiasedMF(threads=2, **kw).fit(train)
    for readings in ((3, 1), (1, 3)):
        machine(*readings)
        got = mfrec.BiasedMF(threads=2, **kw).fit(train)
        _same(got, quiet)
        assert got.history_["threads"].tolist() == [2] * 3


def test_a_busy_snapshot_of_a_machine_that_was_not_busy_lately_keeps_the_threads(train, machine, monkeypatch):
    """A task that runs for a few milliseconds shows in snapshots of the runnable count; the
    other processes' CPU time over the last window says whether the cores were taken."""
    kw = dict(factors=8, epochs=3, seed=5)
    machine(1)
    quiet = mfrec.BiasedMF(threads=2, **kw).fit(train)
    machine(3)
    monkeypatch.setattr(th, "_others_load", lambda: 0.2)
    got = mfrec.BiasedMF(threads=2, **kw).fit(train)
    _same(got, quiet)
    monkeypatch.setattr(th, "_others_load", lambda: None)  # no window yet, or no /proc/stat: the snapshots
    assert mfrec.BiasedMF(threads=2, **kw).fit(train).history_["threads"].tolist() == [1] * 3


def test_the_setting_off_keeps_the_threads_asked_for(train, machine, monkeypatch):
    kw = dict(factors=8, epochs=3, seed=5)
    machine(1)
    quiet = mfrec.BiasedMF(threads=2, **kw).fit(train)
    machine(3)
    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", "0")
    fixed = mfrec.BiasedMF(threads=2, **kw).fit(train)  # its epochs are capped, its grid is not
    _same(fixed, quiet)
    assert fixed.history_["threads"].tolist() == [2] * 3
    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", "yes")
    with pytest.raises(ValueError, match="MFREC_DYNAMIC_THREADS must be 0"):
        mfrec.BiasedMF(threads=2, **kw).fit(train)


def test_the_fit_restores_the_thread_setting(train, machine):
    machine(3)
    before = numba.get_num_threads()
    mfrec.BiasedMF(factors=4, epochs=2, threads=2).fit(train)
    assert numba.get_num_threads() == before


def test_minibatch_funk_follows_no_thread_count(train, machine):
    """Minibatch epochs do not run on the block grid: the same model on any thread count and
    load, and no threads column."""
    kw = dict(factors=6, epochs=3, seed=2, batch_size=64, learning_rate=0.002)
    machine(1)
    a = mfrec.FunkMF(threads=1, **kw).fit(train)
    b = mfrec.FunkMF(threads=2, **kw).fit(train)
    machine(3)
    c = mfrec.FunkMF(threads=2, **kw).fit(train)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.user_factors_, c.user_factors_)
    assert "threads" not in a.history_.columns


def test_models_whose_result_follows_no_thread_count_have_no_threads_column(train, machine):
    machine(3)
    assert "threads" not in mfrec.ALS(factors=4, iterations=2, threads=2).fit(train).history_.columns


def test_the_threads_column_survives_save_and_load(train, machine, tmp_path):
    machine(3)
    m = mfrec.BiasedMF(factors=4, epochs=2, threads=2).fit(train)
    m.save(tmp_path / "m.mfrec")
    back = mfrec.load_model(tmp_path / "m.mfrec")
    assert back.history_["threads"].tolist() == [1, 1]


def test_fixed_threads_keeps_the_threads_asked_for(train, machine):
    kw = dict(factors=8, epochs=3, seed=5)
    machine(1)
    quiet = mfrec.BiasedMF(threads=2, **kw).fit(train)
    machine(3)
    with th.fixed_threads():
        with th.fixed_threads():  # nests
            pass
        inside = mfrec.BiasedMF(threads=2, **kw).fit(train)
    _same(inside, quiet)
    assert mfrec.BiasedMF(threads=2, **kw).fit(train).history_["threads"].tolist() == [1] * 3  # after: on again


def test_tune_and_cross_validate_score_the_same_on_a_busy_machine(train, machine):
    """Both promise the same scores for a seed and a fixed thread count: their fits follow the
    thread count asked for, whatever the load."""
    space = {"factors": [4, 8], "learning_rate": [0.005, 0.01]}
    fixed = {"threads": 2, "epochs": 3}
    machine(1)
    quiet_tune = mfrec.tune(mfrec.BiasedMF, train, space, trials=3, fixed=fixed, seed=1).trials["score"].tolist()
    model = mfrec.BiasedMF(factors=6, epochs=3, threads=2, seed=1)
    quiet_cv = mfrec.cross_validate(model, train, folds=3)["folds"]["rmse"].tolist()
    machine(3)
    assert mfrec.tune(mfrec.BiasedMF, train, space, trials=3, fixed=fixed, seed=1).trials["score"].tolist() == quiet_tune
    assert mfrec.cross_validate(model, train, folds=3)["folds"]["rmse"].tolist() == quiet_cv


@pytest.mark.parametrize("value", ["yes", "00", "2"])
def test_a_bad_setting_is_refused_by_every_fit(train, monkeypatch, value):
    """Not only by the multi-thread SGD fits it steers (MFREC_THREADS=yes fails every model too)."""
    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", value)
    for model in (mfrec.BiasedMF(factors=2, epochs=1, threads=1), mfrec.ALS(factors=2, iterations=1),
                  mfrec.FunkMF(factors=2, epochs=1, batch_size=8)):
        with pytest.raises(ValueError, match="MFREC_DYNAMIC_THREADS must be 0"):
            model.fit(train)
