"""Bare-fetch reference for bench/run.py: fetch a fixed list of URLs and do nothing with them.

    scrapy runspider bench/bare_spider.py -a base=http://127.0.0.1:PORT/ -a urls=PATHS.txt -a out=STATS.json

``urls`` holds one root-relative path per line (the pages the real crawl fetches). The callback does
nothing, so the run measures Scrapy's download machinery alone. Run it from outside the project
directory, so that the project's settings (pipelines, run report) are not loaded; bench/run.py
passes the same concurrency settings as the crawl on the command line.
"""

from __future__ import annotations

import json
import time

import scrapy


class BareSpider(scrapy.Spider):
    name = "bare"

    def __init__(self, base: str, urls: str, out: str, **kwargs):
        super().__init__(**kwargs)
        self.base = base.rstrip("/")
        self.urls_file = urls
        self.out = out
        self.t0 = time.monotonic()

    async def start(self):
        self.t0 = time.monotonic()
        with open(self.urls_file, encoding="utf-8") as paths:
            for path in paths:
                if path.strip():
                    yield scrapy.Request(self.base + path.strip(), self.parse, dont_filter=True)

    def parse(self, response):
        return None

    def closed(self, reason):
        stats = self.crawler.stats
        with open(self.out, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "reason": reason,
                    "requests": stats.get_value("downloader/request_count", 0),
                    "responses": stats.get_value("downloader/response_count", 0),
                    "status_200": stats.get_value("downloader/response_status_count/200", 0),
                    "engine_seconds": round(time.monotonic() - self.t0, 3),
                },
                out,
            )
