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
from scrapy.http import TextResponse
from twisted.python.failure import Failure

from crawler.loaders import ArticlePage, load_article
from crawler.middlewares import HostDown, RedirectFailed, failure_reason
from crawler.readers import current, legacy
from crawler.spiders.archive import REVISIT_PRIORITY, ArchiveSource
from crawler.revisions import REDIRECTS, UNKNOWN, RevisitReading, RevisitResult, page_key, validators_of
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
    rebase,
    section_of,
)
from crawler.walks import Page, Step, Walk
from crawler.walks.feed import FeedWalk
from crawler.walks.listing import ListingWalk

# Finish the articles in hand before reading more listing pages: keeps the request queue short.
START_PRIORITY = 100
ARTICLE_NEXT_PAGE_PRIORITY = 20
ARTICLE_PRIORITY = 10
IMAGE_PRIORITY = 5
LISTING_PRIORITY = 0
# A walk's end is known early, so that the progress line can tell the time left before half the run is
# over: each listing's page 1 (its pagination names the last page) and the feed pages (the feed names no
# last page: its end is known only once reached) go before the articles. Feed pages are few (25 articles
# each), and their articles queue up as requests, not as work lost.
WALK_AHEAD_PRIORITY = 15
# A revisit observes these answers itself: a 304 is "unchanged", a redirect or a 404/410 a removal signal.
# Scrapy would follow the redirect silently and turn the others into HttpError.
REVISIT_STATUSES = [304, 404, 410, *sorted(REDIRECTS)]
# Fewer articles naming another channel than this are other channels' articles, however few were read.
MIN_OTHER_CHANNEL = 5
# Events of a walk that are layout alarms, not warnings.
LAYOUT_EVENTS = frozenset({"feed_missing"})
# Bot checks met by revisits that the run report shows (URL and <title>); the rest are only counted.
MAX_BOT_CHECK_EXAMPLES = 5


def channel_renamed(other_channel: int, read: int) -> bool:
    """Whether articles naming another channel are too many to be other channels' (more than half of the
    current articles read, and at least MIN_OTHER_CHANNEL): the channel's own name has probably changed."""
    return other_channel >= MIN_OTHER_CHANNEL and other_channel * 2 > read


class TheorySpider(ArchiveSource, scrapy.Spider):
    name = "theory"

    def __init__(self, *args, sections: str | None = None, full: str | None = None, revisit: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.revisit = str(revisit if revisit is not None else "1").lower() in ("1", "true", "yes")
        self.only_sections = [s.strip() for s in sections.split(",") if s.strip()] if sections else None
        self.full = str(full or "").lower() in ("1", "true", "yes")
        self.section_names: dict[str, str] = {}  # legacy section ids and the current channel's id -> names
        self.walks: dict[str, Walk] = {}  # this run's walk of each legacy section and of the current feed
        # Current articles read this run whose page names another channel: (article_id, url, channel).
        self.other_channel: list[tuple[str, str, str]] = []

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
        # Hosts besides the channel's that serve current-site articles (THEORY_ARTICLE_HOSTS), as host[:port].
        spider.article_hosts = frozenset(host.strip().lower() for host in settings.getlist("THEORY_ARTICLE_HOSTS") if host.strip())
        spider.allowed_domains = [
            *(urlsplit(url).hostname for url in spider.start_urls_by_site.values() if url),
            *(urlsplit(f"//{host}").hostname for host in spider.article_hosts),
        ]
        spider.site_hosts = {host_of(url) for url in spider.start_urls_by_site.values() if url} | spider.article_hosts
        spider.read_article_page = {
            LEGACY: legacy.read_article_page,
            CURRENT: partial(current.read_article_page, channel_path=urlsplit(spider.channel_url).path or "/"),
        }
        spider.max_attempts = settings.getint("THEORY_MAX_ATTEMPTS")
        spider.max_listing_pages = settings.getint("THEORY_MAX_LISTING_PAGES")
        spider.full_walk_days = settings.getfloat("THEORY_FULL_WALK_DAYS")
        spider.revisit_days = settings.getfloat("THEORY_REVISIT_DAYS")
        spider.revisit_budget = settings.getint("THEORY_REVISIT_BUDGET")
        spider.setup_archive(settings)  # THEORY_LEGACY_SOURCE: crawler/spiders/archive.py
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

    def distrust_future_times(self) -> None:
        """A time of the state ahead of now was written while the clock ran ahead (or runs behind now).
        Believed, it would stop what it gates until the clock caught up: a last full walk a year ahead
        means no full walk for a year. So it is treated as now, with one warning."""
        found = self.state.distrust_future_times(datetime.now(timezone.utc))
        if found:
            described = {"last_full_walk": "the last full walk at {}", "updated_at": "the last update of {} articles",
                         "checked_at": "the last check of {} articles"}
            self.logger.warning(
                "the crawl state holds times ahead of this machine's clock, now treated as now: %s",
                ", ".join(described[what].format(value) for what, value in found.items()),
            )
        for what, value in found.items():
            self.crawler.stats.set_value(f"theory/clock/future/{what}", value)

    def close_state(self, reason: str) -> None:
        self.settle_other_channel()
        stats = self.crawler.stats.get_stats()
        started = not any(key.startswith(("theory/start_failed/", "theory/layout/")) for key in stats)
        walked = all(walk.complete for walk in self.walks.values())
        if self.full and reason == "finished" and started and walked and self.only_sections is None:
            self.state.mark_full_walk()  # every listing and feed page of both sites was walked
        self.state.close()

    def on_site(self, url: str) -> str:
        """``url`` on its site's configured host, so that state kept against a mirror or an old host stays
        usable; an article host of THEORY_ARTICLE_HOSTS keeps its own."""
        if host_of(url) in self.article_hosts:
            return url
        return rebase(url, self.start_urls_by_site[layout_of(url)])

    def settle_other_channel(self) -> None:
        """Skip for good the articles of other channels read this run, unless they are so many that the
        channel's own name has more likely changed: then a layout alarm, and they stay owed."""
        if not self.other_channel:
            return
        read = self.crawler.stats.get_value("theory/article/current_read", 0)
        names = sorted({name for _, _, name in self.other_channel})
        if channel_renamed(len(self.other_channel), read):
            self.logger.error(
                "layout changed? %d of the %d current articles read this run name another channel (%s) than %s,"
                " e.g. %s: has the channel's name changed? They stay owed",
                len(self.other_channel), read, ", ".join(names), self.section_names.get(self.channel_id),
                self.other_channel[0][1],
            )
            self.crawler.stats.set_value("theory/layout/articles_of_another_channel", len(self.other_channel))
            return
        self.state.mark_other_channel((id_, name) for id_, _, name in self.other_channel)
        self.logger.info("%d articles of other channels (%s) listed by the channel were skipped", len(self.other_channel), ", ".join(names))

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
        self.distrust_future_times()
        if not self.full and self.full_walk_due():
            self.logger.info("walking every listing and feed page this run (a full walk is due every %g days)", self.full_walk_days)
            self.full = True
        if self.base_url and self.legacy_live:
            yield self.start_request(LEGACY, self.parse_home)
        elif self.base_url:
            for request in self.start_archive_walk("THEORY_LEGACY_SOURCE=archive"):
                yield request
        if self.channel_url and self.wanted(self.channel_id):
            yield self.start_request(CURRENT, self.parse_channel)
        owed = [
            url for url in self.state.pending(self.only_sections)
            if self.start_urls_by_site.get(layout_of(url)) and (self.legacy_live or layout_of(url) != LEGACY)
        ]
        self.crawler.stats.set_value("theory/articles/owed", len(owed))
        if owed:
            self.logger.info("retrying %d articles owed by earlier runs", len(owed))
        for url in owed:
            yield self.article_request(self.on_site(url))
        # Revisits of each site's written articles are asked for once its start page answered: a site that
        # is down this run gets none (see revisit_requests).

    # --- revisits of written articles ---

    def revisit_requests(self, site: str) -> list[scrapy.Request]:
        """The revisits of ``site``'s written articles, asked for once its start page answered: a host
        that is down would only turn each of them into retries and an "unknown"."""
        if not self.revisit:
            return []
        # Published dates are Beijing dates; a day either way does not matter for a 30-day window.
        now = datetime.now(timezone.utc)
        since = (now - timedelta(days=min(self.revisit_days, 365_000))).date().isoformat()
        # An article written, fetched or checked within THEORY_REVISIT_MIN_HOURS is what the site serves now.
        seen_before = (now - timedelta(hours=min(self.revisit_min_hours, 24 * 365_000))).isoformat(timespec="seconds")
        targets = [
            target for target in self.state.revisit_targets(
                since, self.revisit_budget, self.only_sections, seen_before, archived=self.revisits_archived,
            )
            if layout_of(target[1]) == site
        ]
        self.count_archived_not_revisited(site)
        if targets:
            self.logger.info("revisiting %d written articles of the %s site after the new ones", len(targets), site)
        return [self.revisit_request(self.revisit_reading(url, page_count)) for _, url, page_count in targets]

    def revisit_reading(self, url: str, page_count: int) -> RevisitReading:
        return RevisitReading(
            url, page_count, self.read_article_page[layout_of(url)], self.section_names, self.not_found_phrases,
        )

    def revisit_request(self, reading: RevisitReading) -> scrapy.Request:
        """The page of the written article that ``reading`` asks for next, conditional while every page
        before it answered 304. Redirects are observed, not followed (see REVISIT_STATUSES)."""
        page_url = article_page_url(reading.url, reading.next_page)
        headers = {}
        if reading.conditional:
            etag, last_modified = self.state.validators(page_key(page_url))
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
        return scrapy.Request(
            self.on_site(page_url),
            self.parse_revisit,
            errback=self.revisit_failed,
            headers=headers,
            cb_kwargs={"reading": reading},
            priority=REVISIT_PRIORITY,
            dont_filter=True,  # the same page may be fetched twice in a run: conditionally, then whole
            meta={"article_url": reading.url, "revisit": True, "dont_redirect": True, "handle_httpstatus_list": REVISIT_STATUSES},
        )

    def parse_revisit(self, response, reading: RevisitReading):
        stats = self.crawler.stats
        stats.inc_value("theory/revisit/pages")
        if response.status == 200:
            # A page with a body: it counts in the run's parse-failure ratio, so that a new template
            # raises the layout alarm instead of passing for removals.
            stats.inc_value("theory/revisit/pages_read")
        result = reading.read(response, response.meta.get("warc"))
        for kind, url, detail in reading.notes:
            if kind == "bot_check":
                self.bot_check_seen(url, detail)
            else:
                self.logger.warning("revisit: page %s does not read as an article page (%s)", url, detail)
                stats.inc_value("theory/revisit/parse_failures")
        reading.notes.clear()
        if result is None:
            return [self.revisit_request(reading)]
        return self.with_archived_copy(result)

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
        url = failure.request.cb_kwargs["reading"].url
        reason = failure_reason(failure)
        if not failure.check(HostDown):
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
        self.crawler.stats.inc_value("theory/start/pages")
        sections = legacy.read_sections(response) if isinstance(response, TextResponse) else []
        navigation_read = bool(sections)  # a home that names sections has its layout, whatever was asked for
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
        if not navigation_read and not (self.only_sections and self.channel_id in self.only_sections):
            self.logger.error("layout changed? no section links on the channel home %s", response.url)
            self.crawler.stats.inc_value("theory/layout/no_sections")
        for section in sections:
            walk = ListingWalk(
                section.id, self.full, self.state.section_walked(section.id), self.max_listing_pages,
                first_url=response.urljoin(section.url),
            )
            yield self.start_walk(walk)
        yield from self.revisit_requests(LEGACY)

    def parse_listing(self, response, source: str, page: Page):
        walk = self.walks[source]
        self.crawler.stats.inc_value("theory/listing/pages")
        listing = legacy.read_listing(response) if isinstance(response, TextResponse) else None
        if not listing or not listing.article_urls:
            self.logger.error("layout changed? listing page %s has no article link", response.url)
            self.crawler.stats.inc_value("theory/layout/listing_without_links")
            yield from self.follow(walk, walk.layout_changed(page))
            return
        new, requests = self.discover(listing.article_urls)
        yield from requests
        yield from self.follow(walk, walk.read(page, listing.article_urls, len(new), listing.next_page_url, listing.last_page))

    # --- current site: channel page and JSON feed ---

    def parse_channel(self, response):
        stats = self.crawler.stats
        stats.inc_value("theory/start/pages")
        channel = current.read_channel(response, self.article_hosts) if isinstance(response, TextResponse) else None
        if not channel or not channel.article_urls:
            self.logger.error("layout changed? channel page %s has no article list item", response.url)
            stats.inc_value("theory/layout/channel_without_links")
        else:
            if channel.name:
                self.section_names[self.channel_id] = channel.name
            self.offsite_links(response, channel.offsite_urls)
            new, requests = self.discover(channel.article_urls)
            yield from requests
            walk = self.feed_walk()
            # New articles appear on top of the channel page: when it holds nothing new, neither does the feed.
            if new or walk.walks_on:
                yield self.start_walk(walk)
            else:
                self.logger.info("channel %s: every article of the channel page is known; stopping", self.channel_id)
        yield from self.revisit_requests(CURRENT)

    def feed_walk(self) -> FeedWalk:
        return FeedWalk(
            self.channel_id, self.full, self.state.section_walked(self.channel_id), self.max_listing_pages,
            feed_page_url=partial(feed_page_url, self.channel_url, self.feed_path),
        )

    def parse_feed(self, response, source: str, page: Page):
        walk = self.walks[source]
        self.crawler.stats.inc_value("theory/feed/pages")
        try:
            feed = current.read_feed(response, self.article_hosts)
        except ValueError as error:  # not JSON, or JSON in an encoding JSON does not allow (GBK)
            self.logger.error("feed page %s is not JSON (%s)", response.url, error)
            self.crawler.stats.inc_value("theory/feed/failed/not_json")
            yield from self.follow(walk, walk.failed(page, "not_json"))
            return
        if feed.entries == 0:
            yield from self.follow(walk, walk.empty(page))
            return
        if not feed.article_urls:
            self.logger.error("layout changed? feed page %s has %d entries but no article link", response.url, feed.entries)
            self.crawler.stats.inc_value("theory/layout/feed_without_links")
            yield from self.follow(walk, walk.layout_changed(page))
            return
        self.offsite_links(response, feed.offsite_urls)
        new, requests = self.discover(feed.article_urls)
        yield from requests
        yield from self.follow(walk, walk.read(page, feed.article_urls, len(new)))

    def offsite_links(self, response, urls: list[str]) -> None:
        if urls:
            self.logger.warning(
                "%s: %d article links to other hosts (%s) not followed; THEORY_ARTICLE_HOSTS names the hosts that are",
                response.url, len(urls), ", ".join(urls[:3]),
            )
            self.crawler.stats.inc_value("theory/links/offsite", len(urls))

    # --- the walks of both sites (the rules are in crawler.walks) ---

    def start_walk(self, walk: Walk) -> scrapy.Request:
        self.walks[walk.source] = walk
        return self.walk_request(walk, walk.first())

    def walk_request(self, walk: Walk, page: Page) -> scrapy.Request:
        return scrapy.Request(
            page.url,
            self.parse_feed if isinstance(walk, FeedWalk) else self.parse_listing,
            errback=self.walk_page_failed,
            cb_kwargs={"source": walk.source, "page": page},
            priority=WALK_AHEAD_PRIORITY if isinstance(walk, FeedWalk) or page.number == 1 else LISTING_PRIORITY,
        )

    def walk_page_failed(self, failure):
        source, page = failure.request.cb_kwargs["source"], failure.request.cb_kwargs["page"]
        walk = self.walks[source]
        reason = failure_reason(failure)
        if reason in ("http_404", "http_410"):
            return self.follow(walk, walk.missing(page))
        self.logger.error("%s page %s failed: %s", self.walk_kind(walk), failure.request.url, reason)
        self.crawler.stats.inc_value(f"theory/{self.walk_kind(walk)}/failed/{reason}")
        return self.follow(walk, walk.failed(page, reason))

    @staticmethod
    def walk_kind(walk: Walk) -> str:
        return "feed" if isinstance(walk, FeedWalk) else "listing"

    def follow(self, walk: Walk, step: Step) -> list[scrapy.Request]:
        """Do what the walk decided: log its odd events, fetch its next page, or close it."""
        kind = self.walk_kind(walk)
        if step.event in LAYOUT_EVENTS:
            self.logger.error("layout changed? %s", step.detail)
            self.crawler.stats.inc_value(f"theory/layout/{step.event}")
        elif step.event:
            self.logger.warning("%s %s: %s", kind, walk.source, step.detail)
            self.crawler.stats.inc_value(f"theory/{kind}/{step.event}")
        if step.next is not None:
            return [self.walk_request(walk, step.next)]
        if walk.ended:
            self.walk_ended(walk)
        return []

    def walk_ended(self, walk: Walk) -> None:
        kind = self.walk_kind(walk)
        if walk.complete:
            self.state.mark_section_walked(walk.source)
            self.logger.info("%s %s: walked (%s) after %d pages", kind, walk.source, walk.end.replace("_", " "), walk.pages_read)
            return
        # Walked in full again next run: page numbers shift from day to day, so a failed page cannot
        # simply be fetched again by its number.
        self.state.mark_section_unwalked(walk.source)
        if walk.failures:
            failed = [f"{url} ({reason})" for url, reason in walk.failures]
            self.crawler.stats.set_value(f"theory/walk/incomplete/{walk.source}", failed)
            self.logger.error(
                "%s %s: the walk is incomplete, %d pages failed: %s; it is walked in full again next run",
                kind, walk.source, len(failed), ", ".join(failed),
            )

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
        if not pages and layout_of(url) == CURRENT and not self.of_this_channel(url, page):
            return
        page.warc = response.meta.get("warc")
        # For the conditional requests of later revisits. Stored at once, apart from the item: a lost
        # article line leaves it owed, and it is fetched again unconditionally.
        self.state.set_validators(page_key(article_page_url(url, len(pages) + 1)), *validators_of(response))
        if not pages:
            page.url = url  # a redirect does not change which article the listing linked
        pages = [*pages, page]
        if len(pages) < pages[0].total_pages:
            yield self.article_request(url, pages)
            return
        yield load_article(pages, section_name_fallback=self.section_names.get(page.section_id))

    def of_this_channel(self, url: str, page: ArticlePage) -> bool:
        """Whether a current article may be written as the channel's: the feed lists articles of other
        channels too (人物). An article whose page names another channel is held until the end of the run,
        which decides whether it is skipped or the channel's own name has changed (see close_state)."""
        stats = self.crawler.stats
        stats.inc_value("theory/article/current_read")
        ours = self.section_names.get(self.channel_id)
        if page.channel_name is None or page.channel_name == ours:
            return True
        if ours is None:
            # The channel page was not read this run: nothing to compare with. Tried again next run.
            self.logger.warning("article %s names the channel %s; the channel's own name is unknown this run, so it stays owed", url, page.channel_name)
            stats.inc_value("theory/article/channel_unknown")
            return False
        self.other_channel.append((article_id(url), url, page.channel_name))
        stats.inc_value("theory/article/other_channel")
        self.logger.info("article %s is of the channel %s, not %s: not written", url, page.channel_name, ours)
        return False

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
                self.archived_image_request(item, url, self.image_captured, self.image_failed, IMAGE_PRIORITY)
                or scrapy.Request(url, self.image_captured, errback=self.image_failed, priority=IMAGE_PRIORITY)
            )

    def image_captured(self, response) -> None:
        self.state.mark_image_captured(response.meta.get("image_url", response.request.url))
        self.crawler.stats.inc_value("theory/images/captured")

    def image_failed(self, failure) -> None:
        reason = failure_reason(failure)
        if not failure.check(HostDown):
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
        if site == LEGACY:
            return self.start_archive_walk(f"the legacy start page failed: {reason}")
        return []

    def article_failed(self, failure):
        url = failure.request.meta["article_url"]
        reason = failure_reason(failure)
        if failure.check(HostDown):
            return  # not tried: no attempt is counted, it stays owed, and the host's own line said so
        given_up = self.state.record_failure(article_id(url), url, reason, self.max_attempts)
        self.logger.error(
            "article %s failed: %s (page %s)%s",
            url, reason, failure.request.url, "; giving up on it" if given_up else "; it will be tried again next run",
        )
        self.crawler.stats.inc_value(f"theory/article/failed/{reason}")
        if reason in ("http_404", "http_410") and layout_of(url) == LEGACY:
            return self.article_from_archive(url)  # live,archive: the archive may still have it
        return []
