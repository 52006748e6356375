"""Politeness toward a public web archive (THEORY_LEGACY_SOURCE names ``archive``): a shared service.

Every request to the archive (CDX queries and replays) carries ``ARCHIVE_META``: a download slot of its own
(``DOWNLOAD_SLOTS["archive"]``, at most one request in flight, THEORY_ARCHIVE_DELAY seconds apart, set by the
spider's ``update_settings``). ``ArchiveRetryMiddleware`` retries its 429 and 5xx answers after a wait that
honours ``Retry-After`` (else a doubling backoff), and once the archive keeps refusing, sends it nothing more
this run: the requests not sent fail with ``ArchiveRefused``, and what they were for stays owed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from scrapy.exceptions import IgnoreRequest

logger = logging.getLogger(__name__)

ARCHIVE_SLOT = "archive"
ARCHIVE_META = {
    "archive": True,
    "download_slot": ARCHIVE_SLOT,
    # The archive's delay is THEORY_ARCHIVE_DELAY, fixed: AutoThrottle would lower it toward DOWNLOAD_DELAY.
    "autothrottle_dont_adjust_delay": True,
}
# Answers that say "not now": retried after a wait.
REFUSALS = frozenset({429, 500, 502, 503, 504, 520, 522, 524})
# Tries of one request after its first refusal, and the longest wait between two: a Retry-After beyond it
# is an archive that will not answer this run.
ARCHIVE_RETRIES = 3
BACKOFF_SECONDS = 2.0
MAX_WAIT_SECONDS = 120.0


class ArchiveRefused(IgnoreRequest):
    """A request not sent: the archive kept refusing earlier in the run."""

    def __init__(self, status: int):
        self.status = status
        super().__init__(f"the archive kept refusing earlier in this run (HTTP {status})")


def retry_wait(retry_after: str | None, tries: int, now: datetime | None = None, backoff: float = BACKOFF_SECONDS) -> float:
    """Seconds to wait before try ``tries + 1``: the ``Retry-After`` header (seconds or an HTTP date) when
    it says something sensible, else ``backoff`` doubled at each try."""
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
    return backoff * 2**tries


class ArchiveRetryMiddleware:
    """Retries the archive's refusals with a wait, and stops asking once it keeps refusing.

    Placed above RetryMiddleware (550), it sees an archive's 429 or 5xx first; Scrapy's retries would come
    at once, which is what a refusing archive asks not to get.
    """

    def __init__(self, stats, crawler=None, retries: int = ARCHIVE_RETRIES, backoff: float = BACKOFF_SECONDS):
        self.stats = stats
        self.crawler = crawler
        self.retries = retries
        self.backoff = backoff
        self.refused_status: int | None = None

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.stats, crawler)

    def process_request(self, request, spider=None):
        if request.meta.get("archive") and self.refused_status is not None:
            self.stats.inc_value("theory/archive/not_sent")
            raise ArchiveRefused(self.refused_status)

    async def process_response(self, request, response, spider=None):
        if not request.meta.get("archive") or response.status not in REFUSALS:
            return response
        tries = request.meta.get("archive_tries", 0)
        wait = retry_wait(response.headers.get("Retry-After", b"").decode("latin-1") or None, tries, backoff=self.backoff)
        if tries >= self.retries or wait > MAX_WAIT_SECONDS:
            if self.refused_status is None:
                self.refused_status = response.status
                logger.error(
                    "the archive keeps refusing: HTTP %d for %s after %d tries%s; no more requests go to it this run,"
                    " and what it still owes is owed to the next run",
                    response.status, request.url, tries + 1,
                    f" (it asks to wait {wait:.0f} s)" if wait > MAX_WAIT_SECONDS else "",
                )
                self.stats.set_value("theory/archive/refused", response.status)
            request.meta["dont_retry"] = True  # and Scrapy's RetryMiddleware must not try again either
            return response
        logger.info("the archive answered %d for %s; trying again in %.1f s", response.status, request.url, wait)
        self.stats.inc_value("theory/archive/retries")
        self.pause_slot(wait)
        await asyncio.sleep(wait)
        retry = request.replace(dont_filter=True)
        retry.meta["archive_tries"] = tries + 1
        return retry

    def pause_slot(self, wait: float) -> None:
        """The other requests to the archive wait too (with a delay; with none, each waits on its own refusal)."""
        slots = getattr(getattr(getattr(self.crawler, "engine", None), "downloader", None), "slots", {})
        slot = slots.get(ARCHIVE_SLOT)
        if slot is not None and slot.delay:
            slot.lastseen = max(slot.lastseen, time.monotonic() + wait - slot.delay)
