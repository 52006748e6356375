"""crawler.revisions.classify on saved pages: what a revisit's answer says about an article."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from crawler.loaders import ArticlePage
from crawler.readers import current, legacy
from crawler.revisions import PRESENT, REMOVED, UNKNOWN, classify, has_frame, not_found_phrase

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY_PAGES = FIXTURES / "pages"
CURRENT_PAGES = FIXTURES / "current_pages"
SAVED = FIXTURES / "revisions"
LEGACY_URL = json.loads((LEGACY_PAGES / "index.json").read_text("utf-8"))["articles"]["standard_article"][0]
CURRENT_URL = json.loads((CURRENT_PAGES / "index.json").read_text("utf-8"))["articles"]["standard_article"]


def legacy_page(path: Path, url: str = LEGACY_URL) -> ArticlePage:
    return legacy.read_article_page(HtmlResponse(url=url, body=path.read_bytes()))


def current_page(path: Path, url: str = CURRENT_URL) -> ArticlePage:
    return current.read_article_page(HtmlResponse(url=url, body=path.read_bytes()), channel_path="/theory/")


def test_a_normal_article_is_present():
    page = legacy_page(LEGACY_PAGES / "standard_article.html")
    assert has_frame(page)
    assert classify(200, None, LEGACY_URL, page) == PRESENT
    page = current_page(CURRENT_PAGES / "standard_article.html")
    assert classify(200, None, CURRENT_URL, page) == PRESENT


def test_a_not_found_page_served_with_200_is_removed():
    page = legacy_page(SAVED / "legacy_not_found.html")
    assert not has_frame(page), "the error page has a body-like block but no dated info line"
    assert classify(200, None, LEGACY_URL, page) == REMOVED
    assert not_found_phrase(page) == "页面不存在"
    page = current_page(SAVED / "current_not_found.html")
    assert classify(200, None, CURRENT_URL, page) == REMOVED


def test_a_page_without_the_article_frame_is_removed_even_without_a_not_found_phrase():
    # The channel home served at the article's URL (what some CMSs do for a deleted article).
    page = legacy_page(LEGACY_PAGES / "home_page.html")
    assert not_found_phrase(page) is None
    assert classify(200, None, LEGACY_URL, page) == REMOVED


def test_an_article_that_quotes_a_not_found_phrase_in_its_body_is_present():
    page = legacy_page(LEGACY_PAGES / "standard_article.html")
    page.paragraphs = ["网民反映“页面不存在”的链接太多，网站应当及时清理。", *page.paragraphs]
    assert classify(200, None, LEGACY_URL, page) == PRESENT


@pytest.mark.parametrize("status", [404, 410])
def test_gone_statuses_are_removed(status):
    assert classify(status, None, LEGACY_URL, None) == REMOVED


@pytest.mark.parametrize("target", ["http://theory.workercn.cn/", "http://theory.workercn.cn/241/241.shtml", "http://www.workercn.cn/"])
def test_a_redirect_to_something_else_than_the_article_is_removed(target):
    assert classify(302, target, LEGACY_URL, None) == REMOVED
    assert classify(301, target, LEGACY_URL, None) == REMOVED


def test_a_redirect_to_the_article_itself_elsewhere_is_unknown():
    assert classify(301, LEGACY_URL.replace("http://", "https://"), LEGACY_URL, None) == UNKNOWN
    assert classify(302, None, LEGACY_URL, None) == UNKNOWN


def test_not_modified_is_present():
    assert classify(304, None, LEGACY_URL, None) == PRESENT


@pytest.mark.parametrize("status", [500, 502, 503, 504, 403, 429])
def test_server_errors_and_other_statuses_say_nothing(status):
    assert classify(status, None, LEGACY_URL, None) == UNKNOWN


def test_a_200_that_could_not_be_read_says_nothing():
    assert classify(200, None, LEGACY_URL, None) == UNKNOWN
