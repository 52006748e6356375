"""The walk of one legacy section's listing: page 1 from the channel navigation, then each page's 下一页.

Where a page failed or was repeated, the page after it follows from the numbering (``241_3.shtml`` after
``241_2.shtml``), so one bad page does not cut the rest of the section off.
"""

from __future__ import annotations

from dataclasses import dataclass

from crawler.urls import listing_page_number, listing_page_url
from crawler.walks import END_OF_PAGES, PAGINATION_LOOP, Page, Step, Walk


@dataclass
class ListingWalk(Walk):
    first_url: str = ""  # the section's page 1, as the channel navigation links it

    def read(self, page: Page, article_urls: list[str], new: int, next_url: str | None = None,
             last_page: int | None = None) -> Step:
        """As Walk.read; ``last_page``: the listing's last page number, as this page's pagination names it."""
        if last_page:
            self.last_page = max(last_page, self.last_page or 0)
        return super().read(page, article_urls, new, next_url)

    def first(self) -> Page:
        return Page(1, self.first_url)

    def following(self, page: Page, next_url: str | None, read: bool) -> Page | str:
        if next_url:
            # The last page of some listings links back to an earlier one: that is the end, not a page to fetch.
            if (listing_page_number(next_url) or 0) <= page.number:
                return PAGINATION_LOOP
            return Page(page.number + 1, next_url)
        if read:
            return END_OF_PAGES  # a page read without 下一页 is the last one
        url = listing_page_url(self.first_url, page.number + 1)
        return Page(page.number + 1, url, guessed=True) if url else END_OF_PAGES
