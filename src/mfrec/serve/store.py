"""The ratings store: an append-only log of rating events, SQLite or PostgreSQL behind one interface.

Schema (both backends, created and upgraded by the versioned migrations in ``MIGRATIONS``)::

    schema_version(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)
    rating_events(id       auto-increment primary key (the event order),
                  user_id  TEXT, item_id TEXT,     -- raw ids as text (the service canonicalizes them)
                  rating   DOUBLE PRECISION,       -- NULL for a deletion
                  time     DOUBLE PRECISION,       -- unix seconds
                  deleted  SMALLINT 0/1)
    current_ratings   -- view: the latest event per (user_id, item_id) that is not a deletion

Nothing is updated in place: a PUT appends a rating event and a DELETE a deletion event, so the
current rating of a pair is its latest event (largest ``id``). Every write is one transaction,
committed before the method returns, which is what lets the service acknowledge a write only
once it is durable:

* SQLite (stdlib ``sqlite3``): WAL journal with ``synchronous=FULL``: the WAL is fsynced at every
  commit, so an acknowledged rating survives a crash of the process *and* of the operating system
  or a power loss (``NORMAL`` would survive only a process crash). Several processes (uvicorn
  workers) may share the file; writers serialize on ``BEGIN IMMEDIATE``.
* PostgreSQL (``psycopg`` 3, a connection pool when ``psycopg_pool`` is installed, else one
  connection per thread): the server's default ``synchronous_commit=on`` gives the same guarantee.
"""

from __future__ import annotations

import math
import numbers
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd


class StoreError(RuntimeError):
    """The store cannot be opened, its schema is of an unknown (newer) version, or the database
    failed (locked past the timeout, read-only, damaged, connection lost): the service answers 503."""


#: (version, statements): applied in order inside one transaction each; ``{ID}`` is the
#: backend's auto-increment primary key. Never edit a released migration: add a new one.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        "CREATE TABLE rating_events (id {ID}, user_id TEXT NOT NULL, item_id TEXT NOT NULL, "
        "rating DOUBLE PRECISION, time DOUBLE PRECISION NOT NULL, deleted SMALLINT NOT NULL DEFAULT 0, "
        "CHECK ((deleted = 1 AND rating IS NULL) OR (deleted = 0 AND rating IS NOT NULL)))",
        "CREATE INDEX rating_events_pair ON rating_events (user_id, item_id, id)",
    ]),
    (2, [
        "CREATE VIEW current_ratings AS SELECT e.id, e.user_id, e.item_id, e.rating, e.time "
        "FROM rating_events e JOIN (SELECT user_id, item_id, MAX(id) AS last_id FROM rating_events "
        "GROUP BY user_id, item_id) l ON e.id = l.last_id WHERE e.deleted = 0",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

#: the latest event of each item of one user (deletions included: they mask training ratings)
_USER_EVENTS = ("SELECT e.item_id, e.rating, e.time, e.deleted FROM rating_events e JOIN "
                "(SELECT item_id, MAX(id) AS last_id FROM rating_events WHERE user_id = ? GROUP BY item_id) l "
                "ON e.id = l.last_id ORDER BY e.id")
_PAIR_LAST = "SELECT deleted FROM rating_events WHERE user_id = ? AND item_id = ? ORDER BY id DESC LIMIT 1"
_INSERT = "INSERT INTO rating_events (user_id, item_id, rating, time, deleted) VALUES (?, ?, ?, ?, ?)"
_PAIR_LAST_TIME = "SELECT time FROM rating_events WHERE user_id = ? AND item_id = ? ORDER BY id DESC LIMIT 1"


@dataclass(frozen=True)
class Event:
    """One stored event: the latest state of a (user, item) pair."""

    item: str
    rating: float | None
    time: float
    deleted: bool


class RatingStore(ABC):
    """One interface over both backends. Ids are text; ratings finite floats."""

    url: str
    _pholder = "?"
    _id_type = ""

    # ------------------------------------------------------------------ backend primitives
    @abstractmethod
    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        """A cursor inside one transaction, committed on exit (rolled back on an exception)."""

    @abstractmethod
    def _lock_migrations(self, cur: Any) -> None:
        """Serialize concurrent migrators (several workers starting at once)."""

    @abstractmethod
    def _lock_pair(self, cur: Any, user: str, item: str) -> None:
        """Serialize the writes of one (user, item) pair within the open write transaction."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection."""

    def _sql(self, sql: str) -> str:
        return sql if self._pholder == "?" else sql.replace("?", self._pholder)

    # ------------------------------------------------------------------ schema
    def migrate(self) -> int:
        """Create or upgrade the schema to ``SCHEMA_VERSION``; return the version found before."""
        with self._transaction(write=True) as cur:
            self._lock_migrations(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                        "applied_at DOUBLE PRECISION NOT NULL)")
            cur.execute("SELECT MAX(version) FROM schema_version")
            found = cur.fetchone()[0] or 0
            if found > SCHEMA_VERSION:
                raise StoreError(f"{self.url}: the ratings store has schema version {found}, newer than this "
                                 f"mfrec understands ({SCHEMA_VERSION}); upgrade mfrec")
            for version, statements in MIGRATIONS:
                if version > found:
                    for stmt in statements:
                        cur.execute(stmt.replace("{ID}", self._id_type))
                    cur.execute(self._sql("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)"),
                                (version, time.time()))
        return int(found)

    def schema_version(self) -> int:
        with self._transaction(write=False) as cur:
            cur.execute("SELECT MAX(version) FROM schema_version")
            return int(cur.fetchone()[0] or 0)

    # ------------------------------------------------------------------ writes
    def put(self, user: str, item: str, rating: float, when: float | None = None) -> float:
        """Store ``rating`` as the current rating of (user, item); durable when it returns.
        Returns the event time."""
        if isinstance(rating, (bool, np.bool_)) or not isinstance(rating, (numbers.Real, np.number)):
            raise ValueError(f"rating must be a number, got {rating!r}")
        rating = float(rating)
        if not math.isfinite(rating):
            raise ValueError(f"rating must be a finite number, got {rating!r}")
        with self._transaction(write=True) as cur:
            when = self._event_time(cur, str(user), str(item)) if when is None else float(when)
            cur.execute(self._sql(_INSERT), (str(user), str(item), rating, when, 0))
        return when

    def _event_time(self, cur: Any, user: str, item: str) -> float:
        """The time of a new event of (user, item), read under the write lock: later writes of a
        pair get later times, in the order the store keeps them (the current rating is the
        latest), also when the clock steps back. Read before the lock, two concurrent writes
        could return times that disagree with which one won."""
        self._lock_pair(cur, user, item)
        cur.execute(self._sql(_PAIR_LAST_TIME), (user, item))
        row = cur.fetchone()
        now = time.time()
        return now if row is None or now > float(row[0]) else math.nextafter(float(row[0]), math.inf)

    def put_many(self, rows: Any) -> int:
        """Store many ``(user, item, rating)`` rows in one transaction (all or nothing); returns
        how many. For imports; the service writes one rating per request with :meth:`put`."""
        df = pd.DataFrame(list(rows), columns=["user", "item", "rating"])
        numeric = [isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_))
                   for v in df["rating"]]
        values = np.array([float(v) if ok else np.nan for v, ok in zip(df["rating"], numeric)], dtype=float)
        if not np.isfinite(values).all():
            k = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"row {k}: rating must be a finite number, got {df['rating'].iloc[k]!r}")
        users, items = df["user"].astype(str), df["item"].astype(str)
        twice = pd.DataFrame({"u": users, "i": items}).duplicated()
        if twice.any():  # one would win silently
            k = int(np.flatnonzero(twice.to_numpy())[0])
            raise ValueError(f"row {k}: the pair (user {users.iloc[k]!r}, item {items.iloc[k]!r}) is given twice")
        with self._transaction(write=True) as cur:
            cur.execute("SELECT MAX(time) FROM rating_events")  # later than every stored event, as put's
            last = cur.fetchone()[0]
            now = time.time()
            when = now if last is None or now > float(last) else math.nextafter(float(last), math.inf)
            params = list(zip(users, items, values.tolist(), [when] * len(df), [0] * len(df)))
            cur.executemany(self._sql(_INSERT), params)
        return len(params)

    def delete(self, user: str, item: str, *, force: bool = False) -> bool:
        """Record a deletion of (user, item). Returns whether the pair had a current stored rating;
        without one nothing is written unless ``force`` (a deletion that masks a training rating)."""
        with self._transaction(write=True) as cur:
            cur.execute(self._sql(_PAIR_LAST), (str(user), str(item)))
            row = cur.fetchone()
            existed = row is not None and not row[0]
            if existed or (force and row is None):
                when = self._event_time(cur, str(user), str(item))
                cur.execute(self._sql(_INSERT), (str(user), str(item), None, when, 1))
        return existed

    # ------------------------------------------------------------------ reads
    def user_events(self, user: str) -> list[Event]:
        """The latest event of every item the user has one for (deletions included), oldest first."""
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(_USER_EVENTS), (str(user),))
            rows = cur.fetchall()
        return [Event(str(i), None if d else float(r), float(t), bool(d)) for i, r, t, d in rows]

    def user_ratings(self, user: str) -> dict[str, float]:
        """The user's current stored ratings ``{item: rating}``."""
        return {e.item: e.rating for e in self.user_events(user) if not e.deleted}

    def has_user(self, user: str) -> bool:
        with self._transaction(write=False) as cur:
            cur.execute(self._sql("SELECT 1 FROM rating_events WHERE user_id = ? LIMIT 1"), (str(user),))
            return cur.fetchone() is not None

    def current(self) -> pd.DataFrame:
        """Every current rating: columns ``user``, ``item`` (text), ``rating``, ``time``."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT user_id, item_id, rating, time FROM current_ratings ORDER BY id")
            rows = cur.fetchall()
        return pd.DataFrame(rows, columns=["user", "item", "rating", "time"]).astype(
            {"user": object, "item": object, "rating": "float64", "time": "float64"})

    def deletions(self) -> pd.DataFrame:
        """Pairs whose latest event is a deletion (they mask training ratings): ``user``, ``item``."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT e.user_id, e.item_id FROM rating_events e JOIN (SELECT user_id, item_id, "
                        "MAX(id) AS last_id FROM rating_events GROUP BY user_id, item_id) l "
                        "ON e.id = l.last_id WHERE e.deleted = 1")
            rows = cur.fetchall()
        return pd.DataFrame(rows, columns=["user", "item"], dtype=object)

    def items(self) -> list[str]:
        """The distinct items of the current stored ratings (text)."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT DISTINCT item_id FROM current_ratings")
            return [str(r[0]) for r in cur.fetchall()]

    def stats(self) -> dict[str, int]:
        """Store size: ``events``, ``ratings`` (current pairs), ``users`` (with a current rating)."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT COUNT(*) FROM rating_events")
            events = cur.fetchone()[0]
            cur.execute("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM current_ratings")
            ratings, users = cur.fetchone()
        return {"events": int(events), "ratings": int(ratings), "users": int(users)}

    def __enter__(self) -> "RatingStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SQLiteStore(RatingStore):
    """SQLite file in WAL mode, ``synchronous=FULL``; one connection per thread."""

    _id_type = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: str | Path, url: str | None = None, timeout: float = 5.0) -> None:
        self.path = str(path)
        self.url = url or f"sqlite:///{path}"
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path == ":memory:":
            raise StoreError("an in-memory SQLite store is not shared between threads; give a file")
        else:
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise StoreError(f"{self.url}: folder {parent} does not exist")
        self.migrate()
        self._check_integrity()

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check`` at open: a damaged file is refused at start-up, not found by the
        first request that reads the damaged page (O(size of the file), ~1 s per 100 MB)."""
        with self._transaction(write=False) as cur:
            cur.execute("PRAGMA quick_check")
            problems = [str(r[0]) for r in cur.fetchmany(5)]
        if problems != ["ok"]:
            raise StoreError(f"{self.url}: the ratings store is damaged ({'; '.join(problems)}); restore it "
                             "from a backup (sqlite3 FILE '.recover' can salvage rows)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.url}: cannot open the ratings store ({exc})") from None
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.url}: could not switch to WAL journal mode (got {mode})")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Cursor]:
        conn = self._conn()
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                if conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
        except sqlite3.Error as exc:  # locked past the timeout, read-only, damaged, disk full
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise StoreError(f"{self.url}: {exc}") from exc
        finally:
            cur.close()

    def _lock_migrations(self, cur: Any) -> None:
        pass  # BEGIN IMMEDIATE already holds the write lock

    def _lock_pair(self, cur: Any, user: str, item: str) -> None:
        pass  # BEGIN IMMEDIATE already holds the write lock

    def pragma(self, name: str) -> Any:
        return self._conn().execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()


class PostgresStore(RatingStore):
    """PostgreSQL through psycopg 3: a connection pool (``psycopg_pool``) or one connection per thread."""

    _pholder = "%s"
    _id_type = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"

    def __init__(self, url: str, pool_size: int = 8) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError("a postgresql:// store needs psycopg 3: pip install 'mfrec[serve]'") from None
        self._psycopg = psycopg
        self.url = _redact(url)
        self._dsn = url
        self._pool = None
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        try:
            from psycopg_pool import ConnectionPool
        except ImportError:
            ConnectionPool = None
        try:
            psycopg.connect(url, connect_timeout=10).close()  # fail fast with the server's own message
            if ConnectionPool is not None:
                self._pool = ConnectionPool(url, min_size=1, max_size=max(1, pool_size), open=True, timeout=5)
                self._pool.wait(timeout=30)
            else:
                self._conn()
        except Exception as exc:  # psycopg.OperationalError, PoolTimeout
            raise StoreError(f"{self.url}: cannot connect to PostgreSQL ({exc})") from None
        self.migrate()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._psycopg.connect(self._dsn)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        try:
            if self._pool is not None:
                with self._pool.connection() as conn:  # commits on success, rolls back on error
                    with conn.cursor() as cur:
                        yield cur
                return
            conn = self._conn()
            try:
                with conn.transaction():
                    with conn.cursor() as cur:
                        yield cur
            finally:
                if conn.closed:
                    self._local.conn = None
        except self._psycopg.Error as exc:  # server gone, connection lost, read-only, ...
            raise StoreError(f"{self.url}: {str(exc).strip()}") from exc
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":  # psycopg_pool: no connection in time
                raise StoreError(f"{self.url}: no database connection available ({exc})") from exc
            raise

    def _lock_migrations(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(727274001)")

    def _lock_pair(self, cur: Any, user: str, item: str) -> None:
        # writers of other pairs go on; two of one pair take turns until commit
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{len(user)}:{user}{item}",))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def _redact(url: str) -> str:
    """The URL without its password (for messages)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_store(url: str, **kwargs: Any) -> RatingStore:
    """Open (creating or migrating) the store at ``sqlite:///path`` or
    ``postgresql://user@host:port/db``."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else ""
        if not path:
            raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
        return SQLiteStore(path, url=url, **kwargs)
    if parsed.scheme in ("postgresql", "postgres"):
        return PostgresStore(url, **kwargs)
    raise StoreError(f"unsupported store URL {_redact(url)!r}: use sqlite:///FILE or postgresql://...")
