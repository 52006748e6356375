"""Page parsers and the article loader.

Reading a page (``read_*``) takes a response and returns plain data: which strings sit where.
All selectors live in ``SELECTORS``; each entry is a list of alternatives tried in order, because
the real site has more templates than one. Turning those strings into field values is the job of
the named processors below and of ``ArticleLoader``; they work on plain strings and are tested alone.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

from itemloaders import ItemLoader
from itemloaders.processors import Identity, Join, MapCompose, TakeFirst
from parsel import Selector, SelectorList

from crawler.items import ArticleItem
from crawler.urls import (
    LISTING_PATH,
    article_id,
    canonical_article_url,
    canonical_listing_url,
    same_host,
    section_of,
)

SELECTORS = {
    # Channel navigation on the home page: the links to each section's first listing page.
    "section_links": ["div.channel_nav a", "a"],
    # Article links of a listing page; the sidebars link articles too, so look in the list first.
    "listing_links": ["ul#leftList a", "div.list_left a"],
    "next_listing_page": ["//div[contains(@class, 'page')]//a[normalize-space() = '下一页']/@href"],
    "title": ["div.ctitle", "h1", "title"],
    "author": ["div.author"],
    # The line with date, time and 来源：. Older pages use div.signdate, newer ones div.from.
    "signdate": ["div.signdate", "div.from"],
    "editor": ["div.editor"],
    "breadcrumb": ["div.weizhi"],
    "body": ["div.ccontent", "div.TRS_Editor", "div#zoom", "div.content"],
    "total_pages": ["input[name='__totalpage']::attr(value)"],
}

# A paragraph of the body; the multi-page navigation block keeps its hidden input in a <p> of its own.
PARAGRAPHS_XPATH = ".//p[not(.//input[@name='__totalpage'])]"
# Text and line breaks of one paragraph, in document order; comments are not text() nodes.
PARAGRAPH_PARTS_XPATH = ".//text()[not(ancestor::script) and not(ancestor::style)] | .//br"

# A bogus __totalpage must not turn one article into thousands of requests.
MAX_ARTICLE_PAGES = 100

SITE_SUFFIX = re.compile(r"\s*[-_|｜]\s*(?:理论频道\s*[-_|｜]\s*)?中工网\s*$")
AUTHOR_LABEL = re.compile(r"^\s*(?:作\s*者|文)\s*[：:]\s*")
NAME_SEPARATORS = re.compile(r"[\s、，,；;/]+")
DATE_TIME = re.compile(
    r"(?P<year>\d{4})\s*[-/.年]\s*(?P<month>\d{1,2})\s*[-/.月]\s*(?P<day>\d{1,2})\s*日?"
    r"(?:\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
)
SOURCE = re.compile(r"来源\s*[：:]\s*(?P<source>.*\S)")
EDITOR = re.compile(r"责任编辑\s*[：:]\s*(?P<editor>[^）)]*[^）)\s])")


# --- processors: plain strings in, plain values out (None drops the value) ---------------------


def clean_text(text: str) -> str | None:
    """Strip whitespace (U+3000 and U+00A0 included); empty text becomes None."""
    text = text.strip()
    return text or None


def strip_site_suffix(title: str) -> str:
    """``TITLE-中工网`` (the <title> form) to ``TITLE``."""
    return SITE_SUFFIX.sub("", title)


def strip_author_label(text: str) -> str:
    return AUTHOR_LABEL.sub("", text)


def split_names(text: str) -> list[str]:
    return [name for name in NAME_SEPARATORS.split(text) if name]


def _date_match(text: str) -> re.Match[str] | None:
    for match in DATE_TIME.finditer(text):
        try:
            date(int(match["year"]), int(match["month"]), int(match["day"]))
        except ValueError:
            continue
        return match
    return None


def find_date(text: str) -> str | None:
    """The first valid calendar date in ``text``, as YYYY-MM-DD."""
    match = _date_match(text)
    if not match:
        return None
    return f"{int(match['year']):04d}-{int(match['month']):02d}-{int(match['day']):02d}"


def find_time(text: str) -> str | None:
    """The time of day that follows the first date in ``text``, as HH:MM:SS."""
    match = _date_match(text)
    if not match or match["hour"] is None:
        return None
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def find_source(text: str) -> str | None:
    match = SOURCE.search(text)
    return match["source"].strip() if match else None


def find_editor(text: str) -> str | None:
    match = EDITOR.search(text)
    return match["editor"].strip() if match else None


def content_hash(title: str | None, body: str | None) -> str:
    """Identity of an article's content: equal for a republished copy under another URL."""
    normalized = unicodedata.normalize("NFKC", f"{title or ''}\n{body or ''}")
    return hashlib.sha256("".join(normalized.split()).encode("utf-8")).hexdigest()


def published_at(day: str | None, time_of_day: str | None) -> str | None:
    """ISO 8601: Beijing time when the page shows a time, else the date alone."""
    if day and time_of_day:
        return f"{day}T{time_of_day}+08:00"
    return day


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- the loader ----------------------------------------------------------------------------------


class ArticleLoader(ItemLoader):
    default_item_class = ArticleItem
    default_input_processor = MapCompose(clean_text)
    default_output_processor = TakeFirst()

    url_in = MapCompose(canonical_article_url)
    title_in = MapCompose(clean_text, strip_site_suffix, clean_text)
    authors_in = MapCompose(strip_author_label, split_names)
    authors_out = Identity()
    source_in = MapCompose(find_source)
    published_date_in = MapCompose(find_date)
    published_time_in = MapCompose(find_time)
    editor_in = MapCompose(find_editor)
    body_out = Join("\n")
    images_out = Identity()
    page_count_in = Identity()

    def load_item(self) -> ArticleItem:
        item = super().load_item()
        item.body = item.body or None
        item.published_at = published_at(item.published_date, item.published_time)
        item.content_hash = content_hash(item.title, item.body)
        item.crawled_at = utc_now_iso()
        return item


# --- page readers ------------------------------------------------------------------------------


@dataclass
class Section:
    id: str
    name: str
    url: str


@dataclass
class Listing:
    article_urls: list[str]
    next_page_url: str | None


@dataclass
class ArticlePage:
    """What one page of an article contributes, as raw strings (no Response, so it can travel in cb_kwargs)."""

    url: str
    titles: list[str] = field(default_factory=list)
    author_text: str = ""
    signdate_texts: list[str] = field(default_factory=list)
    editor_text: str = ""
    section_names: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    total_pages: int = 1


def _first(selector: Selector, name: str) -> SelectorList:
    for query in SELECTORS[name]:
        found = selector.xpath(query) if query.startswith("/") else selector.css(query)
        if found:
            return found
    return SelectorList()


def _text(selection: SelectorList) -> str:
    return "".join(selection.xpath(".//text()[not(ancestor::script) and not(ancestor::style)]").getall())


def read_sections(response) -> list[Section]:
    """The sections named in the channel navigation, in order."""
    sections: dict[str, Section] = {}
    for link in _first(response, "section_links"):
        href = link.attrib.get("href")
        if not href:
            continue
        url = canonical_listing_url(response.urljoin(href))
        if not url or not same_host(url, response.url):
            continue
        match = LISTING_PATH.match(urlsplit(url).path)
        name = clean_text(_text(SelectorList([link])))
        if match["page"] is None and name and match["section"] not in sections:
            sections[match["section"]] = Section(match["section"], name, url)
    return list(sections.values())


def read_listing(response) -> Listing:
    """The article links of a listing page (page 1 URLs, on-site, in order) and its next page."""
    article_urls: dict[str, None] = {}
    for href in _first(response, "listing_links").xpath("@href").getall():
        url = canonical_article_url(response.urljoin(href))
        if url and same_host(url, response.url):
            article_urls[url] = None
    next_href = _first(response, "next_listing_page").get()
    next_url = canonical_listing_url(response.urljoin(next_href)) if next_href else None
    return Listing(list(article_urls), next_url)


def read_paragraphs(body: SelectorList) -> list[str]:
    """Raw paragraph texts of the body in reading order; a <br> starts a new paragraph."""
    paragraphs: list[str] = []
    blocks = body.xpath(PARAGRAPHS_XPATH) or body  # a body without <p> is one block of text
    for block in blocks:
        parts: list[str] = []
        for node in block.xpath(PARAGRAPH_PARTS_XPATH):
            if isinstance(node.root, str):
                parts.append(node.root)
            else:
                paragraphs.append("".join(parts))
                parts = []
        paragraphs.append("".join(parts))
    return paragraphs


def read_article_page(response) -> ArticlePage:
    section_id = section_of(response.url)
    section_href = f"/{section_id}/{section_id}.shtml"
    section_links = f".//a[substring(@href, string-length(@href) - {len(section_href) - 1}) = '{section_href}']"
    body = _first(response, "body")[:1]
    try:
        total_pages = int(_first(response, "total_pages").get() or 1)
    except ValueError:
        total_pages = 1
    return ArticlePage(
        url=response.url,
        # Every candidate, best first: a page without div.ctitle still has its <title>.
        titles=[_text(found[:1]) for query in SELECTORS["title"] if (found := response.css(query))],
        author_text=_text(_first(response, "author")[:1]),
        signdate_texts=_first(response, "signdate")[:1].xpath(".//text()").getall(),
        editor_text=_text(_first(response, "editor")[:1]),
        section_names=(
            _first(response, "breadcrumb").xpath(section_links + "//text()").getall()
            + response.xpath("/" + section_links[1:] + "//text()").getall()
        ),
        paragraphs=read_paragraphs(body),
        images=[response.urljoin(src) for src in body.xpath(".//img/@src").getall() if src.strip()],
        total_pages=min(max(total_pages, 1), MAX_ARTICLE_PAGES),
    )


def load_article(pages: list[ArticlePage], section_name_fallback: str | None = None) -> ArticleItem:
    """One item from all pages of an article, page 1 first.

    ``section_name_fallback`` names the section when the page itself does not (no breadcrumb, no navigation).
    """
    first = pages[0]
    loader = ArticleLoader()
    loader.add_value("url", first.url)
    loader.add_value("article_id", article_id(first.url))
    loader.add_value("section_id", section_of(first.url))
    loader.add_value("section_name", [*first.section_names, *filter(None, [section_name_fallback])])
    loader.add_value("title", first.titles)
    loader.add_value("authors", first.author_text)
    loader.add_value("source", first.signdate_texts)
    loader.add_value("published_date", first.signdate_texts)
    loader.add_value("published_time", first.signdate_texts)
    loader.add_value("editor", first.editor_text)
    for page in pages:
        loader.add_value("body", page.paragraphs)
        loader.add_value("images", page.images)
    loader.add_value("page_count", len(pages))
    return loader.load_item()
