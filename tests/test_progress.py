"""The progress line's estimate (crawler/progress.py) on synthetic runs: the work known to remain at the
current rate, no number while a walk's end is unknown, counts that add up, words in the right number."""

from __future__ import annotations

import re

import pytest

from crawler.progress import RESPONSE_KINDS, RunProgress, WalkProgress, estimate, from_stats, plural, progress_line


def run(**changes) -> RunProgress:
    """A first run, part-way: 50 articles done, having cost 54 article pages and 6 images."""
    values = dict(
        responses=70, responses_by_kind={"robots.txt": 2, "start": 2, "listing": 4, "feed": 0, "article": 54, "image": 6},
        discovered=100, owed=0, written=46, duplicates=2, failed=1, rejected=1, other_channel=0,
        queued=10, rate=2.0, walks=[], starts_pending=0,
    )
    values.update(changes)
    return RunProgress(**values)


def listing(source: str, pages_read: int, pages_left: int | None, new_links: int) -> WalkProgress:
    return WalkProgress("listing", source, pages_read, pages_left, new_links)


def test_the_time_left_counts_the_pages_a_walk_knows_it_has_left_and_the_articles_on_them():
    walks = [listing("241", 2, 3, 50), listing("242", 4, 0, 80)]
    found = estimate(run(walks=walks))
    # 241 brought 25 new articles a page: 3 pages left bring about 75, each costing (54 + 6) / 50 = 1.2
    # requests; with the 3 pages themselves and the 10 queued: 103 requests, at 2 a second.
    assert (found.pages_left, found.articles_to_come, found.requests_left) == (3, 75, 103)
    assert found.seconds == pytest.approx(51.5)
    assert found.in_progress == ()


def test_no_number_while_a_walk_cannot_tell_its_end():
    walks = [listing("241", 2, 3, 50), WalkProgress("feed", "theory", 3, None, 75)]
    found = estimate(run(walks=walks))
    assert found.seconds is None
    assert found.in_progress == ("feed walk in progress, 3 pages so far",)
    line = progress_line(run(walks=walks))
    assert "left: feed walk in progress, 3 pages so far (no time left until then); 10 requests queued" in line
    assert " min" not in line and " s at" not in line


def test_no_number_before_the_start_pages_answered():
    found = estimate(run(starts_pending=1, queued=1))
    assert found.seconds is None and found.in_progress == ("waiting for 1 start page",)


def test_owed_articles_and_revisits_are_in_the_queue_and_counted():
    # A daily run: the walks caught up, 120 revisits and 3 owed articles queued, 2 in flight.
    stats = {
        "response_received_count": 12, "theory/start/pages": 2, "robotstxt/response_count": 2,
        "theory/listing/pages": 6, "theory/revisit/pages": 2, "theory/articles/owed": 3,
        "scheduler/enqueued": 135, "scheduler/dequeued": 12,
    }
    progress = from_stats(stats, 4.0, [listing("241", 1, 0, 0)], in_flight=2, sites=2)
    assert progress.queued == 125 and progress.owed == 3 and progress.starts_pending == 0
    found = estimate(progress)
    assert found.requests_left == 125 and found.seconds == pytest.approx(31.25)
    assert "about 31 s at 4.0 responses/s" in progress_line(progress)


def test_the_responses_by_kind_add_up_to_the_total():
    stats = {
        "response_received_count": 600, "robotstxt/response_count": 2, "theory/start/pages": 2,
        "theory/listing/pages": 20, "theory/feed/pages": 5, "theory/article/pages": 465,
        "theory/revisit/pages": 0, "theory/images/captured": 95,
        "theory/articles/discovered": 25, "theory/articles/owed": 33, "theory/written": 58,
        "theory/duplicates/content": 1, "theory/article/failed/http_404": 2, "theory/article/failed/timeout": 1,
    }
    line = progress_line(from_stats(stats, 3.0, [], sites=2))
    listed = re.search(r"^progress: (\d+) responses \(([^)]*)\)", line)
    assert listed, line
    counts = [int(part.split()[0]) for part in listed[2].split(", ")]
    assert len(counts) == len(RESPONSE_KINDS) + 1 and sum(counts) == int(listed[1]) == 600
    assert "95 image, 11 other)" in line
    assert "2 robots.txt, 2 start, 20 listing, 5 feed, 465 article, 0 revisit, 95 image" in line
    # Owed articles of earlier runs are their own count: 58 written of 25 discovered and 33 owed.
    assert "articles: 25 discovered, 33 owed by earlier runs; 58 written, 1 duplicate, 3 failed, 0 rejected" in line


@pytest.mark.parametrize(
    "count, noun, expected",
    [(0, "page", "0 pages"), (1, "page", "1 page"), (2, "duplicate", "2 duplicates"), (1, "request", "1 request")],
)
def test_plural(count, noun, expected):
    assert plural(count, noun) == expected


def test_the_walk_pages_that_tell_a_walks_end_go_before_the_articles():
    # The progress line can give a number once every walk's end is known: each listing's page 1 names its
    # last page, and the feed's end is known only once reached, so those pages are fetched first.
    from crawler.spiders.theory import ARTICLE_PRIORITY, LISTING_PRIORITY, TheorySpider
    from crawler.walks import Page
    from crawler.walks.feed import FeedWalk
    from crawler.walks.listing import ListingWalk

    spider = TheorySpider()
    listing = ListingWalk("241", True, False, 100, first_url="http://legacy.example/241/241.shtml")
    feed = FeedWalk("theory", True, False, 100, feed_page_url="http://current.example/json/theory/index_{}.json".format)
    assert spider.walk_request(listing, listing.first()).priority > ARTICLE_PRIORITY
    assert spider.walk_request(feed, feed.first()).priority > ARTICLE_PRIORITY
    assert spider.walk_request(feed, Page(5, feed.feed_page_url(5), guessed=True)).priority > ARTICLE_PRIORITY
    # The rest of a listing comes after the articles in hand: the queue stays short.
    assert spider.walk_request(listing, Page(2, "http://legacy.example/241/241_2.shtml")).priority == LISTING_PRIORITY
