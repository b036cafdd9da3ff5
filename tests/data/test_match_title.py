"""mfrec.match_title and find_items: exact title first (with or without year and article), then
the clearly most-rated match, else AmbiguousTitleError with the candidates."""

from __future__ import annotations

import pandas as pd
import pytest

from mfrec import AmbiguousTitleError, find_items, match_title, read_items
from mfrec.data.datasets import DATASETS, _read_items
from tests.conftest import dataset_dir


@pytest.fixture
def items() -> pd.DataFrame:
    titles = ["Lion King 1½, The (2004)", "Lion King, The (1994)", "Star Wars: Episode I (1999)",
              "Star Wars: Episode IV (1977)", "Star Wars: Episode V (1980)", "Hamlet (1990)", "Hamlet (1996)",
              "Toy Story (1995)", "Toy Story 2 (1999)"]
    return pd.DataFrame({"title": titles, "genres": [[]] * len(titles)},
                        index=pd.Index([10, 20, 30, 40, 50, 60, 70, 80, 90], name="item"))


COUNTS = pd.Series({10: 5, 20: 100, 30: 60, 40: 100, 50: 90, 60: 10, 70: 12, 80: 50, 90: 200})


@pytest.mark.parametrize("text, item", [("Lion King", 20), ("the lion king", 20), ("LION KING, THE (1994)", 20),
                                        ("Lion King 1½", 10), ("Toy Story", 80), ("toy story (1995)", 80),
                                        ("Hamlet (1996)", 70), ("Episode IV", 40)])
def test_exact_title_wins_over_more_rated_matches(items, text, item):
    hit = match_title(items, text, COUNTS)
    assert hit.item == item and hit.title == items.loc[item, "title"]


def test_most_rated_substring_match_needs_twice_the_ratings(items):
    counts = COUNTS.copy()
    with pytest.raises(AmbiguousTitleError, match="Episode IV.*Episode V.*more specific") as info:
        match_title(items, "Star Wars", counts)  # 100 vs 90: no clear favourite
    assert list(info.value.candidates.index) == [40, 50, 30]
    assert list(info.value.candidates["ratings"]) == [100, 90, 60]
    counts[40] = 180
    hit = match_title(items, "Star Wars", counts)  # 180 >= 2 x 90
    assert (hit.item, hit.ratings, hit.exact) == (40, 180, False)


def test_several_exact_titles_are_resolved_by_ratings_or_the_year(items):
    with pytest.raises(AmbiguousTitleError, match="Hamlet"):
        match_title(items, "Hamlet", COUNTS)  # 10 vs 12
    assert match_title(items, "Hamlet", pd.Series({60: 1, 70: 30})).item == 70
    with pytest.raises(AmbiguousTitleError):
        match_title(items, "Star Wars")  # no counts: no favourite


def test_no_match_and_empty_query(items):
    with pytest.raises(ValueError, match="no title matches"):
        match_title(items, "Casablanca", COUNTS)
    with pytest.raises(ValueError, match="empty"):
        match_title(items, " ?! ")


def test_counts_as_an_array_in_row_order(items):
    assert match_title(items, "Star Wars", COUNTS.to_numpy() * [1, 1, 1, 3, 1, 1, 1, 1, 1]).item == 40
    with pytest.raises(ValueError, match="one count per item"):
        match_title(items, "Star Wars", [1, 2])


def test_find_items_exact_title_with_year_and_counts(items):
    assert list(find_items(items, "Lion King").index[:2]) == [20, 10]  # exact (article moved) first
    assert list(find_items(items, "Hamlet (1996)").index) == [70]
    assert list(find_items(items, "Star Wars", counts=COUNTS).index) == [40, 50, 30]


def test_read_items_movies_csv(tmp_path):
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Animation|Children\n'
                                         '2,"Lion King, The (1994)",(no genres listed)\n')
    table = read_items(tmp_path / "movies.csv")
    assert list(table.index) == [1, 2] and table.loc[2, "title"] == "Lion King, The (1994)"
    assert table.loc[1, "genres"] == ["Animation", "Children"] and table.loc[2, "genres"] == []
    assert int(table.loc[1, "year"]) == 1995
    with pytest.raises(FileNotFoundError):
        read_items(tmp_path / "nope.csv")


@pytest.mark.parametrize("name, file", [("ml-100k", "u.item"), ("ml-1m", "movies.dat"), ("ml-latest-small", "movies.csv")])
def test_read_items_reads_what_load_dataset_reads(name, file):
    folder = dataset_dir(name)
    want = _read_items(folder, DATASETS[name])  # what load_dataset attaches (ml-1m here lacks ratings.dat)
    pd.testing.assert_frame_equal(read_items(folder / file), want)
