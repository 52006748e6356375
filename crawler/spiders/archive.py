"""The legacy articles from a public web archive: the routes of the spider for THEORY_LEGACY_SOURCE.

``archive``: the legacy host is never contacted; a CDX walk (crawler/walks/cdx.py) finds the captures of its
articles, and each page is read from a capture in raw mode by the same legacy reader, loader and pipelines.
``live,archive``: the live host first; the archive for every article when the legacy start page fails, and
for each article that answers 404 or 410.

Which capture each page is read from is decided by the pure functions of crawler/walks/cdx.py.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import scrapy
from scrapy.http import TextResponse

from crawler import configuration
from crawler.archive import ARCHIVE_META, ARCHIVE_SLOT, ArchiveRefused
from crawler.items import ArchivedArticleItem
from crawler.loaders import ArticlePage, load_article
from crawler.middlewares import failure_reason
from crawler.readers import legacy
from crawler.revisions import REMOVED, RevisitResult
from crawler.urls import LEGACY, article_id, host_of, layout_of
from crawler.walks.cdx import (
    LATEST, Capture, CdxStep, CdxWalk, HomeLookup, Query, SectionPlan, article_prefix, first_page_capture, is_home_capture,
    later_page_capture, parse_answer, replay_timestamp, section_prefixes, since_for,
)

# The sections the legacy site (2014–2020, no longer changing) is known to have had. A full walk queries those
# the archive's capture of the legacy home names, and these too; these alone when the archive has no readable
# capture of the home (the run report's archive/sections_from says which).
LEGACY_SECTIONS = ["239", "241", "242", "251", "252", "253"]
# The state's key for the latest capture a complete walk saw: incremental runs ask from there (less INDEX_LAG).
LATEST_CAPTURE = "archive_latest_capture"
ARCHIVE_WALK = "archive"
# As the live listing pages after their first: finish the articles in hand before reading more of the index.
CDX_PRIORITY = 0
REPLAY_PRIORITY = 10
REPLAY_NEXT_PAGE_PRIORITY = 20
# Revisits of written articles come after everything else of the run: new articles first (the spider's
# revisits, and the archived-copy lookups of the removals they find).
REVISIT_PRIORITY = -10


class ArchiveSource:
    """Mixed into TheorySpider: the CDX walk and the replays of the legacy site's captures."""

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        # The archive's own download slot: one request at a time, THEORY_ARCHIVE_DELAY apart, whatever the
        # politeness settings of the live hosts.
        slots = dict(settings.getdict("DOWNLOAD_SLOTS"))
        slots.setdefault(ARCHIVE_SLOT, {"concurrency": 1, "delay": settings.getfloat("THEORY_ARCHIVE_DELAY", 1.0), "jitter": 0})
        settings.set("DOWNLOAD_SLOTS", slots, priority="spider")

    def setup_archive(self, settings) -> None:
        self.legacy_sources = configuration.legacy_sources(settings)
        self.cdx_url = settings.get("THEORY_ARCHIVE_CDX_URL")
        self.replay_url = settings.get("THEORY_ARCHIVE_REPLAY_URL")
        self.archive_capture = settings.get("THEORY_ARCHIVE_CAPTURE")
        self.archive_max_skew = settings.getfloat("THEORY_ARCHIVE_MAX_SKEW_DAYS")
        # Page 1 URL -> page number -> captures, of the articles the CDX walks found.
        self.archive_pages: dict[str, dict[int, list[Capture]]] = {}
        self.home_lookup: HomeLookup | None = None  # a full walk's lookup of the sections in the archived home
        if self.uses_archive:
            self.allowed_domains.extend(urlsplit(url).hostname for url in (self.cdx_url, self.replay_url))
        self.crawler.signals.connect(self.name_legacy_source, signal=scrapy.signals.spider_opened)

    def name_legacy_source(self) -> None:
        """The run report and the metrics say where the legacy articles came from."""
        if self.base_url:
            self.crawler.stats.set_value("theory/legacy_source", ",".join(sorted(self.legacy_sources, reverse=True)))

    @property
    def uses_archive(self) -> bool:
        return bool(self.base_url) and "archive" in self.legacy_sources

    @property
    def archive_walk_started(self) -> bool:
        """This run's walk of the archive began: its lookup of the home, or its walk of the index."""
        return ARCHIVE_WALK in self.walks or self.home_lookup is not None

    @property
    def legacy_live(self) -> bool:
        return "live" in self.legacy_sources

    # --- the CDX walks ---

    def start_archive_walk(self, why: str) -> list[scrapy.Request]:
        """The walk of the archive's index for the legacy site's articles, once a run."""
        if not self.uses_archive or self.archive_walk_started:
            return []
        host = host_of(self.base_url)
        owed = [url for url in self.state.pending(self.only_sections) if layout_of(url) == LEGACY]
        latest = self.state.get_meta(LATEST_CAPTURE)
        if self.full or owed or not latest or self.only_sections:
            # A full walk: first the sections, from the archive's capture of the home (as live mode reads them).
            self.logger.info("legacy site from the archive (%s): reading its home's latest capture from %s", why, self.cdx_url)
            self.home_lookup = HomeLookup(host)
            return self.ask_home()
        # An incremental run: one query for the captures since the last one seen, less the archive's lag.
        walk = CdxWalk([f"{host}/"], since=since_for(latest), source=ARCHIVE_WALK)
        self.logger.info("legacy site from the archive (%s): walking its index %s for captures since %s", why, self.cdx_url, walk.since)
        return self.start_cdx_walk(walk)

    # --- the sections of a full walk, from the archived home ---

    def ask_home(self) -> list[scrapy.Request]:
        """The next query for the home, else the replay of its latest capture, else the walk of the sections."""
        lookup = self.home_lookup
        query = lookup.next_query()
        if query is not None:
            return [scrapy.Request(
                query.url(self.cdx_url), self.parse_home_cdx, errback=self.home_failed, cb_kwargs={"query": query},
                priority=CDX_PRIORITY, dont_filter=True, meta=dict(ARCHIVE_META),
            )]
        capture = lookup.latest()
        if capture is None:
            return self.walk_sections(self.section_plan())
        return [scrapy.Request(
            capture.replay_url(self.replay_url), self.parse_archived_home, errback=self.home_failed,
            cb_kwargs={"capture": capture}, priority=CDX_PRIORITY, dont_filter=True,
            meta={**ARCHIVE_META, "archive_capture": capture, "archive_original": capture.url},
        )]

    def parse_home_cdx(self, response, query: Query):
        self.crawler.stats.inc_value("theory/archive/cdx_queries")
        try:
            answer = parse_answer(response.body, page=is_home_capture)
        except (ValueError, UnicodeDecodeError) as error:
            self.logger.error("archive: the CDX answer for the home %s is not a CDX answer (%s)", query.prefix, error)
            self.home_lookup.failed(query, "not_cdx")
            return self.ask_home()
        if answer.cut:
            self.logger.warning("archive: the CDX answer for the home %s was cut short", query.prefix)
        self.home_lookup.read(query, answer)
        return self.ask_home()

    def parse_archived_home(self, response, capture: Capture):
        self.crawler.stats.inc_value("theory/archive/replays")
        page = response.replace(url=capture.url) if isinstance(response, TextResponse) else None
        sections = legacy.read_sections(page) if page is not None else []
        self.section_names.update((section.id, section.name) for section in sections)
        self.logger.info(
            "archive: the home's capture %s names the sections %s", response.url,
            ", ".join(f"{section.id} {section.name}" for section in sections) or "(none)",
        )
        return self.walk_sections(self.section_plan([section.id for section in sections]))

    def home_failed(self, failure):
        lookup = self.home_lookup
        query, capture = failure.request.cb_kwargs.get("query"), failure.request.cb_kwargs.get("capture")
        if failure.check(ArchiveRefused):
            return self.archive_refused()
        reason = failure_reason(failure)
        what = f"the CDX query for the home {query.prefix}" if query else f"the replay of the home's capture {failure.request.url}"
        self.logger.error("archive: %s failed: %s", what, reason)
        self.crawler.stats.inc_value(f"theory/archive/home_failed/{reason}")
        if self.archive_gave_up(reason):
            return self.archive_refused()
        if query is not None:
            lookup.failed(query, reason)
            return self.ask_home()
        lookup.replay_failed(capture, f"archive_{reason}")
        return self.walk_sections(self.section_plan())

    def section_plan(self, read=()) -> SectionPlan:
        """Which sections a full walk queries, given those read from the archived home (none: the known list)."""
        return self.home_lookup.plan(list(read), LEGACY_SECTIONS, self.only_sections, self.channel_id)

    def archive_gave_up(self, reason: str) -> bool:
        """A 429 that outlasted its retries, or a refusal met before: the archive keeps refusing."""
        return reason == "http_429" or bool(self.crawler.stats.get_value("theory/archive/refused"))

    def archive_refused(self) -> list[scrapy.Request]:
        """The archive keeps refusing before the walk began: it stops as any of its queries would stop it."""
        walk = CdxWalk([], source=ARCHIVE_WALK)
        self.walks[walk.source] = walk
        return self.follow_cdx(walk, walk.refused())

    def walk_sections(self, plan: SectionPlan) -> list[scrapy.Request]:
        stats = self.crawler.stats
        stats.set_value("theory/archive/sections_from", "home" if plan.from_home else f"known_list ({plan.fallback})")
        if not plan.from_home:
            self.logger.warning(
                "archive: no section read from a capture of the legacy home (%s); falling back to the sections the site is"
                " known to have had: %s%s", plan.fallback, ", ".join(LEGACY_SECTIONS),
                "" if plan.complete else " (the walk is incomplete: the home is asked again next run)",
            )
            stats.inc_value(f"theory/archive/sections_fallback/{plan.fallback}")
        walk = CdxWalk(section_prefixes(host_of(self.base_url), plan.sections), source=ARCHIVE_WALK, failures=list(plan.failures))
        self.logger.info("archive: walking the index of the sections %s", ", ".join(plan.sections))
        return self.start_cdx_walk(walk)

    def start_cdx_walk(self, walk: CdxWalk) -> list[scrapy.Request]:
        self.walks[walk.source] = walk
        return self.follow_cdx(walk, CdxStep(walk.first()))

    def cdx_request(self, walk: CdxWalk, query: Query) -> scrapy.Request:
        return scrapy.Request(
            # A resumed query keeps every parameter of the first one (the Wayback API's rule), its `from` too.
            query.url(self.cdx_url, since=walk.since, limit=walk.limit),
            self.parse_cdx,
            errback=self.cdx_failed,
            cb_kwargs={"source": walk.source, "query": query},
            priority=CDX_PRIORITY,
            dont_filter=True,
            meta=dict(ARCHIVE_META),
        )

    def parse_cdx(self, response, source: str, query: Query):
        walk = self.walks[source]
        stats = self.crawler.stats
        stats.inc_value("theory/archive/cdx_queries")
        try:
            answer = parse_answer(response.body)
        except (ValueError, UnicodeDecodeError) as error:
            self.logger.error("archive: the CDX answer for %s* is not a CDX answer (%s)", query.prefix, error)
            return self.follow_cdx(walk, walk.failed(query, "not_cdx"))
        stats.inc_value("theory/archive/captures", len(answer.captures))
        return self.follow_cdx(walk, walk.read(query, answer))

    def cdx_failed(self, failure):
        source, query = failure.request.cb_kwargs["source"], failure.request.cb_kwargs["query"]
        walk = self.walks[source]
        if failure.check(ArchiveRefused):
            return self.follow_cdx(walk, walk.refused())
        reason = failure_reason(failure)
        self.logger.error("archive: the CDX query for %s* failed: %s", query.prefix, reason)
        self.crawler.stats.inc_value(f"theory/archive/cdx_failed/{reason}")
        if self.archive_gave_up(reason):
            return self.follow_cdx(walk, walk.refused())
        return self.follow_cdx(walk, walk.failed(query, reason))

    def follow_cdx(self, walk: CdxWalk, step: CdxStep) -> list[scrapy.Request]:
        if step.event:
            self.logger.warning("archive: %s", step.detail)
            self.crawler.stats.inc_value(f"theory/archive/{step.event}")
        if step.next is not None:
            return [self.cdx_request(walk, step.next)]
        if walk.ended:
            return self.cdx_walk_ended(walk)
        return []

    def cdx_walk_ended(self, walk: CdxWalk) -> list[scrapy.Request]:
        articles = walk.articles()
        if walk.complete:
            self.logger.info("archive: index walked in %d queries: captures of %d articles", walk.queries, len(articles))
            if walk.source == ARCHIVE_WALK and walk.latest and walk.latest > (self.state.get_meta(LATEST_CAPTURE) or ""):
                self.state.set_meta(LATEST_CAPTURE, walk.latest)
        else:
            failed = [f"{prefix} ({reason})" for prefix, reason in walk.failures] or [f"stopped ({walk.end})"]
            self.crawler.stats.set_value(f"theory/walk/incomplete/{walk.source}", failed)
            if walk.source == ARCHIVE_WALK:
                self.state.set_meta(LATEST_CAPTURE, "")  # the next run walks the index in full again
            self.logger.error(
                "archive: the walk of its index is incomplete (%s); the articles it found are read, the rest is"
                " looked for again next run", ", ".join(failed),
            )
        # One article's lookup (live,archive, the live host answered 404) reads it whatever the state says.
        return self.archived_articles(articles, every=walk.source != ARCHIVE_WALK)

    def archived_articles(self, articles: dict[str, dict[int, list[Capture]]], every: bool = False) -> list[scrapy.Request]:
        """Page 1 of each article the walk found that is new, or owed (not one already written, live or
        from the archive: the dedupe pipeline drops one written meanwhile)."""
        ids = {article_id(url): url for url in articles}
        known = self.state.known(ids)
        owed = {article_id(url) for url in self.state.pending(self.only_sections) if layout_of(url) == LEGACY}
        new = [url for id_, url in ids.items() if id_ not in known]
        self.state.add_pending((article_id(url), url, self.section_id_of(url)) for url in new)
        self.crawler.stats.inc_value("theory/articles/discovered", len(new))
        wanted = [url for id_, url in ids.items() if every or id_ not in known or id_ in owed]
        requests = []
        for url in wanted:
            self.archive_pages[url] = articles[url]
            first = first_page_capture(articles[url][1], self.archive_capture)
            requests.append(self.replay_request(url, [], first, first))
        if wanted:
            self.logger.info("archive: reading %d articles from their captures", len(wanted))
        return requests

    # --- the replays ---

    def replay_request(self, url: str, pages: list[ArticlePage], capture: Capture, first: Capture) -> scrapy.Request:
        return scrapy.Request(
            capture.replay_url(self.replay_url),
            self.parse_archived,
            errback=self.replay_failed,
            cb_kwargs={"pages": pages, "first": first},
            priority=REPLAY_NEXT_PAGE_PRIORITY if pages else REPLAY_PRIORITY,
            meta={**ARCHIVE_META, "article_url": url, "archive_capture": capture, "archive_original": capture.url},
        )

    def parse_archived(self, response, pages: list[ArticlePage], first: Capture):
        stats = self.crawler.stats
        stats.inc_value("theory/article/pages")
        stats.inc_value("theory/archive/replays")
        url, capture = response.meta["article_url"], response.meta["archive_capture"]
        # A replay may resolve to a record that is no page (a metadata record's JSON, when an archive indexed it).
        if not isinstance(response, TextResponse) or response.selector.type not in ("html", "xml"):
            self.logger.error("archive: capture %s is not HTML (%s)", response.url, response.headers.get("Content-Type"))
            stats.inc_value("theory/article/not_html")
            self.state.record_failure(article_id(url), url, "archive_not_html", self.max_attempts)
            return
        # Read as the page it captured: its links, images and section are the original URL's.
        timestamp = replay_timestamp(response.url) or capture.timestamp
        original = response.replace(url=capture.url)
        try:
            page = legacy.read_article_page(original)
        except Exception:  # as for a live page: one unreadable capture is not a reason to stop
            self.logger.exception("archive: capture %s could not be read", response.url)
            stats.inc_value("theory/article/parse_error")
            self.state.record_failure(article_id(url), url, "parse_error", self.max_attempts)
            return
        page.warc = response.meta.get("warc")
        page.archived_from = {"url": response.url, "timestamp": timestamp}
        if not pages:
            page.url = url
        pages = [*pages, page]
        if len(pages) < pages[0].total_pages:
            number = len(pages) + 1
            later = later_page_capture(self.archive_pages.get(url, {}).get(number, []), first, self.archive_max_skew)
            if later is None:
                # Never written short: the article is owed until a capture of that page close to page 1's exists.
                self.logger.warning(
                    "archive: article %s: page %d has no capture within %g days of page 1's (%s); it stays owed",
                    url, number, self.archive_max_skew, first.timestamp,
                )
                stats.inc_value("theory/archive/owed/no_close_capture")
                self.state.record_failure(article_id(url), url, "archive_no_close_capture", self.max_attempts)
                return
            yield self.replay_request(url, pages, later, first)
            return
        item = load_article(pages, section_name_fallback=self.section_names.get(page.section_id))
        stats.inc_value("theory/archive/articles_read")
        yield ArchivedArticleItem(**vars(item), archived_from=[page.archived_from for page in pages])

    def replay_failed(self, failure):
        """A capture that does not replay (404, refused): the article stays owed. Never a removal: the
        archive losing a capture says nothing about the site."""
        url = failure.request.meta["article_url"]
        if failure.check(ArchiveRefused):
            return  # not tried: no attempt counted; the archive's own line said so
        reason = f"archive_{failure_reason(failure)}"
        given_up = self.state.record_failure(article_id(url), url, reason, self.max_attempts)
        self.logger.error(
            "article %s failed: %s (capture %s)%s", url, reason, failure.request.url,
            "; giving up on it" if given_up else "; it will be tried again next run",
        )
        self.crawler.stats.inc_value(f"theory/article/failed/{reason}")

    def archived_image_request(self, item, url: str, callback, errback, priority: int) -> scrapy.Request | None:
        """An image of an article read from the archive, on the legacy host: from the archive too, near the
        time of the article's capture (the archive replays its closest capture)."""
        if not isinstance(item, ArchivedArticleItem) or host_of(url) != host_of(self.base_url) or not item.archived_from:
            return None
        return scrapy.Request(
            Capture(item.archived_from[0]["timestamp"], url).replay_url(self.replay_url), callback, errback=errback,
            priority=priority, meta={**ARCHIVE_META, "image_url": url, "archive_original": url},
        )

    # --- revisits of the articles read from the archive ---

    @property
    def revisits_archived(self) -> bool:
        """Whether the articles read from the archive are revisited on the live host: only in live,archive
        mode. In live mode the live host may never have served them to us, so that its 404 would be no
        evidence of a removal; in archive mode the legacy host gets no revisit at all."""
        return "archive" in self.legacy_sources

    def count_archived_not_revisited(self, site: str) -> None:
        if self.revisits_archived or site != LEGACY:  # only legacy articles are read from an archive
            return
        skipped = [url for url in self.state.written_from_archive(self.only_sections) if layout_of(url) == site]
        if skipped:
            self.logger.info(
                "%d articles of the %s site read from a web archive are not revisited: THEORY_LEGACY_SOURCE=live"
                " (live,archive revisits them on the live host)", len(skipped), site,
            )
            self.crawler.stats.inc_value("theory/revisit/skipped_archived", len(skipped))

    # --- live,archive: removed articles and their archived copy ---

    def with_archived_copy(self, result: RevisitResult) -> list:
        """A revisit that found a legacy article removed, in live,archive mode: first the archive's latest
        capture of it, which the removed event names as ``archived_copy`` when it is confirmed."""
        if result.verdict != REMOVED or not (self.uses_archive and self.legacy_live) or layout_of(result.url) != LEGACY:
            return [result]
        query = Query(article_prefix(result.url) + ".shtml")  # page 1 only
        self.crawler.stats.inc_value("theory/archive/archived_copy_lookups")
        return [scrapy.Request(
            query.url(self.cdx_url), self.parse_archived_copy, errback=self.archived_copy_failed,
            cb_kwargs={"result": result}, priority=REVISIT_PRIORITY, dont_filter=True, meta=dict(ARCHIVE_META),
        )]

    def parse_archived_copy(self, response, result: RevisitResult):
        try:
            answer = parse_answer(response.body)
        except (ValueError, UnicodeDecodeError) as error:
            self.logger.warning("archive: no archived copy of %s: the CDX answer is not one (%s)", result.url, error)
            return [result]
        latest = first_page_capture([c for c in answer.captures if urlsplit(c.url).path == urlsplit(result.url).path], LATEST)
        if latest is not None:
            result.archived_copy = latest.replay_url(self.replay_url)
        return [result]

    def archived_copy_failed(self, failure):
        """The removal is judged all the same; only its archived copy is not named."""
        result = failure.request.cb_kwargs["result"]
        self.logger.warning("archive: the archived copy of %s could not be looked up: %s", result.url, failure.value)
        return [result]

    # --- live,archive: one article the live host no longer has ---

    def article_from_archive(self, url: str) -> list[scrapy.Request]:
        """Look one article up in the archive's index (its pages share a prefix), then read it from there."""
        source = f"{ARCHIVE_WALK}/{article_id(url)}"
        if not self.uses_archive or source in self.walks or self.archive_walk_started:
            return []
        self.crawler.stats.inc_value("theory/archive/article_lookups")
        return self.start_cdx_walk(CdxWalk([article_prefix(url)], source=source))
