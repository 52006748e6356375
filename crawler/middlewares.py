"""Downloader middleware: a page whose declared encoding garbles it is decoded by the encoding that fits.

Scrapy takes a page's encoding from its BOM, then the HTTP header, then the ``<meta>`` (w3lib), and
decodes with ``errors="replace"``: GBK bytes served as ``charset=utf-8`` come out full of U+FFFD, and
as ``charset=iso-8859-1`` as Latin-1 mojibake, both silently. Here such a page gets the first of its
other plausible encodings that decodes it cleanly, with a warning and a stat; the validation pipeline
still refuses any item whose text is garbled (see ``ValidationPipeline.problems``).
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import asdict
from urllib.parse import urldefrag, urljoin

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    NotConfigured,
    ResponseDataLossError,
)
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.http import TextResponse
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom, resolve_encoding
from w3lib.url import safe_url_string

from crawler.capture import Capture
from crawler.pipelines import OutputError, OutputFailure
from crawler.urls import host_of
from crawler.walks.cdx import replay_timestamp

logger = logging.getLogger(__name__)

# Single-byte Latin encodings decode any byte string without an error, so "it decoded" proves nothing
# for them (w3lib already resolves latin-1, iso-8859-1 and ascii to cp1252).
LATIN = frozenset(codecs.lookup(name).name for name in ("iso-8859-1", "latin-1", "cp1252", "windows-1252", "ascii"))


def _gb18030_strict(error: UnicodeDecodeError) -> tuple[str, int]:
    # w3lib decodes a lone 0x80 as the euro sign (GBK's and the Encoding Standard's reading of it, which
    # Python's codec rejects): that is not a fault in the page, anything else is.
    if isinstance(error, UnicodeDecodeError) and error.object[error.start] == 0x80:
        return "\u20ac", error.start + 1
    raise error


codecs.register_error("theory_gb18030_strict", _gb18030_strict)


def codec_name(encoding: str | None) -> str | None:
    try:
        return codecs.lookup(encoding).name if encoding else None
    except LookupError:
        return None


def decodes_cleanly(body: bytes, encoding: str) -> bool:
    """True when every byte of ``body`` means a character in ``encoding`` (BOM aside)."""
    bom_encoding, bom = read_bom(body)
    if bom_encoding and codec_name(bom_encoding) == codec_name(encoding):
        body = body[len(bom) :]
    errors = "theory_gb18030_strict" if codec_name(encoding) == "gb18030" else "strict"
    try:
        body.decode(encoding, errors)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


class EncodingRepairMiddleware:
    """Re-decodes a text response whose declared encoding does not fit its bytes."""

    def __init__(self, stats):
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.stats)

    def process_response(self, request, response):
        if not isinstance(response, TextResponse):
            return response
        declared = codec_name(response.encoding)
        latin = declared in LATIN
        if latin:
            # Any byte decodes in a Latin encoding; only bytes >= 0x80 can be something else (CJK) in disguise.
            if response.body.isascii():
                return response
        # The normal path: response.text is cached, and the spider's selector reuses it, so this costs one scan.
        elif "\ufffd" not in response.text or decodes_cleanly(response.body, declared or response.encoding):
            return response  # clean, or the page itself holds U+FFFD
        for candidate in self.candidates(response):
            if not candidate or candidate == declared or candidate in LATIN:
                continue  # no such declaration, the one that failed, or one that cannot fail
            if decodes_cleanly(response.body, candidate):
                logger.warning(
                    "page %s declares %s (%s) but is %s; decoded as %s",
                    response.url, response.encoding, self.declared_by(response), candidate, candidate,
                )
                self.stats.inc_value("theory/encoding/mismatch")
                return response.replace(encoding=candidate)
        if not latin:  # a Latin page that fits no CJK encoding is plain Latin text: nothing to repair
            logger.warning(
                "page %s declares %s (%s) but does not decode cleanly in it nor in any other likely encoding",
                response.url, response.encoding, self.declared_by(response),
            )
            self.stats.inc_value("theory/encoding/undecodable")
        return response

    @staticmethod
    def candidates(response: TextResponse):
        """The page's own declarations first, then the channel's two encodings: UTF-8 before GB18030, because
        a strict UTF-8 decoding of other bytes almost always fails while GB18030 accepts many byte strings."""
        yield codec_name(html_body_declared_encoding(response.body))  # gb2312/gbk resolve to gb18030
        yield codec_name(read_bom(response.body)[0])
        yield "utf-8"
        yield "gb18030"

    @staticmethod
    def declared_by(response: TextResponse) -> str:
        """Where the encoding in use came from, for the warning."""
        bom_encoding = read_bom(response.body)[0]
        if bom_encoding and response.encoding == resolve_encoding(bom_encoding):
            return "BOM"
        content_type = response.headers.get(b"Content-Type", b"").decode("latin-1")
        if response.encoding == http_content_type_encoding(content_type):
            return "HTTP header"
        if response.encoding == html_body_declared_encoding(response.body):
            return "meta"
        return "guessed"


class RedirectFailed(IgnoreRequest):
    """A redirect that leads nowhere the crawl may go; ``reason`` says why, for the errback's accounting."""

    def __init__(self, reason: str, url: str):
        self.reason = reason
        self.url = url
        super().__init__(f"{reason}: {url}")


class RedirectGuardMiddleware:
    """Refuses, through the request's errback, a redirect off the two sites (and THEORY_ARTICLE_HOSTS) or
    back into its own chain.

    Scrapy's RedirectMiddleware would follow it with a new request that the offsite or the duplicate
    filter then drops without a word, so that neither callback nor errback ever runs: a start page that
    redirects away would end the run "finished" with nothing crawled. Placed after RedirectMiddleware
    (a higher number), it sees the 3xx response first.
    """

    REDIRECTS = frozenset({301, 302, 303, 307, 308})

    def __init__(self, hosts: set[str]):
        self.hosts = hosts

    @classmethod
    def from_crawler(cls, crawler):
        urls = [crawler.settings.get(name) or "" for name in ("THEORY_BASE_URL", "THEORY_CHANNEL_URL")]
        article_hosts = {host.strip().lower() for host in crawler.settings.getlist("THEORY_ARTICLE_HOSTS") if host.strip()}
        if "archive" in (crawler.settings.get("THEORY_LEGACY_SOURCE") or ""):  # a replay may redirect to its closest capture
            urls += [crawler.settings.get(name) or "" for name in ("THEORY_ARCHIVE_CDX_URL", "THEORY_ARCHIVE_REPLAY_URL")]
        return cls({host_of(url) for url in urls if url} | article_hosts)

    def process_response(self, request, response, spider=None):
        location = response.headers.get("Location")
        if response.status not in self.REDIRECTS or not location or request.meta.get("dont_redirect"):
            return response
        target = urljoin(request.url, safe_url_string(location.decode("latin-1")))
        if host_of(target) not in self.hosts:
            raise RedirectFailed("redirect_offsite", target)
        chain = {urldefrag(url)[0] for url in (*request.meta.get("redirect_urls", ()), request.url)}
        if urldefrag(target)[0] in chain:
            raise RedirectFailed("redirect_loop", target)
        return response


class HostDown(IgnoreRequest):
    """A request not sent: its host stopped answering earlier in the run; ``cause`` is the last failure."""

    def __init__(self, host: str, cause: type[Exception]):
        self.host = host
        self.cause = cause
        super().__init__(f"{host} stopped answering earlier in this run ({cause.__name__})")


# Failures that say the host is not answering at all, rather than answering badly.
UNREACHABLE = (DownloadConnectionRefusedError, DownloadTimeoutError, CannotResolveHostError, DownloadFailedError)


class HostBreakerMiddleware:
    """Stops sending requests to a host after ``limit`` connection failures or timeouts in a row.

    A host that is down would otherwise take every owed article and revisit through all its retries (four
    tries each, thirty seconds per timeout) for nothing. The requests not sent fail with HostDown, as the
    failure that closed the host: nothing is judged from them, and what they were for stays owed. Placed above
    RetryMiddleware (550), it sees every try's failure before a retry is scheduled.
    """

    def __init__(self, stats, limit: int):
        self.stats = stats
        self.limit = limit
        self.in_a_row: dict[str, int] = {}
        self.down: dict[str, type[Exception]] = {}  # host -> the failure that closed it

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.stats, crawler.settings.getint("THEORY_HOST_MAX_FAILURES_IN_A_ROW"))

    def process_request(self, request, spider=None):
        host = host_of(request.url)
        if host in self.down:
            self.stats.inc_value(f"theory/host_down/{host}")
            raise HostDown(host, self.down[host])

    def process_response(self, request, response, spider=None):
        self.in_a_row[host_of(request.url)] = 0  # any answer, even a 500, shows the host is there
        return response

    def process_exception(self, request, exception, spider=None):
        if not isinstance(exception, UNREACHABLE):
            return None
        host = host_of(request.url)
        self.in_a_row[host] = self.in_a_row.get(host, 0) + 1
        if self.in_a_row[host] >= self.limit and host not in self.down:
            self.down[host] = type(exception)
            logger.error(
                "%s: %d connection failures or timeouts in a row (the last: %s); no more requests go to it this run,"
                " and what it still owes is owed to the next run",
                host, self.in_a_row[host], type(exception).__name__,
            )
        return None


class WarcCaptureMiddleware:
    """Writes every exchange of the crawl to the run's WARC file as it comes over the wire.

    Placed above every middleware that changes a response (950: above RedirectMiddleware's 600 and
    HttpCompressionMiddleware's 590), so that it sees the body still compressed, redirects and error
    answers too. The response record's place goes into ``request.meta["warc"]``, for the item.
    """

    def __init__(self, capture: Capture, output_failure: OutputFailure):
        self.capture = capture
        self.output_failure = output_failure

    @classmethod
    def from_crawler(cls, crawler):
        capture = Capture.of(crawler)
        if capture is None:
            raise NotConfigured
        return cls(capture, OutputFailure.of(crawler))

    def process_response(self, request, response, spider=None):
        if "cached" in response.flags or self.output_failure.happened or self.capture.closed:
            # Served from a cache, not by the site; or the run is stopping, and writes no more lines.
            return response
        try:
            ref = self.capture.record(request, response)
            if request.meta.get("archive_original"):  # a public archive's replay (crawler/spiders/archive.py)
                self.capture.record_origin(ref, response.url, request.meta["archive_original"], replay_timestamp(response.url))
        except OSError as error:
            self.output_failure(OutputError(self.capture.warc_dir, error))
            return response
        request.meta["warc"] = asdict(ref)
        return response


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
    if failure.check(HostDown):  # not sent: named by the failure that closed its host
        cause = failure.value.cause
        return next((reason for error, reason in DOWNLOAD_ERRORS.items() if issubclass(cause, error)), cause.__name__)
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
