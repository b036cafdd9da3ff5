"""Durability: the server as a real process (`python -m mfrec serve`), killed with SIGKILL while
writing; after a restart every acknowledged rating is there and nothing half-written shows."""

from __future__ import annotations

from tests.serve.conftest import require

require("fastapi", "the service")
require("httpx", "the service tests")

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.serve.conftest import fresh_pg_database, start_server, stop_server

KEY = "durability-key-0123456789"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_ratings_survive_kill_9(synth_files, tmp_path, backend, request):
    model_path, _, _ = synth_files
    db = f"sqlite:///{tmp_path / 'ratings.db'}" if backend == "sqlite" else request.getfixturevalue("store_url_pg")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    log = tmp_path / "server.log"
    proc, base = start_server(model_path, db, log, key_file=key_file)
    acked: dict[tuple[str, int], float] = {}
    sent: dict[tuple[str, int], set[float]] = {}
    stop = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=10) as c:
            for k in range(2000):  # bounded; the kill comes much earlier
                if stop.is_set():
                    return
                user, item, rating = f"w{w}", k % 60, float(1 + (k % 9) / 2)
                sent.setdefault((user, item), set()).add(rating)
                try:
                    r = c.put(f"/users/{user}/ratings/{item}", json={"rating": rating})
                except httpx.HTTPError:
                    return  # the server is gone
                assert r.status_code == 200, r.text
                acked[(user, item)] = rating

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for th in threads:
        th.start()
    t0 = time.time()
    while len(acked) < 150 and time.time() - t0 < 60:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-write: requests are in flight
    proc.wait(timeout=30)
    stop.set()
    for th in threads:
        th.join(timeout=30)
    assert len(acked) >= 150

    proc2, base2 = start_server(model_path, db, log, key_file=key_file)
    try:
        with httpx.Client(base_url=base2, timeout=10) as c:
            for w in range(3):
                res = c.get(f"/users/w{w}/ratings")
                assert res.status_code == 200, res.text
                stored = {(f"w{w}", g["item"]): g["rating"] for g in res.json()["ratings"]}
                for pair, value in acked.items():
                    if pair[0] != f"w{w}":
                        continue
                    # acknowledged: present; its value is the acked one or a later write that was in flight
                    assert pair in stored, f"acknowledged rating {pair} lost"
                for pair, value in stored.items():
                    assert value in sent[pair], f"{pair} holds {value}, a value never sent"  # nothing torn
    finally:
        stop_server(proc2)


@pytest.fixture
def store_url_pg(postgres_url):
    with fresh_pg_database(postgres_url, "mfrec_dur_") as url:
        yield url


def test_serve_command_errors_are_one_line(tmp_path, synth_files):
    bad = tmp_path / "bad.mfrec"
    bad.write_bytes(b"not a zip")
    res = subprocess.run([sys.executable, "-m", "mfrec", "serve", str(bad), "--db", f"sqlite:///{tmp_path / 'r.db'}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "error:" in res.stderr and "Traceback" not in res.stderr
    short = tmp_path / "key"
    short.write_text("abc")
    res = subprocess.run([sys.executable, "-m", "mfrec", "serve", str(synth_files[0]), "--api-key-file", str(short),
                          "--db", f"sqlite:///{tmp_path / 'r.db'}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "shorter than 16" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r.db").exists()  # the key is checked before the store is created
    res = subprocess.run([sys.executable, "-m", "mfrec", "serve", str(synth_files[0]), "--db", "mysql://x"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "unsupported store URL" in res.stderr and "Traceback" not in res.stderr


def test_serve_refuses_a_short_env_key_a_taken_port_and_a_bad_host_before_announcing(tmp_path, synth_files):
    """A taken port printed "serving ..." and a throwaway key, then uvicorn's own error, exit 3;
    MFREC_API_KEY=x was accepted where a key file needs 16 characters."""
    import os
    import socket

    db = f"sqlite:///{tmp_path / 'r.db'}"

    def serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mfrec", "serve", str(synth_files[0]), "--db", db, *args],
                              capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})

    res = serve("--port", "1", env={"MFREC_API_KEY": "x"})
    assert res.returncode == 1 and "$MFREC_API_KEY is shorter than 16" in res.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = serve("--host", "127.0.0.1", "--port", str(port))
    assert res.returncode == 1 and f"--port {port}" in res.stderr and "in use" in res.stderr
    assert "serving" not in res.stdout + res.stderr and "Traceback" not in res.stderr
    res = serve("--host", "no-such-host.invalid", "--port", "8123")
    assert res.returncode == 1 and "--host 'no-such-host.invalid': cannot resolve" in res.stderr
    assert not (tmp_path / "r.db").exists()


def test_two_workers_share_the_store(synth_files, tmp_path):
    """`--workers 2`: a write acknowledged by one worker is read back by every worker."""
    model_path, _, _ = synth_files
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    proc, base = start_server(model_path, f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "server.log",
                              key_file=key_file, extra=("--workers", "2"))
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            for k in range(10):
                assert c.put(f"/users/zoe/ratings/{k}", json={"rating": 4.0}, headers={"X-API-Key": KEY}).status_code == 200
                for _ in range(4):  # new connections: spread over the workers
                    with httpx.Client(base_url=base, timeout=10) as fresh:
                        got = fresh.get("/users/zoe/ratings").json()["ratings"]
                    assert len(got) == k + 1
    finally:
        stop_server(proc)
