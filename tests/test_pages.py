"""Hand-written fixture pages against their expected parse.

The pages in ``fixtures/pages`` are GBK bytes declaring ``charset=gb2312``, like the site's; each
``NAME.json`` beside them was written by hand from the mirror README's rules (never by running this
code). ``index.json`` says at which URL each page is served; an article's pages 2..N are
``NAME_2.html``, ``NAME_3.html``, ...
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from itemadapter import ItemAdapter
from jsonschema import Draft7Validator
from scrapy.http import HtmlResponse

from crawler.loaders import load_article
from crawler.readers.legacy import read_article_page, read_listing, read_sections
from crawler.pipelines import load_schema

PAGES = Path(__file__).parent / "fixtures" / "pages"
INDEX = json.loads((PAGES / "index.json").read_text("utf-8"))

# Every field the loader fills from the page; content_hash and crawled_at are computed and checked apart.
ARTICLE_FIELDS = [
    "url", "article_id", "section_id", "section_name", "title", "authors", "source", "published_date",
    "published_time", "published_at", "editor", "body", "images", "page_count",
]
# Articles the validation pipeline must refuse: nothing to archive.
UNUSABLE = {"empty_page", "no_body_page"}


def expected(name: str) -> dict:
    return json.loads((PAGES / f"{name}.json").read_text("utf-8"))


def response(file_name: str, url: str) -> HtmlResponse:
    # No encoding argument: the <meta> charset decides, as with the site's header-less Content-Type.
    return HtmlResponse(url=url, body=(PAGES / file_name).read_bytes())


def article_files(name: str) -> list[tuple[str, str]]:
    urls = INDEX["articles"][name]
    return [(f"{name}.html" if n == 1 else f"{name}_{n}.html", url) for n, url in enumerate(urls, 1)]


def read_article(name: str):
    return [read_article_page(response(file_name, url)) for file_name, url in article_files(name)]


def load_fixture_article(name: str):
    return load_article(read_article(name))


def fields(item) -> dict:
    return {field: getattr(item, field) for field in ARTICLE_FIELDS}


def test_every_fixture_has_its_page_and_its_expectation():
    names = [*INDEX["articles"], *INDEX["listings"], *INDEX["homes"]]
    for name in names:
        assert (PAGES / f"{name}.html").is_file(), name
        assert (PAGES / f"{name}.json").is_file(), name
    for name in INDEX["articles"]:
        assert sorted(expected(name)) == sorted(ARTICLE_FIELDS), f"{name}.json must state every field"
        for file_name, _ in article_files(name):
            assert (PAGES / file_name).is_file(), file_name


def test_fixture_pages_are_gbk_that_strict_gb2312_cannot_decode():
    # The point of the encoding fixtures: a decoder that trusts the declared gb2312 fails on them.
    data = (PAGES / "standard_article.html").read_bytes()
    assert b'charset=gb2312' in data
    assert "王喆" in data.decode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("gb2312")


# --- articles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(INDEX["articles"]))
def test_article_fields_are_the_expected_ones(name):
    assert fields(load_fixture_article(name)) == expected(name)


@pytest.mark.parametrize("name", list(INDEX["articles"]))
def test_every_page_of_an_article_announces_its_page_count(name):
    pages = read_article(name)
    assert [page.total_pages for page in pages] == [len(pages)] * len(pages)


def test_noise_around_the_article_reaches_no_field():
    item = load_fixture_article("standard_article")
    text = json.dumps(fields(item), ensure_ascii=False)
    for noise in [
        "零容忍", "侧栏摘要", "热点排行", "牢牢把握",  # sidebar teasers and ranking
        "相关文章", "夯实基层基础", "保护伞",  # div.xgwz
        "分享到", "扫码关注", "版权所有",  # share line, footer
        "脚本写出", "行内脚本", "line-height",  # <script>, <style>
        "被注释掉", "内部批注", "U123P4T47D50000",  # HTML comments, an <img> inside one
        "http://theory.workercn.cn\"",  # the signdate's first span is not the source
    ]:
        assert noise not in text, noise


def test_item_keeps_gbk_only_characters_and_punctuation_exact():
    # The gb2312 codec would turn — and · into ― and ・, and fail on 喆 堃 珺 昇 赟.
    item = load_fixture_article("standard_article")
    assert "——" in item.title and "―" not in item.title
    assert "阿依古丽·买买提" in item.body and "・" not in item.body
    for character in "喆堃赟":
        assert character in item.title + item.body
    assert item.authors == ["赵珺"] and item.editor == "刘昇"


@pytest.mark.parametrize("name", [name for name in INDEX["articles"] if name not in UNUSABLE])
def test_complete_articles_satisfy_the_published_schema(name):
    record = ItemAdapter(load_fixture_article(name)).asdict()
    errors = [error.message for error in Draft7Validator(load_schema()).iter_errors(record)]
    assert errors == []


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_pages_without_title_or_body_give_an_item_validation_refuses(name):
    item = load_fixture_article(name)
    assert item.body is None
    assert not Draft7Validator(load_schema()).is_valid(ItemAdapter(item).asdict())


def test_empty_response_has_no_title_either():
    assert load_fixture_article("empty_page").title is None


def test_section_name_falls_back_to_the_name_from_the_channel_home():
    # The spider passes the name read from the home page's navigation for pages that name no section.
    assert load_article(read_article("no_body_page"), section_name_fallback="实践与思考").section_name == "实践与思考"


def test_section_name_from_the_page_wins_over_the_fallback():
    item = load_article(read_article("standard_article"), section_name_fallback="别的栏目")
    assert item.section_name == "实践与思考"


def test_crawled_at_is_the_current_utc_time():
    item = load_fixture_article("date_only_article")
    crawled_at = datetime.fromisoformat(item.crawled_at)
    assert crawled_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(crawled_at.tzinfo) - crawled_at) < timedelta(minutes=1)


def test_republished_copy_has_the_same_content_hash():
    # Another id, section, date and editor; same title and body: the dedupe pipeline must see one article.
    original = read_article("from_metadata_article")
    copy = [
        replace(
            original[0],
            url="http://theory.workercn.cn/252/201905/02/190502101010101.shtml",
            signdate_texts=["2019-05-02 10:10:10", "来源：中工网"],
            editor_text="（责任编辑：李赟）",
            section_names=["党建园地"],
        )
    ]
    assert load_article(copy).content_hash == load_article(original).content_hash


def test_an_edited_body_changes_the_content_hash():
    original = read_article("from_metadata_article")
    edited = [replace(original[0], paragraphs=[*original[0].paragraphs, "　　编者按：本文有删节。"])]
    assert load_article(edited).content_hash != load_article(original).content_hash


def test_another_page_of_a_multipage_article_changes_the_content_hash():
    pages = read_article("multipage_article")
    assert load_article(pages[:2]).content_hash != load_article(pages).content_hash


# --- broken input ---------------------------------------------------------------------------------


def test_a_page_cut_anywhere_still_parses():
    # Cuts land inside tags, entities and two-byte GBK characters alike.
    (file_name, url), = article_files("standard_article")
    data = (PAGES / file_name).read_bytes()
    for end in range(0, len(data), 37):
        item = load_article([read_article_page(HtmlResponse(url=url, body=data[:end]))])
        assert item.url == url and item.article_id == "190312084512367"


def test_a_page_cut_inside_a_gbk_character_keeps_what_came_before():
    (file_name, url), = article_files("truncated_article")
    data = (PAGES / file_name).read_bytes()
    assert data.endswith("断".encode("gbk"))
    item = load_article([read_article_page(HtmlResponse(url=url, body=data[:-1]))])
    assert item.title == "工会改革须落细落小"
    assert item.body.startswith(expected("truncated_article")["body"][:-1])


# --- listings and the channel home ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(INDEX["listings"]))
def test_listing_links_and_next_page_are_the_expected_ones(name):
    listing = read_listing(response(f"{name}.html", INDEX["listings"][name]))
    assert asdict(listing) == expected(name)


@pytest.mark.parametrize("name", list(INDEX["homes"]))
def test_sections_of_the_channel_home_are_the_expected_ones(name):
    sections = read_sections(response(f"{name}.html", INDEX["homes"][name]))
    assert [asdict(section) for section in sections] == expected(name)["sections"]


def test_a_listing_without_a_last_page_link_is_counted_by_its_total():
    # Page 1 of a listing names its last page: by the 尾页 link, or else by 共N页 alone.
    html = (PAGES / "listing_page.html").read_bytes().replace('<a href="241_3.shtml">尾页</a>'.encode("gbk"), b"")
    html = html.replace("共3页".encode("gbk"), "共7页".encode("gbk"))
    page = HtmlResponse("http://theory.workercn.cn/241/241_2.shtml", body=html, encoding="gbk")
    assert read_listing(page).last_page == 7


def test_listing_urls_follow_the_host_the_page_was_served_from():
    # The same bytes served by a mirror on 127.0.0.1: root-relative links stay on the mirror,
    # while the absolute theory.workercn.cn link becomes off-site and is dropped.
    listing = read_listing(response("listing_page.html", "http://127.0.0.1:8080/241/241_2.shtml"))
    assert listing.next_page_url == "http://127.0.0.1:8080/241/241_3.shtml"
    assert all(url.startswith("http://127.0.0.1:8080/") for url in listing.article_urls)
    assert "http://127.0.0.1:8080/241/201709/04/170904204327282.shtml" not in listing.article_urls
    assert len(listing.article_urls) == len(expected("listing_page")["article_urls"]) - 1


def test_every_item_carries_the_parser_version_and_old_lines_without_it_stay_valid():
    from importlib.metadata import version

    record = ItemAdapter(load_fixture_article("standard_article")).asdict()
    assert record["parser_version"] == version("theory-crawler")
    validator = Draft7Validator(load_schema())
    assert validator.is_valid(record)
    old_line = {key: value for key, value in record.items() if key != "parser_version"}
    assert validator.is_valid(old_line), "a line written before parser_version existed must still validate"
    assert not validator.is_valid({**record, "parser_version": ""})
