"""The outcome of every run as a Prometheus text file, for node_exporter's textfile collector.

``THEORY_METRICS_FILE`` (off when empty) is rewritten atomically at the end of each run; the README shows
the alert on ``theory_crawler_last_success_timestamp_seconds``. The metrics:

- ``theory_crawler_last_run_exit_status``: the run's documented exit status (0 completed);
- ``theory_crawler_last_run_timestamp_seconds``, ``theory_crawler_last_run_duration_seconds``: when it ended, how long it took;
- ``theory_crawler_last_success_timestamp_seconds``: the end of the last run with exit status 0, carried over
  from the file by the runs that fail; absent until one succeeds;
- ``theory_crawler_last_run_written``, ``theory_crawler_last_run_requests``: articles written, requests sent;
- ``theory_crawler_last_run_revisits{outcome}``: the run report's ``revisits``: revisits of written articles
  (``revisited``, ``not_modified``), the events of changes.jsonl they made (``revised``, ``corrected``,
  ``removed``, ``restored``), ``failing`` (removal signals not yet confirmed), ``removal_too_soon``,
  ``revisions_withheld`` and ``skipped_archived``;
- ``theory_crawler_last_run_failures{kind, reason}``: ``kind`` is ``start``, ``article``, ``listing`` or ``feed``
  (one series per reason: ``http_404``, ``timeout``, ``too_large``...), ``duplicate`` (reason ``url`` or ``content``),
  ``rejected`` or ``parse`` (reason ``""``);
- ``theory_crawler_last_run_archive{source, count}``: with THEORY_LEGACY_SOURCE naming the archive (``source`` is
  ``archive`` or ``live,archive``), what it gave: ``cdx_queries``, ``captures``, ``replays``, ``articles_read``, ``retries``;
- ``theory_crawler_field_share{site, field}``: the share of the last ``THEORY_FIELD_WINDOW`` articles written
  on the site that carry the optional field (``source``, ``authors``, ``editor``, ``images``, ``published_time``),
  so that a dashboard shows a template drifting (crawler/drift.py).

These are gauges of the last run: the written count is not named ``_total``, which is for counters.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families
from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.extensions import EXIT_OK, exit_status, summarize

logger = logging.getLogger(__name__)

PREFIX = "theory_crawler_"
LAST_SUCCESS = PREFIX + "last_success_timestamp_seconds"


class MetricsFile:
    """Writes ``THEORY_METRICS_FILE`` on spider_closed, after RunReport has set ``theory/exit_status``."""

    def __init__(self, stats, path: str, max_parse_failure_ratio: float):
        self.stats = stats
        self.path = Path(path)
        self.max_parse_failure_ratio = max_parse_failure_ratio
        self.started = time.time()

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        path = settings.get("THEORY_METRICS_FILE") or ""
        if not path:
            raise NotConfigured  # no message: Scrapy would log a warning for a setting left at its default
        extension = cls(crawler.stats, path, settings.getfloat("THEORY_MAX_PARSE_FAILURE_RATIO"))
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self) -> None:
        self.started = time.time()

    def spider_closed(self, reason: str) -> None:
        # Monitoring must not disturb the run: whatever goes wrong here is one error line, and the
        # exit status (RunReport's, in the stats) stays what it is.
        try:
            self.write(reason, time.time())
        except Exception as error:  # noqa: BLE001 - see above
            logger.error("metrics file %s not written: %s", self.path, error)
            return
        logger.info("metrics written to %s", self.path)

    def write(self, reason: str, finished: float) -> None:
        stats = self.stats.get_stats()
        report = summarize(stats, reason, _utc(self.started), _utc(finished))
        status = stats.get("theory/exit_status")
        if status is None:  # RunReport disabled, or not run yet: the same rule gives the same status
            status = exit_status(report, self.max_parse_failure_ratio)
        last_success = finished if status == EXIT_OK else self.previous_last_success()
        registry = build_registry(report, status, finished, finished - self.started, last_success)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.path), registry)

    def previous_last_success(self) -> float | None:
        """The last success that the file names, if it exists and can be read."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            logger.warning("metrics file %s could not be read (%s); the last success is not carried over", self.path, error)
            return None
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == LAST_SUCCESS:
                        return sample.value
        except Exception as error:  # noqa: BLE001 - the parser raises ValueError, and worse on garbage
            logger.warning("metrics file %s is not in the text format (%s); the last success is not carried over", self.path, error)
        return None


def build_registry(
    report: dict, status: int, finished: float, duration: float, last_success: float | None
) -> CollectorRegistry:
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, value: float) -> None:
        Gauge(PREFIX + name, documentation, registry=registry).set(value)

    gauge("last_run_exit_status", "Exit status of the last run (0 completed; see the README).", status)
    gauge("last_run_timestamp_seconds", "When the last run ended, in Unix time.", finished)
    gauge("last_run_duration_seconds", "How long the last run took.", duration)
    gauge("last_run_written", "Articles the last run wrote.", report["written"])
    gauge("last_run_requests", "Requests the last run sent.", report["requests"])
    revisits = Gauge(
        PREFIX + "last_run_revisits", "Revisits of written articles in the last run, and the events they made.",
        ["outcome"], registry=registry,
    )
    for outcome, count in report["revisits"].items():
        revisits.labels(outcome).set(count)
    if last_success is not None:
        gauge("last_success_timestamp_seconds", "When the last run with exit status 0 ended, in Unix time.", last_success)

    failures = Gauge(
        PREFIX + "last_run_failures",
        "What the last run lost or left out, by kind and reason.",
        ["kind", "reason"],
        registry=registry,
    )
    for site_reason in report["start_failures"].values():
        failures.labels("start", site_reason).inc()
    for kind, key in (("article", "article_failures"), ("listing", "listing_failures"), ("feed", "feed_failures")):
        for failure_reason, count in report[key].items():
            failures.labels(kind, failure_reason).set(count)
    for duplicate, count in report["duplicates"].items():
        failures.labels("duplicate", duplicate).set(count)
    field_share = Gauge(
        PREFIX + "field_share", "Share of the last THEORY_FIELD_WINDOW articles written on a site that carry the field.",
        ["site", "field"], registry=registry,
    )
    for site, fields in report.get("field_shares", {}).items():
        for field, share in fields.items():
            field_share.labels(site, field).set(share)
    failures.labels("rejected", "").set(report["rejected"])
    failures.labels("parse", "").set(report["parse_failures"])
    archive = Gauge(
        PREFIX + "last_run_archive",
        "What a public web archive gave the last run (THEORY_LEGACY_SOURCE), by source and count: cdx_queries,"
        " captures, replays, articles_read, retries.",
        ["source", "count"], registry=registry,
    )
    for count in ("cdx_queries", "captures", "replays", "articles_read", "retries"):
        if report.get("legacy_source", "live") != "live":
            archive.labels(report["legacy_source"], count).set(report.get("archive", {}).get(count, 0))
    return registry


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)
