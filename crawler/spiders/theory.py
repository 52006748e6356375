"""Navigation of the theory channel on both of its sites.

Legacy host (2014–2020):  home -> section listings (paged by 下一页) -> articles (paged)
Current CMS (2021–):      channel page -> JSON feed pages index_1, index_2, ... -> articles

Which URLs to follow is decided here; what a page says is read by ``crawler.readers``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler.loaders import ArticlePage, load_article
from crawler.middlewares import RedirectFailed
from crawler.readers import current, legacy
from crawler.readers.base import read_page_signs
from crawler.revisions import (
    PRESENT,
    REDIRECTS,
    UNKNOWN,
    RevisitResult,
    classify,
    has_frame,
    not_found_phrase,
    page_key,
)
from crawler.state import CrawlLocked, CrawlState
from crawler.urls import (
    CURRENT,
    LEGACY,
    article_id,
    article_page_url,
    channel_of,
    feed_page_url,
    host_of,
    layout_of,
    listing_page_number,
    rebase,
    section_of,
)

# Finish the articles in hand before reading more listing pages: keeps the request queue short.
START_PRIORITY = 100
ARTICLE_NEXT_PAGE_PRIORITY = 20
ARTICLE_PRIORITY = 10
IMAGE_PRIORITY = 5
LISTING_PRIORITY = 0
# Revisits of written articles come after everything else of the run: new articles first.
REVISIT_PRIORITY = -10
# A revisit observes these answers itself: a 304 is "unchanged", a redirect or a 404/410 a removal signal.
# Scrapy would follow the redirect silently and turn the others into HttpError.
REVISIT_STATUSES = [304, 404, 410, *sorted(REDIRECTS)]
# A feed that answers with something other than JSON this many pages in a row has ended for this run.
MAX_MALFORMED_FEED_PAGES = 3
# Bot checks met by revisits that the run report shows (URL and <title>); the rest are only counted.
MAX_BOT_CHECK_EXAMPLES = 5


# Short names of Scrapy's download errors, for log lines, stats and the state's last_error.
DOWNLOAD_ERRORS = {
    DownloadTimeoutError: "timeout",
    DownloadConnectionRefusedError: "connection_refused",
    CannotResolveHostError: "dns_lookup_failed",
    ResponseDataLossError: "data_loss",
    # Scrapy's HTTP handlers cancel a download only when its body is over DOWNLOAD_MAXSIZE, announced
    # (Content-Length) or while it comes in (a timeout is DownloadTimeoutError).
    DownloadCancelledError: "too_large",
}


def failure_reason(failure) -> str:
    if failure.check(HttpError):
        return f"http_{failure.value.response.status}"
    if failure.check(RedirectFailed):
        return failure.value.reason
    # A body that inflates past DOWNLOAD_MAXSIZE (HttpCompressionMiddleware) is an IgnoreRequest, as are
    # robots.txt and offsite drops: only Scrapy's message tells it apart.
    if failure.check(IgnoreRequest) and "DOWNLOAD_MAXSIZE" in str(failure.value):
        return "too_large"
    if failure.check(IgnoreRequest) and "max redirections" in str(failure.value):
        return "redirect_loop"  # RedirectMiddleware's REDIRECT_MAX_TIMES: a chain too long to be anything else
    for error, reason in DOWNLOAD_ERRORS.items():
        if failure.check(error):
            return reason
    return failure.type.__name__


class TheorySpider(scrapy.Spider):
    name = "theory"

    def __init__(self, *args, sections: str | None = None, full: str | None = None, revisit: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.revisit = str(revisit if revisit is not None else "1").lower() in ("1", "true", "yes")
        self.only_sections = [s.strip() for s in sections.split(",") if s.strip()] if sections else None
        self.full = str(full or "").lower() in ("1", "true", "yes")
        self.section_names: dict[str, str] = {}  # legacy section ids and the current channel's id -> names
        self.feed_seen: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        # An empty URL leaves that site out of the run.
        spider.base_url = settings.get("THEORY_BASE_URL") or ""
        spider.channel_url = settings.get("THEORY_CHANNEL_URL") or ""
        spider.feed_path = settings.get("THEORY_FEED_PATH")
        spider.channel_id = channel_of(spider.channel_url) if spider.channel_url else None
        spider.start_urls_by_site = {LEGACY: spider.base_url, CURRENT: spider.channel_url}
        spider.allowed_domains = [urlsplit(url).hostname for url in spider.start_urls_by_site.values() if url]
        spider.site_hosts = {host_of(url) for url in spider.start_urls_by_site.values() if url}
        spider.read_article_page = {
            LEGACY: legacy.read_article_page,
            CURRENT: partial(current.read_article_page, channel_path=urlsplit(spider.channel_url).path or "/"),
        }
        spider.max_attempts = settings.getint("THEORY_MAX_ATTEMPTS")
        spider.max_listing_pages = settings.getint("THEORY_MAX_LISTING_PAGES")
        spider.full_walk_days = settings.getfloat("THEORY_FULL_WALK_DAYS")
        spider.revisit_days = settings.getfloat("THEORY_REVISIT_DAYS")
        spider.revisit_budget = settings.getint("THEORY_REVISIT_BUDGET")
        spider.revisit_min_hours = settings.getfloat("THEORY_REVISIT_MIN_HOURS")
        spider.not_found_phrases = tuple(settings.getlist("THEORY_NOT_FOUND_PHRASES"))
        # Taken before anything is fetched or written: a second run on the same data dir stops here.
        try:
            spider.state = CrawlState(settings.get("THEORY_DATA_DIR"))
        except CrawlLocked as error:
            crawler.theory_lock_error = error  # tells the crawl command which exit status to give
            raise
        crawler.signals.connect(spider.report_damaged_state, signal=scrapy.signals.spider_opened)
        crawler.signals.connect(spider.request_dropped, signal=scrapy.signals.request_dropped)
        if settings.getbool("THEORY_WARC") and settings.getbool("THEORY_CAPTURE_IMAGES"):
            crawler.signals.connect(spider.capture_images, signal=scrapy.signals.item_scraped)
        crawler.signals.connect(spider.close_state, signal=scrapy.signals.spider_closed)
        return spider

    def report_damaged_state(self) -> None:
        if self.state.damaged_copy:
            self.logger.error(
                "the crawl state was damaged (%s); it is kept as %s and rebuilt from the output",
                self.state.damage, self.state.damaged_copy,
            )
            self.crawler.stats.set_value("theory/recovery/state_rebuilt", str(self.state.damaged_copy))

    def close_state(self, reason: str) -> None:
        started = not any(self.crawler.stats.get_value(f"theory/start_failed/{site}") for site in (LEGACY, CURRENT))
        if self.full and reason == "finished" and started and self.only_sections is None:
            self.state.mark_full_walk()  # every listing and feed page of both sites was walked
        self.state.close()

    def full_walk_due(self) -> bool:
        """Incremental runs stop at the first known listing page, so an article inserted deep in a listing
        (an old date, a last page) is found only by walking every page: done every few days by itself."""
        last = self.state.last_full_walk()
        return last is None or datetime.now(timezone.utc) - last >= timedelta(days=self.full_walk_days)

    def wanted(self, section_id: str | None) -> bool:
        return self.only_sections is None or section_id in self.only_sections

    def section_id_of(self, url: str) -> str | None:
        """A legacy article's section is in its URL; a current one belongs to the channel that lists it."""
        return section_of(url) or self.channel_id

    async def start(self):
        if not self.full and self.full_walk_due():
            self.logger.info("walking every listing and feed page this run (a full walk is due every %g days)", self.full_walk_days)
            self.full = True
        if self.base_url:
            yield self.start_request(LEGACY, self.parse_home)
        if self.channel_url and self.wanted(self.channel_id):
            yield self.start_request(CURRENT, self.parse_channel)
        owed = [url for url in self.state.pending(self.only_sections) if self.start_urls_by_site.get(layout_of(url))]
        if owed:
            self.logger.info("retrying %d articles owed by earlier runs", len(owed))
        for url in owed:
            yield self.article_request(rebase(url, self.start_urls_by_site[layout_of(url)]))
        if self.revisit:
            for request in self.revisit_requests():
                yield request

    # --- revisits of written articles ---

    def revisit_requests(self) -> list[scrapy.Request]:
        # Published dates are Beijing dates; a day either way does not matter for a 30-day window.
        now = datetime.now(timezone.utc)
        since = (now - timedelta(days=min(self.revisit_days, 365_000))).date().isoformat()
        future = self.state.bring_back_future_times()
        if future:
            self.logger.warning(
                "%d times of writes or checks in the state are later than now (a run with its clock ahead?);"
                " they are taken as now", future,
            )
            self.crawler.stats.set_value("theory/revisit/future_times", future)
        # An article written, fetched or checked within THEORY_REVISIT_MIN_HOURS is what the site serves now.
        seen_before = (now - timedelta(hours=min(self.revisit_min_hours, 24 * 365_000))).isoformat(timespec="seconds")
        targets = [
            target for target in self.state.revisit_targets(since, self.revisit_budget, self.only_sections, seen_before)
            if self.start_urls_by_site.get(layout_of(target[1]))
        ]
        if targets:
            self.logger.info("revisiting %d written articles after the new ones", len(targets))
        return [self.revisit_request(url, page_count) for _, url, page_count in targets]

    def revisit_request(
        self, url: str, page_count: int, pages: list[ArticlePage] | None = None,
        conditional: bool = True, validators: dict | None = None,
    ) -> scrapy.Request:
        """Page ``len(pages) + 1`` of the written article ``url`` (as the state has it), conditional while
        every page before it answered 304. Redirects are observed, not followed (see REVISIT_STATUSES)."""
        pages = pages or []
        page_url = article_page_url(url, len(pages) + 1)
        headers = {}
        if conditional:
            etag, last_modified = self.state.validators(page_key(page_url))
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
        return scrapy.Request(
            rebase(page_url, self.start_urls_by_site[layout_of(url)]),
            self.parse_revisit,
            errback=self.revisit_failed,
            headers=headers,
            cb_kwargs={"url": url, "page_count": page_count, "pages": pages, "conditional": conditional,
                       "validators": validators or {}},
            priority=REVISIT_PRIORITY,
            dont_filter=True,  # the same page may be fetched twice in a run: conditionally, then whole
            meta={"article_url": url, "revisit": True, "dont_redirect": True, "handle_httpstatus_list": REVISIT_STATUSES},
        )

    def parse_revisit(self, response, url: str, page_count: int, pages: list[ArticlePage], conditional: bool, validators: dict):
        stats = self.crawler.stats
        stats.inc_value("theory/revisit/pages")
        number = len(pages) + 1
        id_ = article_id(url)
        if response.status == 304:
            if number < page_count:
                return [self.revisit_request(url, page_count, [*pages, None], conditional, validators)]
            return [RevisitResult(id_, url, PRESENT, status=304, not_modified=True)]
        target = None
        if response.status in REDIRECTS:
            location = response.headers.get("Location")
            target = response.urljoin(location.decode("latin-1")) if location else None
        page = signs = None
        if response.status == 200:
            # A page with a body: it counts in the run's parse-failure ratio, so that a new template
            # raises the layout alarm instead of passing for removals.
            stats.inc_value("theory/revisit/pages_read")
        if response.status == 200 and isinstance(response, TextResponse):
            try:
                page = self.read_article_page[layout_of(url)](response)
                if not has_frame(page):
                    signs = read_page_signs(response)
            except Exception:  # as in parse_article: one unreadable page is not a reason to stop
                self.logger.exception("revisit: page %s could not be read", response.url)
        verdict = classify(response.status, target, url, page, signs, self.not_found_phrases)
        reason = verdict.reason
        if response.status == 200 and not isinstance(response, TextResponse):
            reason = "not_html"
        if reason == "bot_check":
            self.bot_check_seen(response.url, signs)
        elif reason in ("not_an_article", "unreadable", "not_html"):
            self.logger.warning("revisit: page %s does not read as an article page (%s)", response.url, reason)
            stats.inc_value("theory/revisit/parse_failures")
        if verdict.kind != PRESENT and number > 1:
            # A later page missing or unreadable while page 1 is there: nothing to say about the article as
            # a whole, and no whole article to compare either.
            return [RevisitResult(id_, url, UNKNOWN, status=response.status, reason=f"page_{number}_{reason}")]
        if verdict.kind != PRESENT:
            return [RevisitResult(
                id_, url, verdict.kind, status=response.status, redirect_target=target, reason=reason,
                phrase=not_found_phrase(signs, self.not_found_phrases, page),
            )]
        validators = {**validators, page_key(article_page_url(url, number)): [
            header.decode("latin-1") if header else None
            for header in (response.headers.get("ETag"), response.headers.get("Last-Modified"))
        ]}
        if conditional and number > 1:
            # Page 1 was unchanged but this one changed: the item needs every page, so read them all again.
            return [self.revisit_request(url, page_count, [], False, validators)]
        page.warc = response.meta.get("warc")
        if number == 1:
            page.url = url
        pages = [*pages, page]
        if len(pages) < pages[0].total_pages:
            return [self.revisit_request(url, pages[0].total_pages, pages, False, validators)]
        # Every page of the article read as an article page: only such a whole article may be compared.
        item = load_article(pages, section_name_fallback=self.section_names.get(page.section_id))
        return [RevisitResult(id_, url, PRESENT, status=200, item=item, validators=validators)]

    def bot_check_seen(self, url: str, signs) -> None:
        """A bot check stands in front of the article: counted apart, with a few examples for the report."""
        stats = self.crawler.stats
        stats.inc_value("theory/revisit/bot_checks")
        examples = stats.get_value("theory/revisit/bot_check_examples") or []
        if len(examples) < MAX_BOT_CHECK_EXAMPLES:
            stats.set_value("theory/revisit/bot_check_examples", [*examples, {"url": url, "title": signs.title}])
        self.logger.warning("revisit: page %s is a bot check (%r); it tells nothing about the article", url, signs.title)

    def revisit_failed(self, failure):
        """Timeouts, refused connections, 5xx after retries: no judgement on the article either way."""
        url = failure.request.cb_kwargs["url"]
        reason = failure_reason(failure)
        self.logger.warning("revisit of %s failed: %s; it tells nothing about the article", url, reason)
        return [RevisitResult(article_id(url), url, UNKNOWN, reason=reason)]

    def start_request(self, site: str, callback) -> scrapy.Request:
        return scrapy.Request(
            self.start_urls_by_site[site], callback, errback=self.start_failed, priority=START_PRIORITY, meta={"site": site}
        )

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

    def discover(self, urls: list[str]):
        """Record the articles among ``urls`` not known yet and request them; returns the new ones."""
        ids = {article_id(url): url for url in urls}
        known = self.state.known(ids)
        new = [url for id_, url in ids.items() if id_ not in known]
        self.state.add_pending((article_id(url), url, self.section_id_of(url)) for url in new)
        self.crawler.stats.inc_value("theory/articles/discovered", len(new))
        return new, [self.article_request(url) for url in new]

    # --- legacy site: home and section listings ---

    def parse_home(self, response):
        sections = legacy.read_sections(response) if isinstance(response, TextResponse) else []
        self.section_names.update((section.id, section.name) for section in sections)
        if self.only_sections:
            unknown = set(self.only_sections) - set(self.section_names) - {self.channel_id}
            if unknown:
                # Known only now that the home is read: a usage error all the same, not a layout change.
                known = sorted({*self.section_names, *filter(None, [self.channel_id])})
                message = f"sections {', '.join(sorted(unknown))} are not in the channel navigation (known: {', '.join(known)})"
                self.logger.error(message)
                self.crawler.stats.set_value("theory/usage_error", message)
            sections = [section for section in sections if self.wanted(section.id)]
        if not sections and not (self.only_sections and self.channel_id in self.only_sections):
            self.logger.error("layout changed? no section links on the channel home %s", response.url)
            self.crawler.stats.inc_value("theory/layout/no_sections")
        for section in sections:
            yield self.listing_request(response.urljoin(section.url), section.id, 1, ())

    def listing_request(self, url: str, section_id: str, page: int, previous_urls: tuple[str, ...]) -> scrapy.Request:
        return scrapy.Request(
            url,
            self.parse_listing,
            errback=self.listing_failed,
            cb_kwargs={"section_id": section_id, "page": page, "previous_urls": previous_urls},
            priority=LISTING_PRIORITY,
        )

    def parse_listing(self, response, section_id: str, page: int, previous_urls: tuple[str, ...]):
        stats = self.crawler.stats
        stats.inc_value("theory/listing/pages")
        listing = legacy.read_listing(response) if isinstance(response, TextResponse) else None
        if not listing or not listing.article_urls:
            self.logger.error("layout changed? listing page %s has no article link", response.url)
            stats.inc_value("theory/layout/listing_without_links")
            return
        if tuple(listing.article_urls) == previous_urls:
            self.logger.warning("listing page %s repeats the page before it; section %s ends here", response.url, section_id)
            stats.inc_value("theory/listing/repeated_page")
            self.state.mark_section_walked(section_id)
            return
        new, requests = self.discover(listing.article_urls)
        yield from requests

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
            yield self.listing_request(next_page_url, section_id, page + 1, tuple(listing.article_urls))
        else:
            self.logger.info("section %s: every article of listing page %d is known; stopping", section_id, page)

    # --- current site: channel page and JSON feed ---

    def parse_channel(self, response):
        stats = self.crawler.stats
        channel = current.read_channel(response) if isinstance(response, TextResponse) else None
        if not channel or not channel.article_urls:
            self.logger.error("layout changed? channel page %s has no article list item", response.url)
            stats.inc_value("theory/layout/channel_without_links")
            return
        if channel.name:
            self.section_names[self.channel_id] = channel.name
        new, requests = self.discover(channel.article_urls)
        yield from requests
        # New articles appear on top of the channel page: when it holds nothing new, neither does the feed.
        if new or self.full or not self.state.section_walked(self.channel_id):
            self.feed_seen.clear()
            yield self.feed_request(1)
        else:
            self.logger.info("channel %s: every article of the channel page is known; stopping", self.channel_id)

    def feed_request(self, page: int, malformed_before: int = 0) -> scrapy.Request:
        return scrapy.Request(
            feed_page_url(self.channel_url, self.feed_path, page),
            self.parse_feed,
            errback=self.feed_failed,
            cb_kwargs={"page": page, "malformed_before": malformed_before},
            priority=LISTING_PRIORITY,
        )

    def parse_feed(self, response, page: int, malformed_before: int):
        stats = self.crawler.stats
        stats.inc_value("theory/feed/pages")
        try:
            feed = current.read_feed(response)
        except ValueError as error:
            self.logger.error("feed page %s is not JSON (%s)", response.url, error)
            stats.inc_value("theory/feed/malformed")
            if malformed_before + 1 < MAX_MALFORMED_FEED_PAGES and page < self.max_listing_pages:
                yield self.feed_request(page + 1, malformed_before + 1)
            else:
                self.logger.error("channel %s: %d feed pages in a row are not JSON; the feed walk ends here", self.channel_id, malformed_before + 1)
            return
        if feed.entries == 0:
            self.logger.info("channel %s: feed page %d is empty; the feed ends there", self.channel_id, page)
            self.state.mark_section_walked(self.channel_id)
            return
        if not feed.article_urls:
            self.logger.error("layout changed? feed page %s has %d entries but no article link", response.url, feed.entries)
            stats.inc_value("theory/layout/feed_without_links")
            return
        if self.feed_seen.issuperset(feed.article_urls):
            self.logger.warning("feed page %s brings nothing new; channel %s ends here", response.url, self.channel_id)
            stats.inc_value("theory/feed/repeated_page")
            self.state.mark_section_walked(self.channel_id)
            return
        self.feed_seen.update(feed.article_urls)
        new, requests = self.discover(feed.article_urls)
        yield from requests
        if page >= self.max_listing_pages:
            self.logger.warning("channel %s: stopping at the feed page cap (%d)", self.channel_id, page)
            stats.inc_value("theory/feed/page_cap_reached")
        elif new or self.full or not self.state.section_walked(self.channel_id):
            yield self.feed_request(page + 1)
        else:
            self.logger.info("channel %s: every article of feed page %d is known; stopping", self.channel_id, page)

    # --- articles, on either site ---

    def parse_article(self, response, pages: list[ArticlePage]):
        stats = self.crawler.stats
        stats.inc_value("theory/article/pages")
        url = response.meta["article_url"]
        if article_id(response.url) != article_id(url):
            # A removed article often redirects to the channel or the home page: not a page to read.
            self.logger.error("article %s failed: redirected_elsewhere (to %s); it will be tried again next run", url, response.url)
            stats.inc_value("theory/article/failed/redirected_elsewhere")
            self.state.record_failure(article_id(url), url, "redirected_elsewhere", self.max_attempts)
            return
        if not isinstance(response, TextResponse):
            self.logger.error("article page %s is not HTML (%s)", response.url, response.headers.get("Content-Type"))
            stats.inc_value("theory/article/not_html")
            self.state.record_failure(article_id(url), url, "not_html", self.max_attempts)
            return
        try:
            page = self.read_article_page[layout_of(url)](response)
        except Exception:  # a page no reader expected must not stop the crawl, only this article
            self.logger.exception("article page %s could not be read", response.url)
            stats.inc_value("theory/article/parse_error")
            self.state.record_failure(article_id(url), url, "parse_error", self.max_attempts)
            return
        page.warc = response.meta.get("warc")
        # For the conditional requests of later revisits. Stored at once, apart from the item: a lost
        # article line leaves it owed, and it is fetched again unconditionally.
        self.state.set_validators(
            page_key(article_page_url(url, len(pages) + 1)),
            *(header.decode("latin-1") if header else None for header in (response.headers.get("ETag"), response.headers.get("Last-Modified"))),
        )
        if not pages:
            page.url = url  # a redirect does not change which article the listing linked
        pages = [*pages, page]
        if len(pages) < pages[0].total_pages:
            yield self.article_request(url, pages)
            return
        yield load_article(pages, section_name_fallback=self.section_names.get(page.section_id))

    # --- images of written articles, fetched only to be captured in the WARC files ---

    def capture_images(self, item) -> None:
        """Once an article is written, fetch its images not captured before (on the two sites only)."""
        if isinstance(item, RevisitResult):
            item = item.item  # a revised article's images (only those not captured before)
            if item is None:
                return
        on_site = [url for url in item.images if host_of(url) in self.site_hosts]
        if len(on_site) < len(item.images):
            self.crawler.stats.inc_value("theory/images/offsite", len(item.images) - len(on_site))
        for url in self.state.uncaptured_images(on_site):
            self.crawler.engine.crawl(
                scrapy.Request(url, self.image_captured, errback=self.image_failed, priority=IMAGE_PRIORITY)
            )

    def image_captured(self, response) -> None:
        self.state.mark_image_captured(response.request.url)
        self.crawler.stats.inc_value("theory/images/captured")

    def image_failed(self, failure) -> None:
        reason = failure_reason(failure)
        self.logger.warning("image %s could not be captured: %s", failure.request.url, reason)
        self.crawler.stats.inc_value(f"theory/images/failed/{reason}")

    # --- failures: a log line, a stat, and the article stays owed ---

    def request_dropped(self, request) -> None:
        """A redirect to a page already fetched in this run is dropped by the duplicate filter, and neither
        callback nor errback runs: account for it through the errback all the same."""
        if request.meta.get("redirect_urls") and request.errback:
            failure = Failure(RedirectFailed("redirect_to_seen_page", request.url))
            failure.request = request  # as Scrapy hands it to an errback
            request.errback(failure)

    def start_failed(self, failure):
        site = failure.request.meta["site"]
        reason = failure_reason(failure)
        self.logger.error("%s site: start page %s failed: %s; that site is not crawled this run", site, failure.request.url, reason)
        self.crawler.stats.set_value(f"theory/start_failed/{site}", reason)

    def listing_failed(self, failure):
        reason = failure_reason(failure)
        self.logger.error("listing page %s failed: %s", failure.request.url, reason)
        self.crawler.stats.inc_value(f"theory/listing/failed/{reason}")

    def feed_failed(self, failure):
        page = failure.request.cb_kwargs["page"]
        reason = failure_reason(failure)
        if reason in ("http_404", "http_410"):
            if page == 1:
                # The channel page's own script starts its "load more" at page 2: index_1 may not exist.
                self.logger.info("channel %s: feed page 1 is missing; trying page 2", self.channel_id)
                return [self.feed_request(2)]
            if self.feed_seen:
                # The feed has no page after its last one: that is its end, not a failure.
                self.logger.info("channel %s: feed page %d is missing; the feed ends there", self.channel_id, page)
                self.state.mark_section_walked(self.channel_id)
                return None
            self.logger.error("layout changed? the channel's feed has no page at %s", failure.request.url)
            self.crawler.stats.inc_value("theory/layout/feed_missing")
            return None
        self.logger.error("feed page %s failed: %s", failure.request.url, reason)
        self.crawler.stats.inc_value(f"theory/feed/failed/{reason}")

    def article_failed(self, failure):
        url = failure.request.meta["article_url"]
        reason = failure_reason(failure)
        given_up = self.state.record_failure(article_id(url), url, reason, self.max_attempts)
        self.logger.error(
            "article %s failed: %s (page %s)%s",
            url, reason, failure.request.url, "; giving up on it" if given_up else "; it will be tried again next run",
        )
        self.crawler.stats.inc_value(f"theory/article/failed/{reason}")
