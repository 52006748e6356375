"""DOWNLOAD_MAXSIZE: a gzip bomb or an oversized page costs one article ("too_large"), not the run's memory."""

from __future__ import annotations

import resource
import zlib

from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from twisted.python.failure import Failure

from conftest import latest_run_report, load_expected, run_crawl
from crawl_helpers import assert_complete_once, single_page_originals, state_rows
from crawler.settings import DOWNLOAD_MAXSIZE
from crawler.spiders.theory import failure_reason
from fixture_server import FixtureServer

MIB = 1024 * 1024


def gzip_bomb(inflated_mib: int) -> bytes:
    """``inflated_mib`` MiB of zeros, gzip-compressed: some 4.5 MB for 1 GiB at level 1, about a second."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    chunk = bytes(MIB)
    return b"".join([*(compressor.compress(chunk) for _ in range(inflated_mib)), compressor.flush()])


def failure_of(error: Exception) -> Failure:
    try:
        raise error
    except type(error):
        return Failure()


def test_size_failures_are_named_too_large_and_other_ignored_requests_are_not():
    assert failure_reason(failure_of(DownloadCancelledError("Expected to receive 9437184 bytes ..."))) == "too_large"
    decompression = IgnoreRequest(
        "Ignored response <200 http://x/a.shtml> because its body (4685477 B compressed, 8454144 B decompressed"
        " so far) exceeded DOWNLOAD_MAXSIZE (8388608 B) during decompression."
    )
    assert failure_reason(failure_of(decompression)) == "too_large"
    assert failure_reason(failure_of(IgnoreRequest("Forbidden by robots.txt"))) == "IgnoreRequest"
    assert failure_reason(failure_of(IgnoreRequest())) == "IgnoreRequest"


def test_gzip_bomb_and_oversized_pages_fail_as_too_large_and_the_run_completes(shared_site, tmp_path):
    expected = load_expected(shared_site)
    victims = [single_page_originals(expected, section)[0] for section in ("239", "241", "242")]
    bomb, announced, streamed = (row["url"] for row in victims)
    oversized = b"<html><body>" + b" " * (DOWNLOAD_MAXSIZE + MIB) + b"</body></html>"
    canned = {
        # 1 GiB of zeros in some 4.5 MB: under the limit on the wire, far over it once inflated
        bomb: ({"Content-Type": "text/html", "Content-Encoding": "gzip"}, gzip_bomb(1024)),
        # over the limit by its Content-Length: cancelled before the body is read
        announced: ({"Content-Type": "text/html"}, oversized),
        # no Content-Length, the body ends with the connection: cancelled once the limit is passed
        streamed: ({"Content-Type": "text/html", "Connection": "close"}, oversized),
    }
    data_dir = tmp_path / "data"
    with FixtureServer(shared_site / "www", canned=canned) as server:
        result = run_crawl(server.url, data_dir, timeout=120)
    log = result.stderr

    # Three failed articles out of ~300 are not a layout change: the run completes.
    assert result.returncode == 0, log[-3000:]
    report = latest_run_report(data_dir)
    assert report["exit_status"] == 0
    assert report["article_failures"] == {"too_large": 3}
    for row in victims:
        assert f"article {server.url.rstrip('/')}{row['url']} failed: too_large" in log
        # one request each: neither a cancelled download nor an ignored response is retried
        assert server.requests[row["url"]] == 1
        # an ordinary article failure: owed to the next run
        assert state_rows(data_dir, row["article_id"]) == ("pending", 1, "too_large")
    assert log.count("failed: too_large (page ") == 3
    assert "Traceback" not in log

    # Every other article is written, once.
    assert_complete_once(data_dir, expected, missing={row["article_id"] for row in victims})
    assert report["written"] == 291 - 3

    # The bomb inflated to the limit, not to 1 GiB (the largest child of this test process so far).
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 < 400 * MIB
