"""`scrapy reextract WARC_DIR -s THEORY_DATA_DIR=OUT`: the items again, from the captured pages alone.

How an archive re-derives its data when the parsers improve, or after the site deleted its pages: the
captured responses go through the same encoding repair, readers, loader and pipelines as in the crawl,
with no network, in the order the crawl wrote them: each article from the pages its article record lists
(pages grouped by URL in a capture without such records), each revisit judged again from the answers its
revisit record lists. The output is the crawl's ``articles.jsonl`` and ``changes.jsonl`` again, line for
line but for ``crawled_at`` and ``detected_at``.
"""

from __future__ import annotations

import io
import json
import sys
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any
from pathlib import Path
from urllib.parse import urlsplit

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import DropItem, UsageError
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.http import Headers, TextResponse
from scrapy.responsetypes import responsetypes
from scrapy.utils.gz import gunzip
from warcio.archiveiterator import ArchiveIterator

from crawler.extensions import EXIT_DAMAGED_CAPTURE, EXIT_LOCKED, EXIT_OK, EXIT_OUTPUT_FAILED
from crawler.loaders import ArticlePage, load_article
from crawler.middlewares import EncodingRepairMiddleware
from crawler.pipelines import DedupePipeline, StoragePipeline, ValidationPipeline
from crawler.revisions import EVENTS, NOT_FOUND_PHRASES, PRESENT, RevisitReading, RevisitResult
from crawler.readers import current, legacy
from crawler.state import CrawlLocked, CrawlState
from crawler.urls import ARTICLE_PATH, LEGACY, article_id, canonical_article_url, channel_of, host_of, layout_of
from crawler.warc import (
    SUFFIX, Damage, ScannedRecord, header_pairs, is_blockless_not_modified, not_modified_evidence, run_of, scan_records, warc_record,
)


class Stats(Counter):
    """The few calls of Scrapy's stats collector that the pipelines and middlewares make."""

    def inc_value(self, key, count=1, start=0):
        self[key] += count

    def set_value(self, key, value):
        self[key] = value

    def get_value(self, key, default=None):
        return self.get(key, default)


def _inflated_record(member: bytes) -> tuple[dict[str, str], bytes] | None:
    try:
        return warc_record(zlib.decompress(member, zlib.MAX_WBITS | 16))
    except zlib.error:
        return None


def _fast_response(record: tuple[dict[str, str], bytes] | None):
    if record is None:
        return None
    warc_headers, block = record
    head, separator, body = block.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if not separator or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        return None
    pairs = header_pairs(lines[1:])
    if pairs is None:
        return None
    encoding = b""
    for name, value in pairs:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            return None
        if lowered == b"content-encoding":
            encoding = value.lower()
    if encoding:
        decode = _DECODERS.get(encoding)
        if decode is None:
            return None
        try:
            body = decode(body)
        except (OSError, zlib.error, ValueError):
            return None
    return scrapy_response(warc_headers.get("warc-target-uri", "").strip("<>"), int(status_line[1]), pairs, body)


def scrapy_response(url: str, status: int, pairs, body: bytes):
    """The Scrapy response the crawl's callback saw: its body decompressed (so without the headers that
    describe the compressed one), of the class Scrapy would pick. ``pairs``: header (name, value) as bytes, or
    as the str warcio gives."""
    headers = Headers([(k, v) for k, v in pairs if _header_name(k) not in ("content-encoding", "content-length")])
    cls = responsetypes.from_args(headers=headers, url=url, body=body)
    return cls(url=url, status=status, headers=headers, body=body)


def _header_name(name: bytes | str) -> str:
    return (name.decode("latin-1") if isinstance(name, bytes) else name).lower()


def as_response(record, body: bytes):
    """A response record read by warcio (the records of other tools), as ``scrapy_response``."""
    url = record.rec_headers.get_header("WARC-Target-URI")
    return scrapy_response(url, int(record.http_headers.get_statuscode()), record.http_headers.headers, body)


ARTICLE_RECORD_TYPE = "application/json"
KEPT_HEADERS = ("warc-type", "warc-record-id", "warc-target-uri")


@dataclass
class Scan:
    """What the first pass over the WARC files found: where each response is, and the article records."""

    # Every response and revisit record by WARC-Record-ID, block dropped: the pages of articles (200s), and
    # what revisits read (304s, 404s, redirects too).
    responses: dict[str, ScannedRecord] = field(default_factory=dict)
    # In capture order: ("start", record, urls), ("article", its record's body, urls), ("page", record, urls),
    # ("revisit", its record's body, urls), ("run", file name, urls) where a crawl run's files begin; urls
    # being the (base URL, channel URL) that the record's file was captured for.
    events: list[tuple[str, Any, tuple[str, str]]] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)  # article ids that an article record lists
    # The files from the first one holding an article record on were written by a crawl that writes one for
    # every article it writes: their pages are never grouped (a page without a record was not written, e.g. a
    # refetch, a duplicate, a killed run's half article).
    described: set[str] = field(default_factory=set)
    damage: list[Damage] = field(default_factory=list)


def warcinfo_fields(block: bytes) -> dict[str, str]:
    text = block.decode("utf-8", "replace")
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def json_record(record: ScannedRecord) -> dict | None:
    """The JSON body of one of the crawl's metadata records (an article or a revisit record), or None."""
    if record.type != "metadata" or not record.headers.get("content-type", "").startswith(ARTICLE_RECORD_TYPE):
        return None
    try:
        body = json.loads(record.block)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def record_ids(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)


def article_record(body: dict) -> bool:
    """An article record: the record ids of an article's pages, in order."""
    return isinstance(body.get("article_id"), str) and isinstance(body.get("url"), str) and record_ids(body.get("pages"))


def revisit_record(body: dict) -> bool:
    """A revisit record: the record ids of the answers one revisit of an article read, and when it was judged."""
    return (isinstance(body.get("revisit"), str) and isinstance(body.get("url"), str) and isinstance(body.get("checked_at"), str)
            and isinstance(body.get("page_count"), int) and record_ids(body.get("answers")))


def scan(warc_dir: Path, start_urls) -> Scan:
    """First pass: index every response by record id, and keep, in capture order, what the second pass reads.

    ``start_urls(info)`` gives the (base URL, channel URL) a file's warcinfo stands for, whose captures
    name the sections.
    """
    capture = Scan()
    run = None
    for path in sorted(warc_dir.glob(f"*{SUFFIX}")):
        if capture.claimed:
            capture.described.add(path.name)
        urls = start_urls({})
        if run_of(path) != run:
            run = run_of(path)
            capture.events.append(("run", path.name, urls))
        for record in scan_records(path, capture.damage.append):
            if record.type == "warcinfo":
                urls = start_urls(warcinfo_fields(record.block))
            elif (body := json_record(record)) is not None:
                if article_record(body):
                    capture.events.append(("article", body, urls))
                    capture.described.add(path.name)
                    capture.claimed.add(body["article_id"])
                elif revisit_record(body):
                    capture.events.append(("revisit", body, urls))
            elif record.type in ("response", "revisit"):
                url, status = record.url, record.http_status()
                # Kept for the second pass, one per response of the whole capture: its place and the
                # headers that pass reads, so that memory does not grow with all of every record's headers.
                record.block = b""  # read again by its place, only if it is needed
                record.headers = {name: record.headers.get(name, "") for name in KEPT_HEADERS}
                capture.responses[record.record_id] = record
                if record.type != "response" or status != 200:
                    continue
                if layout_of(url) is not None:
                    capture.events.append(("page", record, urls))
                elif url in urls:
                    capture.events.append(("start", record, urls))
    return capture


_DECODERS = {b"gzip": gunzip, b"x-gzip": gunzip, b"deflate": lambda body: zlib.decompress(body, zlib.MAX_WBITS | 32)}


def read_response(warc_dir: Path, place: ScannedRecord):
    """The Scrapy response the crawl's callback saw, from the record at ``place``.

    The common case (our own records: no Transfer-Encoding, gzip or no Content-Encoding) is parsed here
    directly; warcio's general parser, which the rest goes to, costs more than the page's own reading.
    """
    with open(warc_dir / place.file, "rb") as fh:
        fh.seek(place.offset)
        member = fh.read(place.length)
    record = _inflated_record(member)
    fast = _fast_response(record)
    if fast is not None:
        return fast
    if record is not None and is_blockless_not_modified(*record):
        return not_modified_response(warc_dir, place)
    for record in ArchiveIterator(io.BytesIO(member)):
        return as_response(record, record.content_stream().read())  # the payload, Content-Encoding undone
    raise ValueError(f"no record at {place.file}:{place.offset}")


def not_modified_response(warc_dir: Path, place: ScannedRecord):
    """The bare 304 that a block-less server-not-modified revisit record stands for: its status from the profile,
    its headers from the evidence record after it when that is there (a judgement needs only the status).

    Captures of earlier releases hold the 304 in the revisit record itself: ``_fast_response`` reads those."""
    evidence = not_modified_evidence(warc_dir, place.ref)
    return scrapy_response(place.url, 304, evidence[1] if evidence else [], b"")


class Command(ScrapyCommand):
    requires_project = True

    def syntax(self) -> str:
        return "<warc dir> -s THEORY_DATA_DIR=<out dir>"

    def short_desc(self) -> str:
        return "Extract the articles again from captured WARC files, offline, with the current parsers"

    def add_options(self, parser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "-a", dest="arguments", action="append", default=[], metavar="NAME=VALUE",
            help="correct=1: THEORY_DATA_DIR is the data dir the capture belongs to; append a corrected event to its"
            " changes.jsonl for each article whose title and body read the same but other fields differ",
        )

    def process_options(self, args, opts) -> None:
        super().process_options(args, opts)
        arguments = dict(argument.partition("=")[::2] for argument in opts.arguments)
        unknown = sorted(set(arguments) - {"correct"})
        if unknown or arguments.get("correct", "0") not in ("0", "1"):
            raise UsageError(f"unknown argument {', '.join(unknown) or 'correct=' + arguments['correct']} (the one argument is correct=0 or 1)", print_help=False)
        self.correct = arguments.get("correct") == "1"
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
        storage = StoragePipeline(
            state, stats, data_dir, settings.getint("THEORY_SYNC_ITEMS"), settings.getfloat("THEORY_SYNC_SECONDS"),
            removal_confirmations=settings.getint("THEORY_REMOVAL_CONFIRMATIONS"),
            removal_min_hours=settings.getfloat("THEORY_REMOVAL_MIN_HOURS"),
        )
        pipelines = [
            ValidationPipeline(state, stats, data_dir, settings.getint("THEORY_MAX_ATTEMPTS")),
            CorrectionsOnly(state, stats) if self.correct else DedupePipeline(state, stats, data_dir),
            storage,
        ]
        storage.revision_alarm = not self.correct
        storage.open_spider()
        try:
            found = scan(warc_dir, start_urls_of(settings))
            for damage in found.damage:
                print(f"reextract: {warc_dir}/{damage}", file=sys.stderr)
            Extraction(
                warc_dir, stats, pipelines, found, tuple(settings.getlist("THEORY_NOT_FOUND_PHRASES")), self.correct,
            ).run()
        finally:
            for pipeline in (pipelines[0], pipelines[2]):
                pipeline.close_spider()
            state.close()
        if self.correct:
            print(f"reextract: {stats['theory/revisit/revisited']} written articles read again, {stats['theory/revisit/corrected']}"
                  f" corrected events, {stats['theory/reextract/content_differs']} read with another title or body (no event)")
        written, rejected = stats["theory/written"], stats["theory/rejected"]
        incomplete = stats["theory/reextract/incomplete_article_records"] + stats["theory/reextract/incomplete_revisit_records"]
        events = sum(stats[f"theory/revisit/{event}"] for event in EVENTS)
        print(f"reextract: {stats['theory/article/pages']} article pages read, {written} articles written, "
              f"{rejected} rejected, {stats['theory/duplicates/url'] + stats['theory/duplicates/content']} duplicates"
              + ("" if self.correct else f", {stats['theory/reextract/revisits_judged']} revisits judged again, {events} events")
              + (f", {incomplete} left out (answers or pages not in the capture)" if incomplete else ""))
        if stats.get("theory/output_error"):
            self.exitcode = EXIT_OUTPUT_FAILED
        elif found.damage or incomplete:
            self.exitcode = EXIT_DAMAGED_CAPTURE
        else:
            self.exitcode = EXIT_OK


def start_urls_of(settings):
    """(base URL, channel URL) for a file with this warcinfo: its own, unless given with ``-s``, or the
    settings' for a capture that does not name them (another tool's)."""
    def given(name: str) -> bool:
        return settings.getpriority(name) >= SETTINGS_PRIORITIES["cmdline"]

    def start_urls(info: dict[str, str]) -> tuple[str, str]:
        urls = []
        for name in ("THEORY_BASE_URL", "THEORY_CHANNEL_URL"):
            recorded = info.get(name.lower(), "")
            urls.append(settings.get(name) if given(name) or recorded in ("", "None") else recorded)
        return urls[0], urls[1]

    return start_urls


def page_reader(layout: str | None, channel_url: str):
    """The reader of an article page of ``layout``, as the spider has it (the current one for any other)."""
    if layout == LEGACY:
        return legacy.read_article_page
    return partial(current.read_article_page, channel_path=urlsplit(channel_url).path or "/")


class Extraction:
    """Second pass: the articles in capture order, each from exactly the page records that make it."""

    def __init__(self, warc_dir: Path, stats: Stats, pipelines, found: Scan, not_found_phrases=NOT_FOUND_PHRASES, correcting: bool = False):
        self.warc_dir = warc_dir
        self.not_found_phrases = not_found_phrases
        self.correcting = correcting
        self.stats = stats
        self.pipelines = pipelines
        self.found = found
        self.repair = EncodingRepairMiddleware(stats)
        self.section_names: dict[str, str] = {}
        # Captures without article records: page-1 URL -> (host of page 1, {page number: page}).
        self.groups: dict[str, tuple[str, dict[int, ArticlePage]]] = {}

    def run(self) -> None:
        for kind, what, urls in self.found.events:
            base_url, channel_url = urls
            if kind == "start":
                self.read_start_page(what, base_url, channel_url)
            elif kind == "article":
                # A revised version is made from its revisit record; corrections compare every version.
                if self.correcting or not what.get("revision"):
                    self.assemble(what, channel_url)
            elif kind == "revisit":
                self.judge_revisit(what, channel_url)
            elif kind == "run":
                self.run_ended()
            elif what.file not in self.found.described and article_id(what.url) not in self.found.claimed:
                self.group(what, channel_url)
        self.run_ended()
        self.stats.inc_value("theory/reextract/incomplete_groups", len(self.groups))

    def run_ended(self) -> None:
        """The revisits of one crawl run are weighed together, as that run weighed them (see
        ``StoragePipeline.record_held_revisions``)."""
        storage = self.pipelines[-1]
        if isinstance(storage, StoragePipeline):
            storage.run_ended()

    def judge_revisit(self, listed: dict, channel_url: str) -> None:
        """A revisit exactly as the crawl judged it: the answers its revisit record lists, read in order by
        the same ``RevisitReading``, judged at the crawl's time by the same storage pipeline."""
        if self.correcting:
            return  # corrections compare the written articles with their own capture only
        layout = layout_of(listed["url"])
        if layout is None:
            self.stats.inc_value("theory/reextract/incomplete_revisit_records")
            return
        reading = RevisitReading(
            listed["url"], listed["page_count"], page_reader(layout, channel_url), self.section_names, self.not_found_phrases,
        )
        result = None
        for record_id in listed["answers"]:
            place = self.found.responses.get(record_id)
            response = self.answer(place) if place is not None else None
            if response is None:
                # An answer not in the capture (damage): never a judgement on part of what the crawl read.
                self.stats.inc_value("theory/reextract/incomplete_revisit_records")
                return
            result = reading.read(response, asdict(place.ref))
            if result is not None:
                break
        if result is None:
            # Today's readers want a page the crawl did not fetch: no judgement, as for any revisit cut short.
            self.stats.inc_value("theory/reextract/revisits_unjudged")
            return
        self.stats.inc_value("theory/reextract/revisits_judged")
        result.checked_at, result.archived_copy = listed["checked_at"], listed.get("archived_copy")
        try:
            for pipeline in self.pipelines:
                result = pipeline.process_item(result)
        except DropItem:
            pass

    def answer(self, place: ScannedRecord):
        """A revisit's answer as the spider saw it: a 304 revisit record as its bare 304."""
        response = read_response(self.warc_dir, place)
        # The encoding repair reads the response alone (no request, no spider).
        return self.repair.process_response(None, response) if isinstance(response, TextResponse) else response

    def response(self, place: ScannedRecord):
        """A page as the spider's callbacks saw it, None for one that is no text."""
        response = self.answer(place)
        return response if isinstance(response, TextResponse) else None

    def read_start_page(self, place: ScannedRecord, base_url: str, channel_url: str) -> None:
        """The start pages name the sections, as they did for the crawl."""
        response = self.response(place)
        if response is None:
            return
        if response.url == base_url:
            self.section_names.update((s.id, s.name) for s in legacy.read_sections(response))
        elif response.url == channel_url:
            self.section_names[channel_of(channel_url)] = current.read_channel(response).name

    def read_page(self, place: ScannedRecord, channel_url: str) -> ArticlePage | None:
        response = self.response(place)
        if response is None:
            return None
        self.stats.inc_value("theory/article/pages")
        page = page_reader(layout_of(response.url), channel_url)(response)
        page.warc = asdict(place.ref)
        return page

    def assemble(self, listed: dict, channel_url: str) -> None:
        """An article exactly as the crawl wrote it: the pages its article record lists, in that order."""
        pages = []
        for record_id in listed["pages"]:
            place = self.found.responses.get(record_id)
            page = self.read_page(place, channel_url) if place is not None else None
            if page is None:  # never an article from part of its pages
                self.stats.inc_value("theory/reextract/incomplete_article_records")
                return
            pages.append(page)
        pages[0].url = listed["url"]
        self.write(pages)

    def group(self, place: ScannedRecord, channel_url: str) -> None:
        """A capture without article records (another tool's, an older one): page 1, then its later pages from
        the same host captured after it and before the next capture of page 1."""
        first_url = canonical_article_url(place.url)
        match = ARTICLE_PATH.match(urlsplit(place.url).path)
        number = int(match["page"]) if match and match["page"] else 1
        if number == 1:
            if self.groups.pop(first_url, None) is not None:
                self.stats.inc_value("theory/reextract/incomplete_groups")
            pages: dict[int, ArticlePage] = {}
            host = host_of(place.url)
        else:
            if first_url not in self.groups or self.groups[first_url][0] != host_of(place.url):
                # A later page captured without its page 1 (a revisit whose page 1 answered 304).
                self.stats.inc_value("theory/reextract/lone_later_page")
                return
            host, pages = self.groups[first_url]
        page = self.read_page(place, channel_url)
        if page is None:
            return
        pages[number] = page
        self.groups[first_url] = (host, pages)
        total = pages[1].total_pages if 1 in pages else 0
        if not all(n in pages for n in range(1, total + 1)):
            return
        del self.groups[first_url]
        ordered = [pages[n] for n in range(1, total + 1)]
        ordered[0].url = first_url
        self.write(ordered)

    def write(self, pages: list[ArticlePage]) -> None:
        item = load_article(pages, section_name_fallback=self.section_names.get(pages[0].section_id))
        try:
            for pipeline in self.pipelines:
                item = pipeline.process_item(item)
        except DropItem:
            pass


class CorrectionsOnly:
    """In place of dedupe for `reextract -a correct=1`: each article the data dir holds, read again from its
    own capture, goes to storage as a revisit of the capture (``RevisitResult.via``), which appends a
    corrected event where fields differ. Nothing new is written: an article the dir does not hold, or one
    whose title or body read differently now (a parser's new reading of the same bytes is no revision by
    the site), makes no event."""

    def __init__(self, state, stats):
        self.state = state
        self.stats = stats

    def process_item(self, item):
        known = self.state.revision(item.article_id)
        if not self.state.is_written(item.article_id):
            raise DropItem(f"{item.url} is not an article of this data dir", log_level="DEBUG")
        if item.content_hash != known["content_hash"]:
            self.stats.inc_value("theory/reextract/content_differs")
            raise DropItem(f"{item.url} reads with another title or body than its recorded version", log_level="DEBUG")
        return RevisitResult(item.article_id, item.url, PRESENT, status=None, item=item, via="reextract")
