"""mfrec data info / fetch."""

from __future__ import annotations

import json

from tests.cli.helpers import run, ok, assert_clean_error, data_env


def test_data_info_json_ml_100k():
    res = run("data", "info", "ml-100k", "--json", "--no-download", env=data_env("ml-100k"))
    info = json.loads(ok(res))
    assert (info["ratings"], info["users"], info["items"]) == (100000, 943, 1682)
    assert info["dataset"] == "ml-100k"
    assert sum(info["histogram"].values()) == 100000


def test_data_info_unknown_dataset():
    assert_clean_error(run("data", "info", "ml-nope"), "ml-nope")


def test_data_fetch_when_the_cache_folder_is_a_file(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    env = {"MFREC_CACHE_DIR": str(cache), "MFREC_DATA_DIR": str(tmp_path / "empty"),
           "MFREC_DOWNLOAD_URL": "http://127.0.0.1:9"}
    assert_clean_error(run("data", "fetch", "ml-100k", "-q", env=env), str(cache), "is a file")
    assert_clean_error(run("data", "info", "ml-100k", env=env), str(cache), "is a file")
