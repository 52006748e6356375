"""The run report and the exit status it implies, on plain stats dictionaries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from crawler.extensions import (
    EXIT_INTERRUPTED,
    EXIT_LAYOUT_CHANGED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    RunReport,
    exit_status,
    summarize,
)

STARTED = datetime(2026, 11, 24, 3, 17, tzinfo=timezone.utc)
HEALTHY = {
    "downloader/request_count": 40,
    "downloader/response_count": 40,
    "downloader/response_status_count/200": 39,
    "downloader/response_status_count/404": 1,
    "theory/listing/pages": 6,
    "theory/article/pages": 32,
    "theory/written": 30,
    "theory/article/failed/http_404": 1,
}


def report_for(stats: dict, reason: str = "finished") -> dict:
    return summarize(stats, reason, STARTED, STARTED + timedelta(seconds=12.5))


def test_summary_counts_what_the_stats_say():
    report = report_for({**HEALTHY, "retry/count": 3, "theory/duplicates/content": 2})
    assert report["requests"] == 40
    assert report["written"] == 30
    assert report["duplicates"] == {"url": 0, "content": 2}
    assert report["http_errors_by_status"] == {"404": 1}
    assert report["article_failures"] == {"http_404": 1}
    assert report["retries"] == 3
    assert report["duration_seconds"] == 12.5
    assert report["start_failures"] == {}


def test_summary_names_the_site_whose_start_page_failed():
    report = report_for({**HEALTHY, "theory/start_failed/legacy": "connection_refused"})
    assert report["start_failures"] == {"legacy": "connection_refused"}


@pytest.mark.parametrize(
    "stats, reason, status",
    [
        (HEALTHY, "finished", EXIT_OK),
        ({}, "finished", EXIT_INCOMPLETE),
        ({**HEALTHY, "theory/start_failed/legacy": "http_404"}, "finished", EXIT_INCOMPLETE),
        ({**HEALTHY, "theory/start_failed/current": "connection_refused"}, "finished", EXIT_INCOMPLETE),
        ({**HEALTHY, "theory/walk/incomplete/241": ["http://h/241/241_2.shtml (http_500)"]}, "finished", EXIT_INCOMPLETE),
        # a site not crawled completely is said before a layout change elsewhere
        ({**HEALTHY, "theory/walk/incomplete/theory": ["x (not_json)"], "theory/layout/no_sections": 1}, "finished", EXIT_INCOMPLETE),
        ({**HEALTHY, "theory/layout/channel_without_links": 1}, "finished", EXIT_LAYOUT_CHANGED),
        ({**HEALTHY, "theory/layout/feed_without_links": 1}, "finished", EXIT_LAYOUT_CHANGED),
        ({**HEALTHY, "theory/layout/listing_without_links": 1}, "finished", EXIT_LAYOUT_CHANGED),
        ({**HEALTHY, "theory/layout/no_sections": 1}, "finished", EXIT_LAYOUT_CHANGED),
        # 7 of 32 article pages unreadable is over the 20 % threshold; 6 is not
        ({**HEALTHY, "theory/rejected/missing_field": 7}, "finished", EXIT_LAYOUT_CHANGED),
        ({**HEALTHY, "theory/rejected/missing_field": 4, "spider_exceptions/count": 2}, "finished", EXIT_OK),
        # a daily run of one article, an odd one: below the minimum of failures, not a layout change
        ({**HEALTHY, "theory/article/pages": 1, "theory/rejected/missing_field": 1}, "finished", EXIT_OK),
        ({**HEALTHY, "theory/article/pages": 3, "theory/rejected/missing_field": 2}, "finished", EXIT_OK),
        ({**HEALTHY, "theory/article/pages": 3, "theory/rejected/missing_field": 3}, "finished", EXIT_LAYOUT_CHANGED),
        (HEALTHY, "shutdown", EXIT_INTERRUPTED),
        ({**HEALTHY, "theory/layout/listing_without_links": 1}, "shutdown", EXIT_LAYOUT_CHANGED),
    ],
)
def test_exit_status(stats, reason, status):
    assert exit_status(report_for(stats, reason), max_parse_failure_ratio=0.2) == status


def test_reports_of_runs_started_in_the_same_instant_do_not_overwrite_each_other(tmp_path):
    crawler = SimpleNamespace(stats=None)
    first, second = RunReport(crawler, str(tmp_path), 0.2), RunReport(crawler, str(tmp_path), 0.2)
    first.started = second.started = STARTED
    paths = [first.write({"run": 1}), second.write({"run": 2})]
    assert paths[0] != paths[1]
    assert [json.loads(path.read_text())["run"] for path in paths] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(p.name for p in paths)


def test_an_item_error_is_logged_by_its_url_not_its_body():
    from crawler.extensions import ConciseLogFormatter
    from crawler.items import ArticleItem

    item = ArticleItem(url="http://theory.example/241/201901/01/190101000000001.shtml", body="正文" * 5000)
    entry = ConciseLogFormatter(debug=False).item_error(item, ValueError("boom"), None, None)
    message = entry["msg"] % entry["args"]
    assert message == "Error processing the item of http://theory.example/241/201901/01/190101000000001.shtml"


def test_progress_lines_say_what_the_crawl_did_and_how_long_the_queue_will_take(caplog):
    from scrapy.statscollectors import MemoryStatsCollector
    from scrapy.utils.test import get_crawler
    from crawler.extensions import ProgressLog

    stats = MemoryStatsCollector(get_crawler())
    progress = ProgressLog(stats, interval=30.0)
    progress.pagesprev = progress.itemsprev = 0
    for key, value in {
        "response_received_count": 60, "theory/listing/pages": 6, "theory/article/pages": 54,
        "theory/articles/discovered": 200, "theory/written": 50, "theory/duplicates/content": 2,
        "theory/article/failed/http_404": 1, "scheduler/enqueued": 260, "scheduler/dequeued": 62,
    }.items():
        stats.set_value(key, value)
    with caplog.at_level("INFO"):
        progress.log()
    (line,) = [record.getMessage() for record in caplog.records if record.getMessage().startswith("progress")]
    assert "60 responses (0 robots.txt, 0 start, 6 listing, 0 feed, 54 article" in line
    assert "200 discovered, 0 owed by earlier runs; 50 written, 2 duplicates, 1 failed, 0 rejected" in line
    assert "left: 198 requests queued: about 99 s at 2.0 responses/s" in line  # 198 / 2.0
