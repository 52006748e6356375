"""Page parsers and the article loader.

Reading a page (``read_*``) takes a response and returns plain data: which strings sit where.
All selectors live in ``SELECTORS`` (CSS, or XPath when they start with ``/`` or ``.``); each entry is a
list of alternatives tried in order, because the real site has more templates than one. Turning those strings into field values is the job of
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
from lxml import etree
from parsel.csstranslator import css2xpath

from crawler.items import ArticleItem
from crawler.urls import (
    LISTING_PATH,
    article_id,
    canonical_article_url,
    canonical_listing_url,
    same_host,
    section_of,
)

# A paragraph of the body; the multi-page navigation block keeps its hidden input in a <p> of its own.
PARAGRAPHS_XPATH = ".//p[not(.//input[@name='__totalpage'])]"

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


def _compile(query: str) -> etree.XPath:
    return etree.XPath(query if query.startswith(("/", ".")) else css2xpath(query), smart_strings=False)


# Compiled once and run on the lxml tree that Scrapy parsed: going through parsel on every call
# (translate, evaluate, wrap each node in a Selector) cost more than parsing the page itself.
COMPILED = {name: [_compile(query) for query in queries] for name, queries in SELECTORS.items()}
TEXT = _compile(".//text()[not(ancestor::script) and not(ancestor::style)]")
ALL_TEXT = _compile(".//text()")
PARAGRAPHS = _compile(PARAGRAPHS_XPATH)
IMAGE_SOURCES = _compile(".//img/@src")
# Text of the links to a section's first listing page, whether the href is relative or absolute.
LINKS_TO = _compile(".//a[substring(@href, string-length(@href) - string-length($href) + 1) = $href]//text()")

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
    """Identity of an article's content: equal for a republished copy under another URL.

    NFKC folds full-width digits and punctuation into their usual forms and whitespace is left out,
    so a copy that was re-keyed or re-spaced still matches.
    """
    text = unicodedata.normalize("NFKC", f"{title or ''}\n{body or ''}")
    return hashlib.sha256("".join(text.split()).encode("utf-8")).hexdigest()


def published_at(day: str | None, time_of_day: str | None) -> str | None:
    """ISO 8601: Beijing time when the page shows a time, else the date alone."""
    if day and time_of_day:
        return f"{day}T{time_of_day}+08:00"
    return day


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- the loader ----------------------------------------------------------------------------------


class ArticleLoader(ItemLoader):
    # Every field names its processors here, which also keeps itemloaders from looking them up in the
    # item's field metadata on each value (a measurable share of the parse time otherwise).
    default_item_class = ArticleItem

    url_in = MapCompose(canonical_article_url)
    url_out = TakeFirst()
    article_id_in = MapCompose(clean_text)
    article_id_out = TakeFirst()
    section_id_in = MapCompose(clean_text)
    section_id_out = TakeFirst()
    section_name_in = MapCompose(clean_text)
    section_name_out = TakeFirst()
    title_in = MapCompose(clean_text, strip_site_suffix, clean_text)
    title_out = TakeFirst()
    authors_in = MapCompose(strip_author_label, split_names)
    authors_out = Identity()
    source_in = MapCompose(find_source)
    source_out = TakeFirst()
    published_date_in = MapCompose(find_date)
    published_date_out = TakeFirst()
    published_time_in = MapCompose(find_time)
    published_time_out = TakeFirst()
    editor_in = MapCompose(find_editor)
    editor_out = TakeFirst()
    body_in = MapCompose(clean_text)
    body_out = Join("\n")
    images_in = MapCompose(clean_text)
    images_out = Identity()
    page_count_in = Identity()
    page_count_out = TakeFirst()

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
    title_text: str = ""
    author_text: str = ""
    signdate_texts: list[str] = field(default_factory=list)
    editor_text: str = ""
    section_names: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    total_pages: int = 1


def _select(root, name: str) -> list:
    """Nodes of the first alternative of SELECTORS[name] that finds any."""
    for query in COMPILED[name]:
        found = query(root)
        if found:
            return found
    return []


def _text(node) -> str:
    return "".join(TEXT(node))


def _first_text(root, name: str) -> str:
    """Text of the first node of the first alternative of SELECTORS[name] that has any text."""
    for query in COMPILED[name]:
        found = query(root)
        if found and (text := _text(found[0])).strip():
            return text
    return ""


def read_sections(response) -> list[Section]:
    """The sections named in the channel navigation, in order."""
    sections: dict[str, Section] = {}
    for link in _select(response.selector.root, "section_links"):
        href = link.get("href")
        url = canonical_listing_url(response.urljoin(href)) if href else None
        if not url or not same_host(url, response.url):
            continue
        match = LISTING_PATH.match(urlsplit(url).path)
        name = clean_text(_text(link))
        if match["page"] is None and name and match["section"] not in sections:
            sections[match["section"]] = Section(match["section"], name, url)
    return list(sections.values())


def read_listing(response) -> Listing:
    """The article links of a listing page (page 1 URLs, on-site, in order) and its next page."""
    root = response.selector.root
    article_urls: dict[str, None] = {}
    for link in _select(root, "listing_links"):
        href = link.get("href")
        url = canonical_article_url(response.urljoin(href)) if href else None
        if url and same_host(url, response.url):
            article_urls[url] = None
    next_hrefs = _select(root, "next_listing_page")
    next_url = canonical_listing_url(response.urljoin(next_hrefs[0])) if next_hrefs else None
    return Listing(list(article_urls), next_url)


NOT_TEXT = {"script", "style"}


def _split_at_breaks(element, paragraphs: list[str], parts: list[str]) -> None:
    """Append the text under ``element`` to ``parts``; a <br> closes the paragraph so far."""
    for child in element:
        tag = child.tag
        if tag == "br":
            paragraphs.append("".join(parts))
            parts.clear()
        elif isinstance(tag, str) and tag not in NOT_TEXT:  # comments and processing instructions have no str tag
            if child.text:
                parts.append(child.text)
            _split_at_breaks(child, paragraphs, parts)
        if child.tail:
            parts.append(child.tail)


def read_paragraphs(body) -> list[str]:
    """Raw paragraph texts of the body element in reading order; a <br> starts a new paragraph."""
    paragraphs: list[str] = []
    for block in PARAGRAPHS(body) or [body]:  # a body without <p> is one block of text
        parts = [block.text or ""]
        _split_at_breaks(block, paragraphs, parts)
        paragraphs.append("".join(parts))
    return paragraphs


def read_article_page(response) -> ArticlePage:
    root = response.selector.root
    bodies = _select(root, "body")
    body = bodies[0] if bodies else None
    try:
        total_pages = int((_select(root, "total_pages") or [1])[0])
    except ValueError:
        total_pages = 1
    signdates = _select(root, "signdate")
    section_href = "/{0}/{0}.shtml".format(section_of(response.url))
    breadcrumbs = _select(root, "breadcrumb")
    return ArticlePage(
        url=response.url,
        title_text=_first_text(root, "title"),
        author_text=_first_text(root, "author"),
        signdate_texts=ALL_TEXT(signdates[0]) if signdates else [],
        editor_text=_first_text(root, "editor"),
        # The breadcrumb names the section; pages without one still have the channel navigation.
        section_names=(breadcrumbs and LINKS_TO(breadcrumbs[0], href=section_href)) or LINKS_TO(root, href=section_href),
        paragraphs=read_paragraphs(body) if body is not None else [],
        images=[response.urljoin(src) for src in IMAGE_SOURCES(body) if src.strip()] if body is not None else [],
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
    loader.add_value("title", first.title_text)
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
