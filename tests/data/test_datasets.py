"""MovieLens loading: a local HTTP server stands in for GroupLens; real-data tests read MFREC_DATA_DIR."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mfrec.data.datasets import DATASETS, Dataset, find_items, load_dataset
from mfrec.errors import DataError, DatasetNotFoundError
from tests.conftest import dataset_dir

# ------------------------------------------------------------------------------ a tiny ml-100k
U_DATA = "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n2\t3\t1\t881250952\n3\t2\t2\t881250953\n"
U1_BASE = "1\t1\t5\t881250949\n2\t1\t4\t881250951\n3\t2\t2\t881250953\n"
U1_TEST = "1\t2\t3\t881250950\n2\t3\t1\t881250952\n"
FLAGS_TOY = "|".join("0 0 0 1 1 1".split() + ["0"] * 13)  # Animation, Children's, Comedy
FLAGS_UNKNOWN = "|".join(["1"] + ["0"] * 18)
U_ITEM = (
    f"1|Toy Story (1995)|01-Jan-1995||http://x|{FLAGS_TOY}\n"
    f"2|Caf\xe9 Society|01-Jan-1994||http://x|{FLAGS_TOY}\n"
    f"3|unknown||||{FLAGS_UNKNOWN}\n"
)
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|T8H1N\n"


def make_zip(path: Path, files: dict[str, str], folder: str = "ml-100k", encoding: str = "latin-1") -> str:
    """Write a zip of ``folder/<file>`` entries; return its MD5."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"{folder}/{name}" if folder else name, text.encode(encoding))
    return hashlib.md5(path.read_bytes()).hexdigest()


ML100K_FILES = {"u.data": U_DATA, "u.item": U_ITEM, "u.user": U_USER, "u1.base": U1_BASE, "u1.test": U1_TEST}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/'www'; yields (folder, base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/movielens", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache; no MFREC_DATA_DIR, so nothing real is found."""
    c = tmp_path / "cache"
    monkeypatch.setenv("MFREC_CACHE_DIR", str(c))
    monkeypatch.delenv("MFREC_DATA_DIR", raising=False)
    monkeypatch.delenv("MFREC_DOWNLOAD_URL", raising=False)
    return c


def set_md5(monkeypatch, name: str, md5: str | None) -> None:
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], md5=md5))


def publish(server, monkeypatch, files=ML100K_FILES, name="ml-100k", folder="ml-100k", md5: str | None = "auto") -> str:
    root, url, _ = server
    (root / "movielens").mkdir(exist_ok=True)
    digest = make_zip(root / "movielens" / f"{name}.zip", files, folder)
    monkeypatch.setenv("MFREC_DOWNLOAD_URL", url)
    set_md5(monkeypatch, name, digest if md5 == "auto" else md5)
    return digest


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# ------------------------------------------------------------------------------ download / cache
def test_download_verify_unpack_then_cache(server, cache, monkeypatch):
    publish(server, monkeypatch)
    ds = load_dataset("ml-100k", progress=False)
    assert isinstance(ds, Dataset) and ds.path == cache / "ml-100k"
    assert leftovers(cache) == ["ml-100k"]  # no zip or temp folder left
    assert len(ds.ratings) == 5 and ds.ratings.timestamps is not None
    assert list(ds.items.index) == [1, 2, 3]
    assert ds.items.loc[1, "genres"] == ["Animation", "Children", "Comedy"]
    assert ds.items.loc[3, "genres"] == []  # "unknown" flag
    assert ds.items.loc[2, "title"] == "Caf\xe9 Society" and ds.items.loc[2, "year"] == 1994  # from the date
    assert pd.isna(ds.items.loc[3, "year"]) and str(ds.items["year"].dtype) == "Int64"
    assert ds.users.loc[3, "zip"] == "T8H1N" and ds.users.loc[1, "occupation"] == "technician"
    train, test = ds.official_split("u1")
    assert (len(train), len(test)) == (3, 2)
    assert train.user_map is ds.ratings.user_map and test.item_map is ds.ratings.item_map

    hits = server[2]
    assert len(hits) == 1
    again = load_dataset("ml-100k", progress=False)
    assert len(again.ratings) == 5 and len(hits) == 1  # served from the cache


def test_a_split_whose_test_repeats_training_pairs_is_refused(server, cache, monkeypatch):
    """An edited u1.test holding u1.base pairs would score a model on its own training ratings."""
    publish(server, monkeypatch, dict(ML100K_FILES, **{"u1.test": U1_TEST + "3\t2\t2\t881250953\n"}))
    ds = load_dataset("ml-100k", progress=False)
    with pytest.raises(DataError, match=r"u1.test shares 1 .* pairs with u1.base .*user 3, item 2\)") as exc:
        ds.official_split("u1")
    assert exc.value.source.endswith("u1.test")


def test_download_with_progress_bar(server, cache, monkeypatch):
    publish(server, monkeypatch)
    assert len(load_dataset("ml-100k", progress=True).ratings) == 5


def test_wrong_md5_leaves_nothing(server, cache, monkeypatch):
    publish(server, monkeypatch, md5="0" * 32)
    with pytest.raises(DataError, match="MD5 checksum mismatch"):
        load_dataset("ml-100k", progress=False)
    assert leftovers(cache) == []


def test_http_404_is_not_found(server, cache, monkeypatch):
    monkeypatch.setenv("MFREC_DOWNLOAD_URL", server[1] + "/nothing-here")
    with pytest.raises(DatasetNotFoundError, match="404") as exc:
        load_dataset("ml-100k", progress=False)
    assert server[1] + "/nothing-here/ml-100k.zip" in str(exc.value)
    assert leftovers(cache) == []


def test_unreachable_server_is_not_found(cache, monkeypatch):
    monkeypatch.setenv("MFREC_DOWNLOAD_URL", "http://127.0.0.1:9/movielens")  # discard port: refused
    with pytest.raises(DatasetNotFoundError, match="download failed"):
        load_dataset("ml-100k", progress=False)
    assert leftovers(cache) == []


def test_no_download_names_url_and_places(cache, tmp_path):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset("ml-100k", data_dir=tmp_path / "mine", download=False)
    msg = str(exc.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in msg
    assert "MFREC_DATA_DIR" in msg and str(tmp_path / "mine") in msg and str(cache) in msg
    assert "'ml-100k'" in msg


def test_local_zip_in_data_dir_is_unpacked(cache, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    set_md5(monkeypatch, "ml-100k", make_zip(mine / "ml-100k.zip", ML100K_FILES))
    ds = load_dataset("ml-100k", data_dir=mine, download=False)
    assert ds.path == cache / "ml-100k" and len(ds.ratings) == 5
    assert (mine / "ml-100k.zip").exists() and not (mine / "ml-100k").exists()
    assert leftovers(cache) == ["ml-100k"]


def test_local_zip_with_wrong_md5(cache, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    make_zip(mine / "ml-100k.zip", ML100K_FILES)
    set_md5(monkeypatch, "ml-100k", "1" * 32)
    with pytest.raises(DataError, match=r"ml-100k\.zip.*MD5"):
        load_dataset("ml-100k", data_dir=mine, download=False)
    assert leftovers(cache) == []


def test_corrupt_local_zip(cache, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ml-latest-small.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"ml-latest-small\.zip.*not a valid zip"):
        load_dataset("ml-latest-small", data_dir=mine, download=False)
    assert leftovers(cache) == []


def test_incomplete_cache_folder_is_replaced(cache, tmp_path, monkeypatch):
    (cache / "ml-100k").mkdir(parents=True)
    (cache / "ml-100k" / "u.item").write_text("stale")
    mine = tmp_path / "mine"
    mine.mkdir()
    set_md5(monkeypatch, "ml-100k", make_zip(mine / "ml-100k.zip", ML100K_FILES))
    ds = load_dataset("ml-100k", data_dir=mine, download=False)
    assert ds.path == cache / "ml-100k" and len(ds.items) == 3
    assert leftovers(cache) == ["ml-100k"]


def test_incomplete_folder_is_skipped(cache, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    (mine / "ml-100k").mkdir(parents=True)
    (mine / "ml-100k" / "u.item").write_text(U_ITEM, encoding="latin-1")
    with pytest.raises(DatasetNotFoundError, match=r"incomplete \(missing u\.data, u\.user\)"):
        load_dataset("ml-100k", data_dir=mine, download=False)
    # a complete copy further down the lookup order is used instead
    good = tmp_path / "good"
    (good / "ml-100k").mkdir(parents=True)
    for name, text in ML100K_FILES.items():
        (good / "ml-100k" / name).write_text(text, encoding="latin-1")
    monkeypatch.setenv("MFREC_DATA_DIR", str(good))
    assert load_dataset("ml-100k", data_dir=mine, download=False).path == good / "ml-100k"


def test_zip_path_traversal_is_refused(server, cache, monkeypatch):
    root, url, _ = server
    (root / "movielens").mkdir()
    zpath = root / "movielens" / "ml-100k.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, text in ML100K_FILES.items():
            zf.writestr(f"ml-100k/{name}", text)
        zf.writestr("../../evil.txt", "x")
    monkeypatch.setenv("MFREC_DOWNLOAD_URL", url)
    set_md5(monkeypatch, "ml-100k", hashlib.md5(zpath.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="unsafe entry"):
        load_dataset("ml-100k", progress=False)
    assert leftovers(cache) == []
    assert not (cache.parent / "evil.txt").exists()


CSV_FILES = {
    "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,2,0.5,964982704\n2,1,3.0,964982705\n",
    "movies.csv": (
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n'
        '2,"American President, The (1995)",Comedy|Drama|Romance\n3,Ben-hur (2016),(no genres listed)\n'
    ),
}


def test_csv_dataset_without_md5_checks_layout(server, cache, monkeypatch):
    publish(server, monkeypatch, CSV_FILES, "ml-latest-small", "ml-latest-small", md5=None)
    ds = load_dataset("ml-latest-small", progress=False)
    assert ds.users is None and len(ds.ratings) == 3
    assert ds.items.loc[2, "title"] == "American President, The (1995)"
    assert ds.items.loc[3, "genres"] == [] and ds.items.loc[3, "year"] == 2016
    with pytest.raises(ValueError, match="only ml-100k"):
        ds.official_split("u1")


def test_csv_dataset_with_bad_header_leaves_nothing(server, cache, monkeypatch):
    bad = dict(CSV_FILES, **{"ratings.csv": "user,item,rating\n1,1,4\n"})
    publish(server, monkeypatch, bad, "ml-latest-small", "ml-latest-small", md5=None)
    with pytest.raises(DataError, match="expected the header"):
        load_dataset("ml-latest-small", progress=False)
    assert leftovers(cache) == []


def test_ml1m_dat_format(cache, tmp_path):
    folder = tmp_path / "mine" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::1::5::978300760\n2::2::3::978302109\n")
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Star Trek: Generations (1994)::Action\n"
        "3::Caf\xe9 Au Lait (1993)::Comedy\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_dataset("ml-1m", data_dir=folder.parent, download=False)
    assert ds.items.loc[1, "genres"] == ["Animation", "Children", "Comedy"]
    assert ds.items.loc[2, "title"] == "Star Trek: Generations (1994)" and ds.items.loc[2, "year"] == 1994
    assert ds.items.loc[3, "title"].startswith("Caf\xe9")
    assert ds.users.loc[1].tolist() == [1, "F", "K-12 student", "48067"]
    assert ds.users.loc[2, "occupation"] == "self-employed"


def test_rating_outside_scale_is_an_error(cache, tmp_path):
    folder = tmp_path / "mine" / "ml-100k"
    folder.mkdir(parents=True)
    for name, text in ML100K_FILES.items():
        (folder / name).write_text(text, encoding="latin-1")
    (folder / "u.data").write_text(U_DATA + "3\t3\t7\t881250954\n")
    with pytest.raises(DataError, match=r"u\.data, line 6.*outside the scale"):
        load_dataset("ml-100k", data_dir=folder.parent, download=False)


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="ml-100k.*ml-latest-small"):
        load_dataset("ml-2m")


def test_find_items_on_a_frame():
    items = pd.DataFrame(
        {"title": ["Story of Toys (2000)", "Toy Story 2 (1999)", "Toy Story (1995)", "Lion King, The (1994)"],
         "genres": [[], [], [], []], "year": pd.array([2000, 1999, 1995, 1994], dtype="Int64")},
        index=pd.Index([10, 20, 30, 40], name="item"),
    )
    assert list(find_items(items, "TOY-story!").index) == [30, 20]
    assert list(find_items(items, "the lion king").index) == [40]
    assert list(find_items(items, "story").index) == [10, 30, 20]  # title prefix first
    assert list(find_items(items, "story", n=1).index) == [10]
    assert find_items(items, "zzz").empty
    with pytest.raises(ValueError, match="empty"):
        find_items(items, "  ?! ")


# ------------------------------------------------------------------------------ real data
@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A private empty cache (MFREC_DATA_DIR is left as set, for dataset_dir)."""
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def real_root(own_cache) -> Path:
    return dataset_dir("ml-100k").parent


def test_real_ml100k(real_root):
    ds = load_dataset("ml-100k", data_dir=real_root, download=False)
    r = ds.ratings
    assert (len(r), r.n_users, r.n_items) == (100000, 943, 1682)
    assert r.rating_range == (1.0, 5.0) and r.timestamps is not None
    assert len(ds.items) == 1682 and set(ds.items.columns) == {"title", "genres", "year"}
    assert ds.items.loc[1, "title"] == "Toy Story (1995)" and ds.items.loc[1, "year"] == 1995
    assert ds.items.loc[1, "genres"] == ["Animation", "Children", "Comedy"]
    assert ds.items["genres"].map(len).gt(0).sum() >= 1680 and ds.items["year"].notna().sum() == 1681
    assert len(ds.users) == 943 and list(ds.users.columns) == ["age", "gender", "occupation", "zip"]
    assert set(ds.users["gender"]) == {"M", "F"}


def test_real_ml100k_official_splits(real_root):
    ds = load_dataset("ml-100k", data_dir=real_root, download=False)
    train, test = ds.official_split("u1")
    assert (len(train), len(test)) == (80000, 20000)
    assert train.user_map is ds.ratings.user_map and test.item_map is ds.ratings.item_map
    key = lambda r: r.user_indices.astype(np.int64) * r.n_items + r.item_indices  # noqa: E731
    assert len(np.intersect1d(key(train), key(test))) == 0
    ua_train, ua_test = ds.official_split("ua")
    assert len(ua_test) == 9430 and len(ua_train) == 90570
    assert np.all(np.bincount(ua_test.user_indices) == 10)
    with pytest.raises(ValueError, match="u1, u2"):
        ds.official_split("u9")


def test_real_ml_latest_small(own_cache):
    root = dataset_dir("ml-latest-small").parent
    ds = load_dataset("ml-latest-small", data_dir=root, download=False)
    r = ds.ratings
    assert (len(r), r.n_users, r.n_items) == (100836, 610, 9724)
    assert len(ds.items) == 9742 and ds.users is None
    toy = ds.items.loc[1]
    assert toy["title"] == "Toy Story (1995)" and toy["year"] == 1995
    assert {"Children", "Animation"} <= set(toy["genres"])
    assert ds.items["genres"].map(lambda g: "(no genres listed)" in g).sum() == 0
    hits = find_items(ds, "toy story")
    assert hits.index[0] == 1 and list(hits.columns) == ["title", "genres", "year"]
    assert ds.summary()["ratings"] == 100836


def test_real_ml1m_incomplete(own_cache):
    folder = dataset_dir("ml-1m")
    if (folder / "ratings.dat").exists():
        pytest.skip("this ml-1m copy is complete")
    with pytest.raises(DatasetNotFoundError, match="incomplete") as exc:
        load_dataset("ml-1m", data_dir=folder.parent, download=False)
    assert "ratings.dat" in str(exc.value) and str(folder) in str(exc.value)


# ----------------------------------------------------------------------------- hostile-input pass
def _ml1m(tmp_path, users: str, movies: bytes | None = None):
    folder = tmp_path / "mine" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::1::5::978300760\n2::2::3::978302109\n")
    (folder / "movies.dat").write_bytes(movies or b"1::Toy Story (1995)::Comedy\n2::Heat (1995)::Action\n")
    (folder / "users.dat").write_text(users)
    return folder.parent


@pytest.mark.parametrize("uid", ["1.5", "+1", "01", "1e3", "x"])
def test_users_file_ids_must_be_plain_integers(cache, tmp_path, uid):
    """'1.5' was truncated to user 1 by to_numeric + astype(int64)."""
    root = _ml1m(tmp_path, f"{uid}::F::1::10::48067\n2::M::56::16::70072\n")
    with pytest.raises(DataError, match=r"users\.dat, line 1, column 'user id'.*not a whole number"):
        load_dataset("ml-1m", data_dir=root, download=False)


def test_users_file_ages_must_be_whole_numbers(cache, tmp_path):
    root = _ml1m(tmp_path, "1::F::1::10::48067\n2::M::56.5::16::70072\n")
    with pytest.raises(DataError, match=r"users\.dat, line 2, column 'age'"):
        load_dataset("ml-1m", data_dir=root, download=False)


def test_a_dat_file_is_read_in_its_dataset_s_declared_encoding_only(cache, tmp_path):
    """ml-1m declares Latin-1 (as GroupLens ships it); ml-10m declares UTF-8, and a byte that is
    not UTF-8 there is an error, not a silent fallback to Latin-1."""
    from mfrec.data.datasets import DATASETS

    assert DATASETS["ml-1m"].encoding == "latin-1" and DATASETS["ml-10m"].encoding == "utf-8"
    folder = tmp_path / "ten" / "ml-10M100K"
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::1::5::978300760\n2::2::3::978302109\n")
    (folder / "movies.dat").write_bytes(b"1::Toy Story (1995)::Comedy\n2::Caf\xe9 (1993)::Comedy\n")
    with pytest.raises(DataError, match=r"movies\.dat, line 2.*not valid utf-8.*byte offset 34"):
        load_dataset("ml-10m", data_dir=folder.parent, download=False)


def test_read_items_refuses_an_ambiguous_dat_encoding_instead_of_mojibake(tmp_path):
    """A user's UTF-8 movies.dat was decoded as Latin-1: 'Café' became 'CafÃ©', silently."""
    from mfrec.data.datasets import read_items

    path = tmp_path / "movies.dat"
    path.write_bytes("1::Café (1993)::Comedy\n2::Heat (1995)::Action\n".encode("utf-8"))
    with pytest.raises(DataError, match="valid UTF-8.*Latin-1.*encoding="):
        read_items(path)
    assert read_items(path, encoding="utf-8").loc[1, "title"] == "Café (1993)"
    path.write_bytes("1::Café (1993)::Comedy\n".encode("latin-1"))  # as GroupLens ships it
    assert read_items(path).loc[1, "title"] == "Café (1993)"
    with pytest.raises(DataError, match="not valid utf-8"):
        read_items(path, encoding="utf-8")
    with pytest.raises(ValueError, match="encoding must be"):
        read_items(path, encoding="nope")


@pytest.mark.parametrize("file, text, fragments", [
    ("u.item", U_ITEM.replace(f"|{FLAGS_TOY}\n2|", "|0|0|0|1\n2|", 1), ("u.item", "line 1", "expected 24", "found 9")),
    ("u.item", U_ITEM.replace("\n2|", "|0|0\n2|", 1), ("u.item", "line 1", "found 26")),
    ("u.item", U_ITEM.replace(f"|{FLAGS_TOY}\n2|", "|" + FLAGS_TOY.replace("1", "x", 1) + "\n2|", 1),
     ("u.item", "line 1", "genre flag 'x'")),
    ("u.item", U_ITEM.replace(f"|{FLAGS_TOY}\n2|", "|" + FLAGS_TOY.replace("1", "2", 1) + "\n2|", 1),
     ("line 1", "genre flag '2'")),
    ("u.user", U_USER.replace("2|53|F|other|94043", "2|53|F"), ("u.user", "line 2", "expected 5", "found 3")),
    ("u.user", U_USER.replace("|94043", "|94043|extra"), ("u.user", "line 2", "found 6")),
    ("u.user", U_USER.replace("|24|", "|" + "9" * 30 + "|"), ("u.user", "ages do not fit a 64-bit integer")),
    ("u.user", U_USER + "1|24|M|technician|85711\n", ("u.user", "line 4", "user id 1 appears twice")),
])
def test_malformed_item_and_user_rows_are_data_errors_naming_the_line(tmp_path, file, text, fragments):
    """A short row was padded (a film lost its genre, a user their occupation); a long row was a
    raw pandas error naming no file; a huge age became negative; a repeated user was kept."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name, body in {**ML100K_FILES, file: text}.items():
        (folder / name).write_text(body, encoding="latin-1")
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", data_dir=tmp_path, download=False)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_a_replaced_zip_is_unpacked_again_over_the_cached_copy(cache, tmp_path, monkeypatch):
    """The cache kept the first zip's copy for good: a partial or broken copy won over the full
    zip that replaced it, with no word."""
    mine = tmp_path / "mine"
    mine.mkdir()
    set_md5(monkeypatch, "ml-100k", None)
    short = {**ML100K_FILES, "u.data": U_DATA.split("\n", 2)[0] + "\n" + U_DATA.split("\n", 2)[1] + "\n"}
    make_zip(mine / "ml-100k.zip", short)
    assert len(load_dataset("ml-100k", data_dir=mine, download=False).ratings) == 2
    assert len(load_dataset("ml-100k", data_dir=mine, download=False).ratings) == 2  # the same zip: the cache
    make_zip(mine / "ml-100k.zip", ML100K_FILES)
    os.utime(mine / "ml-100k.zip", ns=(1, 1))  # a different mtime, whatever the clock's resolution
    ds = load_dataset("ml-100k", data_dir=mine, download=False)
    assert len(ds.ratings) == 5 and ds.path == cache / "ml-100k"
    assert leftovers(cache) == ["ml-100k"]


def test_a_zip_bomb_member_is_refused(cache, tmp_path, monkeypatch):
    """A 300 MB member of zeros (300 KB compressed) was unpacked into the cache."""
    mine = tmp_path / "mine"
    mine.mkdir()
    set_md5(monkeypatch, "ml-100k", None)
    with zipfile.ZipFile(mine / "ml-100k.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in ML100K_FILES.items():
            zf.writestr(f"ml-100k/{name}", text.encode("latin-1"))
        zf.writestr("ml-100k/pad.bin", b"\0" * (20 << 20))
    with pytest.raises(DataError, match="'ml-100k/pad.bin' would inflate to 20,971,520 bytes.*zip bomb"):
        load_dataset("ml-100k", data_dir=mine, download=False)
    assert leftovers(cache) == []
