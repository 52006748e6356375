"""The walk of the current channel's JSON feed: ``index_1.json``, ``index_2.json``, ... newest first.

The feed has no links, only numbers: every page is the one after the last, and a 404 past the last page
is the feed's end. The channel page's own script starts its "load more" at page 2, so a missing page 1 is
no end; a feed missing from its first pages on is a layout alarm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crawler.walks import LAYOUT, Page, Step, Walk


@dataclass
class FeedWalk(Walk):
    feed_page_url: Callable[[int], str] = str

    def first(self) -> Page:
        return Page(1, self.feed_page_url(1), guessed=True)

    def following(self, page: Page, next_url: str | None, read: bool) -> Page:
        return Page(page.number + 1, self.feed_page_url(page.number + 1), guessed=True)

    def missing(self, page: Page) -> Step:
        if self.ended:
            return Step(None)
        if page.number == 1:
            return Step(Page(2, self.feed_page_url(2), guessed=True), "first_page_missing", "feed page 1 is missing; trying page 2")
        if not self.seen and not self.failures:
            self._end(LAYOUT)
            return Step(None, "feed_missing", f"the channel's feed has no page at {page.url}")
        return super().missing(page)
