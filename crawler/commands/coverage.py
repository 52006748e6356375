"""`scrapy coverage -s THEORY_DATA_DIR=DIR`: what the archive holds, per year and site, and its holes.

Prints a short summary and writes ``DIR/coverage.html`` (see crawler/coverage.py). Reads the data
directory only: no network, no lock (a running crawl is not disturbed; the state is opened read-only).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from crawler.coverage import gather, summary, write_page
from crawler.extensions import EXIT_OK, EXIT_OUTPUT_FAILED


class Command(ScrapyCommand):
    requires_project = True

    def syntax(self) -> str:
        return "-s THEORY_DATA_DIR=<data dir>"

    def short_desc(self) -> str:
        return "Summarize what the data directory holds per year and site, and write its coverage.html"

    def process_options(self, args, opts) -> None:
        super().process_options(args, opts)
        self.settings.set("LOG_LEVEL", "WARNING", priority="project")

    def run(self, args, opts) -> None:
        if args:
            raise UsageError("coverage takes no argument; give the data directory with -s THEORY_DATA_DIR=", print_help=False)
        data_dir = Path(self.settings.get("THEORY_DATA_DIR") or "")
        if not data_dir.is_dir():
            raise UsageError(f"THEORY_DATA_DIR={str(data_dir)!r} is not a directory", print_help=False)
        try:
            coverage = gather(data_dir)
        except sqlite3.DatabaseError as error:
            raise UsageError(f"{data_dir / 'state.sqlite3'} cannot be read: {error}", print_help=False) from None
        print(summary(coverage, data_dir))
        try:
            path = write_page(data_dir, coverage)
        except OSError as error:
            print(f"coverage.html not written: {error}")
            self.exitcode = EXIT_OUTPUT_FAILED
            return
        print(f"wrote {path}")
        self.exitcode = EXIT_OK
