"""A host that stops answering gets a handful of requests, not every owed article's and revisit's retries."""

from __future__ import annotations

import sqlite3

import pytest
from scrapy.exceptions import DownloadConnectionRefusedError, DownloadTimeoutError, IgnoreRequest
from scrapy.http import Request, Response
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler

from conftest import latest_run_report, load_expected, run_crawl
from crawler.middlewares import HostBreakerMiddleware, HostDown
from test_two_sites import closed_port_url

# The politeness defaults of a real run: the breaker cannot call back requests already in flight.
POLITE = {"CONCURRENT_REQUESTS": "4", "CONCURRENT_REQUESTS_PER_DOMAIN": "2"}


def breaker(limit: int = 3) -> HostBreakerMiddleware:
    return HostBreakerMiddleware(MemoryStatsCollector(get_crawler()), limit)


def test_failures_in_a_row_close_the_host_and_only_that_host():
    middleware = breaker()
    for _ in range(3):
        middleware.process_exception(Request("http://dead.example/a"), DownloadConnectionRefusedError())
    with pytest.raises(HostDown) as closed:
        middleware.process_request(Request("http://dead.example/b"))
    assert closed.value.cause is DownloadConnectionRefusedError
    assert middleware.process_request(Request("http://alive.example/b")) is None
    assert middleware.stats.get_value("theory/host_down/dead.example") == 1
    assert issubclass(HostDown, IgnoreRequest)  # neither retried nor an error of the spider


def test_an_answer_in_between_resets_the_count():
    middleware = breaker()
    for _ in range(2):
        middleware.process_exception(Request("http://slow.example/a"), DownloadTimeoutError())
    middleware.process_response(Request("http://slow.example/b"), Response("http://slow.example/b", status=500))
    middleware.process_exception(Request("http://slow.example/c"), DownloadTimeoutError())
    assert middleware.process_request(Request("http://slow.example/d")) is None


def test_other_failures_do_not_count():
    middleware = breaker(limit=1)
    middleware.process_exception(Request("http://site.example/a"), ValueError("a parse error"))
    assert middleware.process_request(Request("http://site.example/b")) is None


def test_a_data_dir_whose_host_went_down_costs_a_few_requests_and_owes_everything_again(serve_mirror, shared_site, tmp_path):
    # A first run leaves articles owed: their pages answered 500 on every try.
    expected = [row for row in load_expected(shared_site) if row["page_count"] == 1][:30]
    failing = tmp_path / "fail.txt"
    failing.write_text("".join(f"{row['url']} 1000\n" for row in expected))
    server = serve_mirror(shared_site / "www", "--fail-first", str(failing))
    data_dir = tmp_path / "data"
    assert run_crawl(server.url, data_dir).returncode == 0
    server.stop()

    result = run_crawl(closed_port_url(), data_dir, **POLITE)
    assert result.returncode == 4, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    report = latest_run_report(data_dir)
    assert report["requests"] <= 10, report
    (host,) = report["hosts_down"]
    assert report["hosts_down"][host] >= len(expected) and report["revisits"]["revisited"] == 0
    assert sum(" ERROR: " in line and "no more requests go to it" in line for line in result.stderr.splitlines()) == 1
    db = sqlite3.connect(data_dir / "state.sqlite3")
    attempts = dict(db.execute("SELECT url, attempts FROM articles WHERE status = 'pending'").fetchall())
    db.close()
    assert len(attempts) == len(expected) and set(attempts.values()) == {1}  # the first run's try only
