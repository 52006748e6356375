"""Hand-written fixture pages of the current CMS (www.workercn.cn) against their expected parse.

The pages in ``fixtures/current_pages`` are UTF-8, like the site's, with or without a declaration or a
BOM; each ``NAME.json`` beside them was written by hand from the current mirror's README (never by
running this code). ``index.json`` says at which URL each page is served. Feed pages are
``NAME.feed.json``, whatever they hold.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from itemadapter import ItemAdapter
from jsonschema import Draft7Validator
from scrapy.http import HtmlResponse, TextResponse

from crawler.loaders import load_article
from crawler.pipelines import ValidationPipeline, load_schema
from crawler.readers import legacy
from crawler.readers.current import named_channel, read_article_page, read_channel, read_feed
from crawler.settings import THEORY_ARTICLE_HOSTS

PAGES = Path(__file__).parent / "fixtures" / "current_pages"
INDEX = json.loads((PAGES / "index.json").read_text("utf-8"))
ARTICLES, CHANNELS, FEEDS = INDEX["articles"], INDEX["channels"], INDEX["feeds"]

# Every field the loader fills from the page; content_hash and crawled_at are computed and checked apart.
ARTICLE_FIELDS = [
    "url", "article_id", "section_id", "section_name", "title", "authors", "source", "published_date",
    "published_time", "published_at", "editor", "body", "images", "page_count",
]
# Articles the validation pipeline must refuse: nothing to archive.
UNUSABLE = {"no_body_page"}
# What the spider passes to every article: the name it read on the channel page.
CHANNEL_NAME = "理论"
# Hosts whose article links the feed and channel page may give, besides their own (the default setting).
ARTICLE_HOSTS = frozenset(THEORY_ARTICLE_HOSTS)


def expected(name: str) -> dict:
    return json.loads((PAGES / f"{name}.json").read_text("utf-8"))


def page_bytes(file_name: str) -> bytes:
    return (PAGES / file_name).read_bytes()


def html_response(name: str, url: str) -> HtmlResponse:
    # No encoding argument: the server sends no charset, so BOM, <meta> or sniffing must decide.
    return HtmlResponse(url=url, body=page_bytes(f"{name}.html"))


def read_article(name: str):
    return read_article_page(html_response(name, ARTICLES[name]))


def load_fixture_article(name: str, section_name_fallback: str | None = CHANNEL_NAME):
    return load_article([read_article(name)], section_name_fallback=section_name_fallback)


def fields(item) -> dict:
    return {field: getattr(item, field) for field in ARTICLE_FIELDS}


def read_fixture_feed(name: str):
    return read_feed(TextResponse(url=FEEDS[name], body=page_bytes(f"{name}.feed.json")), ARTICLE_HOSTS)


def test_every_fixture_has_its_page_and_its_expectation():
    for name in [*ARTICLES, *CHANNELS]:
        assert (PAGES / f"{name}.html").is_file(), name
    for name in FEEDS:
        assert (PAGES / f"{name}.feed.json").is_file(), name
    for name in [*ARTICLES, *CHANNELS, *FEEDS]:
        assert (PAGES / f"{name}.json").is_file(), name
    for name in ARTICLES:
        assert sorted(expected(name)) == sorted(ARTICLE_FIELDS), f"{name}.json must state every field"


def test_encoding_fixtures_are_what_their_names_say():
    # Guards the fixtures' point against a well-meant edit that adds the declaration or drops the BOM.
    assert b"charset" not in page_bytes("no_charset_article.html").lower()
    assert page_bytes("bom_article.html").startswith(b"\xef\xbb\xbf<!DOCTYPE")
    assert b'<meta charset="utf-8">' in page_bytes("bom_article.html")
    assert page_bytes("feed_bom.feed.json").startswith(b"\xef\xbb\xbf[")


# --- articles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ARTICLES))
def test_article_fields_are_the_expected_ones(name):
    assert fields(load_fixture_article(name)) == expected(name)


@pytest.mark.parametrize(
    "name, channel",
    [("standard_article", "理论"), ("character_article", "人物"), ("no_author_no_editor_article", "理论")],
)
def test_the_channel_an_article_page_names(name, channel):
    assert read_article(name).channel_name == channel


@pytest.mark.parametrize(
    "title, breadcrumb, channel",
    [
        ("题目 - 人物 - 中工网", [("/", "首页"), ("/theory/", "理论")], "人物"),  # the <title> decides
        ("题目 - 理论 - 中工网", [], "理论"),
        ("题目-中工网", [("/", "首页"), ("/character/", "人物")], "人物"),  # no channel in the <title>
        ("题目", [("/", "首页"), ("http://www.workercn.cn/character/index.shtml", " 人物 ")], "人物"),
        ("题目 - 中工网", [("/", "首页")], None),  # names none: stays in the channel
        ("", [], None),
        ("题目", [("/c/2026-01-01/8000001.shtml", "正文")], None),  # an article link is no channel
    ],
)
def test_named_channel(title, breadcrumb, channel):
    assert named_channel(title, breadcrumb) == channel


def test_noise_around_the_article_reaches_no_field():
    text = json.dumps(fields(load_fixture_article("standard_article")), ensure_ascii=False)
    for noise in [
        "热点", "侧栏", "导航", "人物",  # sidebar and nav
        "脚本里的分享标题", "bdShare",  # <script> inside ccontent
        "旧稿被注释掉", "2927829", "钱某某",  # HTML comments, an <img> inside one
        "分享到", "版权所有", "搜索",  # share line, footer, header
        "\u00a0", "\u3000",  # indentation left over from &nbsp; and full-width spaces
    ]:
        assert noise not in text, noise


def test_section_name_comes_from_the_breadcrumb_and_otherwise_from_the_spider():
    # The nav's 理论 link is no breadcrumb: without the spider's fallback, a page without crumbs names no section.
    assert load_fixture_article("no_h1_article", section_name_fallback=None).section_name is None
    assert load_fixture_article("no_h1_article").section_name == "理论"
    assert load_fixture_article("standard_article", section_name_fallback=None).section_name == "理论"
    assert load_fixture_article("standard_article", section_name_fallback="别的频道").section_name == "理论"


@pytest.mark.parametrize("name", list(ARTICLES))
def test_content_hash_is_the_published_digest_of_title_and_body(name):
    # Recomputed from the schema's description, so the expectation does not lean on the code under test.
    want = expected(name)
    # A page with images and no text is told apart by its images' paths instead.
    identity = want["body"] or "".join(urlsplit(image).path for image in want["images"])
    text = unicodedata.normalize("NFKC", want["title"] + identity)
    digest = hashlib.sha256("".join(text.split()).encode("utf-8")).hexdigest()
    assert load_fixture_article(name).content_hash == digest


def test_a_republished_legacy_article_has_the_legacy_content_hash():
    # Same title and body under a /c/ URL: the dedupe pipeline must see one article across both sites.
    legacy_url = "http://theory.workercn.cn/251/201904/17/190417085739512.shtml"
    legacy_page = Path(__file__).parent / "fixtures" / "pages" / "from_metadata_article.html"
    original = load_article([legacy.read_article_page(HtmlResponse(url=legacy_url, body=legacy_page.read_bytes()))])
    assert load_fixture_article("two_authors_article").content_hash == original.content_hash


def test_crawled_at_is_the_current_utc_time():
    crawled_at = datetime.fromisoformat(load_fixture_article("standard_article").crawled_at)
    assert crawled_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(crawled_at.tzinfo) - crawled_at) < timedelta(minutes=1)


@pytest.mark.parametrize("name", [name for name in ARTICLES if name not in UNUSABLE])
def test_complete_articles_satisfy_the_published_schema(name):
    record = ItemAdapter(load_fixture_article(name)).asdict()
    assert [error.message for error in Draft7Validator(load_schema()).iter_errors(record)] == []


def test_a_page_with_images_and_no_text_is_an_article_with_an_empty_body():
    record = ItemAdapter(load_fixture_article("image_only_article")).asdict()
    assert record["body"] == "" and len(record["images"]) == 2
    assert ValidationPipeline(None, None, "", 0).problems(record) == []


def test_a_body_nested_thousands_of_elements_deep_is_read_without_recursion():
    depth = 1500  # past Python's recursion limit (1000), within libxml2's depth limit (about 2000)
    html = (
        '<html><head><meta charset="utf-8"></head><body><h1 class="title">深</h1>'
        '<div class="info"><span class="time">2026-01-01 08:00:00</span></div><div class="ccontent"><p>'
        + "<span>" * depth + "最里层的正文<br/>第二段" + "</span>" * depth + "</p></div></body></html>"
    )
    url = "http://www.workercn.cn/c/2026-01-01/8600001.shtml"
    item = load_article([read_article_page(HtmlResponse(url=url, body=html.encode("utf-8")))])
    assert item.body == "最里层的正文\n第二段"


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_pages_without_body_give_an_item_validation_refuses(name):
    item = load_fixture_article(name)
    assert item.title and item.body is None
    assert not Draft7Validator(load_schema()).is_valid(ItemAdapter(item).asdict())


# --- the channel page and its JSON feed -----------------------------------------------------------


@pytest.mark.parametrize("name", list(CHANNELS))
def test_channel_name_and_links_are_the_expected_ones(name):
    assert asdict(read_channel(html_response(name, CHANNELS[name]))) == expected(name)


@pytest.mark.parametrize("name", [name for name in FEEDS if "raises" not in expected(name)])
def test_feed_links_and_entries_are_the_expected_ones(name):
    assert asdict(read_fixture_feed(name)) == expected(name)


@pytest.mark.parametrize("name", [name for name in FEEDS if "raises" in expected(name)])
def test_a_feed_page_that_is_not_json_raises_value_error(name):
    # The spider tells a broken feed page (ValueError) from an empty one (entries == 0), which ends the feed.
    assert expected(name)["raises"] == "ValueError"
    with pytest.raises(ValueError):
        read_fixture_feed(name)
