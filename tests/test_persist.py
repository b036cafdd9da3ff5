"""Model files (mfrec.persist): round trips for every model, the zip layout (JSON + .npy, no
pickle), and every way a file can be bad: truncated, tampered, foreign, another version; saves
are atomic."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec import ModelFileError, NotFittedError
from mfrec.models import MODEL_NAMES

N_USERS, N_ITEMS = 50, 30

SMALL = {
    "baseline": dict(iterations=3),
    "funk-mf": dict(factors=3, epochs=3, threads=1),
    "biased-mf": dict(factors=3, epochs=3, threads=1),
    "svdpp": dict(factors=3, epochs=3, threads=1),
    "als": dict(factors=3, iterations=2, regularization=2.0),
    "bayesian-mf": dict(factors=3, iterations=4, burn_in=2),
    "implicit-als": dict(factors=3, iterations=2, regularization=0.5),
    "cmf": dict(factors=3, iterations=2, regularization=2.0),
}


def test_every_model_has_a_small_configuration():
    assert set(SMALL) == set(MODEL_NAMES)


def _ratings(ids: str) -> mfrec.Ratings:
    r = mfrec.synthetic(N_USERS, N_ITEMS, 600, factors=3, seed=3)
    if ids == "int":
        return r
    df = r.to_dataframe()
    return mfrec.Ratings.from_arrays([f"u{u}" for u in df["user"]], [f"i{i}" for i in df["item"]], df["rating"])


def _item_id(ids: str, k: int):
    return k if ids == "int" else f"i{k}"


def _user_id(ids: str, k: int):
    return k if ids == "int" else f"u{k}"


def _items_table(ids: str) -> pd.DataFrame:
    genres = [["Children", "Animation"], ["Drama"], [], ["Comedy", "Drama"]]
    return pd.DataFrame(
        {"title": [f"Film {k} (19{k % 100:02d})" for k in range(N_ITEMS)],
         "genres": [genres[k % 4] for k in range(N_ITEMS)],
         "year": pd.array([None if k % 7 == 0 else 1900 + k for k in range(N_ITEMS)], dtype="Int64")},
        index=pd.Index([_item_id(ids, k) for k in range(N_ITEMS)], name="item"))


def _fit(name: str, ids: str = "int", items: bool = True):
    m = MODEL_NAMES[name](**SMALL[name]).fit(_ratings(ids))
    if items:
        m.attach_items(_items_table(ids))
    return m


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "m.mfrec"
    _fit("biased-mf").save(path)
    return path


def _rewrite(path: Path, change) -> None:
    """Rewrite the zip at ``path`` with ``change(name, data) -> data | None`` (None drops it)."""
    with zipfile.ZipFile(path) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            new = change(name, data)
            if new is not None:
                zf.writestr(name, new)


def _with_manifest(path: Path, edit) -> None:
    def change(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest)

    _rewrite(path, change)


# ----------------------------------------------------------------------------- round trips
def _assert_same_frames(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        if col in ("score", "similarity"):
            np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
        else:
            assert list(a[col]) == list(b[col]), col


@pytest.mark.parametrize("ids", ["int", "str"])
@pytest.mark.parametrize("name", list(MODEL_NAMES))
def test_round_trip(name, ids, tmp_path):
    m = _fit(name, ids)
    path = tmp_path / f"{name}.mfrec"
    assert m.save(path, metrics={"note": 1.5}) == path
    m2 = mfrec.load_model(path)
    assert type(m2) is type(m)
    assert m2.get_params() == m.get_params()
    pd.testing.assert_frame_equal(m2.history_, m.history_)
    assert m2.best_epoch_ == m.best_epoch_
    assert m2.metrics_ == {"note": 1.5}
    assert m2.rating_scale_ == tuple(m.rating_scale_)
    assert list(m2.users_) == list(m.users_) and list(m2.items_) == list(m.items_)
    for attr in m._fitted_arrays():
        np.testing.assert_array_equal(getattr(m2, attr), getattr(m, attr), err_msg=attr)

    users = [_user_id(ids, k) for k in range(N_USERS)] + [_user_id(ids, 999)]
    items = [_item_id(ids, k % N_ITEMS) for k in range(N_USERS)] + [_item_id(ids, 0)]
    np.testing.assert_array_equal(m2.predict(users, items), m.predict(users, items))
    for u in (0, 7, 49):
        _assert_same_frames(m2.recommend(_user_id(ids, u), n=8), m.recommend(_user_id(ids, u), n=8))
    _assert_same_frames(m2.recommend_many(None, n=4), m.recommend_many(None, n=4))
    rated = {_item_id(ids, 0): 5.0, _item_id(ids, 4): 2.0, _item_id(ids, 9): 4.0}
    _assert_same_frames(m2.recommend_new(rated, n=6, explain=2), m.recommend_new(rated, n=6, explain=2))
    _assert_same_frames(m2.recommend_new({}, n=6), m.recommend_new({}, n=6))
    if m.item_factors_.shape[1]:
        _assert_same_frames(m2.similar_items(_item_id(ids, 3), n=5), m.similar_items(_item_id(ids, 3), n=5))
    else:
        with pytest.raises(ValueError):
            m2.similar_items(_item_id(ids, 3))
    # the item table survives (titles, genre lists, years with gaps)
    assert list(m2.item_info_["title"]) == list(m.item_info_["title"])
    assert list(m2.item_info_["genres"]) == list(m.item_info_["genres"])
    assert m2.item_info_["year"].isna().tolist() == m.item_info_["year"].isna().tolist()
    assert m2.item_info_["year"].dropna().tolist() == m.item_info_["year"].dropna().tolist()
    # a loaded model saves again to an equivalent file
    m2.save(tmp_path / "again.mfrec")
    np.testing.assert_array_equal(mfrec.load_model(tmp_path / "again.mfrec").predict(users, items),
                                  m.predict(users, items))


def test_round_trip_without_item_table_and_with_validation_history(tmp_path):
    r = _ratings("int")
    train, val = mfrec.split.random_split(r, test_size=0.2, seed=0)
    m = mfrec.BiasedMF(factors=3, epochs=6, early_stopping=2, threads=1).fit(train, validation=val)
    assert "validation_rmse" in m.history_
    mfrec.save_model(m, tmp_path / "v.mfrec")
    m2 = mfrec.load_model(tmp_path / "v.mfrec")
    assert m2.item_info_ is None
    pd.testing.assert_frame_equal(m2.history_, m.history_)
    assert m2.best_epoch_ == m.best_epoch_
    assert m2.score(val) == m.score(val)
    assert list(m2.recommend(0, n=5).columns) == ["item", "score"]


def test_round_trip_after_add_user_svdpp(tmp_path):
    m = _fit("svdpp")
    m.add_user(1000, {0: 5.0, 3: 1.0})
    m.save(tmp_path / "s.mfrec")
    m2 = mfrec.load_model(tmp_path / "s.mfrec")
    np.testing.assert_array_equal(m2.explicit_user_factors_, m.explicit_user_factors_)
    _assert_same_frames(m2.recommend(1000, n=5), m.recommend(1000, n=5))
    assert not {0, 3} & set(m2.recommend(1000, n=N_ITEMS)["item"])


def test_round_trip_with_a_partial_item_table(tmp_path):
    m = _fit("biased-mf", items=False)
    m.attach_items(_items_table("int").iloc[:5])  # only items 0..4 have metadata
    m.save(tmp_path / "p.mfrec")
    m2 = mfrec.load_model(tmp_path / "p.mfrec")
    a, b = m.recommend(0, n=N_ITEMS), m2.recommend(0, n=N_ITEMS)
    pd.testing.assert_frame_equal(a, b)


def test_saved_file_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = _fit("baseline", items=False).save(tmp_path / "perm.mfrec")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_mixed_id_types_cannot_be_saved(tmp_path):
    m = _fit("biased-mf", items=False)
    m.add_user("guest", {0: 5.0})
    with pytest.raises(ModelFileError, match="mix"):
        m.save(tmp_path / "mixed.mfrec")
    assert list(tmp_path.iterdir()) == []


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        mfrec.BiasedMF().save(tmp_path / "x.mfrec")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- layout
def test_file_is_a_zip_of_manifest_and_plain_npy(saved):
    assert zipfile.is_zipfile(saved)
    with zipfile.ZipFile(saved) as zf:
        names = zf.namelist()
        assert "manifest.json" in names
        others = [n for n in names if n != "manifest.json"]
        assert others and all(n.endswith(".npy") for n in others)
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["format"] == "mfrec-model" and manifest["format_version"] == 1
        assert manifest["model_class"] == "BiasedMF"
        assert sorted(manifest["arrays"]) == sorted(others)
        for name in others:
            data = zf.read(name)
            assert hashlib.sha256(data).hexdigest() == manifest["arrays"][name]
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            assert arr.dtype != object, name


# ----------------------------------------------------------------------------- bad files
def test_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        mfrec.load_model(saved)


def test_tampered_member_fails_its_checksum(saved):
    def change(name, data):
        if name == "arrays/item_factors_.npy":
            b = bytearray(data)
            b[-1] ^= 0x01
            return bytes(b)
        return data

    _rewrite(saved, change)
    with pytest.raises(ModelFileError, match="checksum"):
        mfrec.load_model(saved)


def test_pickled_member_is_refused_even_with_a_matching_checksum(saved):
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    evil = buf.getvalue()

    def change(name, data):
        if name == "arrays/user_bias_.npy":
            return evil
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["arrays"]["arrays/user_bias_.npy"] = hashlib.sha256(evil).hexdigest()
            return json.dumps(manifest)
        return data

    _rewrite(saved, change)
    with pytest.raises(ModelFileError, match="plain array"):
        mfrec.load_model(saved)


def test_wrong_format_version(saved):
    _with_manifest(saved, lambda m: m.update(format_version=99))
    with pytest.raises(ModelFileError, match="version"):
        mfrec.load_model(saved)


def test_foreign_format_name(saved):
    _with_manifest(saved, lambda m: m.update(format="something-else"))
    with pytest.raises(ModelFileError, match="not an mfrec model"):
        mfrec.load_model(saved)


def test_unknown_model_class(saved):
    _with_manifest(saved, lambda m: m.update(model_class="Mystery"))
    with pytest.raises(ModelFileError, match="Mystery"):
        mfrec.load_model(saved)


def test_unknown_parameter_in_manifest(saved):
    _with_manifest(saved, lambda m: m["params"].update(bogus=1))
    with pytest.raises(ModelFileError, match="parameters"):
        mfrec.load_model(saved)


def test_missing_member(saved):
    _rewrite(saved, lambda name, data: None if name == "arrays/item_bias_.npy" else data)
    with pytest.raises(ModelFileError, match="item_bias_"):
        mfrec.load_model(saved)


def test_damaged_manifest(saved):
    _rewrite(saved, lambda name, data: b"{not json" if name == "manifest.json" else data)
    with pytest.raises(ModelFileError, match="manifest"):
        mfrec.load_model(saved)


def test_zip_without_manifest(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="manifest"):
        mfrec.load_model(path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(ModelFileError):
        mfrec.load_model(path)
    empty = tmp_path / "empty.mfrec"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError):
        mfrec.load_model(empty)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mfrec"):
        mfrec.load_model(tmp_path / "nope.mfrec")


def test_factor_shapes_inconsistent_with_ids(saved):
    """A file whose members are individually valid but do not fit together."""
    def change(name, data):
        if name == "arrays/item_factors_.npy":
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            buf = io.BytesIO()
            np.save(buf, arr[:-1], allow_pickle=False)
            change.new = buf.getvalue()
            return change.new
        return data

    _rewrite(saved, change)
    _with_manifest(saved, lambda m: m["arrays"].update({"arrays/item_factors_.npy": hashlib.sha256(change.new).hexdigest()}))
    with pytest.raises(ModelFileError, match="shape"):
        mfrec.load_model(saved)


# ----------------------------------------------------------------------------- atomic writes
def _fail_after_first_writestr(monkeypatch):
    real = zipfile.ZipFile.writestr
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(args[0] if args else None)
        if len(calls) > 1:
            raise OSError("disk full (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", flaky)
    return calls


def test_failed_save_leaves_the_previous_file_untouched(saved, monkeypatch):
    before = saved.read_bytes()
    other = _fit("als")
    calls = _fail_after_first_writestr(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        other.save(saved)
    assert len(calls) == 2
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]
    assert type(mfrec.load_model(saved)).__name__ == "BiasedMF"


def test_failed_save_to_a_new_path_leaves_nothing(tmp_path, monkeypatch):
    m = _fit("baseline")
    _fail_after_first_writestr(monkeypatch)
    with pytest.raises(OSError):
        m.save(tmp_path / "sub" / "new.mfrec")
    monkeypatch.undo()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
