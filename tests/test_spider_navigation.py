"""The spider's routing decisions on single listing and article responses, without any server."""

from __future__ import annotations

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from crawler.spiders.theory import TheorySpider
from crawler.urls import article_id
from crawler.walks import Page
from crawler.walks.listing import ListingWalk

BASE = "http://theory.example/"


def listing_page(section: str, page: int, article_paths: list[str], next_page: str | None) -> HtmlResponse:
    links = "".join(f'<li><a href="{path}">标题</a><span>2019-01-01</span></li>' for path in article_paths)
    pager = f'<div class="page"><a href="{next_page}">下一页</a></div>' if next_page else '<div class="page"></div>'
    html = f'<html><head><meta charset="gb2312"></head><body><ul id="leftList">{links}</ul>{pager}</body></html>'
    name = f"{section}.shtml" if page == 1 else f"{section}_{page}.shtml"
    return HtmlResponse(url=f"{BASE}{section}/{name}", body=html.encode("gbk"))


def articles(section: str, first: int, count: int) -> list[str]:
    return [f"/{section}/201901/01/1901010000{number:05d}.shtml" for number in range(first, first + count)]


@pytest.fixture
def spider(tmp_path):
    crawler = get_crawler(
        TheorySpider,
        {"THEORY_BASE_URL": BASE, "THEORY_CHANNEL_URL": "", "THEORY_DATA_DIR": str(tmp_path), "THEORY_MAX_ATTEMPTS": 3, "THEORY_MAX_LISTING_PAGES": 5},
    )
    spider = TheorySpider.from_crawler(crawler, full="0")
    crawler.spider = spider
    yield spider
    spider.state.close()


def start_walk(spider, section: str = "241") -> ListingWalk:
    """The section's walk, as the channel home starts it."""
    walk = ListingWalk(
        section, spider.full, spider.state.section_walked(section), spider.max_listing_pages,
        first_url=f"{BASE}{section}/{section}.shtml",
    )
    spider.start_walk(walk)
    return walk


def split(spider, requests) -> tuple[list[Request], list[Request]]:
    """(article requests, listing requests) among the requests a callback made."""
    requests = list(requests or [])
    return (
        [r for r in requests if r.callback == spider.parse_article],
        [r for r in requests if r.callback == spider.parse_listing],
    )


def route(spider, response, page: int = 1, walk: ListingWalk | None = None) -> tuple[list[Request], list[Request]]:
    """(article requests, listing requests) that a listing response leads to; a new walk unless ``walk``."""
    walk = walk or start_walk(spider)
    return split(spider, spider.parse_listing(response, source=walk.source, page=Page(page, response.url)))


def fail(spider, walk: ListingWalk, page: int, status: int):
    """The errback of listing page ``page``, answered with ``status`` after its retries."""
    url = f"{BASE}{walk.source}/{walk.source}" + ("" if page == 1 else f"_{page}") + ".shtml"
    request = spider.walk_request(walk, Page(page, url))
    failure = Failure(HttpError(Response(url, status=status, request=request)))
    failure.request = request
    return split(spider, spider.walk_page_failed(failure))


def test_new_articles_are_followed_and_so_is_the_next_page(spider):
    followed, listings = route(spider, listing_page("241", 1, articles("241", 1, 3), "241_2.shtml"))
    assert [r.url for r in followed] == [BASE.rstrip("/") + path for path in articles("241", 1, 3)]
    assert [r.url for r in listings] == [f"{BASE}241/241_2.shtml"]
    assert spider.state.known(article_id(r.url) for r in followed) == {article_id(r.url) for r in followed}


def test_known_articles_are_not_fetched_again(spider):
    spider.state.add_pending((article_id(BASE + p[1:]), BASE + p[1:], "241") for p in articles("241", 1, 2))
    followed, _ = route(spider, listing_page("241", 1, articles("241", 1, 3), "241_2.shtml"))
    assert [r.url for r in followed] == [BASE.rstrip("/") + articles("241", 3, 1)[0]]


def test_paging_stops_at_a_page_of_known_articles_once_the_section_was_walked(spider):
    page = listing_page("241", 1, articles("241", 1, 3), "241_2.shtml")
    route(spider, page)  # first sight: all new
    spider.state.mark_section_walked("241")
    followed, listings = route(spider, page)
    assert followed == [] and listings == []


def test_an_unfinished_walk_goes_on_past_known_pages(spider):
    page = listing_page("241", 1, articles("241", 1, 3), "241_2.shtml")
    route(spider, page)
    followed, listings = route(spider, page)  # a crash before the end of the first walk
    assert followed == [] and [r.url for r in listings] == [f"{BASE}241/241_2.shtml"]


def test_full_walks_every_page_even_when_everything_is_known(spider):
    page = listing_page("241", 1, articles("241", 1, 3), "241_2.shtml")
    route(spider, page)
    spider.state.mark_section_walked("241")
    spider.full = True
    _, listings = route(spider, page)
    assert [r.url for r in listings] == [f"{BASE}241/241_2.shtml"]


def test_the_last_page_marks_the_section_walked(spider):
    route(spider, listing_page("241", 3, articles("241", 1, 3), None), page=3)
    assert spider.state.section_walked("241")


def test_a_page_repeating_the_one_before_is_skipped_and_the_walk_goes_on(spider):
    walk = start_walk(spider)
    paths = articles("241", 1, 3)
    route(spider, listing_page("241", 1, paths, "241_2.shtml"), walk=walk)
    followed, listings = route(spider, listing_page("241", 2, paths, "241_3.shtml"), page=2, walk=walk)
    assert followed == [] and [r.url for r in listings] == [f"{BASE}241/241_3.shtml"]
    assert spider.crawler.stats.get_value("theory/listing/repeated_page") == 1
    route(spider, listing_page("241", 3, articles("241", 4, 3), None), page=3, walk=walk)
    assert walk.complete and spider.state.section_walked("241")


def test_a_failed_listing_page_is_passed_by_its_number_and_the_section_walked_again_next_run(spider):
    walk = start_walk(spider)
    route(spider, listing_page("241", 1, articles("241", 1, 3), "241_2.shtml"), walk=walk)
    spider.state.mark_section_walked("241")  # an earlier run's walk
    _, listings = fail(spider, walk, 2, 500)
    assert [r.url for r in listings] == [f"{BASE}241/241_3.shtml"]
    followed, listings = route(spider, listing_page("241", 3, articles("241", 4, 2), None), page=3, walk=walk)
    assert len(followed) == 2 and listings == []
    assert walk.ended and not walk.complete
    assert spider.crawler.stats.get_value("theory/walk/incomplete/241") == [f"{BASE}241/241_2.shtml (http_500)"]
    assert spider.crawler.stats.get_value("theory/listing/failed/http_500") == 1
    assert not spider.state.section_walked("241")  # the next run walks it past its known pages


@pytest.mark.parametrize("back_to", ["241.shtml", "241_2.shtml", "241_3.shtml"])
def test_a_next_link_leading_back_ends_the_section(spider, back_to):
    followed, listings = route(spider, listing_page("241", 3, articles("241", 1, 3), back_to), page=3)
    assert len(followed) == 3 and listings == []
    assert spider.crawler.stats.get_value("theory/listing/pagination_loop") == 1
    assert spider.state.section_walked("241")


def test_the_page_cap_ends_the_section_incomplete(spider):
    _, listings = route(spider, listing_page("241", 5, articles("241", 1, 3), "241_6.shtml"), page=5)
    assert listings == []
    assert spider.crawler.stats.get_value("theory/listing/page_cap_reached") == 1
    assert spider.crawler.stats.get_value("theory/walk/incomplete/241") == [f"{BASE}241/241_6.shtml (page_cap)"]


def test_a_listing_without_article_links_raises_the_layout_alarm(spider):
    followed, listings = route(spider, listing_page("241", 1, [], "241_2.shtml"))
    assert followed == [] and listings == []
    assert spider.crawler.stats.get_value("theory/layout/listing_without_links") == 1


def test_a_multi_page_article_asks_for_its_next_page_then_yields_one_item(spider):
    url = BASE + "241/201901/01/190101000000001.shtml"
    html = (
        '<html><head><meta charset="gb2312"></head><body><div class="ctitle">题目</div>'
        '<div class="signdate"><span>2019-01-01</span></div><div class="ccontent"><p>第{n}页</p>'
        '<div><p><input type="hidden" name="__totalpage" value="2" /></p></div></div></body></html>'
    )
    first = HtmlResponse(url=url, body=html.format(n=1).encode("gbk"), request=Request(url, meta={"article_url": url}))
    (next_request,) = spider.parse_article(first, pages=[])
    assert next_request.url == url.replace(".shtml", "_2.shtml")
    second = HtmlResponse(url=next_request.url, body=html.format(n=2).encode("gbk"), request=next_request)
    (item,) = spider.parse_article(second, **next_request.cb_kwargs)
    assert (item.url, item.body, item.page_count) == (url, "第1页\n第2页", 2)


def test_an_article_that_is_not_html_is_counted_and_stays_owed(spider):
    url = BASE + "241/201901/01/190101000000002.shtml"
    response = Response(url=url, body=b"\x89PNG\r\n", request=Request(url, meta={"article_url": url}))
    assert list(spider.parse_article(response, pages=[])) == []
    assert spider.crawler.stats.get_value("theory/article/not_html") == 1
    assert spider.state.pending() == [url]
