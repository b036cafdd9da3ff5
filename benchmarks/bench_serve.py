"""Load test of the recommendation service on 127.0.0.1 (bounded in requests and time).

Starts ``mfrec serve`` as a separate process on a loopback port (ImplicitALS k=100 on
ml-latest-small by default, trained once and cached in ``--model``), then drives it with
``--clients`` concurrent keep-alive HTTP/1.1 connections from one asyncio process (a minimal
client on raw sockets, so the generator costs little of the shared CPU):

* ``guest``: ``POST /recommendations`` with ``--ratings`` random ratings of the 2000 most-rated
  films per request (n=10), nothing stored;
* ``put``: ``PUT /users/{id}/ratings/{item}`` with the store (each write committed, fsynced,
  before the response).

Each phase runs twice: closed loop (every client sends its next request when answered: the
throughput) and open loop at ``--rate`` requests/s (latency under a set load, counted from each
request's due time). Prints one JSON line per run: requests, errors, seconds, requests/s,
p50/p90/p99/max latency (ms). Example::

    MFREC_DATA_DIR=/work/shared/data python benchmarks/bench_serve.py --requests 20000 --clients 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KEY = "bench-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_model(path: Path, dataset: str, factors: int) -> Path:
    if path.exists():
        return path
    import mfrec

    ds = mfrec.load_dataset(dataset, progress=False)
    mfrec.ImplicitALS(factors=factors, seed=0).fit(ds.ratings).attach_items(ds.items).save(path)
    return path


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run_phase(port: int, bodies: list[bytes], clients: int, time_limit: float, rate: float | None = None) -> dict:
    """Closed loop (each client sends its next request when the last one is answered) or, with
    ``rate``, open loop: request i is due at ``i / rate`` s and its latency counts from then (so a
    slow server's queueing is measured, not hidden)."""
    latencies = np.zeros(len(bodies))
    statuses = np.zeros(len(bodies), dtype=np.int32)
    next_i = 0
    start = time.perf_counter()
    deadline = start + time_limit

    async def client() -> None:
        nonlocal next_i
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_i < len(bodies) and time.perf_counter() < deadline:
                i = next_i
                next_i += 1
                if rate:
                    due = start + i / rate
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    t0 = due
                else:
                    t0 = time.perf_counter()
                try:
                    statuses[i] = await _request(reader, writer, bodies[i])
                except (asyncio.IncompleteReadError, ConnectionError):
                    statuses[i] = -1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                latencies[i] = time.perf_counter() - t0
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - t0
    done = statuses != 0
    lat = latencies[done] * 1000
    return {"offered_rps": rate, "requests": int(done.sum()), "errors": int((statuses[done] != 200).sum()), "seconds": round(seconds, 3),
            "rps": round(done.sum() / seconds, 1), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p90_ms": round(float(np.percentile(lat, 90)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2)}


def http(method: str, path: str, body: dict | None = None, key: str | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    if key:
        head += f"X-API-Key: {key}\r\n"
    return head.encode() + b"\r\n" + data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path(tempfile.gettempdir()) / "mfrec-bench-ials-k100.mfrec")
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--factors", type=int, default=100)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--put-requests", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--ratings", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--db", default=None, help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--rate", type=float, default=500.0,
                    help="offered load (requests/s) of the latency runs; 0 skips them")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds per phase at most")
    ap.add_argument("--out", type=Path, default=None, help="append the JSON lines to this file")
    args = ap.parse_args()

    import mfrec

    model_path = ensure_model(args.model, args.dataset, args.factors)
    model = mfrec.load_model(model_path)
    seen = np.bincount(model.seen_.indices, minlength=len(model.item_map_))
    top = model.item_map_.ids[np.argsort(-seen)[:2000]]
    rng = np.random.default_rng(0)
    lo, hi = model.rating_scale_
    guest = [http("POST", "/recommendations", {"ratings": {str(i): float(rng.choice(np.arange(lo, hi + 0.5, 0.5)))
                                                          for i in rng.choice(top, args.ratings, replace=False)}, "n": 10})
             for _ in range(args.requests)]
    puts = [http("PUT", f"/users/bench{k % 500}/ratings/{top[rng.integers(len(top))]}", {"rating": float(hi)}, KEY)
            for k in range(args.put_requests)]
    tmp = Path(tempfile.mkdtemp(prefix="mfrec-bench-serve-"))
    db = args.db or f"sqlite:///{tmp / 'ratings.db'}"
    (tmp / "key").write_text(KEY)
    port = free_port()
    cmd = [sys.executable, "-m", "mfrec", "serve", str(model_path), "--host", "127.0.0.1", "--port", str(port),
           "--db", db, "--workers", str(args.workers), "--api-key-file", str(tmp / "key"), "--state-dir", str(tmp / "state")]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t0 = time.time()
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() - t0 > 120 or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
        asyncio.run(run_phase(port, guest[: min(500, len(guest))], args.clients, 60))  # warm-up
        meta = {"model": f"ImplicitALS k={model.factors_}", "dataset": args.dataset, "clients": args.clients,
                "workers": args.workers, "store": db.split(":", 1)[0], "cpu_count": os.cpu_count(),
                "python": platform.python_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        lines = []
        for name, bodies in (("guest", guest), ("put", puts)):
            for rate in ([None, args.rate] if args.rate else [None]):  # max throughput, then latency at a set load
                res = asyncio.run(run_phase(port, bodies, args.clients, args.time_limit, rate))
                lines.append(json.dumps({"phase": name, **meta, **res}))
                print(lines[-1], flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write("\n".join(lines) + "\n")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
