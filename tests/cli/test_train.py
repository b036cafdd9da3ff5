"""mfrec train."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mfrec
from tests.cli.helpers import run, ok, assert_clean_error, _no_fit, src_env


def test_train_writes_a_loadable_model(work):
    m = mfrec.load_model(work / "m.mfrec")
    assert type(m).__name__ == "BiasedMF"
    assert m.get_params()["epochs"] == 2 and m.get_params()["factors"] == 4
    assert len(m.history_) == 2
    assert "fit_seconds" in m.metrics_


def test_train_json_with_validation(work, tmp_path):
    out = json.loads(ok(run("train", "--ratings", work / "small.csv", "--model", "als", "--iterations", "2",
                            "--factors", "3", "--validation", "0.2", "--json", "--out", tmp_path / "v.mfrec")))
    assert out["model"] == "als" and out["params"]["iterations"] == 2
    assert out["validation_rmse"] > 0 and out["fit_seconds"] >= 0
    assert (tmp_path / "v.mfrec").exists()


def test_train_tab_separated_file(work, tmp_path):
    tsv = tmp_path / "r.tsv"
    tsv.write_text((work / "small.csv").read_text().replace(",", "\t"))
    ok(run("train", "--ratings", tsv, "--sep", "\\t", "--model", "baseline", "--out", tmp_path / "b.mfrec", "-q"))
    assert type(mfrec.load_model(tmp_path / "b.mfrec")).__name__ == "Baseline"


def test_error_missing_ratings_file(tmp_path):
    assert_clean_error(run("train", "--ratings", tmp_path / "nope.csv", "--out", tmp_path / "m.mfrec"), "nope.csv")
    assert not (tmp_path / "m.mfrec").exists()


def test_error_bad_model_name(work, tmp_path):
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--model", "deep-magic", "--out",
                           tmp_path / "m.mfrec"), "deep-magic", "biased-mf")


def test_error_unknown_parameter(work, tmp_path):
    line = assert_clean_error(run("train", "--ratings", work / "small.csv", "--param", "foo=1", "--out",
                                  tmp_path / "m.mfrec"), "foo")
    assert "regularization" in line  # lists the valid ones
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--param", "nonsense", "--out",
                           tmp_path / "m.mfrec"), "key=value")
    assert not (tmp_path / "m.mfrec").exists()


def test_error_malformed_ratings_file_names_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,2,3\n1,3,4\n2,2,abc\n3,1,5\n")
    assert_clean_error(run("train", "--ratings", bad, "--out", tmp_path / "m.mfrec"), "bad.csv", "line 4", "abc")


@pytest.mark.parametrize("where", ["directory", "under_a_file"])
def test_train_out_is_checked_before_training(monkeypatch, work, tmp_path, where):
    _no_fit(monkeypatch)
    (tmp_path / "adir").mkdir()
    (tmp_path / "r.csv").write_text("x")
    out = tmp_path / "adir" if where == "directory" else tmp_path / "r.csv" / "x.mfrec"
    line = assert_clean_error(run("train", "--ratings", work / "small.csv", "--model", "biased-mf", "--out", out), "--out")
    assert ("is a directory" in line) if where == "directory" else ("r.csv is a file" in line)


def test_train_out_in_a_missing_folder_is_created(work, tmp_path):
    out = tmp_path / "new" / "sub" / "m.mfrec"
    ok(run("train", "--ratings", work / "small.csv", "--model", "baseline", "--out", out, "-q"))
    assert type(mfrec.load_model(out)).__name__ == "Baseline"


def test_train_ratings_that_is_a_directory(work, tmp_path):
    assert_clean_error(run("train", "--ratings", tmp_path, "--out", tmp_path / "m.mfrec"), "--ratings", "is a directory")
    assert_clean_error(run("evaluate", "--model-file", work / "m.mfrec", "--test", tmp_path), "--test",
                       "is a directory")


def test_train_items_file_gives_titles_on_own_data(work, tmp_path):
    import pandas as pd

    items = pd.DataFrame({"movieId": range(30), "title": [f"Film Number {i} (2001)" for i in range(30)],
                          "genres": ["Drama|Comedy" if i % 2 else "(no genres listed)" for i in range(30)]})
    items.loc[7, "title"] = "Lion King, The (1994)"
    items.to_csv(tmp_path / "movies.csv", index=False)
    out = tmp_path / "own.mfrec"
    ok(run("train", "--ratings", work / "small.csv", "--items", tmp_path / "movies.csv", "--model", "biased-mf",
           "--epochs", "2", "--out", out, "-q"))
    model = mfrec.load_model(out)
    assert model.item_info_.loc[7, "title"] == "Lion King, The (1994)"
    res = run("recommend", out, "--rate-title", "the lion king=5", "--rate-title", "Film Number 3 (2001)=4", "--json")
    recs = json.loads(ok(res))
    assert "Lion King, The (1994) (item 7" in res.stderr and not {3, 7} & {r["item"] for r in recs}
    assert all(r["title"].startswith("Film Number") for r in recs) and recs[0]["genres"] in (["Drama", "Comedy"], [])
    # ids that do not meet, a missing file, and --items with a dataset
    pd.DataFrame({"movieId": [1000, 1001], "title": ["A (1990)", "B (1991)"], "genres": ["Drama", "Drama"]}).to_csv(
        tmp_path / "other.csv", index=False)
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--items", tmp_path / "other.csv", "--out",
                           tmp_path / "x.mfrec"), "none of the")
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--items", tmp_path / "nope.csv", "--out",
                           tmp_path / "x.mfrec"), "nope.csv")
    assert_clean_error(run("train", "--dataset", "ml-100k", "--items", tmp_path / "movies.csv", "--out",
                           tmp_path / "x.mfrec"), "--items goes with --ratings")


def test_train_default_model_is_the_one_for_recommending_to_people(work, tmp_path):
    ok(run("train", "--ratings", work / "small.csv", "--param", "iterations=2", "--out", tmp_path / "d.mfrec", "-q"))
    assert type(mfrec.load_model(tmp_path / "d.mfrec")).__name__ == "ImplicitALS"
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--validation", "0.1", "--out",
                           tmp_path / "v.mfrec"), "does not predict ratings")


@pytest.mark.parametrize("args,fragment", [(("--factors", "-1"), "factors"), (("--param", "epochs=0", "--model", "biased-mf"), "epochs"),
                                           (("--param", "factors=abc"), "factors")])
def test_bad_parameters_are_refused_before_data_is_read_or_training_starts(tmp_path, args, fragment):
    """They were checked by fit(): after reading the data and drawing the progress bar."""
    assert_clean_error(run("train", "--ratings", tmp_path / "missing.csv", *args, "--out", tmp_path / "m.mfrec"),
                       fragment)


def test_a_wrong_separator_suggests_the_right_one(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("1;2;3\n2;3;4\n")
    assert_clean_error(run("train", "--ratings", semi, "--out", tmp_path / "m.mfrec"), "semi.csv", "line 1", "--sep ';'")


# ----------------------------------------------------------------------------- --model: the registry, user models
TINY = '''
import mfrec
from mfrec.models.registry import register_model


@register_model("tiny-baseline")
class TinyBaseline(mfrec.Baseline):
    """A user's own model: the Baseline under another name, in its own module."""
'''


def _mfrec(*args, cwd, **env):
    """`mfrec ARGS` in a fresh process run in ``cwd``, with ``cwd`` on PYTHONPATH (where the user's module is)."""
    return subprocess.run([sys.executable, "-m", "mfrec", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**src_env(cwd), **env})


def test_train_a_users_own_model_by_module_and_class(work, tmp_path):
    """--model package.module:ClassName imports the user's module (its @register_model runs), trains and saves."""
    (tmp_path / "tinymod.py").write_text(TINY)
    out = tmp_path / "tiny.mfrec"
    proc = _mfrec("train", "--ratings", work / "small.csv", "--model", "tinymod:TinyBaseline", "--iterations", "2",
                  "--json", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"]["iterations"] == 2
    check = ("import tinymod, mfrec\nm = mfrec.load_model('tiny.mfrec')\n"
             "assert type(m) is tinymod.TinyBaseline and m.get_params()['iterations'] == 2\n"
             "assert m.recommend(m.user_map_.ids[0], n=3).shape[0] == 3\n")
    res = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=src_env(tmp_path), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # by registered name or class name, the module must have been imported: a clear error otherwise
    proc = _mfrec("train", "--ratings", work / "small.csv", "--model", "tiny-baseline", "--out", out,
                  cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "unknown model 'tiny-baseline'" in lines[0], proc.stderr
    assert "package.module:ClassName" in lines[0]
    # ... e.g. through MFREC_MODELS: then the registered name trains, and the file it saved loads in `recommend`
    proc = _mfrec("train", "--ratings", work / "small.csv", "--model", "tiny-baseline", "--out", out, "-q",
                  cwd=tmp_path, MFREC_MODELS="tinymod")
    assert proc.returncode == 0, proc.stderr
    proc = _mfrec("recommend", out, "--user", "1", "-n", "2", "--json", cwd=tmp_path, MFREC_MODELS="tinymod")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 2


@pytest.mark.parametrize("name,fragment", [("nosuchmodule_xyz:Model", "cannot import model"),
                                           ("json:dumps", "is not a class"),
                                           ("json:JSONDecoder", "not an mfrec model"),
                                           ("mfrec.models.sgd:NoSuchClass", "cannot import model")])
def test_model_paths_that_are_not_models_are_one_line(work, tmp_path, name, fragment):
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--model", name, "--out", tmp_path / "m.mfrec"),
                       fragment)
    assert not (tmp_path / "m.mfrec").exists()


def test_model_class_names_work_like_registry_names(work, tmp_path):
    ok(run("train", "--ratings", work / "small.csv", "--model", "Baseline", "--out", tmp_path / "b.mfrec", "-q"))
    assert type(mfrec.load_model(tmp_path / "b.mfrec")).__name__ == "Baseline"


@pytest.mark.parametrize("command", ["train", "evaluate", "tune"])
def test_model_help_lists_every_registered_model(command):
    """From the registry (the hand-kept list in cli.py missed bpr)."""
    from mfrec.models.registry import BUILTIN

    text = " ".join(ok(run(command, "--help")).replace("\u2502", " ").split())
    listed = text.split("Registered:", 1)[1].split(";", 1)[0]
    assert [n.strip() for n in listed.split(",")] == list(BUILTIN)
    assert "package.module:ClassName" in text


def test_out_never_overwrites_an_input_of_the_command(work, tmp_path):
    """`--out` naming the ratings file (or the model, for recommend and plot) would destroy it."""
    ratings = tmp_path / "r.csv"
    ratings.write_bytes((work / "small.csv").read_bytes())
    before = ratings.read_bytes()
    assert_clean_error(run("train", "--ratings", ratings, "--epochs", "1", "--out", ratings), "input of this command")
    assert ratings.read_bytes() == before
    model = tmp_path / "m.mfrec"
    model.write_bytes((work / "m.mfrec").read_bytes())
    kept = model.read_bytes()
    assert_clean_error(run("recommend", model, "--all-users", "--out", model), "input of this command")
    assert model.read_bytes() == kept


def test_out_format_follows_the_name_or_is_refused(work, tmp_path):
    assert_clean_error(run("recommend", work / "m.mfrec", "--all-users", "--out", tmp_path / "r.json"),
                       ".csv or .parquet or .pq")
    assert_clean_error(run("plot", work / "m.mfrec", "--kind", "latent-space", "--out", tmp_path / "p.pdf"), ".png")
    ok(run("recommend", work / "m.mfrec", "--all-users", "-n", "2", "--out", tmp_path / "R.CSV"))
    assert (tmp_path / "R.CSV").read_text().startswith("user,")
    for name in ("model.csv", "u.data", "m.PARQUET"):  # a model file that would pass for data
        assert_clean_error(run("train", "--ratings", work / "small.csv", "--epochs", "1", "--out", tmp_path / name),
                           "a model file is not a")
        assert not (tmp_path / name).exists()
    ok(run("train", "--ratings", work / "small.csv", "--model", "baseline", "--out", tmp_path / "model.bin"))


def test_an_option_given_twice_is_refused(work, tmp_path):
    assert_clean_error(run("train", "--ratings", work / "small.csv", "-p", "epochs=9", "--epochs", "2",
                           "--out", tmp_path / "x.mfrec"), "epochs given twice")
    assert not (tmp_path / "x.mfrec").exists()


def test_reading_options_the_errors_point_to_exist(tmp_path):
    """The errors' hints name command-line options (--duplicates, --encoding, --sep), which exist."""
    dup = tmp_path / "dup.csv"
    dup.write_text("user,item,rating\n1,2,3\n1,2,5\n2,3,4\n")
    assert_clean_error(run("train", "--ratings", dup, "--model", "baseline", "--out", tmp_path / "a.mfrec"),
                       "pass --duplicates last or mean")
    ok(run("train", "--ratings", dup, "--model", "baseline", "--duplicates", "mean", "--out", tmp_path / "a.mfrec"))
    assert mfrec.load_model(tmp_path / "a.mfrec").global_mean_ == pytest.approx((4 + 4) / 2)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("user,item,rating\nJosé,2,3\nAnn,3,4\n".encode("latin-1"))
    assert_clean_error(run("train", "--ratings", latin, "--model", "baseline", "--out", tmp_path / "b.mfrec"),
                       "pass --encoding latin-1")
    ok(run("train", "--ratings", latin, "--model", "baseline", "--encoding", "latin-1", "--out", tmp_path / "b.mfrec"))
    assert "José" in mfrec.load_model(tmp_path / "b.mfrec").user_map_
    semi = tmp_path / "semi.csv"
    semi.write_text("user;item;rating\n1;2;3\n2;3;4\n")
    assert_clean_error(run("train", "--ratings", semi, "--model", "baseline", "--out", tmp_path / "c.mfrec"),
                       "pass --sep ';'")


def test_a_single_valued_option_repeated_is_refused(work, tmp_path):
    """click keeps the last of `--ratings a --ratings b` silently: one file would be dropped."""
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--ratings", work / "small.csv",
                           "--out", tmp_path / "x.mfrec"), "--ratings given twice")
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--epochs=2", "--epochs", "3",
                           "--out", tmp_path / "x.mfrec"), "--epochs given twice")
    assert_clean_error(run("recommend", work / "m.mfrec", "--user", "1", "--user", "2"), "--user given twice")
    assert not (tmp_path / "x.mfrec").exists()


def test_serve_reading_options_need_training_data(work):
    assert_clean_error(run("serve", work / "m.mfrec", "--sep", ";"), "give --train-data")


def test_rating_scale_declares_the_scale_and_refuses_ratings_outside_it(tmp_path, monkeypatch):
    r = tmp_path / "r.csv"
    r.write_text("user,item,rating\n1,10,2\n1,11,9\n2,10,3\n2,12,8\n3,11,4\n3,12,7\n")
    ok(run("train", "--ratings", r, "--model", "biased-mf", "--epochs", "2", "--rating-scale", "1,10",
           "--out", tmp_path / "m.mfrec", "-q"))
    m = mfrec.load_model(tmp_path / "m.mfrec")
    assert m.rating_scale_ == (1.0, 10.0)  # not the observed 2-9
    assert m.predict([1], [12]).max() <= 10.0
    ok(run("train", "--ratings", r, "--model", "biased-mf", "--epochs", "2", "--out", tmp_path / "o.mfrec", "-q"))
    assert mfrec.load_model(tmp_path / "o.mfrec").rating_scale_ == (2.0, 9.0)
    _no_fit(monkeypatch)
    assert_clean_error(run("train", "--ratings", r, "--rating-scale", "1,5", "--out", tmp_path / "x.mfrec"),
                       "r.csv", "line 3", "outside the scale [1, 5]")
    for bad in ("5,1", "abc", "1", "1,2,3", "nan,5", "1,inf"):
        assert_clean_error(run("train", "--ratings", r, "--rating-scale", bad, "--out", tmp_path / "x.mfrec"),
                           "--rating-scale", repr(bad))
    assert_clean_error(run("train", "--dataset", "ml-100k", "--rating-scale", "1,5", "--out", tmp_path / "x.mfrec"),
                       "--rating-scale", "--ratings")
    assert_clean_error(run("train", "--ratings", r, "--model", "als", "--engine", "spark", "--rating-scale", "1,10",
                           "--out", tmp_path / "x.mfrec"), "--rating-scale")
    assert not (tmp_path / "x.mfrec").exists()


def test_out_in_a_folder_that_refuses_files_is_found_before_training(work, tmp_path):
    """As root os.access says yes to /sys; the model was written after every epoch, and failed."""
    import os

    if not os.path.isdir("/sys") or os.access("/sys", os.W_OK) is False:
        pytest.skip("needs a /sys that os.access calls writable (root)")
    try:
        open("/sys/mfrec-probe", "wb").close()
        pytest.skip("/sys takes files here")
    except OSError:
        pass
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--model", "baseline", "--out", "/sys/x.mfrec"),
                       "--out /sys/x.mfrec: cannot write in /sys")


def test_train_says_which_thread_count_the_model_follows(work, tmp_path, monkeypatch):
    """A fit that started with the cores taken follows fewer threads than asked: --json says
    so (``fit_threads``), and so does the plain output (the log line is not shown by the CLI)."""
    import mfrec.threads as th

    monkeypatch.setenv("MFREC_DYNAMIC_THREADS", "1")
    monkeypatch.setattr(th, "_cores", lambda: 2)
    monkeypatch.setattr(th, "_runnable", lambda: 3)
    monkeypatch.setattr(th, "_own_runnable_cached", lambda: 1)
    monkeypatch.setattr(th, "_others_load", lambda: 1.0)
    args = ("train", "--ratings", work / "small.csv", "--model", "biased-mf", "--epochs", "2", "--factors", "3",
            "--threads", "2")
    out = json.loads(ok(run(*args, "--json", "--out", tmp_path / "a.mfrec")))
    assert out["fit_threads"] == 1 and out["params"]["threads"] == 2
    text = ok(run(*args, "--out", tmp_path / "b.mfrec"))
    assert "ran on 1 of 2 threads" in text and "--threads 1" in text
    monkeypatch.setattr(th, "_runnable", lambda: 1)  # quiet: nothing to say
    out = json.loads(ok(run(*args, "--json", "--out", tmp_path / "c.mfrec")))
    assert out["fit_threads"] == 2
    assert "ran on" not in ok(run(*args, "--out", tmp_path / "d.mfrec"))
    als = json.loads(ok(run("train", "--ratings", work / "small.csv", "--model", "als", "--iterations", "1",
                            "--factors", "2", "--json", "--out", tmp_path / "e.mfrec")))
    assert "fit_threads" not in als  # its result follows no thread count
