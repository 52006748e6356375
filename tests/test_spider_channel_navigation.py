"""The spider's routing on the current CMS: channel page, then the JSON feed, without any server."""

from __future__ import annotations

import json

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from crawler import settings
from crawler.spiders.theory import TheorySpider, channel_renamed
from crawler.urls import article_id
from crawler.walks import Page
from crawler.walks.feed import FeedWalk

SITE = "http://current.example"
CHANNEL = f"{SITE}/theory/"


def articles(first: int, count: int) -> list[str]:
    return [f"/c/2026-01-01/{number}.shtml" for number in range(8000000 + first, 8000000 + first + count)]


def channel_page(paths: list[str], sidebar: list[str] = ()) -> HtmlResponse:
    items = "".join(f'<li id="li_{article_id(p)}"><h3><a href="{p}">题</a></h3></li>' for p in paths)
    hot = "".join(f'<li><a href="{p}">热</a></li>' for p in sidebar)
    html = f'<html><head><meta charset="utf-8"><title>理论 - 中工网</title></head><body><ul class="list">{items}</ul><div class="hot"><ul>{hot}</ul></div></body></html>'
    return HtmlResponse(url=CHANNEL, body=html.encode("utf-8"))


def feed_page(page: int, body) -> TextResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    return TextResponse(url=f"{SITE}/json/theory/index_{page}.json", body=data)


def entries(paths: list[str]) -> list[dict]:
    return [{"id": article_id(p), "title": "题", "href": p} for p in paths]


@pytest.fixture
def spider(tmp_path):
    crawler = get_crawler(
        TheorySpider,
        {
            "THEORY_BASE_URL": "", "THEORY_CHANNEL_URL": CHANNEL, "THEORY_FEED_PATH": settings.THEORY_FEED_PATH,
            "THEORY_DATA_DIR": str(tmp_path), "THEORY_MAX_LISTING_PAGES": 5,
        },
    )
    spider = TheorySpider.from_crawler(crawler)
    crawler.spider = spider
    yield spider
    spider.state.close()


def split(spider, requests) -> tuple[list[str], list[str]]:
    """(article URLs, feed page URLs) among the requests a callback made."""
    requests = list(requests or [])
    return (
        [r.url for r in requests if r.callback == spider.parse_article],
        [r.url for r in requests if r.callback == spider.parse_feed],
    )


def walk_of(spider) -> FeedWalk:
    """The run's feed walk, started as the channel page starts it."""
    if "theory" not in spider.walks:
        spider.start_walk(spider.feed_walk())
    return spider.walks["theory"]


def feed(spider, page: int, body):
    walk = walk_of(spider)
    response = feed_page(page, body)
    return split(spider, spider.parse_feed(response, source=walk.source, page=Page(page, response.url, guessed=True)))


def feed_failure(spider, page: int, status: int):
    walk = walk_of(spider)
    request = spider.walk_request(walk, Page(page, f"{SITE}/json/theory/index_{page}.json", guessed=True))
    response = TextResponse(url=request.url, status=status, body=b"", request=request)
    failure = Failure(HttpError(response))
    failure.request = request
    return split(spider, spider.walk_page_failed(failure))


def stat(spider, name: str):
    return spider.crawler.stats.get_value(name)


def test_the_channel_list_is_followed_and_not_its_sidebar(spider):
    other_channel = ["/c/2025-01-01/7000001.shtml"]
    followed, feeds = split(spider, spider.parse_channel(channel_page(articles(1, 3), sidebar=other_channel)))
    assert followed == [SITE + p for p in articles(1, 3)]
    assert feeds == [f"{SITE}/json/theory/index_1.json"]
    assert spider.section_names["theory"] == "理论"


def test_a_known_channel_page_ends_the_run_for_the_channel_once_it_was_walked(spider):
    split(spider, spider.parse_channel(channel_page(articles(1, 3))))
    spider.state.mark_section_walked("theory")
    assert split(spider, spider.parse_channel(channel_page(articles(1, 3)))) == ([], [])


def test_full_walks_the_feed_even_when_everything_is_known(spider):
    split(spider, spider.parse_channel(channel_page(articles(1, 3))))
    spider.state.mark_section_walked("theory")
    spider.full = True
    assert split(spider, spider.parse_channel(channel_page(articles(1, 3))))[1] == [f"{SITE}/json/theory/index_1.json"]


def test_a_channel_page_without_list_items_raises_the_layout_alarm(spider):
    assert split(spider, spider.parse_channel(channel_page([], sidebar=articles(1, 3)))) == ([], [])
    assert stat(spider, "theory/layout/channel_without_links") == 1


def test_feed_pages_are_followed_until_a_missing_page_which_marks_the_channel_walked(spider):
    followed, feeds = feed(spider, 1, entries(articles(1, 3)))
    assert len(followed) == 3 and feeds == [f"{SITE}/json/theory/index_2.json"]
    assert feed_failure(spider, 2, 404) == ([], [])
    assert spider.state.section_walked("theory")
    assert stat(spider, "theory/feed/failed/http_404") is None  # the end of the feed is no failure


def test_an_empty_feed_page_ends_the_feed(spider):
    feed(spider, 1, entries(articles(1, 3)))
    assert feed(spider, 2, []) == ([], [])
    assert spider.state.section_walked("theory")


@pytest.mark.parametrize("empty", [[], {"code": 0, "data": {"list": []}}])
def test_an_empty_feed_page_in_any_wrapper_ends_the_feed(spider, empty):
    assert feed(spider, 1, empty) == ([], [])
    assert spider.state.section_walked("theory") and not stat(spider, "theory/layout/feed_without_links")


def test_a_feed_page_repeating_an_earlier_one_is_skipped_and_the_walk_goes_on(spider):
    feed(spider, 1, entries(articles(1, 3)))
    feed(spider, 2, entries(articles(4, 3)))
    assert feed(spider, 3, entries(articles(1, 3))) == ([], [f"{SITE}/json/theory/index_4.json"])
    assert stat(spider, "theory/feed/repeated_page") == 1
    followed, _ = feed(spider, 4, entries(articles(7, 3)))
    assert len(followed) == 3
    feed_failure(spider, 5, 404)
    assert spider.state.section_walked("theory") and walk_of(spider).complete


def test_an_incremental_walk_stops_at_a_page_of_known_articles(spider):
    feed(spider, 1, entries(articles(1, 3)))
    feed_failure(spider, 2, 404)
    spider.walks.clear()  # the next run
    assert feed(spider, 1, entries(articles(1, 3))) == ([], [])
    assert spider.state.section_walked("theory")


def test_feed_field_names_do_not_matter(spider):
    renamed = [{"docId": article_id(p), "url": f"{SITE}{p}", "publishDate": "2026-01-01"} for p in articles(1, 2)]
    followed, feeds = feed(spider, 1, {"data": {"list": renamed}})
    assert followed == [SITE + p for p in articles(1, 2)] and len(feeds) == 1


def test_feed_entries_without_article_links_raise_the_layout_alarm(spider):
    assert feed(spider, 1, [{"id": "1", "title": "题"}]) == ([], [])
    assert stat(spider, "theory/layout/feed_without_links") == 1


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", json.dumps(entries(articles(1, 3)), ensure_ascii=False).encode("gbk")])
def test_a_malformed_feed_page_is_a_failure_and_passed(spider, body):
    spider.state.mark_section_walked("theory")  # an earlier run's walk
    feed(spider, 1, entries(articles(1, 3)))
    followed, feeds = feed(spider, 2, body)
    assert followed == [] and feeds == [f"{SITE}/json/theory/index_3.json"]
    assert stat(spider, "theory/feed/failed/not_json") == 1
    feed_failure(spider, 3, 404)
    assert stat(spider, "theory/walk/incomplete/theory") == [f"{SITE}/json/theory/index_2.json (not_json)"]
    assert not spider.state.section_walked("theory")  # walked in full again next run


def test_malformed_feed_pages_in_a_row_end_the_walk(spider):
    feed(spider, 1, entries(articles(1, 3)))
    assert feed(spider, 2, b"{not json")[1] and feed(spider, 3, b"{not json")[1]
    assert feed(spider, 4, b"{not json") == ([], [])
    assert len(stat(spider, "theory/walk/incomplete/theory")) == 3
    assert not spider.state.section_walked("theory")


def test_a_missing_first_feed_page_tries_the_second(spider):
    # The channel page's own "load more" script starts at page 2.
    assert feed_failure(spider, 1, 404) == ([], [f"{SITE}/json/theory/index_2.json"])
    assert feed_failure(spider, 2, 404) == ([], [])
    assert stat(spider, "theory/layout/feed_missing") == 1


def test_a_feed_page_failing_with_a_server_error_is_a_failure_and_passed(spider):
    feed(spider, 1, entries(articles(1, 3)))
    assert feed_failure(spider, 2, 500) == ([], [f"{SITE}/json/theory/index_3.json"])
    assert stat(spider, "theory/feed/failed/http_500") == 1
    assert not spider.state.section_walked("theory")


def test_the_page_cap_ends_the_feed(spider):
    followed, feeds = feed(spider, 5, entries(articles(1, 3)))
    assert len(followed) == 3 and feeds == []
    assert stat(spider, "theory/feed/page_cap_reached") == 1


def article_response(number: int, channel: str = "理论") -> HtmlResponse:
    url = SITE + articles(number, 1)[0]
    html = (
        f'<html><head><meta charset="utf-8"><title>题目 - {channel} - 中工网</title></head><body>'
        '<div class="crumbs"><a href="/">首页</a> &gt; <a href="/theory/">理论</a></div><h1 class="title">题目</h1>'
        '<div class="info"><span class="time">2026-01-01 08:00:00</span><span class="source">来源：工人日报</span></div>'
        '<div class="ccontent"><p>正文</p></div></body></html>'
    )
    return HtmlResponse(url=url, body=html.encode("utf-8"), request=Request(url, meta={"article_url": url}))


def test_a_current_article_is_read_with_the_current_reader(spider):
    split(spider, spider.parse_channel(channel_page(articles(1, 3))))  # names the channel 理论
    (item,) = spider.parse_article(article_response(1), pages=[])
    assert (item.section_id, item.section_name, item.title, item.published_at, item.source, item.body) == (
        "theory", "理论", "题目", "2026-01-01T08:00:00+08:00", "工人日报", "正文"
    )


def test_an_article_of_another_channel_is_not_written_and_skipped_at_the_end(spider):
    split(spider, spider.parse_channel(channel_page(articles(1, 12))))
    written = [item for n in range(1, 11) for item in spider.parse_article(article_response(n), pages=[])]
    skipped = [item for n in (11, 12) for item in spider.parse_article(article_response(n, "人物"), pages=[])]
    assert len(written) == 10 and skipped == []
    assert stat(spider, "theory/article/other_channel") == 2
    spider.settle_other_channel()
    assert spider.state.pending() == [SITE + p for p in articles(1, 10)]  # the 人物 ones are owed no more
    assert not stat(spider, "theory/layout/articles_of_another_channel")


def test_most_articles_naming_another_channel_is_a_layout_alarm_and_they_stay_owed(spider):
    split(spider, spider.parse_channel(channel_page(articles(1, 6))))
    for n in range(1, 7):
        assert list(spider.parse_article(article_response(n, "理论频道"), pages=[])) == []
    spider.settle_other_channel()
    assert stat(spider, "theory/layout/articles_of_another_channel") == 6
    assert len(spider.state.pending()) == 6


def test_an_article_naming_a_channel_while_the_channels_name_is_unknown_stays_owed(spider):
    spider.state.add_pending([("8000001", SITE + articles(1, 1)[0], "theory")])
    assert list(spider.parse_article(article_response(1), pages=[])) == []
    assert stat(spider, "theory/article/channel_unknown") == 1
    assert spider.state.pending() == [SITE + articles(1, 1)[0]]


@pytest.mark.parametrize(
    "other, read, renamed",
    [(0, 0, False), (4, 4, False), (5, 5, True), (5, 10, False), (6, 10, True), (10, 148, False), (148, 148, True)],
)
def test_channel_renamed(other, read, renamed):
    assert channel_renamed(other, read) is renamed
