"""`scrapy probe URL`: how the readers see one live page, for when the site no longer looks like its templates.

Fetches the page through Scrapy with the project's settings (robots.txt, user agent, timeouts, retries),
then prints which alternative of each selector matched and what the reader and the loader made of it.
Exit status: 0 when everything required is there, 1 when something came out empty or the fetch failed,
2 for a usage error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

import scrapy
from itemadapter import ItemAdapter
from scrapy.commands import ScrapyCommand
from scrapy.exceptions import IgnoreRequest, UsageError
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler.drift import suspect_fields
from crawler.extensions import RunReport
from crawler.loaders import load_article
from crawler.pipelines import ValidationPipeline
from crawler.readers import current, legacy
from crawler.spiders.theory import failure_reason
from crawler.urls import CURRENT, LEGACY, LISTING_PATH, layout_of

EXIT_OK = 0
EXIT_EMPTY = 1  # something required came out empty, or the page could not be fetched
KINDS = ("home", "listing", "article", "channel", "feed")
REQUIRED_FIELDS = ("title", "body", "published_date", "section_name")
SHOWN = 5  # links listed of a listing, channel or feed page
LONGEST = 80  # characters of a field value shown


@dataclass
class Outcome:
    response: Response | None = None
    failure: Failure | None = None


class ProbeSpider(scrapy.Spider):
    """Fetches one URL and leaves the response, or the failure, in ``outcome`` for the command."""

    name = "probe"
    # The crawl's pipelines, run report and WARC capture need its state and data directory; a probe
    # writes nothing.
    custom_settings = {"ITEM_PIPELINES": {}, "THEORY_WARC": False}

    @classmethod
    def update_settings(cls, settings) -> None:
        super().update_settings(settings)
        settings.set_in_component_priority_dict("EXTENSIONS", RunReport, None)

    def __init__(self, url: str, outcome: Outcome, **kwargs):
        super().__init__(**kwargs)
        self.url = url
        self.outcome = outcome

    async def start(self):
        yield scrapy.Request(self.url, self.keep, errback=self.failed, dont_filter=True)

    def keep(self, response) -> None:
        self.outcome.response = response

    def failed(self, failure) -> None:
        self.outcome.failure = failure


def _page(url: str) -> tuple[str, str]:
    """Host and path, ``index.shtml`` being its directory, as the sites serve it."""
    parts = urlsplit(url)
    return parts.netloc.lower(), (parts.path or "/").removesuffix("index.shtml")


def kind_of(url: str, base_url: str, channel_url: str) -> str | None:
    path = urlsplit(url).path or "/"
    if layout_of(url):
        return "article"
    if LISTING_PATH.match(path):
        return "listing"
    if path.endswith(".json"):
        return "feed"
    # The legacy home ends in / too: it is told apart by being the configured one.
    if base_url and _page(url) == _page(base_url):
        return "home"
    if (channel_url and _page(url) == _page(channel_url)) or path.endswith("/"):
        return "channel"
    return None


def layout_for(kind: str, url: str, base_url: str) -> str:
    if kind in ("home", "listing"):
        return LEGACY
    if kind == "article":
        # A forced --kind article off both URL grammars is read as the page of the host it is on.
        return layout_of(url) or (LEGACY if base_url and _page(url)[0] == _page(base_url)[0] else CURRENT)
    return CURRENT


def brief(value) -> str:
    """A field's value as JSON, cut short enough to read on one line."""
    if isinstance(value, list):
        shown = ", ".join(brief(v) for v in value[:3])
        return f"[{shown}{f', … ({len(value)} in all)' if len(value) > 3 else ''}]"
    if isinstance(value, str) and len(value) > LONGEST:
        return json.dumps(value[:LONGEST] + "…", ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def fetch_failure(url: str, failure) -> str:
    if failure.check(HttpError):
        status = failure.value.response.status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        return f"fetch failed: {url}: HTTP {status} {phrase}".rstrip()
    if failure.check(IgnoreRequest):  # robots.txt says no
        return f"fetch failed: {url}: {failure.getErrorMessage()}"
    return f"fetch failed: {url}: {failure_reason(failure)} ({failure.getErrorMessage()})"


def print_selectors(response, layout: str) -> None:
    table = (legacy if layout == LEGACY else current).SELECTORS
    print(f"\nselectors of crawler.readers.{layout}.SELECTORS (the alternative that decides):")
    width = max(map(len, table.selectors))
    for match in table.explain(response.selector.root):
        if match.alternative is None:
            print(f"  {match.name:<{width}}  NO MATCH")
        else:
            nodes = "node" if match.count == 1 else "nodes"
            print(f"  {match.name:<{width}}  #{match.alternative} {match.query}  ({match.count} {nodes})")


def print_links(label: str, urls: list[str]) -> None:
    print(f"{label}: {len(urls)}")
    for url in urls[:SHOWN]:
        print(f"  {url}")
    if len(urls) > SHOWN:
        print(f"  … and {len(urls) - SHOWN} more")


def report_article(response, url: str, layout: str, channel_url: str) -> int:
    if layout == LEGACY:
        page = legacy.read_article_page(response)
    else:
        page = current.read_article_page(response, channel_path=urlsplit(channel_url).path or "/")
    page.url = url  # as the crawl does: a redirect does not change which article was asked for
    record = ItemAdapter(load_article([page])).asdict()
    reader = legacy if layout == LEGACY else current
    suspects = suspect_fields(record, reader.EXPECTED_SHARES, reader.__name__)
    print("\nitem (load_article on this page):")
    width = max(map(len, record))
    for field, value in record.items():
        if field == "body" and value:
            size = f" ({len(value.splitlines())} paragraphs, {len(value)} characters)"
        else:
            size = f" ({len(value)} characters)" if isinstance(value, str) and len(value) > LONGEST else ""
        print(f"  {field:<{width}}  {brief(value)}{size}")
        if field in suspects:
            print(f"  {'':<{width}}  ^ CHECK: {suspects[field]}")
    if page.total_pages > 1:
        print(f"multi-page article: {page.total_pages} pages; only page 1 is loaded here")
    print()
    empty = [field for field in REQUIRED_FIELDS if not record.get(field)]
    print(f"EMPTY required fields: {', '.join(empty)}" if empty else "all required fields present")
    if suspects:
        # What a layout alarm of the crawl names: the selector or processor to look at for each field.
        print(f"fields to check: {', '.join(suspects)} (see the CHECK lines; the README's probe section says where to look)")
    # The validation pipeline's own checks; it needs no state until it rejects something.
    problems = ValidationPipeline(None, None, "", 0).problems(record)
    if problems:
        print(f"the validation pipeline would reject it: {'; '.join(problems)}")
    return EXIT_EMPTY if empty or problems else EXIT_OK


def report_links(response, kind: str) -> int:
    if kind == "home":
        sections = legacy.read_sections(response)
        print(f"sections: {len(sections)}")
        for section in sections:
            print(f"  {section.id} {section.name}  {section.url}")
        return EXIT_OK if sections else EXIT_EMPTY
    if kind == "listing":
        listing = legacy.read_listing(response)
        print_links("article links", listing.article_urls)
        print(f"next page: {listing.next_page_url or 'none (the last page)'}")
        return EXIT_OK if listing.article_urls else EXIT_EMPTY
    channel = current.read_channel(response)
    print(f"channel name: {channel.name or '(none found)'}")
    print_links("article links", channel.article_urls)
    return EXIT_OK if channel.article_urls else EXIT_EMPTY


def report_feed(response) -> int:
    try:
        feed = current.read_feed(response)
    except ValueError as error:
        print(f"not JSON: {error}")
        return EXIT_EMPTY
    print(f"entries: {feed.entries}")
    print_links("article links", feed.article_urls)
    return EXIT_OK if feed.article_urls else EXIT_EMPTY


class Command(ScrapyCommand):
    requires_project = True

    def syntax(self) -> str:
        return "[options] <url>"

    def short_desc(self) -> str:
        return "Show how the crawler reads one page of either site (selectors matched, fields loaded)"

    def add_options(self, parser) -> None:
        super().add_options(parser)
        parser.add_argument("--kind", choices=KINDS, help="what the page is, when its URL does not tell")

    def process_options(self, args, opts) -> None:
        super().process_options(args, opts)
        # The probe's report is the output: Scrapy's INFO lines would bury it. At the project's priority,
        # so that --loglevel and -s LOG_LEVEL still win.
        self.settings.set("LOG_LEVEL", "WARNING", priority="project")

    def run(self, args, opts) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one URL")
        url = args[0]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"not an http(s) URL: {url!r}", print_help=False)
        base_url = self.settings.get("THEORY_BASE_URL") or ""
        channel_url = self.settings.get("THEORY_CHANNEL_URL") or ""
        kind = opts.kind or kind_of(url, base_url, channel_url)
        if kind is None:
            raise UsageError(f"cannot tell what kind of page {url} is; give --kind ({', '.join(KINDS)})", print_help=False)
        layout = layout_for(kind, url, base_url)

        outcome = Outcome()
        # The class, not a Crawler of it: crawl() would merge the process's settings back into a
        # Crawler and bring back the run report that update_settings took out.
        self.crawler_process.crawl(ProbeSpider, url=url, outcome=outcome)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            print(f"probe could not start a crawl for {url}", file=sys.stderr)
            self.exitcode = EXIT_EMPTY
        elif outcome.response is None:
            failure = outcome.failure
            print(fetch_failure(url, failure) if failure else f"fetch failed: {url}: no response")
            self.exitcode = EXIT_EMPTY
        else:
            self.exitcode = self.report(outcome.response, url, kind, layout, channel_url)

    def report(self, response, url: str, kind: str, layout: str, channel_url: str) -> int:
        is_text = isinstance(response, TextResponse)
        content_type = response.headers.get("Content-Type", b"").decode("latin-1") or "(none)"
        print(f"url       {url}")
        if response.meta.get("redirect_urls"):
            print(f"final url {response.url}  (redirected)")
        print(f"status    {response.status}")
        print(f"type      {content_type}")
        print(f"encoding  {response.encoding if is_text else '(none: not a text response)'}")
        print(f"kind      {kind}")
        print(f"layout    {layout}")
        if kind == "feed":
            print("\nselectors: none (a feed is read as JSON, by the article URL grammar of its strings)\n")
            return report_feed(response)
        if not is_text:
            print("\nnot an HTML page: nothing to read")
            return EXIT_EMPTY
        print_selectors(response, layout)
        if kind == "article":
            return report_article(response, url, layout, channel_url)
        print()
        return report_links(response, kind)
