"""Retraining: merge of training data and store, holdout validation, atomic swap under load."""

from __future__ import annotations

from tests.serve.conftest import require

require("fastapi", "the service")
require("httpx", "the service tests")

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import mfrec
from mfrec.serve.app import create_app
from mfrec.serve.retrain import merge_ratings, read_pointer, retrain
from mfrec.serve.store import open_store

KEY = "test-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}


def test_merge_overlays_the_store_on_the_training_data():
    train = mfrec.Ratings.from_dataframe(pd.DataFrame({"user": [1, 1, 2], "item": [10, 11, 10], "rating": [4.0, 3.0, 2.0]}))
    stored = pd.DataFrame({"user": ["1", "3"], "item": ["10", "11"], "rating": [1.0, 5.0], "time": [0.0, 0.0]})
    deletions = pd.DataFrame({"user": ["2"], "item": ["10"]}, dtype=object)
    merged, _, _, _ = merge_ratings(train, stored, deletions, (1.0, 5.0))
    got = merged.to_dataframe().sort_values(["user", "item"])
    assert got[["user", "item"]].values.tolist() == [[1, 10], [1, 11], [3, 11]]  # int ids stay ints
    assert got["rating"].tolist() == [1.0, 3.0, 5.0]  # stored replaces training; deletion removes
    # a non-numeric user id turns every user id into text (one model file needs one id type)
    stored2 = pd.DataFrame({"user": ["alice"], "item": ["10"], "rating": [2.0], "time": [0.0]})
    merged2, _, _, _ = merge_ratings(train, stored2, deletions.iloc[:0], (1.0, 5.0))
    assert sorted(merged2.to_dataframe()["user"].unique()) == ["1", "2", "alice"]


def _spam(store, model, users: int = 80, items: int = 40) -> None:
    seen = np.bincount(model.seen_.indices, minlength=len(model.item_map_))
    top = model.item_map_.ids[np.argsort(-seen)[:items]]
    store.put_many((f"spam{u}", str(i), 1.0) for u in range(users) for i in top)


def test_holdout_refuses_a_worse_model(synth_files, tmp_path):
    model_path, train_csv, _ = synth_files
    model = mfrec.load_model(model_path)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with open_store(db) as st:
        _spam(st, model)
    out = retrain(model_path, str(train_csv), db, tmp_path / "state")
    assert out["status"] == "refused" and out["metric"] == "rmse"
    assert out["candidate"] > out["reference"] * 1.01
    assert read_pointer(tmp_path / "state") is None  # nothing swapped


def test_holdout_accepts_honest_ratings(synth_files, tmp_path):
    model_path, train_csv, _ = synth_files
    model = mfrec.load_model(model_path)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    rng = np.random.default_rng(0)
    with open_store(db) as st:
        for u in range(10):  # new users who rate like the model expects of a typical user
            items = rng.choice(model.item_map_.ids, size=8, replace=False)
            for i, p in zip(items, model.predict(np.full(8, model.user_map_.ids[u]), items)):
                st.put(f"new{u}", str(i), float(np.clip(np.round(p * 2) / 2, 1, 5)))
    out = retrain(model_path, str(train_csv), db, tmp_path / "state")
    assert out["status"] == "accepted", out
    ptr = read_pointer(tmp_path / "state")
    assert ptr["version"] == 1
    new = mfrec.load_model(ptr["path"])
    assert "new3" in new.user_map_ and new.item_info_ is not None  # stored users are now in the model
    assert len(new.item_map_) == len(model.item_map_)


def test_retrain_of_unchanged_data_writes_no_new_version(synth_files, tmp_path):
    """Nothing stored or deleted since the last accepted retrain: no fit, no new version; a new
    rating, or its deletion afterwards, changes the data and retrains again."""
    model_path, train_csv, _ = synth_files
    model = mfrec.load_model(model_path)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    state = tmp_path / "state"
    user, item = model.user_map_.ids[0], model.item_map_.ids[0]
    with open_store(db) as st:
        st.put("new1", str(item), float(np.clip(np.round(model.predict([user], [item])[0] * 2) / 2, 1, 5)))
    first = retrain(model_path, str(train_csv), db, state, tolerance=0.05)
    assert first["status"] == "accepted", first
    again = retrain(model_path, str(train_csv), db, state, tolerance=0.05)
    assert again["status"] == "unchanged" and again["version"] == 1 and again["merged_ratings"] == first["merged_ratings"]
    assert read_pointer(state)["version"] == 1 and not (state / "model-v2.mfrec").exists()
    with open_store(db) as st:
        st.delete("new1", str(item))
    third = retrain(model_path, str(train_csv), db, state, tolerance=0.05)
    assert third["status"] in ("accepted", "refused") and third["merged_ratings"] == first["merged_ratings"] - 1


def test_data_fingerprint_ignores_row_order_and_sees_every_value():
    from mfrec.serve.retrain import data_fingerprint

    df = pd.DataFrame({"user": [1, 1, 2], "item": [10, 11, 10], "rating": [4.0, 3.0, 2.0]})
    fp = data_fingerprint(df)
    assert data_fingerprint(df.iloc[::-1]) == fp
    for changed in (df.assign(rating=[4.0, 3.0, 2.5]), df.assign(user=[1, 2, 2]), df.iloc[:2],
                    df.assign(user=df["user"].astype(str))):
        assert data_fingerprint(changed) != fp


def _wait_job(c: TestClient, timeout: float = 240) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = c.get("/admin/retrain", headers=AUTH).json()["job"]
        if job and job["status"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError("retrain did not finish in time")


def test_retrain_and_swap_under_load_has_zero_errors(synth_files, tmp_path):
    """A client thread sends bounded requests (guest and user recommendations, writes, reads)
    while a retrain runs and the new model is swapped in: every response is a success."""
    model_path, train_csv, _ = synth_files
    app = create_app(model_path, f"sqlite:///{tmp_path / 'r.db'}", KEY, train_data=str(train_csv),
                     state_dir=tmp_path / "state", watch_interval=0.2)
    errors: list[str] = []
    versions: list[int] = []
    stop = threading.Event()
    with TestClient(app) as c:
        for i in range(5):
            c.put(f"/users/carol/ratings/{i}", json={"rating": 4.0}, headers=AUTH)

        def load() -> None:
            t0, k = time.time(), 0
            while not stop.is_set() and k < 20000 and time.time() - t0 < 300:  # bounded in count and time
                k += 1
                if k % 4 == 0:
                    r = c.get("/users/carol/recommendations", params={"n": 10})
                elif k % 4 == 1:
                    r = c.put(f"/users/dave/ratings/{k % 50}", json={"rating": 3.0}, headers=AUTH)
                elif k % 4 == 2:
                    r = c.get("/items/popular", params={"n": 10})
                else:
                    r = c.post("/recommendations", json={"ratings": {"0": 5, "1": 4, "2": 2}, "n": 10, "explain": 1})
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                elif "model_version" in r.json():
                    versions.append(r.json()["model_version"])

        th = threading.Thread(target=load)
        th.start()
        time.sleep(0.5)
        assert c.post("/admin/retrain", headers=AUTH).status_code == 202
        busy = c.post("/admin/retrain", headers=AUTH)
        assert busy.status_code == 409 and "already running" in busy.json()["error"]
        job = _wait_job(c)
        t_swap = time.time()
        while time.time() - t_swap < 2 and (not versions or versions[-1] < 1):
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        th.join(timeout=60)
        assert job["status"] == "accepted", job
        assert c.get("/health").json()["model_version"] == 1
        assert "mfrec_model_swaps_total 1" in c.get("/metrics").text
    assert errors == []
    assert 0 in versions and 1 in versions and versions == sorted(versions)  # old, then new, never back
    # a restarted service serves the retrained model
    with TestClient(create_app(model_path, f"sqlite:///{tmp_path / 'r.db'}", KEY, state_dir=tmp_path / "state")) as c2:
        assert c2.get("/health").json()["model_version"] == 1
        assert c2.get("/users/carol/recommendations").status_code == 200


def test_refused_retrain_through_the_endpoint_keeps_the_model(synth_files, tmp_path):
    model_path, train_csv, _ = synth_files
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with open_store(db) as st:
        _spam(st, mfrec.load_model(model_path))
    app = create_app(model_path, db, KEY, train_data=str(train_csv), state_dir=tmp_path / "state", watch_interval=0.2)
    with TestClient(app) as c:
        assert c.post("/admin/retrain", headers=AUTH).status_code == 202
        job = _wait_job(c)
        assert job["status"] == "refused" and job["candidate"] > job["reference"]
        assert c.get("/health").json()["model_version"] == 0
        assert 'mfrec_retrains_total{result="refused"} 1' in c.get("/metrics").text


def test_ranking_model_is_validated_by_ndcg(tmp_path):
    r = mfrec.synthetic(200, 80, 4000, factors=4, seed=2)
    path = tmp_path / "ials.mfrec"
    mfrec.ImplicitALS(factors=8, iterations=5, seed=0, threads=1).fit(r).save(path)
    train_csv = tmp_path / "train.csv"
    r.to_dataframe()[["user", "item", "rating"]].to_csv(train_csv, index=False)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with open_store(db) as st:
        st.put_many([("newbie", str(i), 5.0) for i in r.items[:5]])
    out = retrain(path, str(train_csv), db, tmp_path / "state")
    assert out["metric"] == "ndcg@10" and np.isfinite(out["candidate"]) and out["status"] in ("accepted", "refused")


def test_damaged_retrained_model_falls_back_to_the_original(synth_files, tmp_path):
    from mfrec.serve.retrain import write_pointer

    model_path, train_csv, _ = synth_files
    state = tmp_path / "state"
    state.mkdir()
    (state / "model-v3.mfrec").write_bytes(b"truncated")
    write_pointer(state, {"version": 3, "path": str(state / "model-v3.mfrec")})
    with TestClient(create_app(model_path, f"sqlite:///{tmp_path / 'r.db'}", KEY, state_dir=state)) as c:
        assert c.get("/health").json()["model_version"] == 0


def test_reference_and_candidate_differ_only_by_the_data(synth_files, tmp_path):
    """A stored rating equal to a training rating changes nothing: the two holdout fits are the
    same (same id maps, same row order), so the comparison measures the stored data only."""
    model_path, train_csv, r = synth_files
    df = r.to_dataframe()
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with open_store(db) as st:
        st.put(str(df["user"].iloc[0]), str(df["item"].iloc[0]), float(df["rating"].iloc[0]))
    out = retrain(model_path, str(train_csv), db, tmp_path / "state")
    assert out["candidate"] == out["reference"] and out["status"] == "accepted"


def test_merge_keeps_one_user_id_rule_and_tolerates_any_stored_text():
    """A stored user id beyond int64 (or any text) must not stop retraining; users then become
    text, and the training users keep their canonical text ("7"), the one the service uses."""
    train = mfrec.Ratings.from_dataframe(pd.DataFrame({"user": [7, 7, 2], "item": [10, 11, 10], "rating": [4.0, 3.0, 2.0]}))
    stored = pd.DataFrame({"user": ["9999999999999999999", "7"], "item": ["10", "10"], "rating": [1.0, 5.0],
                           "time": [0.0, 0.0]})
    deletions = pd.DataFrame({"user": ["9999999999999999999"], "item": ["11"]}, dtype=object)
    merged, _, _, ignored = merge_ratings(train, stored, deletions, (1.0, 5.0))
    got = merged.to_dataframe().sort_values(["user", "item"])
    assert got[["user", "item", "rating"]].values.tolist() == [
        ["2", 10, 2.0], ["7", 10, 5.0], ["7", 11, 3.0], ["9999999999999999999", 10, 1.0]]
    assert ignored == {"events": 0, "examples": []}


def test_merge_leaves_out_stored_items_of_another_catalogue_and_counts_them():
    train = mfrec.Ratings.from_dataframe(pd.DataFrame({"user": [1, 2], "item": [10, 11], "rating": [4.0, 3.0]}))
    stored = pd.DataFrame({"user": ["1", "1", "1"], "item": ["11", "<img src=x>", "99"], "rating": [5.0, 4.0, 3.0],
                           "time": [0.0] * 3})
    merged, _, _, ignored = merge_ratings(train, stored, pd.DataFrame({"user": [], "item": []}, dtype=object), (1.0, 5.0))
    assert sorted(map(tuple, merged.to_dataframe()[["user", "item"]].values.tolist())) == [(1, 10), (1, 11), (2, 11)]
    assert ignored["events"] == 2 and ("1", "<img src=x>") in ignored["examples"]


def test_training_data_of_another_model_is_refused(synth_files, tmp_path):
    """Serving a model with training data it was not trained on would show one catalogue's
    ratings under another's titles and let a retrain swap the catalogue: refused at start."""
    from mfrec.serve.retrain import check_training

    model_path, train_csv, r = synth_files
    model = mfrec.load_model(model_path)
    check_training(model, r, "train.csv")  # its own data passes
    df = r.to_dataframe()
    other = tmp_path / "other.csv"
    items = np.sort(df["item"].unique())  # the same ids naming other items (as ml-100k's and ml-latest-small's do)
    df.assign(item=df["item"].map(dict(zip(items, np.roll(items, 1))))).to_csv(other, index=False)
    with pytest.raises(ValueError, match="does not match the model.*training ratings are not in it"):
        create_app(model_path, f"sqlite:///{tmp_path / 'r.db'}", KEY, train_data=str(other), state_dir=tmp_path / "s")
    fewer = tmp_path / "fewer.csv"
    df[df["item"] != df["item"].iloc[0]].to_csv(fewer, index=False)
    with pytest.raises(ValueError, match="items are not in it"):
        create_app(model_path, f"sqlite:///{tmp_path / 'r.db'}", KEY, train_data=str(fewer), state_dir=tmp_path / "s")


def test_user_ids_keep_their_meaning_after_a_retrain_makes_them_text(synth_files, tmp_path):
    model_path, train_csv, r = synth_files
    model = mfrec.load_model(model_path)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    user = int(model.user_map_.ids[3])
    rng = np.random.default_rng(1)
    with open_store(db) as st:  # honest ratings from a user with a text id: the retrained users become text
        items = rng.choice(model.item_map_.ids, size=8, replace=False)
        for i, p in zip(items, model.predict(np.full(8, user), items)):
            st.put("new1", str(i), float(np.clip(np.round(p * 2) / 2, 1, 5)))
    out = retrain(model_path, str(train_csv), db, tmp_path / "state")
    assert out["status"] == "accepted", out
    assert mfrec.load_model(out["path"]).user_map_.ids.dtype == object
    app = create_app(model_path, db, KEY, train_data=str(train_csv), state_dir=tmp_path / "state", watch_interval=0)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/health").json()["model_version"] == 1
        padded = f"00{user}"
        assert c.get(f"/users/{padded}/recommendations").status_code == 200
        item = int(model.item_map_.ids[0])
        res = c.put(f"/users/{padded}/ratings/{item}", json={"rating": 2.0}, headers=AUTH)
        assert res.status_code == 200 and res.json()["user"] == str(user)
        mine = {g["item"]: g for g in c.get(f"/users/{user}/ratings").json()["ratings"]}
        assert mine[item]["rating"] == 2.0 and mine[item]["source"] == "stored"
        trained = set(r.to_dataframe().query("user == @user")["item"].tolist())
        assert set(mine) == trained | {item}  # one user: training history and the new write together
        assert_unknown = c.get(f"/users/{user}/recommendations").json()
        assert assert_unknown["folded_in"] and assert_unknown["unknown_items"] == []


def test_damaged_pointer_serves_the_base_model_and_the_next_retrain_repairs_it(synth_files, tmp_path, caplog):
    from mfrec.serve.retrain import PointerError

    model_path, train_csv, _ = synth_files
    state = tmp_path / "state"
    state.mkdir()
    (state / "current.json").write_text('{"version": 3, "path": "/x"')
    with pytest.raises(PointerError, match="current.json is damaged"):
        read_pointer(state)
    (state / "model-v3.mfrec").write_bytes(b"")  # an older version's file: never overwritten
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with caplog.at_level("ERROR", logger="mfrec.serve"):
        app = create_app(model_path, db, KEY, train_data=str(train_csv), state_dir=state, watch_interval=0)
    assert any("current.json is damaged" in rec.getMessage() for rec in caplog.records)
    assert app.state.service.state.version == 0
    out = retrain(model_path, str(train_csv), db, state)
    assert out["status"] == "accepted" and out["version"] == 4, out
    assert read_pointer(state)["version"] == 4


def test_watcher_logs_a_damaged_pointer_once(synth_files, tmp_path, caplog):
    model_path, train_csv, _ = synth_files
    state = tmp_path / "state"
    app = create_app(model_path, f"sqlite:///{tmp_path / 'r.db'}", KEY, state_dir=state, watch_interval=0.05)
    with caplog.at_level("ERROR", logger="mfrec.serve"), TestClient(app):
        state.mkdir(exist_ok=True)
        (state / "current.json").write_text("[1, 2")
        time.sleep(0.6)  # about 12 intervals
        assert app.state.service.state.version == 0
    failures = [rec for rec in caplog.records if "model reload failed" in rec.getMessage()]
    assert len(failures) == 1 and "current.json" in failures[0].getMessage()


def test_training_file_read_with_the_options_it_needs(synth_files, tmp_path):
    """A model trained on a ';'-separated file with a repeated pair can be served and retrained
    when the service reads --train-data with the same options (sep, duplicates)."""
    from mfrec.serve.retrain import load_training

    _, train_csv, r = synth_files
    df = r.to_dataframe()[["user", "item", "rating"]]
    odd = tmp_path / "train-semicolon.csv"
    pd.concat([df, df.iloc[:1]]).to_csv(odd, sep=";", index=False)  # the first pair twice, same rating
    with pytest.raises(Exception, match="--sep|sep="):
        load_training(str(odd))
    got = load_training(str(odd), {"sep": ";", "duplicates": "last"})
    assert len(got) == len(df)
    model = mfrec.BiasedMF(factors=4, epochs=2, seed=0, threads=1).fit(got)
    path = tmp_path / "m.mfrec"
    model.save(path)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    app = create_app(path, db, KEY, train_data=str(odd), state_dir=tmp_path / "state", watch_interval=0,
                     train_read={"sep": ";", "duplicates": "last"})
    assert app.state.service.history is not None
    out = retrain(path, str(odd), db, tmp_path / "state", train_read={"sep": ";", "duplicates": "last"})
    assert out["status"] in ("accepted", "refused") and out["train_ratings"] == len(df)


def test_a_pointer_to_a_file_that_is_no_model_does_not_block_retraining(synth_files, tmp_path):
    model_path, train_csv, _ = synth_files
    state = tmp_path / "state"
    state.mkdir()
    (state / "current.json").write_text(json.dumps({"version": 1, "path": str(train_csv)}))
    out = retrain(model_path, str(train_csv), f"sqlite:///{tmp_path / 'r.db'}", state)
    assert out["status"] == "accepted" and out["version"] == 2, out
    assert read_pointer(state)["version"] == 2
