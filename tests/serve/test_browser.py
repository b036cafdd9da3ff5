"""The guest page in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright,
against the service running as a separate process."""

from __future__ import annotations

from tests.serve.conftest import require

require("fastapi", "the service")
require("httpx", "the service tests")

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.serve.conftest import _must_have_everything, start_server, stop_server

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
SCREENSHOT = os.environ.get("MFREC_SERVE_SCREENSHOT")  # where to save the README screenshot


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "Debian's chromium is not installed (apt-get install chromium)"
        if _must_have_everything():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if _must_have_everything():
            pytest.fail("playwright is not installed (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed")
    exe = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _rate(page, query: str, title: str, stars: int) -> float:
    """Search ``query``, click ``stars`` on the row titled ``title``; seconds until the
    recommendation list is recomputed with the new rating."""
    page.fill("#search", query)
    row = page.locator("#candidates li", has=page.locator(".title", has_text=title)).first
    row.wait_for(timeout=15000)
    n_before = int(page.text_content("#count"))
    t0 = time.perf_counter()
    row.locator(f'.star[data-stars="{stars}"]').click()
    page.wait_for_selector(f'#recs[data-ratings="{n_before + 1}"]', timeout=15000)
    return time.perf_counter() - t0


def _recs(page) -> list[tuple[str, str]]:
    rows = page.locator("#recs li")
    return [(rows.nth(i).locator(".title").text_content(), rows.nth(i).locator(".genres").text_content())
            for i in range(rows.count())]


@pytest.fixture(scope="module")
def movielens_server(tmp_path_factory):
    """ImplicitALS (the demo's model, default parameters) on ml-latest-small, served."""
    import mfrec
    from mfrec.errors import DatasetNotFoundError

    try:
        ds = mfrec.load_dataset("ml-latest-small", download=False, progress=False)
    except DatasetNotFoundError as exc:
        if _must_have_everything():
            raise
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("browser")
    path = root / "ials.mfrec"
    mfrec.ImplicitALS(seed=0).fit(ds.ratings).attach_items(ds.items).save(path)
    key = root / "key"
    key.write_text("browser-key-0123456789abcdef")
    proc, base = start_server(path, f"sqlite:///{root / 'r.db'}", root / "server.log", key_file=key)
    yield base
    stop_server(proc)


@pytest.mark.realdata
def test_children_then_drama_on_a_phone(browser, movielens_server):
    page = browser.new_page(viewport=PHONE)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(movielens_server + "/")
    page.wait_for_selector("#candidates li")  # onboarding: popular, varied films
    assert page.locator("#candidates li").count() >= 20
    page.wait_for_selector('#recs[data-ratings="0"]')
    # three children's films (with ImplicitALS, 3 random popular children's films give 55% children's
    # or animation titles in the top 20 on average, 15-90%; these three give 60%, base rate ~10%)
    times = [_rate(page, "toy story", "Toy Story (1995)", 5),
             _rate(page, "toy story 2", "Toy Story 2 (1999)", 5),
             _rate(page, "lion king", "Lion King, The (1994)", 5)]
    assert max(times) < 1.5, times  # the list follows each rating within a fraction of a second (plus slack)
    kids = _recs(page)
    assert len(kids) == 20
    share = sum(("Children" in g or "Animation" in g) for _, g in kids) / len(kids)
    assert share >= 0.5, kids  # mostly children's films (catalogue base rate ~10%)
    assert page.locator("#recs .because").count() > 0  # "because you liked ..."
    assert "because you liked" in page.locator("#recs .because").first.text_content()
    if SCREENSHOT:  # the README's picture: a phone after three ratings
        page.fill("#search", "")
        page.locator("#list-label", has_text="Popular films").wait_for()
        Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True, clip={"x": 0, "y": 0, "width": PHONE["width"], "height": 1250})
    # dramas: the list changes towards them
    for q, t in (("shawshank", "Shawshank Redemption, The (1994)"), ("schindler", "Schindler's List (1993)"),
                 ("godfather", "Godfather, The (1972)"), ("good will hunting", "Good Will Hunting (1997)")):
        _rate(page, q, t, 5)
    mixed = _recs(page)
    changed = len({t for t, _ in mixed} - {t for t, _ in kids})
    drama = lambda rs: sum("Drama" in g for _, g in rs)  # noqa: E731
    assert changed >= 5 and drama(mixed) > drama(kids), (kids, mixed)
    # ratings live in the browser: a reload keeps them and the list
    page.reload()
    page.wait_for_selector('#recs[data-ratings="7"]', timeout=15000)
    assert page.text_content("#count") == "7"
    assert errors == []
    page.close()


def test_markup_in_titles_is_shown_as_text(browser, synth_files, tmp_path):
    model_path, _, _ = synth_files
    proc, base = start_server(model_path, f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "server.log")
    try:
        page = browser.new_page(viewport=PHONE)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(base + "/")
        page.fill("#search", "night")
        title = page.locator("#candidates li .title", has_text="Night").first
        title.wait_for(timeout=15000)
        assert title.text_content() == '<script>alert("x")</script> Night (1999)'  # the text itself
        assert page.locator("#candidates script").count() == 0  # no element was created from it
        title.locator("xpath=..").locator('.star[data-stars="5"]').click()
        page.wait_for_selector('#recs[data-ratings="1"]')
        assert page.locator("#rated li").first.text_content().startswith("<script>")
        page.wait_for_timeout(300)
        assert dialogs == []
        page.close()
    finally:
        stop_server(proc)


def test_save_under_a_user_id(browser, synth_files, tmp_path):
    import httpx

    model_path, _, _ = synth_files
    key = tmp_path / "key"
    key.write_text("save-key-0123456789abcdef")
    proc, base = start_server(model_path, f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "server.log", key_file=key)
    try:
        page = browser.new_page(viewport=PHONE)
        page.goto(base + "/")
        page.wait_for_selector("#candidates li")
        first = page.locator("#candidates li").first
        item = first.get_attribute("data-id")
        first.locator('.star[data-stars="4"]').click()
        page.wait_for_selector('#recs[data-ratings="1"]')
        page.fill("#user-id", "pat")
        page.fill("#api-key", "wrong-key-xxxxxxxxxxxx")
        page.click("#save-form button")
        page.locator("#save-status", has_text="wrong API key").wait_for(timeout=15000)
        page.fill("#api-key", "save-key-0123456789abcdef")
        page.click("#save-form button")
        page.locator("#save-status", has_text="Saved 1 rating as pat").wait_for(timeout=15000)
        stored = httpx.get(base + "/users/pat/ratings").json()["ratings"]
        assert [(str(r["item"]), r["rating"]) for r in stored] == [(item, 4.0)]
        page.close()
    finally:
        stop_server(proc)
