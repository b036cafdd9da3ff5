"""The service's endpoints through FastAPI's TestClient: every endpoint, every class of bad input."""

from __future__ import annotations

from tests.serve.conftest import require

require("fastapi", "the service")
require("httpx", "the service tests")

import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

import mfrec
from mfrec.serve.app import MAX_BODY_BYTES, MAX_RATINGS, create_app

KEY = "test-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}


@pytest.fixture
def app_factory(synth_files, tmp_path):
    model_path, train_csv, _ = synth_files
    made = []

    def make(db_url: str | None = None, api_key: str | None = KEY, train: bool = True, **kw):
        app = create_app(model_path, db_url or f"sqlite:///{tmp_path / 'ratings.db'}", api_key,
                         train_data=str(train_csv) if train else None, state_dir=tmp_path / "state",
                         watch_interval=0.2, **kw)
        made.append(app)
        return app

    return make


@pytest.fixture
def client(app_factory):
    with TestClient(app_factory(), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def model(synth_files):
    return mfrec.load_model(synth_files[0])


def assert_json_error(res, status: int, *words: str) -> dict:
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/json")
    body = res.json()
    assert body["status"] == status and isinstance(body["error"], str)
    for w in words:
        assert w in body["error"], body["error"]
    return body


# ----------------------------------------------------------------------------- service endpoints
def test_health_docs_page(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model_version"] == 0 and h["model"] == "BiasedMF"
    assert h["rating_scale"] == [1.0, 5.0] and h["writes"] and h["retrain"] and h["schema_version"] == 2
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/items", "/items/popular", "/items/{item_id}", "/items/{item_id}/similar", "/recommendations",
                 "/users/{user_id}/recommendations", "/users/{user_id}/ratings",
                 "/users/{user_id}/ratings/{item_id}", "/admin/retrain", "/health", "/metrics"):
        assert path in spec["paths"], path
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for f in ("app.js", "style.css"):
        assert client.get(f"/static/{f}").status_code == 200
    js = client.get("/static/app.js").text
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", js) and "textContent" in js  # titles rendered as text
    assert_json_error(client.get("/no/such/page"), 404)


def test_metrics(client):
    client.get("/items/1")
    client.get("/items/nope")
    client.post("/recommendations", json={"ratings": {"1": 4.0}})
    text = client.get("/metrics").text
    assert 'mfrec_requests_total{method="GET",route="/items/{item_id}",status="200"} 1' in text
    assert 'mfrec_requests_total{method="GET",route="/items/{item_id}",status="404"} 1' in text
    assert 'mfrec_request_duration_seconds_bucket{route="/recommendations",le="+Inf"} 1' in text
    assert 'mfrec_request_latency_seconds{quantile="0.99"}' in text
    assert "mfrec_model_version 0" in text and "mfrec_store_events 0" in text


# ----------------------------------------------------------------------------- items
def test_search_exact_then_most_rated(client, model):
    items = client.get("/items", params={"search": "toy story"}).json()["items"]
    assert [it["id"] for it in items[:2]] == [0, 1]  # exact title first, then "Toy Story 2"
    hits = client.get("/items", params={"search": "film", "limit": 5}).json()["items"]
    counts = [it["ratings"] for it in hits]
    assert len(hits) == 5 and counts == sorted(counts, reverse=True)  # same match class: most rated first
    top = client.get("/items", params={"limit": 3}).json()["items"]
    seen = np.bincount(model.seen_.indices, minlength=len(model.item_map_))
    assert [it["ratings"] for it in top] == sorted(seen, reverse=True)[:3]
    assert client.get("/items", params={"search": "!!!"}).json()["items"] == []
    assert client.get("/items", params={"search": "zzzz-no-such"}).json()["items"] == []


def test_item_and_similar(client, model):
    it = client.get("/items/3").json()
    assert it["title"].startswith("<script>")  # JSON carries the raw text; the page renders it as text
    assert it["id"] == 3 and it["genres"] and it["ratings"] > 0
    assert client.get("/items/003").json()["id"] == 3  # int ids: the same item
    sim = client.get("/items/5/similar", params={"n": 4}).json()
    expected = model.similar_items(5, n=4)
    assert [s["id"] for s in sim["similar"]] == expected["item"].tolist()
    assert np.allclose([s["similarity"] for s in sim["similar"]], expected["similarity"])
    assert_json_error(client.get("/items/999999"), 404, "999999")
    assert_json_error(client.get("/items/999999/similar"), 404, "999999")


def test_popular_is_popular_and_varied(client, model):
    items = client.get("/items/popular", params={"n": 12}).json()["items"]
    assert len(items) == 12 and len({it["id"] for it in items}) == 12
    seen = np.bincount(model.seen_.indices, minlength=len(model.item_map_))
    assert min(it["ratings"] for it in items) >= np.sort(seen)[::-1][min(20 * 12, len(seen)) - 1]  # from the most rated
    genres = lambda its: len({g for it in its for g in it["genres"]})  # noqa: E731
    top = [client.get(f"/items/{k}").json() for k in np.argsort(-seen, kind="stable")[:12]]
    assert genres(items) >= genres(top)
    assert len(client.get("/items/popular").json()["items"]) == 30


# ----------------------------------------------------------------------------- guests
def test_guest_recommendations_match_the_library(client, model):
    ratings = {"0": 5.0, "1": 4.5, "7": 1}
    res = client.post("/recommendations", json={"ratings": ratings, "n": 8, "explain": 2})
    assert res.status_code == 200, res.text
    body = res.json()
    expected = model.recommend_new({0: 5.0, 1: 4.5, 7: 1.0}, n=8, explain=2)
    assert [r["id"] for r in body["items"]] == expected["item"].tolist()
    assert np.allclose([r["score"] for r in body["items"]], expected["score"])
    # a rating model: the rating shown is the score clipped to the scale (as `mfrec recommend`)
    lo, hi = model.rating_scale_
    assert np.allclose([r["predicted_rating"] for r in body["items"]], np.clip(expected["score"], lo, hi))
    fans = client.post("/recommendations", json={"ratings": {str(i): hi for i in range(30)}, "n": 5}).json()["items"]
    assert all(lo <= r["predicted_rating"] <= hi for r in fans)
    assert [r["because"] for r in body["items"]] == expected["because"].tolist()
    assert all({0, 1, 7}.isdisjoint([r["id"]]) for r in body["items"])
    assert body["items"][0]["title"] and "genres" in body["items"][0]
    # nothing stored for guests
    assert client.app.state.service.store.stats()["events"] == 0
    empty = client.post("/recommendations", json={}).json()  # no ratings: the zero user
    assert len(empty["items"]) == 10


@pytest.mark.parametrize("body, status, words", [
    ('{"ratings": {"1": NaN}}', 422, ["finite"]),
    ('{"ratings": {"1": Infinity}}', 422, ["finite"]),
    ('{"ratings": {"1": "5"}}', 422, ["number"]),
    ('{"ratings": {"1": true}}', 422, ["number"]),
    ('{"ratings": {"1": null}}', 422, []),
    ('{"ratings": {"1": 9}}', 422, ["outside", "'1'"]),
    ('{"ratings": {"1": 0.5}}', 422, ["outside"]),
    ('{"ratings": {"1": 4, "424242": 3, "nope": 2}}', 422, ["unknown", "424242", "nope"]),
    ('{"ratings": {"1": 4, "01": 3}}', 422, ["more than once"]),
    ('{"ratings": [1, 2]}', 422, []),
    ('{"ratings": {}, "n": 0}', 422, ["n"]),
    ('{"ratings": {}, "n": 101}', 422, ["n"]),
    ('{"ratings": {}, "n": "10"}', 422, ["n"]),
    ('{"ratings": {}, "explain": 11}', 422, ["explain"]),
    ('{"ratings": {}, "extra": 1}', 422, ["extra"]),
    ('{"ratings": {"1": 4}', 400, ["malformed JSON"]),
    ("not json at all", 400, ["malformed JSON"]),
    ("[]", 422, []),
])
def test_guest_bad_input_is_4xx_json(client, body, status, words):
    res = client.post("/recommendations", content=body, headers={"content-type": "application/json"})
    assert_json_error(res, status, *words)


def test_too_many_ratings_and_oversized_bodies(client, model):
    ids = model.item_map_.ids
    many = {str(i): 3.0 for i in range(MAX_RATINGS + 1)}
    assert_json_error(client.post("/recommendations", json={"ratings": many}), 422, "ratings")
    # over the byte limit by Content-Length
    big = json.dumps({"ratings": {str(ids[0]): 3.0}, "pad": "x" * (MAX_BODY_BYTES + 10)})
    assert_json_error(client.post("/recommendations", content=big, headers={"content-type": "application/json"}),
                      413, "too large")

    def chunks():  # no Content-Length: chunked, counted while streaming
        yield b'{"ratings": {}, "pad": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'
    res = client.post("/recommendations", content=chunks(), headers={"content-type": "application/json"})
    assert_json_error(res, 413, "too large")
    assert_json_error(client.put("/users/u/ratings/1", content=big, headers=dict(AUTH, **{"content-type": "application/json"})), 413)
    assert_json_error(client.get("/items", params={"search": "x" * 300}), 422)
    assert_json_error(client.get("/items", params={"limit": 0}), 422)
    assert_json_error(client.get("/items/popular", params={"n": 101}), 422)
    assert_json_error(client.get("/items/1/similar", params={"n": 0}), 422)
    assert_json_error(client.get("/users/1/recommendations", params={"n": 1000}), 422)


def test_query_strings_are_as_strict_as_bodies(client):
    """Unknown query parameters were ignored (?limit=5 on an endpoint taking n: 30 items) and a
    repeated one kept its last value (?n=5&n=50: 50 items)."""
    assert_json_error(client.get("/items/popular?limit=5"), 422, "unknown query parameter 'limit'", "takes n")
    assert_json_error(client.get("/items?n=5"), 422, "'n'", "takes limit, search")
    assert_json_error(client.get("/users/1/recommendations?n=3&item_bias_weight=abc"), 422, "item_bias_weight")
    for path in ("/?fbclid=abc", "/health?_=123", "/metrics?x=1"):  # no parameters to mistype: links work
        assert client.get(path).status_code == 200, path
    assert_json_error(client.get("/items/popular?n=5&n=50"), 400, "'n' given twice")
    assert_json_error(client.get("/items?search=toy&search=lion"), 400, "'search' given twice")
    assert len(client.get("/items/popular?n=5").json()["items"]) == 5
    assert len(client.get("/items/popular?n=5&_=1733300000").json()["items"]) == 5  # a cache-buster
    assert client.get("/users/1/recommendations", params={"n": 2, "explain": 1}).status_code == 200


# ----------------------------------------------------------------------------- stored ratings
def test_api_key_required_for_writes(client):
    assert_json_error(client.put("/users/alice/ratings/1", json={"rating": 4}), 401, "API key")
    assert_json_error(client.put("/users/alice/ratings/1", json={"rating": 4}, headers={"X-API-Key": "wrong"}), 403, "wrong")
    assert_json_error(client.put("/users/alice/ratings/1", json={"rating": 4}, headers={"X-API-Key": ""}), 401)
    assert_json_error(client.delete("/users/alice/ratings/1"), 401)
    assert_json_error(client.post("/admin/retrain"), 401)
    assert_json_error(client.get("/admin/retrain"), 401)
    ok = client.put("/users/alice/ratings/1", json={"rating": 4}, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert client.app.state.service.store.stats()["events"] == 1  # only the authorized write


def test_no_api_key_configured_refuses_writes(app_factory, monkeypatch):
    monkeypatch.delenv("MFREC_API_KEY", raising=False)
    with TestClient(app_factory(api_key=None)) as c:
        assert_json_error(c.put("/users/a/ratings/1", json={"rating": 4}, headers=AUTH), 403, "without an API key")
        assert c.get("/items/1").status_code == 200  # reads stay open


def test_new_user_becomes_known_and_sees_changes_at_once(client, model):
    assert_json_error(client.get("/users/alice/recommendations"), 404, "alice")
    assert_json_error(client.get("/users/alice/ratings"), 404)
    r = client.put("/users/alice/ratings/0", json={"rating": 5}, headers=AUTH)
    assert r.status_code == 200 and r.json()["item"] == 0
    client.put("/users/alice/ratings/1", json={"rating": 4.5}, headers=AUTH)
    recs = client.get("/users/alice/recommendations", params={"n": 10}).json()
    expected = model.recommend_new({0: 5.0, 1: 4.5}, n=10)
    assert [it["id"] for it in recs["items"]] == expected["item"].tolist() and recs["folded_in"]
    # a third rating changes the list at once, and the rated item leaves it
    third = recs["items"][0]["id"]
    client.put(f"/users/alice/ratings/{third}", json={"rating": 1}, headers=AUTH)
    after = client.get("/users/alice/recommendations", params={"n": 10}).json()
    assert third not in [it["id"] for it in after["items"]]
    assert [it["id"] for it in after["items"]] == model.recommend_new({0: 5.0, 1: 4.5, third: 1.0}, n=10)["item"].tolist()
    # overwrite, list, delete
    client.put("/users/alice/ratings/0", json={"rating": 2}, headers=AUTH)
    got = client.get("/users/alice/ratings").json()["ratings"]
    assert {(g["item"], g["rating"], g["source"]) for g in got} == {(0, 2.0, "stored"), (1, 4.5, "stored"), (third, 1.0, "stored")}
    assert client.delete("/users/alice/ratings/0", headers=AUTH).json()["deleted"] is True
    assert_json_error(client.delete("/users/alice/ratings/0", headers=AUTH), 404, "no rating")
    assert {g["item"] for g in client.get("/users/alice/ratings").json()["ratings"]} == {1, third}


def test_known_user_folds_in_training_plus_stored_history(client, model, synth_files):
    _, _, r = synth_files
    df = r.to_dataframe()
    user = int(df["user"].iloc[0])
    mine = df[df["user"] == user]
    train = dict(zip(mine["item"].tolist(), mine["rating"].astype(float).tolist()))
    # nothing stored: the trained factors
    plain = client.get(f"/users/{user}/recommendations", params={"n": 5}).json()
    assert not plain["folded_in"] and [it["id"] for it in plain["items"]] == model.recommend(user, n=5)["item"].tolist()
    listed = client.get(f"/users/{user}/ratings").json()["ratings"]
    assert {g["item"]: g["rating"] for g in listed} == train and {g["source"] for g in listed} == {"training"}
    # a stored rating of a new item and a stored deletion of a training item
    new_item = next(int(i) for i in model.item_map_.ids if int(i) not in train)
    dropped = next(iter(train))
    client.put(f"/users/{user}/ratings/{new_item}", json={"rating": 5}, headers=AUTH)
    assert client.delete(f"/users/{user}/ratings/{dropped}", headers=AUTH).status_code == 200
    history = {k: v for k, v in train.items() if k != dropped}
    history[new_item] = 5.0
    res = client.get(f"/users/{user}/recommendations", params={"n": 5}).json()
    assert res["folded_in"]
    assert [it["id"] for it in res["items"]] == model.recommend_new(history, n=5)["item"].tolist()
    assert dropped not in {g["item"] for g in client.get(f"/users/{user}/ratings").json()["ratings"]}
    # the user id "0..." form of an int id is the same user
    assert client.get(f"/users/00{user}/recommendations", params={"n": 5}).json()["user"] == str(user)


def test_known_user_without_training_data_uses_model_predictions(app_factory, model):
    with TestClient(app_factory(train=False)) as c:
        user = int(model.user_map_.ids[3])
        c.put(f"/users/{user}/ratings/0", json={"rating": 1}, headers=AUTH)
        seen = model.seen_[3].indices
        items = model.item_map_.ids[seen]
        history = dict(zip(items.tolist(), model.predict(np.full(len(seen), user), items).tolist()))
        history[0] = 1.0
        res = c.get(f"/users/{user}/recommendations", params={"n": 5}).json()
        assert [it["id"] for it in res["items"]] == model.recommend_new(history, n=5)["item"].tolist()
        assert_json_error(c.post("/admin/retrain", headers=AUTH), 409, "--train-data")


@pytest.mark.parametrize("path, body, status", [
    ("/users/bad user/ratings/1", {"rating": 3}, 422),
    ("/users/" + "u" * 65 + "/ratings/1", {"rating": 3}, 422),
    ("/users/alice/ratings/424242", {"rating": 3}, 404),
    ("/users/alice/ratings/1", {"rating": 7}, 422),
    ("/users/alice/ratings/1", {"rating": "4"}, 422),
    ("/users/alice/ratings/1", {"rating": None}, 422),
    ("/users/alice/ratings/1", {}, 422),
    ("/users/alice/ratings/1", {"rating": 3, "x": 1}, 422),
])
def test_put_bad_input(client, path, body, status):
    assert_json_error(client.put(path, json=body, headers=AUTH), status)
    assert client.app.state.service.store.stats()["events"] == 0


def test_bodies_that_cannot_be_read_say_why(client):
    """FastAPI answered these with "There was an error parsing the body" (or, for JSON sent as
    text/plain, "Input should be a valid dictionary")."""
    h = {"content-type": "application/json"}
    cases = [
        (b'{"ratings": {"\xff": 5}}', h, 400, "not UTF-8 (byte 14)"),
        (b'{"n": ' + b"9" * 5000 + b"}", h, 400, "digits"),
        (b"9" * 5000, h, 400, "digits"),
        (b'{"a": ' * 3000 + b"1" + b"}" * 3000, h, 400, "nested too deeply"),
        (b'{"ratings": {"1": 5}}', {"content-type": "text/plain"}, 415, "Content-Type: application/json (got text/plain)"),
        (b'{"ratings": {"1": 5}}', {}, 415, "got none"),
    ]
    for body, headers, status, words in cases:
        assert_json_error(client.post("/recommendations", content=body, headers=headers), status, words)
    ok = client.post("/recommendations", content=b'{"ratings": {"1": 5}}',
                     headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200, ok.text


def test_put_nan_and_malformed(client):
    h = dict(AUTH, **{"content-type": "application/json"})
    assert_json_error(client.put("/users/a/ratings/1", content='{"rating": NaN}', headers=h), 422, "finite")
    assert_json_error(client.put("/users/a/ratings/1", content='{"rating": ', headers=h), 400, "malformed")


def test_store_backends_through_the_app(app_factory, store_url):
    """The same flow on SQLite and PostgreSQL."""
    with TestClient(app_factory(db_url=store_url)) as c:
        c.put("/users/bob/ratings/2", json={"rating": 4}, headers=AUTH)
        c.put("/users/bob/ratings/2", json={"rating": 3.5}, headers=AUTH)
        assert c.get("/users/bob/ratings").json()["ratings"][0]["rating"] == 3.5
        assert c.get("/users/bob/recommendations").status_code == 200
        assert "mfrec_store_ratings 1" in c.get("/metrics").text


def test_service_code_never_unpickles():
    from pathlib import Path

    import mfrec.serve

    for f in Path(mfrec.serve.__file__).parent.glob("*.py"):
        text = f.read_text()
        assert "pickle" not in text.replace("allow_pickle=False", ""), f


def test_unexpected_errors_are_json_too(client, monkeypatch):
    def broken() -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(client.app.state.service, "store_stats", broken)
    assert_json_error(client.get("/metrics"), 500, "internal server error")
    assert_json_error(client.get("/recommendations"), 405)  # wrong method


# ----------------------------------------------------------------------------- hostile input (2026-12-03)
def test_item_ids_read_by_one_strict_rule_whatever_the_request_size(client, model):
    """'1e0', '+1', ' 1', Arabic-Indic and fullwidth digits are not item 1, in a small request,
    a large one, and in a URL path; leading zeros are (decimal notation of the int)."""
    ids = [int(i) for i in model.item_map_.ids[:80]]
    item = ids[1]
    for alias in (f"{item}e0", f"+{item}", f" {item}", f"{item}.0", str(item).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
                  str(item).translate(str.maketrans("0123456789", "０１２３４５６７８９"))):
        assert_json_error(client.post("/recommendations", json={"ratings": {alias: 4}}), 422, "unknown item")
        many = {str(i): 3 for i in ids[2:72]} | {alias: 4}  # over the lookup's small-request size
        assert_json_error(client.post("/recommendations", json={"ratings": many}), 422, "unknown item")
        assert client.get(f"/items/{alias}").status_code in (404, 422)
    assert client.get(f"/items/00{item}").json()["id"] == item
    assert client.post("/recommendations", json={"ratings": {f"0{item}": 4}}).status_code == 200


def test_store_failure_is_503_not_500(client, monkeypatch):
    from mfrec.serve.store import StoreError

    store = client.app.state.service.store

    def broken(*a, **k):
        raise StoreError(f"{store.url}: database is locked")

    monkeypatch.setattr(store, "put", broken)
    assert_json_error(client.put("/users/alice/ratings/1", json={"rating": 4}, headers=AUTH), 503,
                      "ratings store unavailable", "locked")


def test_locked_sqlite_store_answers_503_quickly(app_factory, tmp_path):
    import sqlite3
    import time

    with TestClient(app_factory(), raise_server_exceptions=False) as c:
        store = c.app.state.service.store
        store.timeout = 0.3
        store.close()  # new connections take the short timeout
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            t0 = time.perf_counter()
            assert_json_error(c.put("/users/alice/ratings/1", json={"rating": 4}, headers=AUTH), 503, "locked")
            assert time.perf_counter() - t0 < 5
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert c.put("/users/alice/ratings/1", json={"rating": 4}, headers=AUTH).status_code == 200


def test_out_of_scale_rating_is_reported_as_sent(client):
    body = assert_json_error(client.post("/recommendations", json={"ratings": {"1": 5.0000001}}), 422, "5.0000001")
    assert "outside" in body["error"]


def test_an_empty_api_key_header_does_not_hide_a_bearer_key(client):
    res = client.put("/users/alice/ratings/1", json={"rating": 4}, headers={"X-API-Key": "", "Authorization": f"Bearer {KEY}"})
    assert res.status_code == 200, res.text


def test_stored_ratings_of_unknown_items_are_listed_not_hidden(app_factory, tmp_path, caplog):
    from mfrec.serve.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'ratings.db'}") as st:  # a store kept for another catalogue
        st.put("uX", "<img src=x>", 4.0)
        st.put("uX", "1", 3.0)
    with caplog.at_level("WARNING", logger="mfrec.serve"), TestClient(app_factory()) as c:
        got = c.get("/users/uX/ratings").json()
        assert got["unknown_items"] == ["<img src=x>"] and [g["item"] for g in got["ratings"]] == [1]
        assert c.get("/users/uX/recommendations").json()["unknown_items"] == ["<img src=x>"]
    assert any("1 item(s) this model does not have" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("heavy", [{"ratings": {"1": 4}, "explain": 3},  # explanations
                                   {"ratings": {str(i): 4 for i in range(60)}}])  # many ratings
def test_guest_fold_in_runs_off_the_event_loop(client, monkeypatch, heavy):
    """A 500-rating fold-in with explanations costs up to ~0.5 s: on the event loop it would stall
    every request."""
    import threading
    import time

    from mfrec.serve import app as app_module

    original = app_module._recommend

    def slow(*a, **k):
        time.sleep(1.5)  # blocks whatever thread runs it, as a long fold-in does
        return original(*a, **k)

    monkeypatch.setattr(app_module, "_recommend", slow)
    guest = threading.Thread(target=client.post, args=("/recommendations",), kwargs={"json": heavy})
    guest.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    assert client.get("/health").status_code == 200
    waited = time.perf_counter() - t0
    guest.join()
    assert waited < 1.0, f"/health waited {waited:.2f} s behind a guest fold-in"


def test_head_on_the_page_and_health(client):
    for path in ("/", "/health"):
        res = client.head(path)
        assert res.status_code == 200 and res.content == b""


def test_a_key_repeated_in_a_json_body_is_refused_not_resolved_silently(client):
    body = b'{"ratings": {"1": 5, "1": 0.5}}'
    assert_json_error(client.post("/recommendations", content=body, headers={"content-type": "application/json"}),
                      400, "'1' appears twice")
    assert_json_error(client.put("/users/alice/ratings/1", content=b'{"rating": 4, "rating": 5}',
                                 headers={**AUTH, "content-type": "application/json"}), 400, "'rating' appears twice")
    assert client.app.state.service.store.stats()["events"] == 0
