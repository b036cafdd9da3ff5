"""The base install works without pyarrow: text ids are parsed with numpy, Parquet names its extra."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mfrec.data.readers import _text_ids

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.mark.parametrize(
    "ids, expected",
    [
        (["7", "-12", "0", " 3 "], [7, -12, 0, 3]),
        (["9223372036854775807", "-9223372036854775808"], [2**63 - 1, -(2**63)]),
        (["123456789012345678", "1"], [123456789012345678, 1]),
    ],
)
def test_canonical_ids_become_int64(ids, expected):
    out = _text_ids(pd.Series(ids, dtype=object))
    assert out.dtype == np.int64 and out.tolist() == expected


def test_ids_beyond_int64_keep_their_text():
    """A model file keeps int64 or str ids: a column with an id int64 cannot hold stays text, so a
    model trained on it can be saved (as Python ints it trained, then failed at save)."""
    out = _text_ids(pd.Series(["18446744073709551615", "1"], dtype=object))
    assert out.dtype == object and out.tolist() == ["18446744073709551615", "1"]


@pytest.mark.parametrize("odd", ["007", "+7", "1.0", "1_0", "1e3", "-", "-07", "00", "٣", "7a", "1-2", "a b"])
def test_any_non_canonical_id_keeps_the_whole_column_text(odd):
    out = _text_ids(pd.Series(["7", f" {odd} ", "8"], dtype=object))
    assert out.dtype == object and out.tolist() == ["7", odd, "8"]


def test_an_id_of_spaces_only_is_missing_for_the_validator():
    out = _text_ids(pd.Series(["7", "   ", "8"], dtype=object))
    assert out.dtype == object and out[[0, 2]].tolist() == ["7", "8"] and pd.isna(out[1])


def test_non_canonical_id_in_a_later_chunk(monkeypatch):
    import mfrec.data.readers as readers

    monkeypatch.setattr(readers, "_ID_CHUNK", 3)
    ids = [str(i) for i in range(1, 10)] + ["010"]
    assert _text_ids(pd.Series(ids, dtype=object)).tolist() == ids
    assert _text_ids(pd.Series(ids[:9], dtype=object)).tolist() == list(range(1, 10))


def test_missing_ids_left_for_the_validator():
    out = _text_ids(pd.Series(["1", None], dtype=object))
    assert out.dtype == object and out[1] is None


def _without_pyarrow(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``import pyarrow`` fails as if it were not installed."""
    prelude = "import sys\nsys.modules['pyarrow'] = None\nsys.modules['pyarrow.parquet'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, timeout=300)


def test_base_install_reads_csv_and_parquet_names_the_extra(tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("user,item,rating\nu1,10,4\nu2,11,3\n")
    proc = _without_pyarrow(f"""
        import mfrec
        r = mfrec.Ratings.read_csv({str(csv)!r})
        assert sorted(r.users.tolist()) == ["u1", "u2"] and r.items.dtype.kind == "i", r.items
        for call in (lambda: mfrec.Ratings.read_parquet({str(tmp_path / 'x.parquet')!r}),
                     lambda: mfrec.data.readers.write_ratings_parquet(r, {str(tmp_path / 'y.parquet')!r})):
            try:
                call()
            except ImportError as exc:
                print(exc)
            else:
                raise SystemExit("no ImportError")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Parquet support needs the parquet extra: pip install 'mfrec[parquet]'"] * 2
