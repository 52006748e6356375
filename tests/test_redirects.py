"""Redirects that end a request without a response the spider sees: each one accounted for.

Scrapy's offsite filter and duplicate filter drop a redirected request silently (neither callback nor
errback runs). Here every such end is a failure with its reason: a start page's makes the run exit 4,
an article's counts toward THEORY_MAX_ATTEMPTS and appears in the report.
"""

from __future__ import annotations

import sqlite3

import pytest

from fixture_server import FixtureServer
from test_spider_fixture_site import SITE, run_spider

ARTICLE = "/241/201805/06/180506090000111.shtml"  # a one-page article of 241, listed on its first page


def crawl_with(tmp_path, redirects_for) -> tuple[dict, FixtureServer]:
    with FixtureServer(SITE) as server:
        server.redirects.update(redirects_for(server.url.rstrip("/")))
        crawler, _ = run_spider(server.url, tmp_path / "data")
    return crawler.stats.get_stats(), server


def state_of(tmp_path, path: str) -> tuple:
    with sqlite3.connect(tmp_path / "data" / "state.sqlite3") as db:
        return db.execute("SELECT status, attempts, last_error FROM articles WHERE url LIKE ?", (f"%{path}",)).fetchone()


def other_hostname(base: str) -> str:
    return base.replace("127.0.0.1", "localhost")  # the same server under another name is another host


@pytest.mark.parametrize(
    "redirects, reason",
    [
        (lambda base: {"/": other_hostname(base) + "/"}, "redirect_offsite"),
        (lambda base: {"/": base + "/home.shtml", "/home.shtml": base + "/"}, "redirect_loop"),
        (lambda base: {"/": "http://127.0.0.2:9/"}, "redirect_offsite"),
    ],
    ids=["other-hostname", "loop", "other-address"],
)
def test_a_start_page_redirected_away_fails_the_run_with_exit_4(tmp_path, redirects, reason):
    stats, server = crawl_with(tmp_path, redirects)
    assert stats.get("theory/start_failed/legacy") == reason
    assert stats.get("theory/exit_status") == 4
    assert stats.get("theory/listing/pages") is None


@pytest.mark.parametrize(
    "redirects, reason",
    [
        (lambda base: {ARTICLE: other_hostname(base) + ARTICLE}, "redirect_offsite"),
        (lambda base: {ARTICLE: base + "/241/201805/06/a.shtml", "/241/201805/06/a.shtml": base + ARTICLE}, "redirect_loop"),
        (lambda base: {ARTICLE: base + "/241/241.shtml"}, "redirect_to_seen_page"),  # its listing, fetched already
        (lambda base: {ARTICLE: base + "/index.shtml"}, "redirected_elsewhere"),  # a page that is not the article
    ],
    ids=["offsite", "loop", "seen-page", "elsewhere"],
)
def test_an_article_redirected_away_is_a_failure_with_its_reason_and_stays_owed(tmp_path, redirects, reason):
    stats, _ = crawl_with(tmp_path, redirects)
    assert stats.get(f"theory/article/failed/{reason}") == 1
    assert state_of(tmp_path, ARTICLE) == ("pending", 1, reason)
    assert stats.get("theory/exit_status") == 0  # one article's fault, not the run's
