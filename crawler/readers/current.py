"""Reader of the current CMS (www.workercn.cn, 2021–): UTF-8 pages, a channel page with the newest
items, a JSON feed of the rest, one-page articles at /c/YYYY-MM-DD/<id>.shtml.

Every selector of this layout is in ``SELECTORS``. Much of this template is reconstructed (see the
mirror's README), so each entry lists fallbacks after the expected form, and ``scrapy probe`` shows
which alternative matched on a live page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawler.loaders import ArticlePage
from crawler.processors import clean_text, strip_site_suffix
from crawler.readers.base import ALL_TEXT, LINKS_TO, SelectorTable, compile_query, image_sources, read_paragraphs, text_of
from crawler.urls import canonical_article_url, channel_of, host_of, same_host

SELECTORS = SelectorTable({
    # Article links of the channel's own list. The 热点 sidebar and the nav link articles of other
    # channels on the same host and URL space, so nothing outside the list items counts.
    "channel_links": [
        "//ul[contains(concat(' ', normalize-space(@class), ' '), ' list ')]/li[starts-with(@id, 'li_')]//a/@href",
        "//li[starts-with(@id, 'li_')]//a/@href",
    ],
    "channel_name": ["div.crumbs a:last-of-type", "title"],
    "title": ["h1.title", "div.left h1", "h1", "title"],
    "time": ["span.time", "div.info .time"],
    # The info line: date and time, 来源：, 作者：, as spans or as plain text.
    "info": ["div.info", "div.left div.source", "div.left p.info"],
    "author": ["span.author", "//div[contains(@class, 'info')]//text()[contains(., '作者')]"],
    "editor": ["div.editor", "//div[contains(@class, 'left')]//*[contains(@class, 'editor')]"],
    "breadcrumb": ["div.crumbs", "//*[contains(@class, 'crumb')]", "div.position"],
    # Which channel an article page belongs to: the <title> suffix first, then the breadcrumb's links.
    "page_title": ["title"],
    "crumb_links": ["div.crumbs a", "//*[contains(@class, 'crumb')]//a", "div.position a"],
    "body": ["div.ccontent", "div.content", "div#zoom", "article"],
})
PARAGRAPHS = compile_query(".//p")
# Share of articles expected to carry each optional field (see crawler/drift.py): a share under half
# of it over the last THEORY_FIELD_WINDOW articles is a layout alarm. Measured on the current mirror
# (150 articles); after 200 articles without alarm, the site's own shares take over. If the live site
# really shows a field less often, lower it here.
EXPECTED_SHARES = {"source": 1.0, "authors": 0.69, "editor": 0.87, "images": 0.11, "published_time": 1.0}

# `TITLE - 人物 - 中工网`: the channel between the title and the site's name, as public captures show it.
TITLE_CHANNEL = re.compile(r"\s[-_|｜]\s*([^-_|｜]+?)\s*[-_|｜]\s*中工网\s*$")
# A breadcrumb link to a channel page (`/character/`), not to the home (`/`).
CHANNEL_PATH = re.compile(r"^/[^/]+/(?:index\.s?html?)?$")

# Containers below this depth in a feed page are not looked into: a feed is a list of flat objects.
MAX_FEED_DEPTH = 8


@dataclass
class Channel:
    name: str | None
    article_urls: list[str]
    # Article links to hosts that are neither the page's nor one of ``article_hosts``: not followed.
    offsite_urls: list[str] = field(default_factory=list)


@dataclass
class FeedPage:
    article_urls: list[str]
    # Length of the longest list in the page: the feed's entries, whatever wraps them. 0 ends the feed.
    entries: int
    offsite_urls: list[str] = field(default_factory=list)


def _article_urls(response, hrefs, article_hosts: frozenset[str]) -> tuple[list[str], list[str]]:
    """Page-1 URLs of the articles among ``hrefs`` on the page's host or on ``article_hosts``, in order,
    each once; and those on any other host."""
    urls: dict[str, None] = {}
    offsite: dict[str, None] = {}
    for href in hrefs:
        url = canonical_article_url(response.urljoin(href.strip())) if isinstance(href, str) and href.strip() else None
        if url:
            (urls if same_host(url, response.url) or host_of(url) in article_hosts else offsite)[url] = None
    return list(urls), list(offsite)


def read_channel(response, article_hosts: frozenset[str] = frozenset()) -> Channel:
    """The articles of the channel page's list, newest first, and the channel's name."""
    root = response.selector.root
    name = clean_text(strip_site_suffix(SELECTORS.first_text(root, "channel_name")))
    return Channel(name, *_article_urls(response, SELECTORS.select(root, "channel_links"), article_hosts))


def named_channel(page_title: str, breadcrumb_links: list[tuple[str, str]]) -> str | None:
    """The channel an article page says it belongs to: the one in its <title> (``TITLE - 人物 - 中工网``),
    else the last channel of its breadcrumb (``(href, text)`` pairs); None when it names none."""
    match = TITLE_CHANNEL.search(page_title)
    if match:
        return clean_text(match[1]) or None
    names = [clean_text(text) for href, text in breadcrumb_links if CHANNEL_PATH.match(urlsplit(href.strip()).path)]
    return next((name for name in reversed(names) if name), None)


def read_feed(response, article_hosts: frozenset[str] = frozenset()) -> FeedPage:
    """Article links of one JSON feed page; raises ValueError if the page is not JSON.

    The feed's field names are not documented and have changed before, so no name is relied on:
    every string in the page that follows the article URL grammar is a link.
    """
    document = json.loads(response.body)  # detects UTF-8 (with or without BOM), UTF-16 and UTF-32
    strings: list[str] = []
    entries = 0
    pending = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            strings.append(value)
        elif depth < MAX_FEED_DEPTH and isinstance(value, (list, dict)):
            children = list(value.values()) if isinstance(value, dict) else value
            if isinstance(value, list):
                entries = max(entries, len(value))
            pending.extend((child, depth + 1) for child in reversed(children))
    urls, offsite = _article_urls(response, strings, article_hosts)
    return FeedPage(urls, entries, offsite)


def read_article_page(response, channel_path: str = "/theory/") -> ArticlePage:
    """One article page. ``channel_path`` is the channel's page, which the breadcrumb links by name."""
    root = response.selector.root
    body = SELECTORS.first(root, "body")
    info = SELECTORS.first(root, "info")
    breadcrumb = SELECTORS.first(root, "breadcrumb")
    return ArticlePage(
        url=response.url,
        section_id=channel_of(channel_path),
        title_text=SELECTORS.first_text(root, "title"),
        author_text=SELECTORS.first_text(root, "author"),
        # span.time first: where it exists, its date and time win over any other in the line.
        signdate_texts=[SELECTORS.first_text(root, "time"), *(ALL_TEXT(info) if info is not None else [])],
        editor_text=SELECTORS.first_text(root, "editor"),
        section_names=LINKS_TO(breadcrumb, href=channel_path) if breadcrumb is not None else [],
        paragraphs=read_paragraphs(body, PARAGRAPHS) if body is not None else [],
        images=image_sources(response, body) if body is not None else [],
        channel_name=named_channel(
            SELECTORS.first_text(root, "page_title"),
            [(link.get("href") or "", text_of(link)) for link in SELECTORS.select(root, "crumb_links")],
        ),
    )
