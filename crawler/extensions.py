"""The run report, the exit status it implies, and concise log lines for dropped items."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.extensions.logstats import LogStats
from scrapy.logformatter import LogFormatter

from crawler.progress import WalkProgress, from_stats, progress_line

logger = logging.getLogger(__name__)

# Exit statuses of `scrapy crawl theory` (documented in the README).
EXIT_OK = 0
EXIT_ERROR = 1  # Scrapy could not start the crawl, or it crashed
EXIT_USAGE = 2  # a bad setting or spider argument (Scrapy's own status for usage errors)
EXIT_LOCKED = 3  # another run holds the data directory
EXIT_INCOMPLETE = 4  # a site could not be crawled completely: its start page, or a listing or feed page, failed
EXIT_LAYOUT_CHANGED = 5  # pages came back but could not be read
EXIT_INTERRUPTED = 6  # stopped before the end (SIGINT/SIGTERM, or another close reason)
EXIT_OUTPUT_FAILED = 7  # the output could not be written (full disk, file size limit, read-only)
EXIT_DAMAGED_CAPTURE = 8  # reextract: a WARC file is damaged or cut short, or an article's captured pages are missing

EXIT_MEANINGS = {
    EXIT_OK: "completed",
    EXIT_ERROR: "crawl could not start or crashed",
    EXIT_USAGE: "bad setting or spider argument",
    EXIT_LOCKED: "another run holds the data directory",
    EXIT_INCOMPLETE: "a site could not be crawled completely",
    EXIT_LAYOUT_CHANGED: "the site's layout seems to have changed",
    EXIT_INTERRUPTED: "interrupted before the end",
    EXIT_OUTPUT_FAILED: "the output could not be written",
    EXIT_DAMAGED_CAPTURE: "the capture is damaged",
}


def _with_prefix(stats: dict, prefix: str) -> dict[str, int]:
    return {key[len(prefix) :]: value for key, value in sorted(stats.items()) if key.startswith(prefix)}


def _field_shares(stats: dict) -> dict[str, dict[str, float]]:
    shares: dict[str, dict[str, float]] = {}
    for key, share in _with_prefix(stats, "theory/field_share/").items():
        site, _, field = key.partition("/")
        shares.setdefault(site, {})[field] = share
    return shares


def summarize(stats: dict, reason: str, started: datetime, finished: datetime) -> dict:
    """The run report: what a cron operator needs to know about one run."""
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "finish_reason": reason,
        # site ("legacy", "current") -> why its start page failed; that site was not crawled
        "start_failures": _with_prefix(stats, "theory/start_failed/"),
        # section or channel -> its listing or feed pages that failed ("URL (reason)"); walked in full next run
        "incomplete_walks": _with_prefix(stats, "theory/walk/incomplete/"),
        # host -> requests not sent to it after it stopped answering; what they were for is owed to the next run
        "hosts_down": _with_prefix(stats, "theory/host_down/"),
        "requests": stats.get("downloader/request_count", 0),
        "responses": stats.get("downloader/response_count", 0),
        "listing_pages": stats.get("theory/listing/pages", 0),
        "feed_pages": stats.get("theory/feed/pages", 0),
        "article_pages": stats.get("theory/article/pages", 0),
        "articles_discovered": stats.get("theory/articles/discovered", 0),
        # articles owed by earlier runs (failed, rejected, or not reached), fetched again this run
        "articles_owed": stats.get("theory/articles/owed", 0),
        "written": stats.get("theory/written", 0),
        "duplicates": {
            "url": stats.get("theory/duplicates/url", 0),
            "content": stats.get("theory/duplicates/content", 0),
        },
        # Content duplicates appended to duplicates.jsonl (each dropped copy once, with the article kept).
        "duplicates_recorded": stats.get("theory/duplicates/recorded", 0),
        "rejected": stats.get("theory/rejected", 0),
        # current articles listed by the channel whose page names another channel (人物): not written
        "other_channel": stats.get("theory/article/other_channel", 0),
        # article links to hosts other than the sites' and THEORY_ARTICLE_HOSTS: not followed
        "offsite_links": stats.get("theory/links/offsite", 0),
        # Revisits of written articles (crawler/revisions.py) and the events of changes.jsonl they made.
        "revisits": {
            name: stats.get(f"theory/revisit/{name}", 0)
            for name in (
                "revisited", "not_modified", "revised", "corrected", "removed", "restored", "failing",
                # removal evidence seen again before THEORY_REMOVAL_MIN_HOURS had passed; revisions not
                # recorded because more than half of the whole revisits found one (a layout alarm)
                "removal_too_soon", "revisions_withheld",
                # articles read from a web archive, not revisited on the live host (THEORY_LEGACY_SOURCE=live)
                "skipped_archived",
            )
        },
        "revisit_unknown": _with_prefix(stats, "theory/revisit/unknown/"),
        # Bot checks met by revisits (short pages that reload themselves or ask for a proof): neither a
        # removal nor a layout change; a few of them, with their <title>, to look at.
        "bot_checks": {
            "count": stats.get("theory/revisit/bot_checks", 0),
            "examples": stats.get("theory/revisit/bot_check_examples", []),
        },
        # Revisit answers with a body (200s; 304s have none) are read like article pages: those that do
        # not read as one (a new template) count as parse failures, so a template change is a layout alarm.
        "revisit_pages_read": stats.get("theory/revisit/pages_read", 0),
        "parse_failures": (
            stats.get("theory/rejected/missing_field", 0)
            + stats.get("theory/article/parse_error", 0)
            + stats.get("theory/article/not_html", 0)
            + stats.get("spider_exceptions/count", 0)
            + stats.get("theory/revisit/parse_failures", 0)
        ),
        "http_errors_by_status": {
            status: count
            for status, count in _with_prefix(stats, "downloader/response_status_count/").items()
            if not status.startswith(("2", "3"))
        },
        "download_errors": stats.get("downloader/exception_count", 0),
        "retries": stats.get("retry/count", 0),
        "article_failures": _with_prefix(stats, "theory/article/failed/"),
        "listing_failures": _with_prefix(stats, "theory/listing/failed/"),
        "feed_failures": _with_prefix(stats, "theory/feed/failed/"),
        "layout_alarms": _with_prefix(stats, "theory/layout/"),
        # site -> field -> share of the last THEORY_FIELD_WINDOW written articles that carry it (crawler/drift.py)
        "field_shares": _field_shares(stats),
        # Where the legacy articles came from (THEORY_LEGACY_SOURCE: live, archive, live,archive), and what the
        # archive gave: CDX queries, captures, replays, articles read, retries, refusals (crawler/spiders/archive.py)
        "legacy_source": stats.get("theory/legacy_source", "live"),
        "archive": _with_prefix(stats, "theory/archive/"),
        "recovered_lines": stats.get("theory/recovered_lines", 0),
        "recovery": _with_prefix(stats, "theory/recovery/"),
        # Times of the state that were ahead of this run's clock, treated as now: the last full walk's, and
        # how many articles' updated_at and revisions' checked_at.
        "future_times": _with_prefix(stats, "theory/clock/future/"),
        "output_error": stats.get("theory/output_error"),
        "usage_error": stats.get("theory/usage_error"),
    }


def exit_status(report: dict, max_parse_failure_ratio: float, min_parse_failures: int = 3) -> int:
    """The run's exit status. The share of unreadable article pages signals a layout change only from
    ``min_parse_failures`` pages on: one odd page of a small daily run is not a new template."""
    if report["output_error"]:
        return EXIT_OUTPUT_FAILED
    if report["usage_error"]:
        return EXIT_USAGE
    if report["responses"] == 0 or report["start_failures"] or report["incomplete_walks"] or report["hosts_down"]:
        return EXIT_INCOMPLETE
    if report["layout_alarms"]:
        return EXIT_LAYOUT_CHANGED
    failures, pages = report["parse_failures"], report["article_pages"] + report.get("revisit_pages_read", 0)
    if failures >= min_parse_failures and failures / max(pages, 1) > max_parse_failure_ratio:
        return EXIT_LAYOUT_CHANGED
    if report["finish_reason"] != "finished":
        return EXIT_INTERRUPTED
    return EXIT_OK


class RunReport:
    """Writes ``<THEORY_DATA_DIR>/runs/<UTC timestamp>.json`` and logs the same summary at the end of a run."""

    def __init__(self, crawler, data_dir: str, max_parse_failure_ratio: float, min_parse_failures: int = 3):
        self.crawler = crawler
        self.runs_dir = Path(data_dir) / "runs"
        self.max_parse_failure_ratio = max_parse_failure_ratio
        self.min_parse_failures = min_parse_failures
        self.started = datetime.now(timezone.utc)

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        extension = cls(
            crawler,
            settings.get("THEORY_DATA_DIR"),
            settings.getfloat("THEORY_MAX_PARSE_FAILURE_RATIO"),
            settings.getint("THEORY_MIN_PARSE_FAILURES"),
        )
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self) -> None:
        self.started = datetime.now(timezone.utc)

    def spider_closed(self, reason: str) -> None:
        finished = datetime.now(timezone.utc)
        report = summarize(self.crawler.stats.get_stats(), reason, self.started, finished)
        status = exit_status(report, self.max_parse_failure_ratio, self.min_parse_failures)
        report["exit_status"] = status
        report["exit_meaning"] = EXIT_MEANINGS[status]
        self.crawler.stats.set_value("theory/exit_status", status)
        level = logging.INFO if status == EXIT_OK else logging.ERROR
        try:
            report.update(self.appended())
        except OSError as error:  # the report is still written: it says how the run went
            logger.error("the run's appended ranges could not be read: %s", error)
        try:
            path = self.write(report)
        except OSError as error:
            # The summary is logged all the same: an unwritable runs/ must not hide how the run went.
            logger.log(level, "run summary (not written: %s):\n%s", error, format_report(report))
            return
        logger.log(level, "run summary (%s):\n%s", path, format_report(report))

    def appended(self) -> dict:
        """Where this run's output is (crawler/delivery.py): what a downstream archive reads up to."""
        from crawler.delivery import JSONL_FILES, appended_ranges, reports, warc_ranges

        data_dir = self.runs_dir.parent
        earlier = [entry for _, entry in reports(self.runs_dir)]
        stats = self.crawler.stats
        synced = {name: stats.get_value(f"theory/synced_size/{name}") for name in JSONL_FILES}
        capture = getattr(self.crawler, "theory_capture", None)
        created = [path.name for path in capture.writer.files] if capture else []
        settings = self.crawler.settings
        return {
            "sites": [url for url in (settings.get("THEORY_BASE_URL"), settings.get("THEORY_CHANNEL_URL")) if url],
            "appended": appended_ranges(data_dir, earlier[-1] if earlier else None, {k: v for k, v in synced.items() if v is not None}),
            "warc_files": warc_ranges(data_dir / "warc", created, earlier),
            # packaged by the capture when the storage pipeline closed, before this report; absent when it could not
            "wacz": f"wacz/{capture.packaged.name}" if capture and capture.packaged else None,
        }

    def write(self, report: dict) -> Path:
        """Write the report under a name of its own: never over an earlier run's report."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = self.started.strftime("%Y%m%dT%H%M%S.%fZ")
        temporary = self.runs_dir / f".{stamp}.{os.getpid()}.tmp"
        try:
            temporary.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            for attempt in range(100):
                path = self.runs_dir / (f"{stamp}.json" if attempt == 0 else f"{stamp}-{attempt}.json")
                try:
                    os.link(temporary, path)  # fails if the name is taken, unlike a rename
                    return path
                except FileExistsError:
                    continue
            raise FileExistsError(f"100 reports named {stamp} already")
        finally:
            temporary.unlink(missing_ok=True)


class CoveragePage:
    """Rewrites ``<THEORY_DATA_DIR>/coverage.html`` at the end of every run (crawler/coverage.py), once the
    run report is written, so that the page shows this run too. A failure is one error line: the page is
    a view of the data, and the run's exit status is about the data."""

    def __init__(self, data_dir: str):
        self.data_dir = Path(data_dir)

    @classmethod
    def from_crawler(cls, crawler):
        extension = cls(crawler.settings.get("THEORY_DATA_DIR"))
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_closed(self) -> None:
        from crawler.coverage import write_page  # the page's code is loaded only at the end of a run

        try:
            path = write_page(self.data_dir)
        except Exception as error:  # noqa: BLE001 -- a view of the data must never fail the run
            logger.error("coverage page not written: %s: %s", type(error).__name__, error)
            return
        logger.info("coverage page: %s", path)


def format_report(report: dict) -> str:
    lines = []
    for key, value in report.items():
        if key == "appended" and isinstance(value, dict):  # the byte ranges; the digests are for programs
            value = {name: f"{entry['start']}-{entry['end']} ({entry['lines']} lines)" for name, entry in value.items()}
        elif key == "warc_files" and isinstance(value, list):
            value = ", ".join(f"{entry['file']} {entry['start']}-{entry['end']}" for entry in value) or "-"
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        lines.append(f"  {key:<22} {value}")
    return "\n".join(lines)


class ConciseLogFormatter(LogFormatter):
    """Dropped and failed items are logged by their reason or URL alone (the default dumps the whole
    article body), and the per-page "Crawled"/"Scraped" debug records are not even built unless
    LOG_LEVEL is DEBUG."""

    def __init__(self, debug: bool = True):
        self.debug = debug

    @classmethod
    def from_crawler(cls, crawler):
        level = crawler.settings.get("LOG_LEVEL")
        return cls(debug=(logging.getLevelName(level) if isinstance(level, str) else level) <= logging.DEBUG)

    def crawled(self, request, response, spider):
        return super().crawled(request, response, spider) if self.debug else None

    def scraped(self, item, response, spider):
        return super().scraped(item, response, spider) if self.debug else None

    def dropped(self, item, exception, response, spider):
        entry = super().dropped(item, exception, response, spider)
        entry["msg"] = "Dropped: %(exception)s"
        return entry

    def item_error(self, item, exception, response, spider):
        # The default message holds the whole item, body and all; its URL is enough to find it.
        entry = super().item_error(item, exception, response, spider)
        entry["msg"] = "Error processing the item of %(url)s"
        entry["args"] = {"url": getattr(item, "url", None) or getattr(response, "url", "?")}
        return entry


class _RobotsTxtErrorInOneLine(logging.Filter):
    """Scrapy's robots.txt middleware logs a failed download with its whole traceback (some 60 lines for
    a DNS failure), under the name of the first page requested from that host. A host that cannot be
    reached shows up again as that page's own failure, so one plain warning line is enough here."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.args, dict) and "request" in record.args:
            request = record.args["request"]
            record.msg = "robots.txt of %(host)s could not be fetched (%(error)s); its pages are fetched without it"
            record.args = {"host": urlsplit(request.url).netloc, "error": record.args.get("f_exception")}
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


ROBOTS_TXT_FILTER = _RobotsTxtErrorInOneLine()


class OneLineRobotsTxtErrors:
    """Installs the filter above on the robots.txt middleware's logger for the crawl."""

    @classmethod
    def from_crawler(cls, crawler):
        logging.getLogger("scrapy.downloadermiddlewares.robotstxt").addFilter(ROBOTS_TXT_FILTER)
        return cls()


class ProgressLog(LogStats):
    """Scrapy's periodic stats line (every LOGSTATS_INTERVAL), in the crawl's own terms: the responses by
    kind, what the articles came to, and the time left for the work known to remain (crawler/progress.py)."""

    crawler = None

    @classmethod
    def from_crawler(cls, crawler):
        extension = super().from_crawler(crawler)
        extension.crawler = crawler
        return extension

    def log(self, spider=None) -> None:
        self.calculate_stats()
        walks, in_flight, sites = [], 0, 0
        spider = spider or getattr(self.crawler, "spider", None)
        if spider is not None and hasattr(spider, "walks"):
            walks = [
                WalkProgress(spider.walk_kind(walk), walk.source, walk.pages_read, walk.pages_left, walk.new_links)
                for walk in spider.walks.values()
            ]
            sites = bool(spider.base_url) + bool(spider.channel_url and spider.wanted(spider.channel_id))
        engine = getattr(self.crawler, "engine", None)
        if engine is not None and engine.downloader is not None:
            in_flight = len(engine.downloader.active)
        snapshot = from_stats(self.stats.get_stats(), self.prate / 60, walks, in_flight, sites)
        logger.info("%s", progress_line(snapshot))
