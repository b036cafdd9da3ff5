"""Fixtures for the service tests: a throwaway PostgreSQL cluster, store URLs for both backends,
and a small synthetic model (with titles, one of them containing markup) plus its training file."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest



def require(module: str, what: str):
    """Import ``module`` or skip (a failure under CI=true: CI installs the serve extra)."""
    try:
        return __import__(module)
    except ImportError:
        msg = f"{what} needs {module}: pip install -e '.[dev,serve]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg, allow_module_level=True)


def _must_have_everything() -> bool:
    return os.environ.get("MFREC_REQUIRE_DATA") == "1" or os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of its own on 127.0.0.1 (initdb into a temp folder, a free port,
    the unix socket in the temp folder), stopped at the end of the session. Skipped only when no
    PostgreSQL binaries exist (a failure under CI / MFREC_REQUIRE_DATA=1)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        msg = "PostgreSQL binaries (initdb, pg_ctl) not found; apt-get install postgresql"
        if _must_have_everything():
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        if _must_have_everything():
            pytest.fail("psycopg 3 is not installed: pip install 'mfrec[serve]'")
        pytest.skip("psycopg 3 is not installed: pip install 'mfrec[serve]'")
    root = Path(tempfile.mkdtemp(prefix="mfrec-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no 'postgres' system user to run initdb as")
        for p in (root, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(root, 0o755)
        runuser = shutil.which("runuser")
        prefix = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh", "-c"]
    user = "postgres" if prefix else (os.environ.get("USER") or "postgres")

    def run(cmd: list[str]) -> None:
        if prefix and prefix[0] == "su":
            cmd = prefix + [" ".join(cmd)]
        else:
            cmd = prefix + cmd
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    port = free_port()
    run([initdb, "-D", str(data), "-U", user, "-A", "trust", "--no-sync", "-E", "UTF8"])
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -F"
    run([pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log.txt"), "-w", "-t", "60", "start"])
    try:
        import psycopg

        base = f"postgresql://{user}@127.0.0.1:{port}"
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE mfrec_test")
        yield base + "/mfrec_test"
    finally:
        try:
            run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(root, ignore_errors=True)


_pg_counter = iter(range(10**6))


@contextmanager
def fresh_pg_database(base_url: str, prefix: str = "mfrec_t") -> Iterator[str]:
    """A new, empty database on the test cluster (its URL), dropped afterwards."""
    import psycopg

    name = f"{prefix}{next(_pg_counter)}_{os.getpid()}"
    admin = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty store URL of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ratings.db'}"
        return
    with fresh_pg_database(request.getfixturevalue("postgres_url")) as url:
        yield url


def start_server(model_path, db: str, log_path, *, key_file=None, extra: tuple = ()):
    """``python -m mfrec serve`` as a separate process on a free loopback port: (process, base URL)."""
    import sys

    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "mfrec", "serve", str(model_path), "--host", "127.0.0.1", "--port", str(port),
           "--db", db, *(["--api-key-file", str(key_file)] if key_file else []), *map(str, extra)]
    log = open(log_path, "a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    base = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < 180:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {open(log_path).read()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not come up in 180 s")


def stop_server(proc) -> None:
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


GENRES = ["Children", "Drama", "Comedy", "Action", "Horror", "Animation"]


def make_items(ids) -> pd.DataFrame:
    """Titles and genres for synthetic items; item 3's title contains markup."""
    ids = list(ids)
    titles = [f"Film {i} ({1950 + int(i) % 60})" for i in ids]
    titles[3] = '<script>alert("x")</script> Night (1999)'
    titles[0] = "Toy Story (1995)"
    titles[1] = "Toy Story 2 (1999)"
    genres = [[GENRES[int(i) % len(GENRES)], GENRES[(int(i) // 6) % len(GENRES)]] for i in ids]
    return pd.DataFrame({"title": titles, "genres": genres, "year": [1950 + int(i) % 60 for i in ids]},
                        index=pd.Index(ids, name="item"))


@pytest.fixture(scope="session")
def synth_files(tmp_path_factory):
    """(model path, training CSV path, Ratings): BiasedMF on synthetic data with int ids."""
    import mfrec

    root = tmp_path_factory.mktemp("serve-model")
    r = mfrec.synthetic(300, 120, 6000, factors=5, seed=1)
    df = r.to_dataframe()[["user", "item", "rating"]]
    train_csv = root / "train.csv"
    df.to_csv(train_csv, index=False)
    model = mfrec.BiasedMF(factors=8, epochs=15, seed=0, threads=1).fit(r)
    model.attach_items(make_items(np.sort(r.items)))
    path = root / "model.mfrec"
    model.save(path)
    return path, train_csv, r
