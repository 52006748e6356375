"""Reader of the legacy CMS (theory.workercn.cn, 2014–2020): GBK pages, sections with paginated
listings, multi-page articles. Every selector of this layout is in ``SELECTORS``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crawler.loaders import ArticlePage
from crawler.processors import clean_text, page_count
from crawler.readers.base import ALL_TEXT, LINKS_TO, SelectorTable, compile_query, image_sources, read_paragraphs, text_of
from crawler.urls import (
    LISTING_PATH,
    canonical_article_url,
    canonical_listing_url,
    listing_page_number,
    same_host,
    section_of,
)

SELECTORS = SelectorTable({
    # Channel navigation on the home page: the links to each section's first listing page.
    "section_links": ["div.channel_nav a", "a"],
    # Article links of a listing page; the sidebars link articles too, so look in the list first.
    "listing_links": ["ul#leftList a", "div.list_left a"],
    "next_listing_page": ["//div[contains(@class, 'page')]//a[normalize-space() = '下一页']/@href"],
    # The listing's last page, as page 1 names it: the 尾页 link, or else the 共N页 count.
    "last_listing_page": [
        "//div[contains(@class, 'page')]//a[normalize-space() = '尾页']/@href",
        "//div[contains(@class, 'page')]//*[contains(text(), '共') and contains(text(), '页')]/text()",
    ],
    "title": ["div.ctitle", "h1", "title"],
    "author": ["div.author"],
    # The line with date, time and 来源：. Older pages use div.signdate, newer ones div.from.
    "signdate": ["div.signdate", "div.from"],
    "editor": ["div.editor"],
    "breadcrumb": ["div.weizhi"],
    "body": ["div.ccontent", "div.TRS_Editor", "div#zoom", "div.content"],
    "total_pages": ["input[name='__totalpage']::attr(value)"],
})
# A paragraph of the body; the multi-page navigation block keeps its hidden input in a <p> of its own.
PARAGRAPHS = compile_query(".//p[not(.//input[@name='__totalpage'])]")
# Share of articles expected to carry each optional field (see crawler/drift.py), as measured on the
# legacy mirror (300 articles): a share under half of it over the last THEORY_FIELD_WINDOW articles
# is a layout alarm; after 200 articles without alarm, the site's own shares take over.
EXPECTED_SHARES = {"source": 1.0, "authors": 0.73, "editor": 0.70, "images": 0.15, "published_time": 0.57}

# A bogus __totalpage must not turn one article into thousands of requests.
MAX_ARTICLE_PAGES = 100


@dataclass
class Section:
    id: str
    name: str
    url: str


@dataclass
class Listing:
    article_urls: list[str]
    next_page_url: str | None
    last_page: int | None = None  # the listing's last page number, when its pagination names it


def read_sections(response) -> list[Section]:
    """The sections named in the channel navigation, in order."""
    sections: dict[str, Section] = {}
    for link in SELECTORS.select(response.selector.root, "section_links"):
        href = link.get("href")
        url = canonical_listing_url(response.urljoin(href)) if href else None
        if not url or not same_host(url, response.url):
            continue
        match = LISTING_PATH.match(urlsplit(url).path)
        name = clean_text(text_of(link))
        if match["page"] is None and name and match["section"] not in sections:
            sections[match["section"]] = Section(match["section"], name, url)
    return list(sections.values())


def read_listing(response) -> Listing:
    """The article links of a listing page (page 1 URLs, on-site, in order) and its next page."""
    root = response.selector.root
    article_urls: dict[str, None] = {}
    for link in SELECTORS.select(root, "listing_links"):
        href = link.get("href")
        url = canonical_article_url(response.urljoin(href)) if href else None
        if url and same_host(url, response.url):
            article_urls[url] = None
    next_href = SELECTORS.first(root, "next_listing_page")
    next_url = canonical_listing_url(response.urljoin(next_href)) if next_href else None
    return Listing(list(article_urls), next_url, last_listing_page(response, SELECTORS.first(root, "last_listing_page")))


def last_listing_page(response, found: str | None) -> int | None:
    """The page number of the 尾页 link (``241_3.shtml``: 3), or the N of a 共N页 text."""
    if not found:
        return None
    url = canonical_listing_url(response.urljoin(found)) if "共" not in found else None
    return listing_page_number(url) if url else page_count(found)


def read_article_page(response) -> ArticlePage:
    root = response.selector.root
    body = SELECTORS.first(root, "body")
    try:
        total_pages = int(SELECTORS.first(root, "total_pages") or 1)
    except ValueError:
        total_pages = 1
    signdate = SELECTORS.first(root, "signdate")
    section_href = "/{0}/{0}.shtml".format(section_of(response.url))
    breadcrumb = SELECTORS.first(root, "breadcrumb")
    return ArticlePage(
        url=response.url,
        section_id=section_of(response.url),
        title_text=SELECTORS.first_text(root, "title"),
        author_text=SELECTORS.first_text(root, "author"),
        signdate_texts=ALL_TEXT(signdate) if signdate is not None else [],
        editor_text=SELECTORS.first_text(root, "editor"),
        # The breadcrumb names the section; pages without one still have the channel navigation.
        section_names=(breadcrumb is not None and LINKS_TO(breadcrumb, href=section_href)) or LINKS_TO(root, href=section_href),
        paragraphs=read_paragraphs(body, PARAGRAPHS) if body is not None else [],
        images=image_sources(response, body) if body is not None else [],
        total_pages=min(max(total_pages, 1), MAX_ARTICLE_PAGES),
    )
