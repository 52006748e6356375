"""`scrapy crawl` with an exit status a cron wrapper can act on (see crawler.extensions)."""

from __future__ import annotations

import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from crawler.extensions import EXIT_ERROR, EXIT_LOCKED


class Command(ScrapyCrawlCommand):
    def run(self, args, opts) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        locked = getattr(crawler, "theory_lock_error", None)
        if locked:
            print(f"theory-crawler: {locked}; not starting", file=sys.stderr)
            self.exitcode = EXIT_LOCKED
        elif self.crawler_process.bootstrap_failed:
            self.exitcode = EXIT_ERROR
        else:
            self.exitcode = crawler.stats.get_value("theory/exit_status", EXIT_ERROR)



