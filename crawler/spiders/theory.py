"""Navigation of the theory channel: home -> section listings (paged) -> articles (paged).

Which URLs to follow is decided here; what a page says is read by ``crawler.loaders``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import DownloadTimeoutError
from scrapy.http import TextResponse
from scrapy.spidermiddlewares.httperror import HttpError

from crawler.loaders import ArticlePage, load_article, read_article_page, read_listing, read_sections
from crawler.state import CrawlLocked, CrawlState
from crawler.urls import article_id, article_page_url, listing_page_number, rebase, section_of

# Finish the articles in hand before reading more listing pages: keeps the request queue short.
HOME_PRIORITY = 100
ARTICLE_NEXT_PAGE_PRIORITY = 20
ARTICLE_PRIORITY = 10
LISTING_PRIORITY = 0


def failure_reason(failure) -> str:
    if failure.check(HttpError):
        return f"http_{failure.value.response.status}"
    if failure.check(DownloadTimeoutError):
        return "timeout"
    return failure.type.__name__


class TheorySpider(scrapy.Spider):
    name = "theory"

    def __init__(self, *args, sections: str | None = None, full: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.only_sections = [s.strip() for s in sections.split(",") if s.strip()] if sections else None
        self.full = str(full or "").lower() in ("1", "true", "yes")
        self.section_names: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.base_url = settings.get("THEORY_BASE_URL")
        spider.allowed_domains = [urlsplit(spider.base_url).hostname]
        spider.max_attempts = settings.getint("THEORY_MAX_ATTEMPTS")
        spider.max_listing_pages = settings.getint("THEORY_MAX_LISTING_PAGES")
        # Taken before anything is fetched or written: a second run on the same data dir stops here.
        try:
            spider.state = CrawlState(settings.get("THEORY_DATA_DIR"))
        except CrawlLocked as error:
            crawler.theory_lock_error = error  # tells the crawl command which exit status to give
            raise
        crawler.signals.connect(spider.close_state, signal=scrapy.signals.spider_closed)
        return spider

    def close_state(self) -> None:
        self.state.close()

    async def start(self):
        yield scrapy.Request(self.base_url, self.parse_home, errback=self.home_failed, priority=HOME_PRIORITY)
        owed = self.state.pending(self.only_sections)
        if owed:
            self.logger.info("retrying %d articles owed by earlier runs", len(owed))
        for url in owed:
            yield self.article_request(rebase(url, self.base_url))

    def article_request(self, url: str, pages: list[ArticlePage] | None = None) -> scrapy.Request:
        pages = pages or []
        return scrapy.Request(
            article_page_url(url, len(pages) + 1),
            self.parse_article,
            errback=self.article_failed,
            cb_kwargs={"pages": pages},
            priority=ARTICLE_NEXT_PAGE_PRIORITY if pages else ARTICLE_PRIORITY,
            meta={"article_url": url},
        )

    # --- home and listings ---

    def parse_home(self, response):
        sections = read_sections(response) if isinstance(response, TextResponse) else []
        self.section_names = {section.id: section.name for section in sections}
        if self.only_sections:
            unknown = set(self.only_sections) - set(self.section_names)
            if unknown:
                self.logger.error("sections %s are not in the channel navigation", ", ".join(sorted(unknown)))
                self.crawler.stats.inc_value("theory/layout/unknown_section", len(unknown))
            sections = [section for section in sections if section.id in self.only_sections]
        if not sections:
            self.logger.error("layout changed? no section links on the channel home %s", response.url)
            self.crawler.stats.inc_value("theory/layout/no_sections")
        for section in sections:
            yield response.follow(
                section.url,
                self.parse_listing,
                errback=self.listing_failed,
                cb_kwargs={"section_id": section.id, "page": 1, "previous_urls": ()},
                priority=LISTING_PRIORITY,
            )

    def parse_listing(self, response, section_id: str, page: int, previous_urls: tuple[str, ...]):
        stats = self.crawler.stats
        stats.inc_value("theory/listing/pages")
        listing = read_listing(response) if isinstance(response, TextResponse) else None
        if not listing or not listing.article_urls:
            self.logger.error("layout changed? listing page %s has no article link", response.url)
            stats.inc_value("theory/layout/listing_without_links")
            return
        if tuple(listing.article_urls) == previous_urls:
            self.logger.warning("listing page %s repeats the page before it; section %s ends here", response.url, section_id)
            stats.inc_value("theory/listing/repeated_page")
            self.state.mark_section_walked(section_id)
            return
        ids = {article_id(url): url for url in listing.article_urls}
        known = self.state.known(ids)
        new = [url for id_, url in ids.items() if id_ not in known]
        self.state.add_pending((article_id(url), url, section_of(url)) for url in new)
        stats.inc_value("theory/articles/discovered", len(new))
        for url in new:
            yield self.article_request(url)

        next_page_url = listing.next_page_url
        if next_page_url and (listing_page_number(next_page_url) or 0) <= (listing_page_number(response.url) or 0):
            # The last page of some listings links back to an earlier one: that is the end, not a page to fetch.
            self.logger.warning("listing page %s: 下一页 leads back to %s; section %s ends here", response.url, next_page_url, section_id)
            stats.inc_value("theory/listing/pagination_loop")
            next_page_url = None

        if not next_page_url:
            self.state.mark_section_walked(section_id)
            self.logger.info("section %s: last listing page is %d", section_id, page)
        elif page >= self.max_listing_pages:
            self.logger.warning("section %s: stopping at the listing page cap (%d)", section_id, page)
            stats.inc_value("theory/listing/page_cap_reached")
        elif new or self.full or not self.state.section_walked(section_id):
            yield response.follow(
                next_page_url,
                self.parse_listing,
                errback=self.listing_failed,
                cb_kwargs={"section_id": section_id, "page": page + 1, "previous_urls": tuple(listing.article_urls)},
                priority=LISTING_PRIORITY,
            )
        else:
            self.logger.info("section %s: every article of listing page %d is known; stopping", section_id, page)

    # --- articles ---

    def parse_article(self, response, pages: list[ArticlePage]):
        stats = self.crawler.stats
        stats.inc_value("theory/article/pages")
        url = response.meta["article_url"]
        if not isinstance(response, TextResponse):
            self.logger.error("article page %s is not HTML (%s)", response.url, response.headers.get("Content-Type"))
            stats.inc_value("theory/article/not_html")
            self.state.record_failure(article_id(url), url, "not_html", self.max_attempts)
            return
        try:
            page = read_article_page(response)
        except Exception:  # a page no reader expected must not stop the crawl, only this article
            self.logger.exception("article page %s could not be read", response.url)
            stats.inc_value("theory/article/parse_error")
            self.state.record_failure(article_id(url), url, "parse_error", self.max_attempts)
            return
        if not pages:
            page.url = url  # a redirect does not change which article the listing linked
        pages = [*pages, page]
        if len(pages) < pages[0].total_pages:
            yield self.article_request(url, pages)
            return
        yield load_article(pages, section_name_fallback=self.section_names.get(section_of(url)))

    # --- failures: a log line, a stat, and the article stays owed ---

    def home_failed(self, failure):
        self.logger.error("channel home %s failed: %s", failure.request.url, failure_reason(failure))
        self.crawler.stats.inc_value("theory/home/failed")

    def listing_failed(self, failure):
        reason = failure_reason(failure)
        self.logger.error("listing page %s failed: %s", failure.request.url, reason)
        self.crawler.stats.inc_value(f"theory/listing/failed/{reason}")

    def article_failed(self, failure):
        url = failure.request.meta["article_url"]
        reason = failure_reason(failure)
        given_up = self.state.record_failure(article_id(url), url, reason, self.max_attempts)
        self.logger.error(
            "article %s failed: %s (page %s)%s",
            url, reason, failure.request.url, "; giving up on it" if given_up else "; it will be tried again next run",
        )
        self.crawler.stats.inc_value(f"theory/article/failed/{reason}")
