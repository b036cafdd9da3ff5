"""mfrec similar."""

from __future__ import annotations

import json

from tests.cli.helpers import run, ok, assert_clean_error


def test_similar_json(work):
    sims = json.loads(ok(run("similar", work / "m.mfrec", "--item", "1", "--json", "-n", "4")))
    assert len(sims) == 4
    assert 1 not in {s["item"] for s in sims}
    values = [s["similarity"] for s in sims]
    assert values == sorted(values, reverse=True) and all(-1 <= v <= 1 for v in values)


def test_similar_by_title(titled):
    sims = json.loads(ok(run("similar", titled, "--title", "Toy Story", "--json", "-n", "3")))
    assert len(sims) == 3 and all("title" in s for s in sims)


def test_error_unknown_item(work):
    assert_clean_error(run("similar", work / "m.mfrec", "--item", "4242"), "4242")
