"""`scrapy reextract WARC_DIR -s THEORY_DATA_DIR=OUT`: the items again, from the captured pages alone.

How an archive re-derives its data when the parsers improve, or after the site deleted its pages: the
response records of the WARC files, in the order they were captured (the order the crawl read them in),
go through the same encoding repair, readers, loader and pipelines as in the crawl, with no network.
The output is the crawl's ``articles.jsonl`` again, line for line but for ``crawled_at``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import DropItem, UsageError
from scrapy.http import Headers, TextResponse
from scrapy.responsetypes import responsetypes
from warcio.archiveiterator import ArchiveIterator

from crawler.extensions import EXIT_LOCKED, EXIT_OK, EXIT_OUTPUT_FAILED
from crawler.loaders import ArticlePage, load_article
from crawler.middlewares import EncodingRepairMiddleware
from crawler.pipelines import DedupePipeline, StoragePipeline, ValidationPipeline
from crawler.readers import current, legacy
from crawler.state import CrawlLocked, CrawlState
from crawler.urls import ARTICLE_PATH, LEGACY, canonical_article_url, channel_of, layout_of
from crawler.warc import SUFFIX


class Stats(Counter):
    """The few calls of Scrapy's stats collector that the pipelines and middlewares make."""

    def inc_value(self, key, count=1, start=0):
        self[key] += count

    def set_value(self, key, value):
        self[key] = value

    def get_value(self, key, default=None):
        return self.get(key, default)


def captured_responses(warc_dir: Path):
    """(warcinfo fields, record, its {file, offset, length, record_id}) of every response, in capture order."""
    for path in sorted(warc_dir.glob(f"*{SUFFIX}")):
        with open(path, "rb") as stream:
            records = ArchiveIterator(stream)
            info: dict[str, str] = {}
            for record in records:
                if record.rec_type == "warcinfo":
                    text = record.content_stream().read().decode("utf-8", "replace")
                    info = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
                    continue
                if record.rec_type != "response":
                    continue
                body = record.content_stream().read()  # the payload, Content-Encoding undone
                place = {
                    "file": path.name,
                    "offset": records.get_record_offset(),
                    "length": records.get_record_length(),
                    "record_id": record.rec_headers.get_header("WARC-Record-ID"),
                }
                yield info, record, body, place


def as_response(record, body: bytes):
    """The Scrapy response the crawl's callback saw: decompressed, with the class Scrapy would pick."""
    url = record.rec_headers.get_header("WARC-Target-URI")
    headers = Headers([(k, v) for k, v in record.http_headers.headers if k.lower() not in ("content-encoding", "content-length")])
    cls = responsetypes.from_args(headers=headers, url=url, body=body)
    status = int(record.http_headers.get_statuscode())
    return cls(url=url, status=status, headers=headers, body=body)


class Command(ScrapyCommand):
    requires_project = True

    def syntax(self) -> str:
        return "<warc dir> -s THEORY_DATA_DIR=<out dir>"

    def short_desc(self) -> str:
        return "Extract the articles again from captured WARC files, offline, with the current parsers"

    def process_options(self, args, opts) -> None:
        super().process_options(args, opts)
        # Its own summary line is the output; --loglevel and -s LOG_LEVEL still win.
        self.settings.set("LOG_LEVEL", "WARNING", priority="project")

    def run(self, args, opts) -> None:
        if len(args) != 1 or not Path(args[0]).is_dir():
            raise UsageError("give the directory of the WARC files", print_help=False)
        warc_dir = Path(args[0])
        if not any(warc_dir.glob(f"*{SUFFIX}")):
            raise UsageError(f"no {SUFFIX} file in {warc_dir}", print_help=False)
        settings = self.settings
        data_dir = settings.get("THEORY_DATA_DIR")
        try:
            state = CrawlState(data_dir)
        except CrawlLocked as error:
            print(f"theory-crawler: {error}; not starting", file=sys.stderr)
            self.exitcode = EXIT_LOCKED
            return
        stats = Stats()
        pipelines = [
            ValidationPipeline(state, stats, data_dir, settings.getint("THEORY_MAX_ATTEMPTS")),
            DedupePipeline(state, stats, data_dir),
            StoragePipeline(state, stats, data_dir, settings.getint("THEORY_SYNC_ITEMS"), settings.getfloat("THEORY_SYNC_SECONDS")),
        ]
        pipelines[2].open_spider()
        try:
            self.extract(warc_dir, stats, pipelines)
        finally:
            for pipeline in (pipelines[0], pipelines[2]):
                pipeline.close_spider()
            state.close()
        written, rejected = stats["theory/written"], stats["theory/rejected"]
        print(f"reextract: {stats['theory/article/pages']} article pages read, {written} articles written, "
              f"{rejected} rejected, {stats['theory/duplicates/url'] + stats['theory/duplicates/content']} duplicates")
        self.exitcode = EXIT_OUTPUT_FAILED if stats.get("theory/output_error") else EXIT_OK

    def extract(self, warc_dir: Path, stats: Stats, pipelines) -> None:
        repair = EncodingRepairMiddleware(stats)
        section_names: dict[str, str] = {}
        open_articles: dict[str, list[ArticlePage]] = {}  # page-1 URL -> the pages read so far
        for info, record, body, place in captured_responses(warc_dir):
            response = as_response(record, body)
            if response.status != 200 or not isinstance(response, TextResponse):
                continue
            response = repair.process_response(None, response)  # it reads the response alone
            base_url, channel_url = info.get("theory_base_url", ""), info.get("theory_channel_url", "")
            layout = layout_of(response.url)
            if layout is None:
                # The start pages name the sections, as they did for the crawl.
                if base_url and response.url == base_url:
                    section_names.update((s.id, s.name) for s in legacy.read_sections(response))
                elif channel_url and response.url == channel_url:
                    section_names[channel_of(channel_url)] = current.read_channel(response).name
                continue
            stats.inc_value("theory/article/pages")
            if layout == LEGACY:
                page = legacy.read_article_page(response)
            else:
                page = current.read_article_page(response, channel_path=urlsplit(channel_url).path or "/")
            page.warc = place
            first_url = canonical_article_url(response.url)
            pages = open_articles.setdefault(first_url, [])
            match = ARTICLE_PATH.match(urlsplit(response.url).path)
            if not pages and match and match["page"] not in (None, "1"):
                # A later page captured without its page 1: a revisit whose page 1 answered 304. The
                # article's pages were fetched whole right after it, and are read from those records.
                stats.inc_value("theory/reextract/lone_later_page")
                continue
            if not pages:
                page.url = first_url
            pages.append(page)
            if len(pages) < pages[0].total_pages:
                continue
            del open_articles[first_url]
            item = load_article(pages, section_name_fallback=section_names.get(pages[0].section_id))
            try:
                for pipeline in pipelines:
                    item = pipeline.process_item(item)
            except DropItem:
                pass
