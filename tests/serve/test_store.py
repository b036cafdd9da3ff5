"""The ratings store, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading

import pytest

from mfrec.serve.store import SCHEMA_VERSION, SQLiteStore, StoreError, open_store


def test_put_get_overwrite_delete(store_url):
    with open_store(store_url) as st:
        assert st.user_ratings("u1") == {}
        st.put("u1", "10", 4.0)
        st.put("u1", "11", 2.5)
        st.put("u2", "10", 1.0)
        st.put("u1", "10", 5.0)  # the latest event wins
        assert st.user_ratings("u1") == {"10": 5.0, "11": 2.5}
        assert st.delete("u1", "11") is True
        assert st.delete("u1", "11") is False  # nothing current any more
        assert st.delete("u1", "99") is False
        assert st.user_ratings("u1") == {"10": 5.0}
        events = {e.item: e for e in st.user_events("u1")}
        assert events["11"].deleted and events["11"].rating is None
        assert "99" not in events  # a deletion of nothing is not written
        st.put("u1", "11", 3.0)  # re-rating after a deletion
        assert st.user_ratings("u1") == {"10": 5.0, "11": 3.0}
        cur = st.current().sort_values(["user", "item"]).reset_index(drop=True)
        assert cur[["user", "item"]].values.tolist() == [["u1", "10"], ["u1", "11"], ["u2", "10"]]
        assert cur["rating"].tolist() == [5.0, 3.0, 1.0]
        assert st.stats() == {"events": 6, "ratings": 3, "users": 2}
        assert st.has_user("u2") and not st.has_user("nobody")


def test_forced_deletion_masks_a_training_rating(store_url):
    with open_store(store_url) as st:
        assert st.delete("u1", "7", force=True) is False
        assert [(e.item, e.deleted) for e in st.user_events("u1")] == [("7", True)]
        assert st.deletions().values.tolist() == [["u1", "7"]]
        assert st.user_ratings("u1") == {}


def test_non_finite_rating_refused(store_url):
    with open_store(store_url) as st:
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match="finite"):
                st.put("u", "1", bad)
        assert st.stats()["events"] == 0


def test_schema_versioned_and_reopen_keeps_data(store_url):
    with open_store(store_url) as st:
        assert st.schema_version() == SCHEMA_VERSION
        st.put("a", "1", 3.0)
    with open_store(store_url) as st:  # reopening migrates nothing and keeps the data
        assert st.migrate() == SCHEMA_VERSION
        assert st.user_ratings("a") == {"1": 3.0}


def test_newer_schema_refused(store_url):
    with open_store(store_url) as st:
        with st._transaction(write=True) as cur:
            cur.execute(st._sql("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)"), (SCHEMA_VERSION + 1, 0.0))
    with pytest.raises(StoreError, match="newer"):
        open_store(store_url)


def test_concurrent_writers(store_url):
    """Threads writing at once lose nothing (per-thread connections / pool)."""
    with open_store(store_url) as st:
        def work(t: int) -> None:
            for k in range(25):
                st.put(f"user{t}", str(k), 1.0 + (k % 5))
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert st.stats() == {"events": 100, "ratings": 100, "users": 4}


def test_concurrent_writes_of_one_pair_return_times_in_the_order_kept(store_url, monkeypatch):
    """The time a put returned was read before the write lock: the write that won (the current
    rating) could carry an earlier time than one it replaced. A clock that steps back too."""
    import time as _time

    with open_store(store_url) as st:
        results: list[tuple[float, float]] = []
        guard = threading.Lock()

        def work(t: int) -> None:
            for k in range(15):
                value = float(1 + (t * 15 + k) % 5)
                when = st.put("u", "1", value)
                with guard:
                    results.append((when, value))
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        events = st.user_events("u")
        latest = max(results)
        assert len(results) == 60 and len({w for w, _ in results}) == 60  # every write its own time
        assert events[0].time == latest[0] and st.user_ratings("u") == {"1": latest[1]}
        back = latest[0] - 3600.0  # the clock steps an hour back: the pair's times still rise
        monkeypatch.setattr(_time, "time", lambda: back)
        assert st.put("u", "1", 2.0) > latest[0]
        assert st.delete("u", "1") is True and st.user_events("u")[0].time > latest[0]


def test_sqlite_is_wal_with_full_sync(tmp_path):
    st = SQLiteStore(tmp_path / "r.db")
    assert st.pragma("journal_mode") == "wal"
    assert st.pragma("synchronous") == 2  # FULL
    st.close()


def test_migration_from_version_1(tmp_path):
    """A store left at schema version 1 is upgraded (the current_ratings view is added)."""
    import sqlite3

    from mfrec.serve.store import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
    for stmt in MIGRATIONS[0][1]:
        conn.execute(stmt.replace("{ID}", SQLiteStore._id_type))
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.execute("INSERT INTO rating_events (user_id, item_id, rating, time, deleted) VALUES ('u', '1', 4, 0, 0)")
    conn.commit()
    conn.close()
    with open_store(f"sqlite:///{path}") as st:
        assert st.schema_version() == SCHEMA_VERSION
        assert st.current()["rating"].tolist() == [4.0]


def test_bad_urls(tmp_path):
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://x")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'missing' / 'r.db'}")
    with pytest.raises(StoreError, match="cannot connect|needs psycopg"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")


def test_put_many_is_all_or_nothing(store_url):
    with open_store(store_url) as st:
        assert st.put_many([("a", "1", 4.0), ("a", "2", 3), ("b", "1", 5.0)]) == 3
        with pytest.raises(ValueError, match="row 1"):
            st.put_many([("c", "1", 4.0), ("c", "2", float("nan"))])
        assert st.stats() == {"events": 3, "ratings": 3, "users": 2}
        assert st.user_ratings("a") == {"1": 4.0, "2": 3.0}


def test_sqlite_failures_are_store_errors_within_the_timeout(tmp_path):
    """A locked or read-only database is a StoreError (the service's 503) after the busy timeout,
    not a bare sqlite3 error after 30 s."""
    import sqlite3
    import time

    from mfrec.serve.store import SQLiteStore, StoreError

    path = tmp_path / "r.db"
    store = SQLiteStore(path, timeout=0.3)
    store.put("u", "1", 4.0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match="locked"):
        store.put("u", "2", 3.0)
    assert time.perf_counter() - t0 < 5
    other.execute("ROLLBACK")
    store.put("u", "2", 3.0)  # the store works again once the lock is gone
    assert store.user_ratings("u") == {"1": 4.0, "2": 3.0}
    other.close()
    store.close()


def test_damaged_sqlite_file_refused_at_open(tmp_path):
    from mfrec.serve.store import StoreError, open_store

    path = tmp_path / "r.db"
    with open_store(f"sqlite:///{path}") as st:
        st.put_many((f"u{k}", str(k % 50), 3.0) for k in range(3000))
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"r.db{suffix}").unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page:4 * page] = b"\xff" * (2 * page)  # overwrite two pages in the middle
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged|malformed|not a database"):
        open_store(f"sqlite:///{path}")


def test_distinct_items(store_url):
    with open_store(store_url) as st:
        st.put("a", "1", 4.0)
        st.put("b", "1", 3.0)
        st.put("b", "x", 3.0)
        st.delete("b", "x")
        assert sorted(st.items()) == ["1"]


def test_puts_refuse_bools_and_text_and_an_import_naming_a_pair_twice(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'r.db'}") as st:
        for bad in (True, "4"):
            with pytest.raises(ValueError, match="must be a"):
                st.put("u", "1", bad)
        with pytest.raises(ValueError, match="row 1: rating must be a finite number"):
            st.put_many([("u", "1", 4.0), ("u", "2", "5")])
        with pytest.raises(ValueError, match=r"row 2: the pair \(user 'u', item '1'\) is given twice"):
            st.put_many([("u", "1", 4.0), ("u", "2", 3.0), ("u", "1", 5.0)])
        assert st.stats()["events"] == 0
        first = st.put("u", "1", 2.0)
        assert st.put_many([("u", "1", 4.0)]) == 1 and st.user_events("u")[0].time > first
