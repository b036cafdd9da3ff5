"""The HTTP service: a FastAPI app around a model file and a ratings store.

``create_app(model_path, db_url, api_key, ...)`` builds the app; ``mfrec serve`` runs it with
uvicorn. Reads are open; writes (``PUT``/``DELETE`` ratings, ``POST /admin/retrain``) need the
API key in ``X-API-Key`` (or ``Authorization: Bearer``), compared in constant time. Every error
is a JSON body ``{"error": ..., "status": ...}`` with a 4xx status for bad input.

Model swaps are atomic: a request reads ``service.state`` (the model and everything derived from
it) once, and a new model is loaded and warmed up in a background thread before the reference is
replaced, so no request fails or waits during a swap. Every worker process watches the pointer
file ``<state-dir>/current.json`` written by the retrain process and swaps on its own.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Header, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mfrec._jsonutil import DuplicateKeyError, loads_unique
from mfrec.data.idmap import int_text, plain
from mfrec.errors import DataError, ModelFileError
from mfrec.serve.retrain import PointerError, check_training, load_training, read_pointer
from mfrec.serve.store import RatingStore, StoreError, open_store

log = logging.getLogger("mfrec.serve")
STATIC = Path(__file__).parent / "static"

#: request limits
MAX_BODY_BYTES = 64 * 1024
MAX_RATINGS = 500
MAX_N = 100
#: guest requests up to this size are answered on the event loop (about 1 ms); larger ones, and
#: any with explanations, in the thread pool (RESULTS.md section 9: the hop cost a third of the
#: throughput of small requests)
INLINE_RATINGS = 50
INLINE_N = 20
USER_ID = r"^[A-Za-z0-9_.@:-]{1,64}$"
ITEM_ID = r"^[^\x00-\x1f/]{1,128}$"

Rating = Annotated[float, Field(strict=True, allow_inf_nan=False)]
UserId = Annotated[str, PathParam(pattern=USER_ID, description="user id (letters, digits, _.@:-)")]
ItemId = Annotated[str, PathParam(pattern=ITEM_ID, description="item id")]
N = Annotated[int, Query(ge=1, le=MAX_N)]
Explain = Annotated[int, Query(ge=0, le=10)]
SearchText = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=MAX_N)]
ApiKeyHeader = Annotated[str | None, Header()]


class ApiError(Exception):
    """An error with an HTTP status and a message (rendered as JSON)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def _strict_query(request: Request) -> None:
    """Query strings are checked as strictly as bodies: a parameter the endpoint does not take is
    422 (``?limit=5`` where it takes ``n`` was ignored, silently), one given twice 400 (the last
    value won, silently). An app-wide dependency: it reads the route's declared parameters."""
    if not request.query_params:
        return

    def names(dependant: Any) -> set[str]:  # the route's query parameters and its dependencies'
        own = {field.alias for field in getattr(dependant, "query_params", ())}
        return own.union(*(names(d) for d in getattr(dependant, "dependencies", ())))

    taken = sorted(names(getattr(request.scope.get("route"), "dependant", None)))
    if not taken:  # the page, /health, /metrics: a link's ?fbclid= or a cache-buster ?_= changes nothing
        return
    for name in request.query_params:
        if name not in taken and name != "_":  # "_": the cache-buster clients add (jQuery's cache: false)
            raise ApiError(422, f"unknown query parameter {name!r}; this endpoint takes {', '.join(taken)}")
        if len(request.query_params.getlist(name)) > 1:
            raise ApiError(400, f"query parameter {name!r} given twice; give it once")


# ----------------------------------------------------------------------------- request bodies
class GuestRequest(BaseModel):
    """A guest's ratings, folded in for this request only (nothing is stored)."""

    model_config = ConfigDict(extra="forbid")
    ratings: dict[Annotated[str, Field(max_length=128)], Rating] = Field(
        default_factory=dict, max_length=MAX_RATINGS, description=f"{{item id: rating}}, at most {MAX_RATINGS}")
    n: int = Field(10, ge=1, le=MAX_N, strict=True)
    explain: int = Field(0, ge=0, le=10, strict=True, description="rated items named behind each recommendation")


class RatingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: Rating


# ----------------------------------------------------------------------------- model state
@dataclass
class ModelState:
    """One loaded model and what the endpoints derive from it (replaced as a whole on a swap)."""

    model: Any
    version: int
    path: str
    counts: np.ndarray  # training ratings per item (from seen_)
    user_int: bool
    popular: list[int] = field(default_factory=list)  # item indices for onboarding
    loaded_at: float = field(default_factory=time.time)
    meta: tuple[list, list, list] | None = None  # titles, genres, years per item
    info: pd.DataFrame | None = None  # the model's item table (detached from the model, see load)

    @classmethod
    def load(cls, path: str | Path, version: int, user_int: bool | None = None) -> "ModelState":
        """Load a model file; ``user_int``: whether the service's user ids are integers (the base
        model's or training data's rule, kept across versions; default: this model's id type)."""
        from mfrec.persist import load_model

        model = load_model(path)
        counts = np.bincount(model.seen_.indices, minlength=len(model.item_map_)).astype(np.int64)
        if user_int is None:
            user_int = model.user_map_.ids.dtype.kind in "iu"
        state = cls(model, int(version), str(path), counts, bool(user_int))
        state.meta = _item_meta(model)
        state.popular = varied_popular(model, counts, MAX_N)
        # The service adds titles and genres itself from `meta`; with the table attached the
        # library would join it into every result (a column conversion per call, ~1 ms).
        state.info, model.item_info_ = model.item_info_, None
        state.warm_up()
        return state

    def warm_up(self) -> None:
        """One fold-in and one similar-items call, so a swapped-in model serves at full speed."""
        top = self.popular[:3]
        if top:
            ids = self.model.item_map_.to_raw(np.asarray(top))
            hi = float(self.model.rating_scale_[1])
            self.model.recommend_new({plain(i): hi for i in ids}, n=5, explain=1)

    # ids: text in URLs and in the store, the model's own type inside
    def item_index(self, raw: str) -> int:
        k = int(self.model.item_map_.lookup([raw])[0])
        if k < 0:
            raise ApiError(404, f"unknown item {raw!r}", item=raw)
        return k

    def item_text(self, k: int) -> str:
        return str(plain(self.model.item_map_.ids[k]))

    def user_text(self, raw: str) -> str:
        """Canonical text of a user id: ``"007"`` is user 7 when the service's user ids are ints
        (by `mfrec.data.idmap.int_text`, the rule of every id lookup; the same in every model
        version, retrained ones included, whose user ids may have become text)."""
        if self.user_int:
            value = int_text(raw)
            if value is not None:
                return str(value)
        return raw

    def user_known(self, user: str) -> bool:
        return int(self.model.user_map_.lookup([user])[0]) >= 0

    def describe(self, k: int) -> dict[str, Any]:
        """An item as JSON: id, title, genres, year, number of training ratings."""
        if self.meta is None:
            self.meta = _item_meta(self.model)
        titles, genres, years = self.meta
        return {"id": plain(self.model.item_map_.ids[k]), "title": titles[k], "genres": genres[k], "year": years[k],
                "ratings": int(self.counts[k])}


def _item_meta(model: Any) -> tuple[list, list, list]:
    """Per-item title (str or None), genres (list of str) and year (int or None), as plain lists
    (built once per model: a pandas row lookup per item and request would cost ~50 us each)."""
    n = len(model.item_map_)
    info = model.item_info_
    titles: list = [None] * n
    genres: list = [[] for _ in range(n)]
    years: list = [None] * n
    if info is not None:
        if "title" in info.columns:
            titles = [t if isinstance(t, str) else None for t in info["title"].to_numpy(dtype=object)]
        if "genres" in info.columns:
            genres = [[str(x) for x in g] if isinstance(g, (list, tuple, np.ndarray)) else [] for g in info["genres"].to_numpy(dtype=object)]
        if "year" in info.columns:
            y = pd.to_numeric(info["year"], errors="coerce").to_numpy(dtype=np.float64)
            years = [None if np.isnan(v) else int(v) for v in y]
    return titles, genres, years


def varied_popular(model: Any, counts: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` well-known items with varied genres, for onboarding: greedily the most-rated item
    whose genres are least used so far (score = log count minus a penalty per already-picked item
    of the same genre), among the ``20 n`` most rated."""
    pool = np.argsort(-counts, kind="stable")[: 20 * n]
    pool = pool[counts[pool] > 0]
    info = model.item_info_
    if info is None or "genres" not in info.columns or len(pool) == 0:
        return pool[:n].tolist()
    genres = [list(g) if isinstance(g, (list, tuple, np.ndarray)) else [] for g in info["genres"].to_numpy()[pool]]
    names = sorted({g for gs in genres for g in gs})
    col = {g: j for j, g in enumerate(names)}
    member = np.zeros((len(pool), max(len(names), 1)))
    for r, gs in enumerate(genres):  # at most 20 n rows
        for g in gs:
            member[r, col[g]] = 1.0 / len(gs)
    base = np.log1p(counts[pool].astype(np.float64))
    used = np.zeros(member.shape[1])
    free = np.ones(len(pool), dtype=bool)
    picked: list[int] = []
    for _ in range(min(n, len(pool))):
        score = np.where(free, base - 0.7 * (member @ used), -np.inf)
        r = int(np.argmax(score))
        picked.append(int(pool[r]))
        free[r] = False
        used += member[r] * len(genres[r] or [1])
    return picked


# ----------------------------------------------------------------------------- metrics
class Metrics:
    """Request counts by route and status, a latency histogram per route, and recent-latency
    percentiles; rendered in the Prometheus text format (per worker process)."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(self.BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)
        self.recent: deque[float] = deque(maxlen=10000)
        self.lock = threading.Lock()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.counts[(method, route, status)] += 1
            h = self.hist[route]
            h[int(np.searchsorted(self.BUCKETS, seconds))] += 1
            self.sums[route] += seconds
            self.recent.append(seconds)

    def render(self, extra: list[str]) -> str:
        with self.lock:
            counts, hist, sums = dict(self.counts), {k: list(v) for k, v in self.hist.items()}, dict(self.sums)
            recent = np.fromiter(self.recent, dtype=np.float64)
        lines = ["# HELP mfrec_requests_total HTTP requests by method, route and status.",
                 "# TYPE mfrec_requests_total counter"]
        for (method, route, status), c in sorted(counts.items()):
            lines.append(f'mfrec_requests_total{{method="{method}",route="{route}",status="{status}"}} {c}')
        lines += ["# HELP mfrec_request_duration_seconds Request latency by route.",
                  "# TYPE mfrec_request_duration_seconds histogram"]
        for route, h in sorted(hist.items()):
            cum = np.cumsum(h)
            for b, c in zip(self.BUCKETS, cum[:-1]):
                lines.append(f'mfrec_request_duration_seconds_bucket{{route="{route}",le="{b}"}} {c}')
            lines.append(f'mfrec_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {cum[-1]}')
            lines.append(f'mfrec_request_duration_seconds_sum{{route="{route}"}} {sums[route]:.6f}')
            lines.append(f'mfrec_request_duration_seconds_count{{route="{route}"}} {cum[-1]}')
        lines += ["# HELP mfrec_request_latency_seconds Latency percentiles over the last 10000 requests.",
                  "# TYPE mfrec_request_latency_seconds summary"]
        for q in (0.5, 0.9, 0.99):
            v = float(np.quantile(recent, q)) if len(recent) else float("nan")
            lines.append(f'mfrec_request_latency_seconds{{quantile="{q}"}} {v:.6f}')
        lines.append(f"mfrec_request_latency_seconds_count {len(recent)}")
        return "\n".join(lines + extra) + "\n"


# ----------------------------------------------------------------------------- ASGI middleware
class LimitsAndMetrics:
    """Pure ASGI middleware: refuses bodies over ``max_body`` (Content-Length first, then by
    counting the streamed bytes: a request body is read in full, at most ``max_body`` bytes,
    before the app sees it), records every request in ``metrics``, adds security headers."""

    def __init__(self, app: Any, metrics: Metrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status_box = [500]

        async def send_wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if scope["path"] == "/" or scope["path"].startswith("/static/"):
                    headers.append((b"content-security-policy",
                                    b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"))
                message = dict(message, headers=headers)
            await send(message)

        try:
            if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
                length = dict(scope.get("headers", [])).get(b"content-length")
                too_big = False
                if length is not None:
                    try:
                        too_big = int(length) > self.max_body
                    except ValueError:
                        await _send_json(send_wrapped, 400, "bad Content-Length header")
                        return
                body = b""
                if not too_big:
                    more = True
                    while more:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            return
                        body += message.get("body", b"")
                        more = message.get("more_body", False)
                        if len(body) > self.max_body:
                            too_big = True
                            break
                if too_big:
                    await _send_json(send_wrapped, 413, f"request body too large (limit {self.max_body} bytes)")
                    return
                problem = _body_problem(body, dict(scope.get("headers", [])).get(b"content-type"))
                if problem is not None:
                    await _send_json(send_wrapped, *problem)
                    return
                sent = False

                async def replay() -> dict:
                    nonlocal sent
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, send_wrapped)
            else:
                await self.app(scope, receive, send_wrapped)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status_box[0], time.perf_counter() - t0)


def _body_problem(body: bytes, content_type: bytes | None) -> tuple[int, str] | None:
    """(status, message) for a body the endpoints' parser would take wrong or explain badly, else
    None: a body that is not sent as JSON (415; it was told "Input should be a valid
    dictionary"), a key repeated in one object (400: parsers keep the last value silently), and
    the reasons FastAPI's parser gives only as "There was an error parsing the body" (not UTF-8,
    nested too deeply, a number of thousands of digits). Plain syntax errors are left to the
    endpoint's parser, which names the position."""
    if not body:
        return None
    kind = (content_type or b"").split(b";")[0].strip().lower()
    if kind != b"application/json" and not kind.endswith(b"+json"):
        shown = kind.decode("latin-1") or "none"
        return 415, f"send the body as JSON with Content-Type: application/json (got {shown})"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return 400, f"malformed JSON: the body is not UTF-8 (byte {exc.start})"
    try:
        loads_unique(text)
    except DuplicateKeyError as exc:
        return 400, f"malformed JSON: the key {exc.key!r} appears twice in one object"
    except RecursionError:
        return 400, "malformed JSON: nested too deeply"
    except json.JSONDecodeError:
        return None
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        return 400, f"malformed JSON: {exc}"
    return None


async def _send_json(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------- the service
class Service:
    """Model state, store, training history, API key and the retrain job of one worker."""

    def __init__(self, model_path: str | Path, db_url: str, api_key: str | None, train_data: str | None = None,
                 state_dir: str | Path | None = None, watch_interval: float = 1.0,
                 retrain_holdout: float = 0.1, retrain_tolerance: float = 0.01,
                 train_read: dict[str, Any] | None = None) -> None:
        self.model_path = Path(model_path)
        self.db_url = db_url
        self.api_key = api_key or None
        self.train_spec = train_data
        self.train_read = {k: v for k, v in (train_read or {}).items() if v is not None}
        self.state_dir = Path(state_dir) if state_dir else self.model_path.with_name(self.model_path.name + ".serve")
        self.watch_interval = watch_interval
        self.retrain_holdout, self.retrain_tolerance = retrain_holdout, retrain_tolerance
        self.metrics = Metrics()
        self.swaps = 0
        self._bad_version: int | None = None
        self.retrains: dict[str, int] = defaultdict(int)
        self.history = TrainingHistory(load_training(train_data, self.train_read)) if train_data else None
        # the user-id rule of every version: the training data's (retrained models may have text ids)
        self.user_int = None if self.history is None else self.history.user_map.ids.dtype.kind in "iu"
        try:
            pointer = read_pointer(self.state_dir)
        except PointerError as exc:  # like a damaged model file: say so, serve the base model
            log.error("%s; serving %s", exc, self.model_path)
            pointer = None
        self.state = None
        if pointer:  # the newest retrained model, unless its file is gone or damaged
            try:
                self.state = ModelState.load(pointer["path"], pointer["version"], self.user_int)
            except (ModelFileError, OSError, KeyError, ValueError) as exc:
                log.error("cannot load the retrained model %s (%s); serving %s", pointer.get("path"), exc, self.model_path)
        if self.state is None:
            self.state = ModelState.load(self.model_path, 0, self.user_int)
        if self.history is not None:  # the training data must be the base model's own
            from mfrec.persist import load_model

            base = self.state.model if self.state.version == 0 else load_model(self.model_path)
            check_training(base, self.history.ratings, repr(str(train_data)))
        self.store: RatingStore = open_store(db_url)
        self._warn_unknown_stored_items()
        self._stats_cache: tuple[float, dict] = (0.0, {})
        self._job_lock = threading.Lock()
        self.job: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> None:
        if self.watch_interval and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="mfrec-model-watcher", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
        proc = (self.job or {}).get("proc")
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self.store.close()

    def _warn_unknown_stored_items(self) -> None:
        """Log stored ratings of items the model does not have (a store kept for another catalogue:
        the users' responses list them as ``unknown_items``, retrains leave them out)."""
        items = self.store.items()
        unknown = [i for i, k in zip(items, self.state.model.item_map_.lookup(items)) if k < 0] if items else []
        if unknown:
            log.warning("the ratings store %s has ratings of %d item(s) this model does not have (e.g. %s): "
                        "they are not used", self.store.url, len(unknown), ", ".join(map(repr, unknown[:3])))

    def _watch(self) -> None:
        last = None
        while not self._stop.wait(self.watch_interval):
            try:
                self.reload_if_newer()
                last = None
            except Exception as exc:  # a bad pointer or file must not kill the watcher; the old model stays
                message = f"{type(exc).__name__}: {exc}"
                if message != last:  # once per distinct failure, not every interval
                    expected = isinstance(exc, (PointerError, ModelFileError, OSError))
                    log.error("model reload failed, serving version %d: %s", self.state.version, message,
                              exc_info=None if expected else exc)
                    last = message

    def reload_if_newer(self) -> bool:
        """Swap in the model the pointer names when it is newer than the current one."""
        pointer = read_pointer(self.state_dir)
        if not pointer or int(pointer["version"]) <= self.state.version or pointer["version"] == self._bad_version:
            return False
        try:
            new = ModelState.load(pointer["path"], pointer["version"], self.user_int)  # load + warm up, off the request path
        except Exception:
            self._bad_version = pointer["version"]  # do not retry a broken file every interval
            raise
        if new.version > self.state.version:
            self.state = new  # one reference assignment: requests see the old or the new, never a mix
            self.swaps += 1
            log.info("swapped in model version %d (%s)", new.version, new.path)
        return True

    # -- security
    def require_key(self, x_api_key: str | None, authorization: str | None) -> None:
        if self.api_key is None:
            raise ApiError(403, "writes are disabled: the service was started without an API key")
        given = x_api_key.strip() if x_api_key and x_api_key.strip() else None  # an empty header is none
        if given is None and authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not given:
            raise ApiError(401, "this endpoint needs the API key (header X-API-Key)")
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.api_key.encode("utf-8")):
            raise ApiError(403, "wrong API key")

    # -- store size (cached: COUNT(*) on every scrape would be wasteful on a big store)
    def store_stats(self) -> dict[str, int]:
        now = time.monotonic()
        if now - self._stats_cache[0] > 5.0:
            self._stats_cache = (now, self.store.stats())
        return self._stats_cache[1]

    # -- users
    def user_ratings(self, state: ModelState, user: str) -> tuple[dict[Any, float], dict[Any, str], bool, list[str]]:
        """A user's whole history for fold-in: training ratings overlaid by stored events (a stored
        rating replaces the training one, a stored deletion removes it). Returns ({model item id:
        rating}, {model item id: source}, whether the user has stored events, the stored items
        the model does not have)."""
        events = self.store.user_events(user)
        ratings: dict[Any, float] = {}
        source: dict[Any, str] = {}
        unknown: list[str] = []
        for raw, value in self._training_ratings(state, user):
            ratings[raw], source[raw] = value, "training"
        if events:
            items = [e.item for e in events]
            idx = state.model.item_map_.lookup(items)
            for e, k in zip(events, idx):  # one per stored (user, item) pair
                if k < 0:  # an item the current model does not have (a store of another catalogue)
                    if not e.deleted:
                        unknown.append(e.item)
                    continue
                raw = plain(state.model.item_map_.ids[k])
                if e.deleted:
                    ratings.pop(raw, None)
                    source.pop(raw, None)
                else:
                    ratings[raw], source[raw] = float(e.rating), "stored"
        return ratings, source, bool(events), unknown

    def _training_ratings(self, state: ModelState, user: str) -> list[tuple[Any, float]]:
        """The user's training ratings: from the training data when the service has it, else the
        model's own predictions for the items the user rated in training (the model file keeps
        which items, not the values; ranking models use the top of the scale)."""
        if self.history is not None:
            items, values = self.history.of(user)
            return list(zip(items.tolist(), values.tolist()))
        k = int(state.model.user_map_.lookup([user])[0])
        if k < 0:
            return []
        seen = state.model.seen_
        cols = seen.indices[seen.indptr[k]:seen.indptr[k + 1]]
        raw = state.model.item_map_.to_raw(cols)
        if state.model.kind == "rating":
            values = state.model.predict(np.full(len(cols), state.model.user_map_.ids[k]), raw)
        else:
            values = np.full(len(cols), float(state.model.rating_scale_[1]))
        return list(zip([plain(x) for x in raw], [float(v) for v in values]))

    # -- retraining
    def start_retrain(self) -> dict[str, Any]:
        if not self.train_spec:
            raise ApiError(409, "retraining needs the training data: start the service with --train-data")
        with self._job_lock:
            if self.job and self.job["status"] == "running":
                raise ApiError(409, "a retrain is already running", job=self.public_job())
            self.state_dir.mkdir(parents=True, exist_ok=True)
            job_id = f"{int(time.time())}-{secrets.token_hex(4)}"
            status = self.state_dir / f"retrain-{job_id}.json"
            cmd = [sys.executable, "-m", "mfrec.serve.retrain", "--model", str(self.model_path),
                   "--train-data", str(self.train_spec), "--db", self.db_url, "--state-dir", str(self.state_dir),
                   "--status", str(status), "--holdout", str(self.retrain_holdout),
                   "--tolerance", str(self.retrain_tolerance), "--train-read", json.dumps(self.train_read)]
            logf = open(self.state_dir / f"retrain-{job_id}.log", "w")
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            logf.close()
            self.job = {"id": job_id, "status": "running", "started": time.time(), "proc": proc,
                        "status_file": str(status)}
            threading.Thread(target=self._wait_job, args=(self.job,), daemon=True, name="mfrec-retrain").start()
            return self.public_job()

    def _wait_job(self, job: dict[str, Any]) -> None:
        proc = job["proc"]
        proc.wait()
        try:
            outcome = json.loads(Path(job["status_file"]).read_text())
        except (OSError, json.JSONDecodeError):
            outcome = {"status": "failed", "error": f"the retrain process exited with code {proc.returncode}"}
        if outcome.get("status") == "accepted":
            try:
                self.reload_if_newer()
            except Exception as exc:
                outcome = dict(outcome, status="failed", error=f"the new model did not load: {exc}")
        self.retrains[outcome.get("status", "failed")] += 1
        job.update(outcome, finished=time.time())
        job["status"] = outcome.get("status", "failed")

    def public_job(self) -> dict[str, Any] | None:
        if self.job is None:
            return None
        return {k: v for k, v in self.job.items() if k not in ("proc", "status_file")}


class TrainingHistory:
    """Per-user training ratings (raw item ids and values) from the training data."""

    def __init__(self, ratings: Any) -> None:
        self.ratings = ratings
        self.csr = ratings.by_user
        self.user_map = ratings.user_map
        self.item_ids = ratings.item_map.ids

    def of(self, user: str) -> tuple[np.ndarray, np.ndarray]:
        k = int(self.user_map.lookup([user])[0])
        if k < 0:
            return np.array([], dtype=object), np.array([], dtype=np.float64)
        lo, hi = self.csr.indptr[k], self.csr.indptr[k + 1]
        return self.item_ids[self.csr.indices[lo:hi]], self.csr.data[lo:hi].astype(np.float64)

    def has(self, user: str, item: Any) -> bool:
        items, _ = self.of(user)
        return bool(len(items)) and bool(np.any(items == item))


# ----------------------------------------------------------------------------- the app
def create_app(model_path: str | Path, db_url: str = "sqlite:///ratings.db", api_key: str | None = None, *,
               train_data: str | None = None, state_dir: str | Path | None = None, watch_interval: float = 1.0,
               max_body: int = MAX_BODY_BYTES, retrain_holdout: float = 0.1,
               retrain_tolerance: float = 0.01, train_read: dict[str, Any] | None = None) -> FastAPI:
    """The service app for a model file and a ratings store (``sqlite:///FILE`` or
    ``postgresql://...``). ``api_key`` (default ``$MFREC_API_KEY``) guards the write endpoints;
    ``train_data`` (a dataset name or a ratings file) enables retraining and gives known users'
    fold-in their training ratings; retrained models and the pointer go to ``state_dir``
    (default ``MODEL.serve/`` beside the model file)."""
    from contextlib import asynccontextmanager

    if api_key is None:
        from mfrec.serve.keys import read_api_key

        api_key = read_api_key(None)  # stripped, at least 16 characters: the rule of `mfrec serve`
    service = Service(model_path, db_url, api_key, train_data, state_dir, watch_interval,
                      retrain_holdout, retrain_tolerance, train_read)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        # the model, item table and app are long-lived: move them out of the collector's view so
        # full collections (which would walk every object of them) do not stall requests
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="mfrec recommendation service", version=_version(), lifespan=lifespan,
                  dependencies=[Depends(_strict_query)],
                  description="Recommendations from a matrix-factorization model: guests folded in per request, "
                              "users' ratings stored durably, background retraining with holdout validation.")
    app.state.service = service
    _install_error_handlers(app)
    app.add_middleware(LimitsAndMetrics, metrics=service.metrics, max_body=max_body)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def writer(x_api_key: ApiKeyHeader = None, authorization: ApiKeyHeader = None) -> None:
        service.require_key(x_api_key, authorization)

    @app.head("/", include_in_schema=False)
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.head("/health", include_in_schema=False)
    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness and what is being served."""
        st = service.state
        return {"status": "ok", "model_version": st.version, "model": type(st.model).__name__,
                "users": len(st.model.user_map_), "items": len(st.model.item_map_),
                "rating_scale": list(st.model.rating_scale_), "store": service.db_url.split(":", 1)[0],
                "schema_version": service.store.schema_version(), "writes": service.api_key is not None,
                "retrain": service.train_spec is not None}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus text format: request counts, latency histogram and percentiles, model
        version, store size (per worker process)."""
        st = service.state
        size = service.store_stats()
        extra = ["# TYPE mfrec_model_version gauge", f"mfrec_model_version {st.version}",
                 "# TYPE mfrec_model_swaps_total counter", f"mfrec_model_swaps_total {service.swaps}",
                 "# TYPE mfrec_model_items gauge", f"mfrec_model_items {len(st.model.item_map_)}",
                 "# TYPE mfrec_model_users gauge", f"mfrec_model_users {len(st.model.user_map_)}",
                 "# TYPE mfrec_store_events gauge", f"mfrec_store_events {size.get('events', 0)}",
                 "# TYPE mfrec_store_ratings gauge", f"mfrec_store_ratings {size.get('ratings', 0)}",
                 "# TYPE mfrec_store_users gauge", f"mfrec_store_users {size.get('users', 0)}",
                 "# TYPE mfrec_retrains_total counter"]
        extra += [f'mfrec_retrains_total{{result="{k}"}} {service.retrains.get(k, 0)}'
                  for k in ("accepted", "refused", "failed", "busy")]
        return PlainTextResponse(service.metrics.render(extra), media_type="text/plain; version=0.0.4")

    # ------------------------------------------------------------------ items
    @app.get("/items", tags=["items"])
    def search_items(search: SearchText = None, limit: Limit = 20) -> dict[str, Any]:
        """Title search, best match first (exact title, then title start, word start, anywhere;
        ties to the more-rated item); without ``search`` the most-rated items."""
        st = service.state
        if search is None or not search.strip():
            idx = np.argsort(-st.counts, kind="stable")[:limit]
        else:
            idx = search_titles(st, search, limit)
        return {"items": [st.describe(int(k)) for k in idx]}

    @app.get("/items/popular", tags=["items"])
    def popular(n: N = 30) -> dict[str, Any]:
        """Well-known items with varied genres, for a new person to rate first."""
        st = service.state
        return {"items": [st.describe(k) for k in st.popular[:n]]}

    @app.get("/items/{item_id}", tags=["items"])
    def get_item(item_id: ItemId) -> dict[str, Any]:
        st = service.state
        return st.describe(st.item_index(item_id))

    @app.get("/items/{item_id}/similar", tags=["items"])
    def similar(item_id: ItemId, n: N = 10) -> dict[str, Any]:
        """Nearest items by cosine similarity of the item factors."""
        st = service.state
        k = st.item_index(item_id)
        df = st.model.similar_items(plain(st.model.item_map_.ids[k]), n=n)
        idx = st.model.item_map_.lookup(df["item"].to_numpy())
        return {"item": st.describe(k),
                "similar": [dict(st.describe(int(j)), similarity=float(s)) for j, s in zip(idx, df["similarity"])]}

    # ------------------------------------------------------------------ recommendations
    @app.post("/recommendations", tags=["recommendations"])
    async def guest(req: GuestRequest) -> dict[str, Any]:
        """Recommendations for a guest from a few ratings (folded in for this request, nothing
        stored). Unknown items and ratings outside the model's scale are refused, naming them."""
        st = service.state
        if len(req.ratings) > INLINE_RATINGS or req.explain or req.n > INLINE_N:
            # a big fold-in (up to 500 ratings, explanations: ~0.05-0.5 s) must not hold the event
            # loop and every request behind it; a small one (~1 ms) costs less than the thread hop
            return await run_in_threadpool(_guest_answer, st, req)
        return _guest_answer(st, req)

    @app.get("/users/{user_id}/recommendations", tags=["recommendations"])
    def user_recs(user_id: UserId, n: N = 10, explain: Explain = 0) -> dict[str, Any]:
        """Recommendations for a user: their trained factors when nothing is stored for them, else
        a fold-in of their whole history (training ratings plus every stored rating and deletion)."""
        st = service.state
        user = st.user_text(user_id)
        ratings, _, stored, unknown = service.user_ratings(st, user)
        if not stored and st.user_known(user) and not explain:
            df = st.model.recommend(_model_user(st, user), n=n)
            out = _frame(st, df)
            return {"user": user, "model_version": st.version, "folded_in": False, "items": out, "unknown_items": []}
        if not stored and not st.user_known(user):
            raise ApiError(404, f"unknown user {user!r}: no training ratings and nothing stored")
        res = _recommend(st, ratings, n, explain)
        return dict(res, user=user, folded_in=True, unknown_items=unknown)

    # ------------------------------------------------------------------ ratings
    @app.get("/users/{user_id}/ratings", tags=["ratings"])
    def get_ratings(user_id: UserId) -> dict[str, Any]:
        """The user's current ratings: stored ones and (with --train-data) training ones."""
        st = service.state
        user = st.user_text(user_id)
        ratings, source, stored, unknown = service.user_ratings(st, user)
        if not ratings and not stored and not st.user_known(user):
            raise ApiError(404, f"unknown user {user!r}")
        idx = st.model.item_map_.lookup(list(ratings.keys())) if ratings else np.array([], dtype=np.int64)
        rows = []
        for (raw, value), k in zip(ratings.items(), idx):
            d = st.describe(int(k))
            rows.append({"item": raw, "rating": value, "source": source[raw], "title": d["title"], "genres": d["genres"]})
        return {"user": user, "ratings": rows, "unknown_items": unknown}

    @app.put("/users/{user_id}/ratings/{item_id}", tags=["ratings"], dependencies=[Depends(writer)])
    def put_rating(user_id: UserId, item_id: ItemId, body: RatingBody) -> dict[str, Any]:
        """Store a rating durably (committed before this response); the user's next
        recommendations reflect it."""
        st = service.state
        k = st.item_index(item_id)
        _check_scale(st, item_id, body.rating)
        user = st.user_text(user_id)
        when = service.store.put(user, st.item_text(k), body.rating)
        return {"user": user, "item": plain(st.model.item_map_.ids[k]), "rating": body.rating, "time": when}

    @app.delete("/users/{user_id}/ratings/{item_id}", tags=["ratings"], dependencies=[Depends(writer)])
    def delete_rating(user_id: UserId, item_id: ItemId) -> dict[str, Any]:
        """Delete the user's rating of an item (a stored one, or a training one: the deletion is
        stored and masks it)."""
        st = service.state
        k = st.item_index(item_id)
        user = st.user_text(user_id)
        raw = plain(st.model.item_map_.ids[k])
        ratings, _, _, _ = service.user_ratings(st, user)
        if raw not in ratings:
            raise ApiError(404, f"user {user!r} has no rating of item {item_id!r}")
        service.store.delete(user, st.item_text(k), force=True)
        return {"user": user, "item": raw, "deleted": True}

    # ------------------------------------------------------------------ admin
    @app.post("/admin/retrain", tags=["admin"], status_code=202, dependencies=[Depends(writer)])
    def retrain() -> dict[str, Any]:
        """Start a retrain in a background process (training data + stored ratings); the new model
        is validated on a holdout and swapped in only when it is not worse."""
        return service.start_retrain()

    @app.get("/admin/retrain", tags=["admin"], dependencies=[Depends(writer)])
    def retrain_status() -> dict[str, Any]:
        """The last retrain job: running, accepted (with the new version), refused, failed."""
        return {"job": service.public_job(), "model_version": service.state.version}

    return app


def _version() -> str:
    from mfrec import __version__

    return __version__


def _model_user(st: ModelState, user: str) -> Any:
    return plain(st.model.user_map_.ids[int(st.model.user_map_.lookup([user])[0])])


def _check_scale(st: ModelState, item: Any, value: float) -> None:
    lo, hi = st.model.rating_scale_
    if not (lo <= value <= hi):
        raise ApiError(422, f"rating {float(value)!r} for item {item!r} is outside the model's scale [{lo:g}, {hi:g}]",
                       item=item)


def _checked_ratings(st: ModelState, ratings: dict[str, float]) -> dict[Any, float]:
    """Guest ratings keyed by the model's item ids; unknown items and out-of-scale values refused."""
    if not ratings:
        return {}
    keys = list(ratings.keys())
    idx = st.model.item_map_.lookup(keys)
    unknown = [keys[j] for j in np.flatnonzero(idx < 0)]
    if unknown:
        raise ApiError(422, f"unknown item id(s): {', '.join(map(repr, unknown[:10]))}"
                            f"{' ...' if len(unknown) > 10 else ''} ({len(unknown)} in all)", unknown_items=unknown[:50])
    values = np.fromiter(ratings.values(), dtype=np.float64, count=len(ratings))
    lo, hi = st.model.rating_scale_
    bad = np.flatnonzero((values < lo) | (values > hi))
    if len(bad):
        _check_scale(st, keys[bad[0]], values[bad[0]])
    ids = st.model.item_map_.ids[idx]
    if len(np.unique(idx)) != len(idx):  # "1" and "01" both name item 1
        raise ApiError(422, "the ratings name the same item more than once")
    return {plain(i): float(v) for i, v in zip(ids, values)}


def _guest_answer(st: ModelState, req: GuestRequest) -> dict[str, Any]:
    return _recommend(st, _checked_ratings(st, req.ratings), req.n, req.explain)


def _recommend(st: ModelState, ratings: dict[Any, float], n: int, explain: int) -> dict[str, Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown items cannot reach here; nothing else to warn about
        df = st.model.recommend_new(ratings, n=n, explain=explain)
    return {"model_version": st.version, "items": _frame(st, df), "unknown_items": df.attrs.get("unknown_items", [])}


def _frame(st: ModelState, df: pd.DataFrame) -> list[dict[str, Any]]:
    """Recommendation rows as JSON objects (n <= 100 rows); a rating model's rows also carry
    ``predicted_rating``, the score clipped to the rating scale (as the CLI shows it)."""
    from mfrec.models.recommend import with_predicted_rating

    df = with_predicted_rating(st.model, df.copy())
    predicted = df["predicted_rating"].to_numpy() if "predicted_rating" in df.columns else None
    idx = st.model.item_map_.lookup(df["item"].to_numpy()) if len(df) else []
    because = df["because"].tolist() if "because" in df.columns else None
    if because is not None:  # raw ids of rated items (the model has no item table attached) -> titles
        flat = [b for row in because for b in row]
        bidx = st.model.item_map_.lookup(flat) if flat else np.array([], dtype=np.int64)
        titles = st.meta[0] if st.meta else [None] * len(st.model.item_map_)
        names = iter([titles[k] if k >= 0 and titles[k] else str(plain(b)) for b, k in zip(flat, bidx)])
        ids = iter([plain(b) for b in flat])
    out = []
    for r, (k, score) in enumerate(zip(idx, df["score"].to_numpy())):
        d = st.describe(int(k))
        d["score"] = float(score)
        if predicted is not None:
            d["predicted_rating"] = float(predicted[r])
        if because is not None:
            d["because"] = [next(names) for _ in because[r]]
            d["because_ids"] = [next(ids) for _ in because[r]]
        out.append(d)
    return out


def search_titles(st: ModelState, query: str, limit: int) -> list[int]:
    """Item indices matching ``query`` (the library's `find_items` ranking, popularity from the
    model's training counts)."""
    from mfrec.data.datasets import find_items

    info = st.info
    if info is None or "title" not in info.columns:
        raise ApiError(409, "this model file has no item titles to search")
    counts = pd.Series(st.counts, index=st.model.item_map_.ids)
    try:
        hits = find_items(info, query, n=limit, counts=counts)
    except ValueError:  # nothing left of the query after removing punctuation
        return []
    return [int(k) for k in st.model.item_map_.lookup(hits.index.to_numpy())]


# ----------------------------------------------------------------------------- errors
def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            ctx = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
            return _error(400, f"malformed JSON: {ctx.get('error', 'cannot parse the body')}")
        detail = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in errors[:20]]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        return _error(422, f"{where}: {first['msg']}" if where else first["msg"], detail=detail)

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(KeyError)
    async def key_error(request: Request, exc: KeyError) -> JSONResponse:
        return _error(404, str(exc.args[0]) if exc.args else "not found")

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:  # a bug: JSON too, and logged
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal server error")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        return _error(503, f"ratings store unavailable: {exc}")


__all__ = ["create_app", "Service", "ModelState", "ApiError", "ModelFileError"]
