"""`scrapy deliver DEST`: each run not yet delivered as one BagIt bag in DEST, oldest first, exactly once.

`--all` makes one bag of the whole data dir instead (a first copy, an audit) and records nothing.
See crawler/delivery.py for the bags and the ledger, and the README's "Delivery" section.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from crawler.delivery import DeliveryFailed, deliver_all, deliver_runs
from crawler.extensions import EXIT_LOCKED, EXIT_OK
from crawler.state import CrawlLocked, CrawlState


def sites_of(settings) -> list[str]:
    return [url for url in (settings.get("THEORY_BASE_URL"), settings.get("THEORY_CHANNEL_URL")) if url]


def deliver(data_dir: Path, dest: Path, sites: list[str], everything: bool = False) -> int:
    """Deliver under the run lock; print one line per bag (or the one line of the failure). Returns the
    exit status."""
    if not data_dir.is_dir():
        print(f"theory-crawler: THEORY_DATA_DIR={str(data_dir)!r} is not a directory; nothing to deliver", file=sys.stderr)
        return 2
    try:
        lock = CrawlState._take_lock(data_dir / ".lock")
    except CrawlLocked as error:
        print(f"theory-crawler: {error}; not delivering", file=sys.stderr)
        return EXIT_LOCKED
    except OSError as error:
        print(f"theory-crawler: cannot lock {data_dir}: {error.strerror}", file=sys.stderr)
        return 2
    # bagit logs every file it hashes, and a failure with its traceback: the failure is our one line
    logging.getLogger("bagit").setLevel(logging.CRITICAL)
    try:
        if everything:
            bag = deliver_all(data_dir, dest, sites)
            print(f"deliver: {bag}: the whole data dir (nothing recorded as delivered)")
            return EXIT_OK
        made = deliver_runs(data_dir, dest, sites)
        for bag, lines in made:
            counts = ", ".join(f"{count} lines of {name}" for name, count in lines.items())
            print(f"deliver: {bag}: {counts}")
        if not made:
            print("deliver: every run with a report is delivered already")
        return EXIT_OK
    except DeliveryFailed as error:
        print(f"theory-crawler: {error}; the runs not delivered stay owed to the next delivery", file=sys.stderr)
        return error.status
    finally:
        lock.close()


class Command(ScrapyCommand):
    requires_project = True

    def syntax(self) -> str:
        return "[--all] <dest dir>"

    def short_desc(self) -> str:
        return "Deliver each run not yet delivered as a BagIt bag in DEST (--all: one bag of the whole data dir)"

    def add_options(self, parser) -> None:
        super().add_options(parser)
        parser.add_argument("--all", dest="everything", action="store_true",
                            help="one bag of the whole data dir; records nothing as delivered")

    def process_options(self, args, opts) -> None:
        super().process_options(args, opts)
        self.settings.set("LOG_LEVEL", "WARNING", priority="project")

    def run(self, args, opts) -> None:
        if len(args) != 1:
            raise UsageError("give the destination directory", print_help=False)
        self.exitcode = deliver(Path(self.settings.get("THEORY_DATA_DIR")), Path(args[0]), sites_of(self.settings), opts.everything)
