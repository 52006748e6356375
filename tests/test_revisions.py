"""crawler.revisions.classify on saved pages: what a revisit's answer says about an article."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from crawler.loaders import ArticlePage
from crawler.readers import current, legacy
from crawler.readers.base import PageSigns, read_page_signs
from crawler.revisions import (
    PRESENT,
    REMOVED,
    SHORT_PAGE_CHARACTERS,
    UNKNOWN,
    RevisitReading,
    Verdict,
    classify,
    has_frame,
    is_bot_check,
    not_found_phrase,
)

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY_PAGES = FIXTURES / "pages"
CURRENT_PAGES = FIXTURES / "current_pages"
SAVED = FIXTURES / "revisions"
LEGACY_URL = json.loads((LEGACY_PAGES / "index.json").read_text("utf-8"))["articles"]["standard_article"][0]
CURRENT_URL = json.loads((CURRENT_PAGES / "index.json").read_text("utf-8"))["articles"]["standard_article"]


def read(path: Path, url: str, layout: str = "legacy") -> tuple[ArticlePage, PageSigns]:
    """What the spider reads of a revisit's answer: the article page, and how the page presents itself."""
    response = HtmlResponse(url=url, body=path.read_bytes())
    if layout == "legacy":
        page = legacy.read_article_page(response)
    else:
        page = current.read_article_page(response, channel_path="/theory/")
    return page, read_page_signs(response)


def legacy_page(path: Path, url: str = LEGACY_URL) -> ArticlePage:
    return read(path, url)[0]


def current_page(path: Path, url: str = CURRENT_URL) -> ArticlePage:
    return read(path, url, "current")[0]


SAVED_PAGES = sorted(path.stem for path in SAVED.glob("*.json"))


@pytest.mark.parametrize("name", SAVED_PAGES)
def test_saved_pages_get_their_reviewed_verdict(name):
    """Each saved answer beside its reviewed verdict (NAME.json says why)."""
    expected = json.loads((SAVED / f"{name}.json").read_text("utf-8"))
    page, signs = read(SAVED / f"{name}.html", expected["url"], expected["layout"])
    assert not has_frame(page)
    verdict = classify(expected["status"], None, expected["url"], page, signs)
    assert verdict == Verdict(expected["verdict"], expected["reason"])
    assert not_found_phrase(signs) == expected["not_found_phrase"]


def test_a_normal_article_is_present():
    page = legacy_page(LEGACY_PAGES / "standard_article.html")
    assert has_frame(page)
    assert classify(200, None, LEGACY_URL, page) == Verdict(PRESENT, "article")
    page = current_page(CURRENT_PAGES / "standard_article.html")
    assert classify(200, None, CURRENT_URL, page).kind == PRESENT


def test_every_page_of_a_multipage_article_reads_as_an_article_page():
    """The revisit of a multi-page article compares it only when every page has the frame: the saved
    pages 2 and 3 do, the 请稍候 page in place of page 2 does not."""
    urls = json.loads((LEGACY_PAGES / "index.json").read_text("utf-8"))["articles"]["multipage_article"]
    for number, url in enumerate(urls, 1):
        name = "multipage_article" if number == 1 else f"multipage_article_{number}"
        page, signs = read(LEGACY_PAGES / f"{name}.html", url)
        assert classify(200, None, urls[0], page, signs).kind == PRESENT, name
    page, signs = read(SAVED / "legacy_please_wait_page_2.html", urls[1])
    assert classify(200, None, urls[0], page, signs) == Verdict(UNKNOWN, "bot_check")


def test_a_page_without_the_article_frame_and_without_a_not_found_phrase_says_nothing():
    # The channel home served at the article's URL: it may be how a CMS answers for a deleted article,
    # or what a broken template serves for every article; nothing on it says which.
    page, signs = read(LEGACY_PAGES / "home_page.html", LEGACY_URL)
    assert not_found_phrase(signs) is None
    assert classify(200, None, LEGACY_URL, page, signs) == Verdict(UNKNOWN, "not_an_article")


def test_the_not_found_phrases_are_a_setting():
    page, signs = read(SAVED / "legacy_new_template.html", LEGACY_URL)
    title = signs.title.removesuffix("-中工网")
    assert classify(200, None, LEGACY_URL, page, signs, not_found_phrases=(title,)) == Verdict(REMOVED, "not_found_page")
    page, signs = read(SAVED / "legacy_not_found.html", LEGACY_URL)
    assert classify(200, None, LEGACY_URL, page, signs, not_found_phrases=("已下线",)) == Verdict(UNKNOWN, "not_an_article")


def test_a_long_page_with_a_script_is_no_bot_check():
    """An article in a new template has more text than a bot check, whatever scripts it carries."""
    page, signs = read(SAVED / "legacy_new_template.html", LEGACY_URL)
    signs = replace(signs, reload_script=True, meta_refresh=True)
    assert signs.text_length > SHORT_PAGE_CHARACTERS
    assert not is_bot_check(signs)
    assert classify(200, None, LEGACY_URL, page, signs).reason == "not_an_article"


def test_an_article_that_quotes_a_not_found_phrase_in_its_body_is_present():
    page = legacy_page(LEGACY_PAGES / "standard_article.html")
    page.paragraphs = ["网民反映“页面不存在”的链接太多，网站应当及时清理。", *page.paragraphs]
    assert classify(200, None, LEGACY_URL, page).kind == PRESENT


@pytest.mark.parametrize("status", [404, 410])
def test_gone_statuses_are_removed(status):
    assert classify(status, None, LEGACY_URL, None) == Verdict(REMOVED, f"http_{status}")


@pytest.mark.parametrize("target", ["http://theory.workercn.cn/", "http://theory.workercn.cn/241/241.shtml", "http://www.workercn.cn/"])
def test_a_redirect_to_something_else_than_the_article_is_removed(target):
    assert classify(302, target, LEGACY_URL, None).kind == REMOVED
    assert classify(301, target, LEGACY_URL, None).kind == REMOVED


def test_a_redirect_to_the_article_itself_elsewhere_is_unknown():
    assert classify(301, LEGACY_URL.replace("http://", "https://"), LEGACY_URL, None).kind == UNKNOWN
    assert classify(302, None, LEGACY_URL, None).kind == UNKNOWN


def test_not_modified_is_present():
    assert classify(304, None, LEGACY_URL, None).kind == PRESENT


@pytest.mark.parametrize("status", [500, 502, 503, 504, 403, 429])
def test_server_errors_and_other_statuses_say_nothing(status):
    assert classify(status, None, LEGACY_URL, None) == Verdict(UNKNOWN, f"http_{status}")


def test_a_200_that_could_not_be_read_says_nothing():
    assert classify(200, None, LEGACY_URL, None) == Verdict(UNKNOWN, "unreadable")


def test_an_article_frame_titled_with_a_not_found_phrase_is_removed():
    """A not-found template that happens to carry a date and a body: its title is the error message."""
    page = legacy_page(LEGACY_PAGES / "standard_article.html")
    page.title_text = "对不起，您访问的页面不存在"
    assert has_frame(page)
    assert classify(200, None, LEGACY_URL, page) == Verdict(REMOVED, "not_found_page")
    assert not_found_phrase(None, page=page) == "您访问的页面不存在"


MULTIPAGE = json.loads((LEGACY_PAGES / "index.json").read_text("utf-8"))["articles"]["multipage_article"]


def answer(status: int, number: int = 1, headers: dict | None = None) -> HtmlResponse:
    """An answer to a revisit of the saved three-page article: its page ``number`` for a 200."""
    url = MULTIPAGE[number - 1]
    if status != 200:
        return HtmlResponse(url=url, status=status, headers=headers or {}, body=b"")
    name = "multipage_article" if number == 1 else f"multipage_article_{number}"
    return HtmlResponse(url=url, status=200, headers={"ETag": f'"e{number}"'}, body=(LEGACY_PAGES / f"{name}.html").read_bytes())


# (answers in order, what the reading asks for after each: (page, conditional) or the verdict and reason)
REVISITS = [
    ([answer(304), answer(304), answer(304)], [(2, True), (3, True), (PRESENT, "not_modified")]),
    # A later page changed while page 1 did not: every page again, unconditionally.
    ([answer(304), answer(200, 2), answer(200, 1), answer(200, 2), answer(200, 3)],
     [(2, True), (1, False), (2, False), (3, False), (PRESENT, "article")]),
    ([answer(200, 1), answer(200, 2), answer(200, 3)], [(2, False), (3, False), (PRESENT, "article")]),
    ([answer(404)], [(REMOVED, "http_404")]),
    ([answer(301, headers={"Location": "/"})], [(REMOVED, "redirect_elsewhere")]),
    ([answer(200, 1), answer(404, 2)], [(2, False), (UNKNOWN, "page_2_http_404")]),
    ([answer(304), answer(503, 2)], [(2, True), (UNKNOWN, "page_2_http_503")]),
]


@pytest.mark.parametrize("answers, steps", REVISITS)
def test_a_revisit_reading_asks_for_the_next_page_or_judges(answers, steps):
    reading = RevisitReading(MULTIPAGE[0], 3, legacy.read_article_page)
    for number, (response, step) in enumerate(zip(answers, steps, strict=True)):
        result = reading.read(response, {"record_id": f"<urn:uuid:{number}>"})
        if isinstance(step[0], int):
            assert result is None and (reading.next_page, reading.conditional) == step
        else:
            assert (result.verdict, result.reason or ("not_modified" if result.not_modified else "article")) == step
            assert result.answers == [f"<urn:uuid:{n}>" for n in range(len(answers))]
            assert result.page_count == 3
            if result.item is not None:
                assert result.item.url == MULTIPAGE[0] and result.item.page_count == 3
                assert [place["record_id"] for place in result.item.warc] == result.answers[-3:]
