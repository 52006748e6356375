"""`scrapy crawl` with an exit status a cron wrapper can act on (see crawler.extensions)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from twisted.internet.defer import Deferred

from crawler import configuration
from crawler.commands.deliver import deliver, sites_of
from crawler.extensions import EXIT_ERROR, EXIT_LOCKED
from crawler.state import CrawlLocked

logger = logging.getLogger(__name__)


def _quiet_when_locked(crawl: Deferred | asyncio.Future) -> None:
    """A locked data dir is an expected outcome with its own message, not a traceback."""
    if isinstance(crawl, Deferred):
        crawl.addErrback(lambda failure: None if failure.check(CrawlLocked) else failure)
        return

    def retrieve(task: asyncio.Future) -> None:
        error = None if task.cancelled() else task.exception()  # marks the exception as seen
        if error is not None and not isinstance(error, CrawlLocked):
            logger.error("the crawl could not start", exc_info=error)

    crawl.add_done_callback(retrieve)


class Command(ScrapyCrawlCommand):
    def run(self, args, opts) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        configuration.check(self.settings, opts.spargs)
        crawler = self._create_crawler(args[0])
        _quiet_when_locked(self.crawler_process.crawl(crawler, **opts.spargs))
        self.crawler_process.start()
        locked = getattr(crawler, "theory_lock_error", None)
        if locked:
            print(f"theory-crawler: {locked}; not starting", file=sys.stderr)
            self.exitcode = EXIT_LOCKED
        elif self.crawler_process.bootstrap_failed:
            self.exitcode = EXIT_ERROR
        else:
            self.exitcode = crawler.stats.get_value("theory/exit_status", EXIT_ERROR)
            delivery_dir = self.settings.get("THEORY_DELIVERY_DIR")
            if delivery_dir:
                # After the crawl, whose lock is released by now: the report and the WACZ are written. A
                # failed delivery is its one line; the run's status stays, and the next delivery redoes it.
                deliver(Path(self.settings.get("THEORY_DATA_DIR")), Path(delivery_dir), sites_of(self.settings))
