"""Walk rules of the listing and feed walks, as tables: what each page turned out to be -> which pages
are fetched, why the walk ends, and whether it was complete. No Scrapy, no server."""

from __future__ import annotations

import pytest

from crawler.walks import BAD_IN_ROW, CAUGHT_UP, END_OF_PAGES, LAYOUT, PAGE_CAP, PAGINATION_LOOP, Page
from crawler.walks.feed import FeedWalk
from crawler.walks.listing import ListingWalk

FEED = "http://current.example/json/theory/index_{}.json"
LISTING = "http://legacy.example/241/241{}.shtml"


def listing_url(number: int) -> str:
    return LISTING.format("" if number == 1 else f"_{number}")


def links(*numbers: int) -> list[str]:
    return [f"http://site.example/a/{n}.shtml" for n in numbers]


# What a page turns out to be, by page number (absent: a 404).
def read(*articles: int, new: int | None = None, next_page: int | None = None):
    return ("read", links(*articles), len(articles) if new is None else new, next_page)


FAILED = ("failed", "http_500")
EMPTY = ("empty",)
NO_LINKS = ("layout",)


def walk_through(walk, pages: dict[int, tuple]) -> tuple[list[int], list[str]]:
    """Drive ``walk`` over ``pages``; returns the page numbers fetched (a guessed one as -n) and the events."""
    fetched, events = [], []
    page = walk.first()
    for _ in range(50):  # every table below ends well before
        fetched.append(-page.number if page.guessed and isinstance(walk, ListingWalk) else page.number)
        outcome = pages.get(page.number)
        if outcome is None:
            step = walk.missing(page)
        elif outcome[0] == "read":
            _, urls, new, next_page = outcome
            next_url = listing_url(next_page) if next_page is not None else None
            step = walk.read(page, urls, new, next_url)
        elif outcome[0] == "failed":
            step = walk.failed(page, outcome[1])
        elif outcome[0] == "empty":
            step = walk.empty(page)
        else:
            step = walk.layout_changed(page)
        if step.event:
            events.append(step.event)
        if step.next is None:
            assert walk.ended
            return fetched, events
        page = step.next
    raise AssertionError("the walk did not end")


def feed_walk(full=True, walked_before=True, max_pages=20) -> FeedWalk:
    return FeedWalk("theory", full, walked_before, max_pages, feed_page_url=FEED.format)


def listing_walk(full=True, walked_before=True, max_pages=20) -> ListingWalk:
    return ListingWalk("241", full, walked_before, max_pages, first_url=listing_url(1))


FEED_CASES = {
    # name: (walk arguments, pages, fetched, end, complete, events)
    "to the 404 after the last page": (
        {}, {1: read(1, 2), 2: read(3, 4), 3: read(5)}, [1, 2, 3, 4], END_OF_PAGES, True, []),
    "an empty page ends it": (
        {}, {1: read(1, 2), 2: EMPTY, 3: read(3)}, [1, 2], END_OF_PAGES, True, []),
    "an HTML error page and a 500 are passed, and the walk is incomplete": (
        {}, {1: read(1, 2), 2: FAILED, 3: read(3, 4), 4: FAILED, 5: read(5)}, [1, 2, 3, 4, 5, 6], END_OF_PAGES, False, []),
    "page 1 inserted again as page 3: skipped, and the walk is complete": (
        {}, {1: read(1, 2), 2: read(3, 4), 3: read(1, 2, new=0), 4: read(5, 6)}, [1, 2, 3, 4, 5], END_OF_PAGES, True,
        ["repeated_page"]),
    "the same page twice in a row: skipped": (
        {}, {1: read(1, 2), 2: read(1, 2, new=0), 3: read(3)}, [1, 2, 3, 4], END_OF_PAGES, True, ["repeated_page"]),
    "a loop back to page 1 forever ends after three repeated pages": (
        {}, {1: read(1, 2), **{n: read(1, 2, new=0) for n in range(2, 40)}}, [1, 2, 3, 4], BAD_IN_ROW, True,
        ["repeated_page"] * 3),
    "three failures in a row end it, incomplete": (
        {}, {1: read(1), 2: FAILED, 3: FAILED, 4: FAILED, 5: read(5)}, [1, 2, 3, 4], BAD_IN_ROW, False, []),
    "a good page resets the count of bad ones": (
        {}, {1: read(1), 2: FAILED, 3: FAILED, 4: read(4), 5: FAILED, 6: FAILED, 7: read(7)},
        [1, 2, 3, 4, 5, 6, 7, 8], END_OF_PAGES, False, []),
    "a failure followed by the 404 at the end: incomplete": (
        {}, {1: read(1), 2: FAILED}, [1, 2, 3], END_OF_PAGES, False, []),
    "incremental: stops at the first page of known articles": (
        {"full": False}, {1: read(1, 2, new=2), 2: read(3, 4, new=0), 3: read(5)}, [1, 2], CAUGHT_UP, True, []),
    "incremental: a repeated page is known too": (
        {"full": False}, {1: read(1, 2, new=2), 2: read(1, 2, new=0), 3: read(5)}, [1, 2], CAUGHT_UP, True, []),
    "never walked to its end: known pages do not stop it": (
        {"full": False, "walked_before": False}, {1: read(1, new=0), 2: read(2, new=0)}, [1, 2, 3], END_OF_PAGES, True, []),
    "a missing page 1: page 2 is tried": (
        {}, {2: read(1, 2), 3: read(3)}, [1, 2, 3, 4], END_OF_PAGES, True, ["first_page_missing"]),
    "no feed page at all: a layout alarm": (
        {}, {}, [1, 2], LAYOUT, False, ["first_page_missing", "feed_missing"]),
    "entries without links: a layout alarm": (
        {}, {1: read(1), 2: NO_LINKS}, [1, 2], LAYOUT, False, []),
    "the page cap": (
        {"max_pages": 3}, {n: read(n) for n in range(1, 10)}, [1, 2, 3], PAGE_CAP, False, ["page_cap_reached"]),
}


@pytest.mark.parametrize("name", FEED_CASES)
def test_feed_walk(name):
    arguments, pages, fetched, end, complete, events = FEED_CASES[name]
    walk = feed_walk(**arguments)
    assert walk_through(walk, pages) == (fetched, events)
    assert (walk.end, walk.complete) == (end, complete)


def test_feed_walk_names_each_failed_page():
    walk = feed_walk()
    walk_through(walk, {1: read(1), 2: ("failed", "not_json"), 3: read(3), 4: FAILED})
    assert walk.failures == [(FEED.format(2), "not_json"), (FEED.format(4), "http_500")]


LISTING_CASES = {
    # Fetched pages: -n is a page whose URL follows from the numbering, not from a 下一页 link.
    "下一页 to the last page": (
        {}, {1: read(1, next_page=2), 2: read(2, next_page=3), 3: read(3)}, [1, 2, 3], END_OF_PAGES, True, []),
    "a 500 on page 2: page 3 follows from the numbering, and the walk is incomplete": (
        {}, {1: read(1, next_page=2), 2: FAILED, 3: read(3, next_page=4), 4: read(4)}, [1, 2, -3, 4], END_OF_PAGES,
        False, []),
    "a 500 on the last page: the guess past it is a 404, the end": (
        {}, {1: read(1, next_page=2), 2: FAILED}, [1, 2, -3], END_OF_PAGES, False, []),
    "a 404 where 下一页 pointed is a failure": (
        {}, {1: read(1, next_page=2), 3: read(3)}, [1, 2, -3], END_OF_PAGES, False, []),
    "下一页 leading back is the end": (
        {}, {1: read(1, next_page=2), 2: read(2, next_page=1)}, [1, 2], PAGINATION_LOOP, True, ["pagination_loop"]),
    "a repeated page in a full walk: skipped, its 下一页 followed": (
        {}, {1: read(1, next_page=2), 2: read(1, new=0, next_page=3), 3: read(3)}, [1, 2, 3], END_OF_PAGES, True,
        ["repeated_page"]),
    "incremental: stops at the first known page": (
        {"full": False}, {1: read(1, new=1, next_page=2), 2: read(2, new=0, next_page=3)}, [1, 2], CAUGHT_UP, True, []),
    "a failed page 1 and its section's page 2 by the numbering": (
        {}, {1: FAILED, 2: read(2)}, [1, -2], END_OF_PAGES, False, []),
    "three failures in a row": (
        {}, {1: read(1, next_page=2), 2: FAILED, 3: FAILED, 4: FAILED}, [1, 2, -3, -4], BAD_IN_ROW, False, []),
    "a listing without links: a layout alarm": (
        {}, {1: NO_LINKS}, [1], LAYOUT, False, []),
    "the page cap": (
        {"max_pages": 2}, {1: read(1, next_page=2), 2: read(2, next_page=3)}, [1, 2], PAGE_CAP, False,
        ["page_cap_reached"]),
}


@pytest.mark.parametrize("name", LISTING_CASES)
def test_listing_walk(name):
    arguments, pages, fetched, end, complete, events = LISTING_CASES[name]
    walk = listing_walk(**arguments)
    assert walk_through(walk, pages) == (fetched, events)
    assert (walk.end, walk.complete) == (end, complete)


def test_an_ended_walk_fetches_nothing_more():
    walk = feed_walk()
    walk.empty(Page(1, FEED.format(1)))
    assert walk.read(Page(2, FEED.format(2)), links(1), 1).next is None
    assert walk.failed(Page(2, FEED.format(2)), "timeout").next is None
    assert walk.failures == []


# --- what a walk knows of what is left (for the progress line) ---------------------------------


def test_a_full_listing_walk_counts_its_pages_left_from_the_last_page_its_first_page_names():
    walk = ListingWalk("241", True, False, 100, first_url=listing_url(1))
    assert walk.pages_left is None  # nothing read yet
    step = walk.read(walk.first(), links(1, 2), 2, listing_url(2), last_page=4)
    assert (walk.last_page, walk.pages_left, walk.new_links) == (4, 3, 2)
    walk.failed(step.next, "http_500")
    assert walk.pages_left == 2  # a failed page is behind the walk too
    walk.read(Page(3, listing_url(3)), links(3), 1, listing_url(4))
    walk.read(Page(4, listing_url(4)), links(4), 0)
    assert walk.ended and walk.pages_left == 0 and walk.new_links == 3


def test_an_incremental_walk_cannot_tell_its_pages_left_and_the_cap_bounds_them():
    incremental = ListingWalk("241", False, True, 100, first_url=listing_url(1))
    incremental.read(incremental.first(), links(1), 1, listing_url(2), last_page=50)
    assert incremental.pages_left is None  # it stops at the first page of known articles, wherever that is
    capped = ListingWalk("241", True, False, 10, first_url=listing_url(1))
    capped.read(capped.first(), links(1), 1, listing_url(2), last_page=50)
    assert capped.pages_left == 9


def test_a_feed_walk_knows_its_pages_left_only_once_it_ended():
    walk = FeedWalk("theory", True, False, 100, feed_page_url=FEED.format)
    step = walk.read(walk.first(), links(1), 1)
    assert walk.pages_left is None
    walk.missing(step.next)
    assert walk.ended and walk.pages_left == 0
