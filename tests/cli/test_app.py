"""The app: --help, --version, python -m mfrec, and the one error handler every command runs in."""

from __future__ import annotations

import json
import subprocess
import sys

import mfrec
from tests.cli.helpers import run, ok, assert_clean_error


def test_help_lists_commands():
    out = ok(run("--help"))
    for command in ("data", "train", "evaluate", "tune", "recommend", "similar", "plot", "demo"):
        assert command in out
    assert "info" in ok(run("data", "--help"))


def test_python_dash_m_help_in_a_subprocess():
    res = subprocess.run([sys.executable, "-m", "mfrec", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for command in ("train", "recommend", "similar", "plot", "demo"):
        assert command in res.stdout


def test_error_in_a_subprocess_is_one_line_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "mfrec", "recommend", str(tmp_path / "missing.mfrec"), "--user", "1"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing.mfrec" in lines[0]
    assert res.stdout == ""


def test_version():
    res = run("--version")
    assert ok(res).strip() == f"mfrec {mfrec.__version__}"


def test_every_command_runs_inside_the_one_shared_handler(monkeypatch, work, tmp_path):
    """An OSError raised deep inside any command becomes one line (no per-command try blocks)."""
    def broken(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mfrec, "load_model", broken)  # the commands load through the public mfrec.load_model
    for args in (("recommend", work / "m.mfrec", "--user", "1"), ("similar", work / "m.mfrec", "--item", "1"),
                 ("plot", work / "m.mfrec", "--out", tmp_path / "p.png"),
                 ("evaluate", "--model-file", work / "m.mfrec", "--test", work / "small.csv")):
        assert_clean_error(run(*args), "m.mfrec", "Permission denied")


def test_error_messages_of_bare_key_errors():
    from mfrec.cli import _error_message

    assert _error_message(KeyError("rating_scale")) == "missing or unknown key 'rating_scale'"
    assert _error_message(KeyError("unknown user 99")) == "unknown user 99"
    assert _error_message(IsADirectoryError(21, "Is a directory", "/x")) == "/x: Is a directory"
    assert _error_message(BrokenPipeError(32, "Broken pipe")) == "Broken pipe"
    assert _error_message(FileNotFoundError("model file not found: m.mfrec")) == "model file not found: m.mfrec"
    assert _error_message(RuntimeError("all 3 trials failed; the parameters tried:\n  a table")) == \
        "all 3 trials failed; the parameters tried"


def test_help_documents_the_title_rule_and_which_model():
    def words(out: str) -> str:
        return " ".join(out.replace("\u2502", " ").split())  # without rich's box edges

    text = words(ok(run("recommend", "--help")))
    assert "twice" in text and "exact" in text
    text = words(ok(run("train", "--help")))
    assert "implicit-als (default) to recommend to people" in text and "predict ratings" in text


def test_error_missing_model_file(tmp_path):
    assert_clean_error(run("recommend", tmp_path / "nope.mfrec", "--user", "1"), "nope.mfrec")
    assert_clean_error(run("similar", tmp_path / "nope.mfrec", "--item", "1"), "nope.mfrec")
    assert_clean_error(run("plot", tmp_path / "nope.mfrec", "--out", tmp_path / "p.png"), "nope.mfrec")


def test_error_model_file_that_is_not_a_model(work, tmp_path):
    assert_clean_error(run("recommend", work / "small.csv", "--user", "1"), "small.csv")
    fake = tmp_path / "fake.mfrec"
    fake.write_bytes(b"PK\x03\x04 definitely not a zip")
    assert_clean_error(run("similar", fake, "--item", "1"), "fake.mfrec")


def test_error_argument_combinations(work, tmp_path):
    assert_clean_error(run("train", "--out", tmp_path / "m.mfrec"), "--dataset")
    assert_clean_error(run("recommend", work / "m.mfrec"), "--user")
    assert_clean_error(run("recommend", work / "m.mfrec", "--user", "1", "--rate", "2=4"), "give one of")
    assert_clean_error(run("recommend", work / "m.mfrec", "--rate", "1=abc"), "abc")
    assert_clean_error(run("similar", work / "m.mfrec"), "--item")
    assert_clean_error(run("similar", work / "m.mfrec", "--title", "Toy"), "titles")
    assert_clean_error(run("plot", work / "m.mfrec", "--kind", "pie", "--out", tmp_path / "p.png"), "pie")
    assert_clean_error(run("train", "--ratings", work / "small.csv", "--validation", "1.5", "--out",
                           tmp_path / "m.mfrec"), "validation")


def test_damaged_model_files_are_one_line(work, tmp_path):
    import zipfile

    data = (work / "m.mfrec").read_bytes()
    (tmp_path / "half.mfrec").write_bytes(data[: len(data) // 2])
    assert_clean_error(run("recommend", tmp_path / "half.mfrec", "--user", "1"), "half.mfrec")
    with zipfile.ZipFile(work / "m.mfrec") as src, zipfile.ZipFile(tmp_path / "nokey.mfrec", "w") as dst:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == "manifest.json":
                manifest = json.loads(payload)
                del manifest["rating_scale"]
                payload = json.dumps(manifest).encode()
            dst.writestr(info, payload)
    assert_clean_error(run("recommend", tmp_path / "nokey.mfrec", "--user", "1"), "rating_scale")
    assert_clean_error(run("recommend", tmp_path, "--user", "1"))  # a directory
