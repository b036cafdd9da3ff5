"""Model files deflate their text members (manifest, ids, titles, genres) within the loader's
zip-bomb limit and store numeric arrays; old all-stored files still load."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec import persist


def _fit(items: pd.DataFrame | None = None, users: str = "int") -> mfrec.BiasedMF:
    r = mfrec.synthetic(60, 40, 900, seed=1)
    if users == "str":
        df = r.to_dataframe()
        df["user"] = "u" + df["user"].astype(str)
        r = mfrec.Ratings.from_dataframe(df, "user", "item", "rating")
    model = mfrec.BiasedMF(factors=4, epochs=2, seed=0).fit(r)
    if items is not None:
        model.attach_items(items)
    return model


def _items(title: str = "A title that repeats (1995)") -> pd.DataFrame:
    ids = np.arange(40)
    return pd.DataFrame({"title": [f"{title} {i}" for i in ids], "genres": [["Drama", "Comedy"]] * 40,
                         "year": 1995}, index=pd.Index(ids, name="item"))


def test_text_members_deflated_numeric_stored_and_round_trip(tmp_path):
    model = _fit(_items(), users="str")
    path = model.save(tmp_path / "m.mfrec")
    with zipfile.ZipFile(path) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds["manifest.json"] == zipfile.ZIP_DEFLATED
    assert kinds["arrays/item_title.npy"] == zipfile.ZIP_DEFLATED
    assert kinds["arrays/item_genres.npy"] == zipfile.ZIP_DEFLATED
    assert kinds["arrays/user_ids.npy"] == zipfile.ZIP_DEFLATED  # text ids
    for name in ("arrays/user_factors_.npy", "arrays/item_factors_.npy", "arrays/item_bias_.npy", "arrays/item_ids.npy"):
        assert kinds[name] == zipfile.ZIP_STORED, name
    loaded = mfrec.load_model(path)
    users, items = model.users_[:10], model.items_[:10]
    np.testing.assert_array_equal(loaded.predict(users, items), model.predict(users, items))
    pd.testing.assert_frame_equal(loaded.recommend(users[0], n=5), model.recommend(users[0], n=5))


def test_member_beyond_the_bomb_limit_at_every_level_is_stored(tmp_path, monkeypatch):
    """Titles that deflate far beyond the limit are stored, never written as a file load refuses."""
    monkeypatch.setattr(persist, "MAX_DEFLATE_RATIO", 2)
    model = _fit(_items(title="x" * 5000))
    path = model.save(tmp_path / "m.mfrec")
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("arrays/item_title.npy")
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size > 2**16
    assert mfrec.load_model(path).recommend(model.users_[0], n=3)["title"].str.startswith("x").all()


def _deflated_size(data: bytes, level: int) -> int:
    import zlib

    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return len(c.compress(data) + c.flush())


def test_level_is_lowered_to_fit_the_limit(monkeypatch):
    rng = np.random.default_rng(0)
    data = np.array(rng.choice(["Drama", "Comedy|Drama", "Action|Sci-Fi|Thriller"], 100_000)).tobytes()
    best, fast = len(data) / _deflated_size(data, 9), len(data) / _deflated_size(data, 1)
    assert best > fast * 1.2
    monkeypatch.setattr(persist, "MAX_DEFLATE_RATIO", int((best + fast) / 2))
    method, level = persist._member_compression(data, text=True)
    assert method == zipfile.ZIP_DEFLATED and level is not None and level < 9
    assert persist._inflate_allowed(len(data), _deflated_size(data, level))
    assert persist._member_compression(np.arange(10).tobytes(), text=False) == (zipfile.ZIP_STORED, None)


def test_all_stored_file_of_before_still_loads(tmp_path):
    model = _fit(_items())
    path = model.save(tmp_path / "m.mfrec")
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert mfrec.load_model(path).recommend(model.users_[0], n=3)["title"].notna().all()


@pytest.mark.parametrize("ratio", [65, 1000])
def test_deflated_text_member_beyond_the_limit_is_still_refused(tmp_path, ratio):
    model = _fit(_items())
    path = model.save(tmp_path / "m.mfrec")
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    big = b"\x00" * (2**16 + ratio * 4096)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if name == "arrays/item_title.npy":
                data = data + big  # padding that deflates to almost nothing
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    with pytest.raises(mfrec.ModelFileError, match="zip bomb"):
        mfrec.load_model(path)
