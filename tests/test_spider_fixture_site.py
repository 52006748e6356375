"""The whole spider, with the project's settings and pipelines, against a tiny fixture site.

Unlike test_mirror_crawl.py this needs nothing outside the repository. The site (tests/fixtures/site,
GBK pages like the real ones) has two sections of two listing pages each, and the traps of the real
channel: a three-page article, an article listed in both sections, a republished copy (same title and
body, another id, the other section), a listed article that answers 404, an article linked only from
the home page and the sidebars, and a last listing page whose 下一页 leads back to page 1.

The crawl runs in this process without a Twisted reactor (Scrapy's reactorless mode, with its aiohttp
download handler; aiohttp is a dependency of Scrapy itself), so every test gets a fresh crawl and no
pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.utils.reactor import is_reactor_installed
from scrapy.utils.test import get_crawler

from crawler.spiders.theory import TheorySpider
from crawler.urls import ARTICLE_PATH
from fixture_server import FixtureServer

SITE = Path(__file__).parent / "fixtures" / "site"
EXPECTED = json.loads((SITE / "expected.json").read_text("utf-8"))
PROJECT_SETTINGS = {
    name: value for name, value in vars(importlib.import_module("crawler.settings")).items() if name.isupper()
}


def as_path(url: str) -> str:
    return urlsplit(url).path


def as_expected(record: dict) -> dict:
    """An item in the terms of expected.json: URLs by path, computed fields left out."""
    # Computed fields (parser_version: test_pages.py), and the WARC records of the pages, which test_capture.py checks.
    row = {key: value for key, value in record.items() if key not in ("content_hash", "crawled_at", "warc", "parser_version")}
    return {**row, "url": as_path(row["url"]), "images": [as_path(image) for image in row["images"]]}


def run_spider(base_url: str, data_dir: Path):
    """Crawl with the project's settings, as `scrapy crawl theory` would; returns the crawler and its items."""
    if is_reactor_installed():
        pytest.fail("a Twisted reactor is installed in this process; this test runs the crawl without one")
    crawler = get_crawler(
        TheorySpider,
        {
            **PROJECT_SETTINGS,
            "THEORY_BASE_URL": base_url,
            "THEORY_CHANNEL_URL": "",
            "THEORY_DATA_DIR": str(data_dir),
            # Politeness is for the live host; against 127.0.0.1 it only slows the test down.
            "AUTOTHROTTLE_ENABLED": False,
            "DOWNLOAD_DELAY": 0,
            "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        },
    )
    items = []

    def collect(item):  # a named function: the signal keeps only a weak reference to its receiver
        items.append(item)

    crawler.signals.connect(collect, signal=signals.item_scraped)
    asyncio.run(crawler.crawl_async())
    return crawler, items


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    """One crawl of the fixture site, shared by the tests below (they only read its results)."""
    data_dir = tmp_path_factory.mktemp("data")
    with FixtureServer(SITE) as server:
        crawler, items = run_spider(server.url, data_dir)
    return {
        "items": [ItemAdapter(item).asdict() for item in items],
        "stats": crawler.stats.get_stats(),
        "requests": server.requests,
        "data_dir": data_dir,
    }


def test_every_article_is_written_once_and_a_republished_copy_not_at_all(crawl):
    group_of = {row["article_id"]: row["duplicate_of"] or row["article_id"] for row in EXPECTED["articles"]}
    written = Counter(group_of.get(item["article_id"], f"unexpected {item['url']}") for item in crawl["items"])
    assert written == {group: 1 for group in set(group_of.values())}
    assert crawl["stats"].get("theory/duplicates/content") == 1


def test_written_articles_have_the_expected_fields(crawl):
    expected = {row["url"]: {k: v for k, v in row.items() if k != "duplicate_of"} for row in EXPECTED["articles"]}
    for item in crawl["items"]:
        row = as_expected(item)
        assert row == expected[row["url"]]


def test_every_article_page_is_fetched_once(crawl):
    # The cross-listed article is discovered twice but fetched once; pages 2 and 3 follow page 1.
    article_pages = [path for path in crawl["requests"] if ARTICLE_PATH.match(path)]
    assert {path: crawl["requests"][path] for path in article_pages} == {path: 1 for path in article_pages}
    assert "/241/201704/18/170418093015224_3.shtml" in article_pages


def test_articles_linked_only_outside_the_listings_are_not_crawled(crawl):
    for path in EXPECTED["unlisted"]:
        assert crawl["requests"][path] == 0, path


def test_the_listing_loop_is_walked_once(crawl):
    # 252_2.shtml's 下一页 points back to 252.shtml: no listing page may be fetched twice.
    listing_requests = {path: crawl["requests"][path] for path in EXPECTED["listing_pages"]}
    assert listing_requests == {path: 1 for path in EXPECTED["listing_pages"]}
    assert crawl["stats"].get("theory/listing/pages") == len(EXPECTED["listing_pages"])
    assert crawl["requests"]["/"] == 1


def test_a_missing_article_is_counted_and_recorded_as_owed(crawl):
    assert crawl["stats"].get("theory/article/failed/http_404") == len(EXPECTED["not_found"])
    with sqlite3.connect(crawl["data_dir"] / "state.sqlite3") as db:
        rows = db.execute("SELECT url, status, attempts, last_error FROM articles WHERE last_error IS NOT NULL").fetchall()
    # One failed run out of THEORY_MAX_ATTEMPTS: still owed to the next run.
    assert [(as_path(url), status, attempts, error) for url, status, attempts, error in rows] == [
        (path, "pending", 1, "http_404") for path in EXPECTED["not_found"]
    ]


def test_articles_jsonl_holds_exactly_the_scraped_items(crawl):
    lines = (crawl["data_dir"] / "articles.jsonl").read_text("utf-8").splitlines()
    written = sorted((json.loads(line) for line in lines), key=lambda row: row["url"])
    assert written == sorted(crawl["items"], key=lambda row: row["url"])
    assert not (crawl["data_dir"] / "rejects.jsonl").exists()


def test_the_run_reports_success(crawl):
    # A 404 article is the site's fault, not the crawl's: the run still exits 0.
    assert crawl["stats"].get("theory/exit_status") == 0
    assert crawl["stats"].get("finish_reason") == "finished"
