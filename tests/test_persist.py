"""Model files (mfrec.persist): round trips (every model's own is in its ModelContract), the zip
layout (JSON + .npy, no pickle), and every way a file can be bad: truncated, tampered, foreign,
another version; saves are atomic."""

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

#: the models these file-format tests save (every model's own round trip is in its ModelContract,
#: mfrec.testing, run by tests/models/test_<model>.py)
CONFIGS = {
    "baseline": dict(iterations=3),
    "biased-mf": dict(factors=3, epochs=3, threads=1),
    "svdpp": dict(factors=3, epochs=3, threads=1),
    "als": dict(factors=3, iterations=2, regularization=2.0),
    "bayesian-mf": dict(factors=3, iterations=4, burn_in=2),
}


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
    m = MODEL_NAMES[name](**CONFIGS[name]).fit(_ratings(ids))
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
    import pandas as pd

    df = pd.DataFrame({"user": pd.Series([1, 1, "a", "a"], dtype=object), "item": [0, 1, 0, 1],
                       "rating": [5.0, 3.0, 4.0, 2.0]})
    m = mfrec.Baseline().fit(df)
    with pytest.raises(ModelFileError, match="mix types.*int64 ids or str ids"):
        m.save(tmp_path / "mixed.mfrec")
    assert list(tmp_path.iterdir()) == []


def test_add_user_keeps_the_model_savable_and_consistent(tmp_path):
    """A new user's id must have the model's id type, and must not name an existing user the
    way lookups read ids ("1" is user 1): refused at once, the model unchanged and savable."""
    m = _fit("biased-mf", items=False)
    n = len(m.user_map_)
    first = int(m.user_map_.ids[0])
    for bad, match in ((str(first), "already in the model"), ("guest", "integers"), (2.5, "integers"),
                       ((1, 2), "integers"), (True, "integers"), (2**64, "outside int64")):
        with pytest.raises(ValueError, match=match):
            m.add_user(bad, {0: 5.0})
        assert len(m.user_map_) == n and m.user_factors_.shape[0] == n
    m.add_user(10**6, {0: 5.0})
    m.save(tmp_path / "ok.mfrec")
    assert 10**6 in mfrec.load_model(tmp_path / "ok.mfrec").user_map_


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


# ----------------------------------------------------------------------------- crafted files
# Files whose members were rewritten *and* whose manifest checksums were updated: the checksum
# passes, so every other check must catch them (issue 13, section 2).
def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _craft(path: Path, arrays: dict | None = None, edit=None, compress: dict | None = None) -> None:
    """Rewrite ``path``: ``arrays`` maps a name to a new array, raw bytes, or None (drop it);
    ``edit(manifest)`` changes the manifest; checksums are recomputed so they pass."""
    arrays = arrays or {}
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members.pop("manifest.json"))
    for name, new in arrays.items():
        member = f"arrays/{name}.npy"
        if new is None:
            members.pop(member, None)
            manifest["arrays"].pop(member, None)
            continue
        members[member] = new if isinstance(new, bytes) else _npy(np.asarray(new))
    for member, data in members.items():
        manifest["arrays"][member] = hashlib.sha256(data).hexdigest()
    if edit is not None:
        edit(manifest)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for member, data in members.items():
            zf.writestr(member, data, compress_type=(compress or {}).get(member, zipfile.ZIP_STORED))


def _array(path: Path, name: str) -> np.ndarray:
    with zipfile.ZipFile(path) as zf:
        return np.load(io.BytesIO(zf.read(f"arrays/{name}.npy")), allow_pickle=False)


def _refused(path: Path, match: str) -> ModelFileError:
    with pytest.raises(ModelFileError, match=match) as info:
        mfrec.load_model(path)
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize("case", [
    "wide_user_factors", "short_item_bias", "flat_factors", "mismatched_widths", "short_user_ids",
    "short_seen_indptr", "wide_both"])
def test_shapes_must_fit_the_id_maps_and_each_other(saved, case):
    P, Q = _array(saved, "user_factors_"), _array(saved, "item_factors_")
    change = {
        # (2, 4000000) user factors with (2, 1) items made predict segfault
        "wide_user_factors": {"user_factors_": np.zeros((2, 400_000), np.float32), "item_factors_": Q[:2, :1]},
        # an item bias shorter than the item map made recommend read past the array
        "short_item_bias": {"item_bias_": _array(saved, "item_bias_")[:-3]},
        "flat_factors": {"user_factors_": P.ravel()},
        "mismatched_widths": {"user_factors_": np.hstack([P, P[:, :1]])},
        "short_user_ids": {"user_ids": _array(saved, "user_ids")[:-1]},
        "short_seen_indptr": {"seen_indptr": _array(saved, "seen_indptr")[:-1]},
        "wide_both": {"user_factors_": np.hstack([P, P]), "item_factors_": np.hstack([Q, Q])},  # != factors=3
    }[case]
    _craft(saved, change)
    _refused(saved, "shape|dimension")


def test_nan_factors_are_refused(saved):
    Q = _array(saved, "item_factors_").copy()
    Q[4, 1] = np.nan
    _craft(saved, {"item_factors_": Q})
    _refused(saved, "item_factors_ has NaN")


def test_infinite_bias_is_refused(saved):
    b = _array(saved, "user_bias_").copy()
    b[0] = np.inf
    _craft(saved, {"user_bias_": b})
    _refused(saved, "user_bias_ has NaN or infinite")


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex64", ">f4"])
def test_factor_dtypes_other_than_the_models_are_refused(saved, dtype):
    _craft(saved, {"user_factors_": _array(saved, "user_factors_").astype(dtype)})
    _refused(saved, "user_factors_ has (dtype|non-native)")


def test_ids_must_be_int64_or_text_and_unique(saved, tmp_path):
    ids = _array(saved, "user_ids")
    _craft(saved, {"user_ids": ids.astype(np.float64)})
    _refused(saved, "user_ids has dtype")
    dup = ids.copy()
    dup[1] = dup[0]
    _craft(saved, {"user_ids": dup})
    _refused(saved, "duplicate")


def test_seen_matrix_must_be_a_valid_csr(saved):
    indptr, indices = _array(saved, "seen_indptr"), _array(saved, "seen_indices")
    bad = indices.copy()
    bad[0] = N_ITEMS + 5
    _craft(saved, {"seen_indices": bad})
    _refused(saved, "seen_indices")
    backwards = indptr.copy()
    backwards[3], backwards[4] = backwards[4], backwards[3]
    _craft(saved, {"seen_indices": indices, "seen_indptr": backwards})
    _refused(saved, "seen_indptr")


def test_unknown_array_never_becomes_an_attribute(saved):
    _craft(saved, {"predict": np.zeros(3)})
    _refused(saved, "predict")
    _craft(saved, {"predict": None, "user_ids": b"\x93NUMPY junk"})  # and a non-array member
    _refused(saved, "user_ids")


def test_missing_declared_array(saved):
    _craft(saved, {"user_bias_": None})
    _refused(saved, "user_bias_")


def test_member_not_listed_in_the_manifest(saved):
    with zipfile.ZipFile(saved, "a") as zf:
        zf.writestr("arrays/extra.npy", _npy(np.zeros(2)))
    _refused(saved, "not listed")


def test_invalid_parameters_use_the_models_own_checks(saved):
    _craft(saved, edit=lambda m: m["params"].update(factors="abc"))
    _refused(saved, "factors")
    _craft(saved, edit=lambda m: m["params"].update(factors=3, learning_rate=-1.0))
    _refused(saved, "learning_rate")


def test_parameters_must_be_exactly_the_classes(saved):
    _craft(saved, edit=lambda m: m["params"].pop("regularization"))
    _refused(saved, "missing.*regularization")


def test_a_file_relabelled_as_another_class_fails_at_load(saved):
    def to_svdpp(m):
        m["model_class"] = "SVDpp"
        m["params"]["implicit_regularization"] = None
    _craft(saved, edit=to_svdpp)  # the parameters now fit SVDpp, the arrays do not
    _refused(saved, "explicit_user_factors_")
    _craft(saved, edit=lambda m: m.update(model_class="FunkMF"))
    _refused(saved, "do not fit FunkMF")


def test_bayesian_draws_must_agree(tmp_path):
    path = tmp_path / "b.mfrec"
    _fit("bayesian-mf", items=False).save(path)
    assert mfrec.load_model(path).n_draws_ == 2
    _craft(path, {"sample_noise_precision_": np.ones(3)})
    _refused(path, "shape")
    _craft(path, {"sample_noise_precision_": np.array([1.5, -1.0])})
    _refused(path, "positive precisions")


def test_cmf_encoder_state_must_parse(tmp_path):
    r = _ratings("int")
    users = pd.DataFrame({"age": np.arange(N_USERS) % 50 + 18}, index=pd.Index(range(N_USERS), name="user"))
    path = tmp_path / "c.mfrec"
    mfrec.CMF(factors=3, iterations=2).fit(r, user_attributes=users).save(path)
    assert mfrec.load_model(path).attribute_encoder("user") is not None
    _craft(path, {"user_attribute_encoder_": np.array(["{not json"])})
    _refused(path, "encoder")


# ----------------------------------------------------------------------------- manifest damage
@pytest.mark.parametrize("key", ["model_class", "params", "rating_scale", "global_mean", "train_mean", "n_train",
                                 "n_users", "n_items", "best_epoch", "history", "metrics", "item_table", "arrays"])
def test_manifest_missing_a_key(saved, key):
    _craft(saved, edit=lambda m: m.pop(key))
    err = _refused(saved, f"manifest has no '{key}'")
    assert str(err) != key  # the CLI showed "error: rating_scale" and nothing else


@pytest.mark.parametrize("key,value", [
    ("params", [1, 2]), ("arrays", ["arrays/user_ids.npy"]), ("rating_scale", [5, 1]), ("rating_scale", "1-5"),
    ("global_mean", float("nan")), ("n_users", "50"), ("n_users", True), ("n_items", -1), ("n_items", 2**40),
    ("history", {"epoch": 1}), ("history", [[1, 2]]), ("item_table", ["title", "plot"]), ("metrics", []),
    ("arrays", {"arrays/user_ids.npy": "not-a-digest"}), ("model_class", 7),
])
def test_manifest_values_of_the_wrong_type(saved, key, value):
    _craft(saved, edit=lambda m: m.update({key: value}))
    _refused(saved, f"'{key}'")


def test_manifest_that_is_not_an_object(saved):
    _rewrite(saved, lambda name, data: b"[1, 2, 3]" if name == "manifest.json" else data)
    _refused(saved, "manifest is damaged")
    _rewrite(saved, lambda name, data: b"[" * 100_000 if name == "manifest.json" else data)
    _refused(saved, "manifest is damaged")


def test_n_users_must_match_the_ids(saved):
    _craft(saved, edit=lambda m: m.update(n_users=N_USERS + 1))
    _refused(saved, "shape")


# ----------------------------------------------------------------------------- zip limits
def _peak_mib(fn) -> float:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_zip_bomb_is_refused_before_inflating(saved):
    """A small file whose member inflates to 256 MiB: refused from the declared sizes alone."""
    header = _npy(_array(saved, "user_factors_"))
    with zipfile.ZipFile(saved) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    # the bomb member deflated (ZipFile.open("w") streams it without holding it in memory)
    with zipfile.ZipFile(saved, "w") as zf:
        for name, data in members.items():
            if name != "arrays/user_factors_.npy":
                zf.writestr(name, data)
        info = zipfile.ZipInfo("arrays/user_factors_.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as w:
            w.write(header)
            zeros = bytes(2**20)
            for _ in range(256):
                w.write(zeros)
    assert saved.stat().st_size < 2 * 2**20
    peak = _peak_mib(lambda: _refused(saved, "zip bomb"))
    assert peak < 16


def test_member_larger_than_its_header_says_is_refused(saved):
    data = _npy(_array(saved, "item_bias_")) + bytes(4096)
    _craft(saved, {"item_bias_": data})
    _refused(saved, "declares")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_unsupported_compression_is_refused(saved, method):
    _craft(saved, compress={"arrays/user_bias_.npy": method})
    _refused(saved, "compression")


def test_deflated_file_still_loads(saved, tmp_path):
    with zipfile.ZipFile(saved) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(saved, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert type(mfrec.load_model(saved)).__name__ == "BiasedMF"


def test_encrypted_member_is_refused(saved):
    """The "encrypted" flag set on a member (local and central headers patched in place)."""
    import struct

    raw = bytearray(saved.read_bytes())
    name = b"arrays/item_bias_.npy"
    with zipfile.ZipFile(saved) as zf:
        local = zf.getinfo(name.decode()).header_offset
    raw[local + 6] |= 0x1
    central = raw.find(b"PK\x01\x02")  # the central directory entries
    while central >= 0:
        n = struct.unpack("<H", raw[central + 28:central + 30])[0]
        if raw[central + 46:central + 46 + n] == name:
            raw[central + 8] |= 0x1
            break
        central = raw.find(b"PK\x01\x02", central + 4)
    assert central >= 0
    saved.write_bytes(bytes(raw))
    _refused(saved, "encrypted")


def test_duplicate_member_names_are_refused(saved):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(saved, "a") as zf:
            zf.writestr("arrays/user_bias_.npy", _npy(np.zeros(N_USERS)))
    _refused(saved, "more than once")


# ----------------------------------------------------------------------------- only regular files
def _load_with_timeout(path, seconds: float = 10.0):
    import threading

    box: dict = {}

    def run():
        try:
            box["value"] = mfrec.load_model(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return t.is_alive(), box


def test_dev_zero_is_refused_at_once():
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    hung, box = _load_with_timeout("/dev/zero")
    assert not hung, "load_model('/dev/zero') did not return"
    assert isinstance(box.get("error"), ModelFileError) and "device" in str(box["error"])


def test_fifo_is_refused_without_hanging(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.mfrec"
    os.mkfifo(fifo)
    hung, box = _load_with_timeout(fifo)
    if hung:  # unblock the reader so the thread can end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_model on a FIFO hung")
    assert isinstance(box.get("error"), ModelFileError) and "FIFO" in str(box["error"])


def test_directory_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="directory"):
        mfrec.load_model(tmp_path)


# ----------------------------------------------------------------------------- saving
def test_resaving_keeps_the_files_mode(saved):
    os.chmod(saved, 0o600)
    _fit("baseline", items=False).save(saved)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    os.chmod(saved, 0o640)
    _fit("baseline", items=False).save(saved)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o640


def test_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = _fit("baseline", items=False).save(tmp_path / "private.mfrec")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_inconsistent_model_is_not_saved(tmp_path):
    m = _fit("biased-mf", items=False)
    m.item_bias_ = m.item_bias_[:-1]
    with pytest.raises(ModelFileError, match="item_bias_"):
        m.save(tmp_path / "bad.mfrec")
    assert list(tmp_path.iterdir()) == []


def test_too_many_members_are_refused(saved):
    with zipfile.ZipFile(saved, "a") as zf:
        for k in range(300):
            zf.writestr(f"junk/{k}", b"")
    _refused(saved, "members")


# ----------------------------------------------------------------------------- magnitudes (hostile-input pass)
@pytest.mark.parametrize("name,value", [("user_factors_", 1e30), ("item_factors_", -1e7), ("item_bias_", 3e6)])
def test_finite_but_huge_factors_and_biases_are_refused(saved, name, value):
    """1e30 is finite: it loaded, and predict overflowed to inf (clipped: silently the top rating)."""
    arr = _array(saved, name).copy()
    arr.flat[0] = value
    _craft(saved, {name: arr})
    _refused(saved, f"{name}.*magnitude")


def test_large_but_plausible_values_still_load(saved):
    arr = _array(saved, "user_factors_").copy()
    arr.flat[0] = 1e4
    _craft(saved, {"user_factors_": arr})
    assert np.isfinite(mfrec.load_model(saved).predict([_user_id("int", 0)], [_item_id("int", 0)])).all()


def test_a_diverged_model_is_not_saved(tmp_path):
    m = _fit("biased-mf", items=False)
    m.user_factors_ = m.user_factors_.copy()
    m.user_factors_[0, 0] = 1e8
    with pytest.raises(ModelFileError, match="magnitude"):
        m.save(tmp_path / "bad.mfrec")


def test_a_crafted_huge_rating_scale_does_not_lift_the_magnitude_bound(saved):
    arr = _array(saved, "user_factors_").copy()
    arr.flat[0] = 1e30
    _craft(saved, {"user_factors_": arr}, edit=lambda m: m.update(rating_scale=[-1e308, 1e308]))
    _refused(saved, "user_factors_.*magnitude")


@pytest.mark.parametrize("key", ["global_mean", "train_mean"])
def test_finite_but_huge_means_are_refused(saved, key):
    """global_mean=1e300 loaded and every prediction was silently the top of the scale."""
    _craft(saved, edit=lambda m: m.update({key: 1e300}))
    _refused(saved, f"{key}.*beyond")


def test_paths_of_the_wrong_type_and_names_of_other_formats_are_refused(tmp_path, saved):
    """bytes or a file object gave pathlib's TypeError; save('x.csv') worked where the CLI refuses it."""
    with pytest.raises(TypeError, match="str or os.PathLike, got bytes .*decode"):
        mfrec.load_model(os.fsencode(saved))
    with open(saved, "rb") as fh, pytest.raises(TypeError, match="str or os.PathLike, got BufferedReader"):
        mfrec.load_model(fh)
    model = mfrec.load_model(saved)
    for name in ("x.csv", "u.data", "m.JSON", "u1.test", "u1.base", "u.item", "r.tab", "r.csv.gz", "r.jsonl"):
        with pytest.raises(ValueError, match="a model file is not a"):
            model.save(tmp_path / name)
        assert not (tmp_path / name).exists()
    assert mfrec.load_model(model.save(tmp_path / "x.bin")).n_train_ == model.n_train_


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(format_version=True), "format version True"),
])
def test_manifest_values_that_passed_the_checks_are_refused(saved, edit, match):
    _with_manifest(saved, edit)
    with pytest.raises(ModelFileError, match=match):
        mfrec.load_model(saved)


def test_save_writes_undefined_metrics_as_null_and_old_files_with_odd_metrics_load(tmp_path, saved):
    """evaluate() gives NaN for an undefined metric; saving it failed, and files of before holding
    NaN or nested metrics were refused."""
    model = mfrec.load_model(saved)
    back = mfrec.load_model(model.save(tmp_path / "m2.mfrec", metrics={"ndcg@10": float("nan"), "rmse": 0.9}))
    assert back.metrics_ == {"ndcg@10": None, "rmse": 0.9}
    _with_manifest(saved, lambda m: m.update(metrics={"folds": [0.9, float("nan")], "by": {"a": 1}}))
    assert mfrec.load_model(saved).metrics_["by"] == {"a": 1}


def test_files_of_before_and_of_newer_versions_still_load(saved):
    """A text metric (saved before metrics had to be numbers) loads; an unknown key warns."""
    _with_manifest(saved, lambda m: m.update(metrics={"note": "u1", "rmse": 0.9}, added_later=1))
    with pytest.warns(UserWarning, match=r"ignored unknown manifest key\(s\) \['added_later'\]"):
        model = mfrec.load_model(saved)
    assert model.metrics_["note"] == "u1"
    model.save(saved)  # and saves again
