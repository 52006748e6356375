"""Revisits of written articles: is the article still there, and is it still what was written?

``classify`` is a pure function of one answer of the site (status, redirect target, what the reader
found), so that its judgement can be tested on saved pages; the spider asks it, and the storage
pipeline turns its verdicts into events of ``changes.jsonl`` (see ``RevisitResult``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawler.items import ArticleItem
from crawler.loaders import ArticlePage
from crawler.processors import find_date
from crawler.urls import article_id

PRESENT = "present"
REMOVED = "removed"
UNKNOWN = "unknown"

REDIRECTS = frozenset({301, 302, 303, 307, 308})
GONE = frozenset({404, 410})
# What the CMS's error pages say. Only evidence next to a missing article frame (or a title saying so):
# an article may well quote one of these phrases.
NOT_FOUND_PHRASES = ("页面不存在", "该页面已删除", "您访问的页面不存在")


def has_frame(page: ArticlePage) -> bool:
    """The parts every article page has: a title, a date in its info line, and a body (text or media).

    A "page not found" page served with 200 has the site's header and footer, often a <title>, but no
    info line with a date and no article body: that absence, not its wording, tells it apart.
    """
    dated = any(find_date(text) for text in page.signdate_texts if text)
    return bool(page.title_text.strip()) and dated and bool(page.paragraphs or page.images)


def not_found_phrase(page: ArticlePage | None) -> str | None:
    if page is None:
        return None
    heading = page.title_text + "\n" + "\n".join(page.paragraphs[:3])
    return next((phrase for phrase in NOT_FOUND_PHRASES if phrase in heading), None)


def classify(status: int, redirect_target: str | None, article_url: str, page: ArticlePage | None) -> str:
    """PRESENT, REMOVED or UNKNOWN for one answer to a revisit of ``article_url``.

    404/410: removed. A redirect to anything but the article itself (the home, the channel): removed;
    to the article itself (another host or scheme): unknown, its content was not seen. 304: present
    (the validators are those of the article's own page). 200: present when the reader found the article
    frame, removed when not. Anything else (5xx, a page that could not be read): unknown, which neither
    counts toward a removal nor resets the count.
    """
    if status in GONE:
        return REMOVED
    if status in REDIRECTS:
        if not redirect_target:
            return UNKNOWN
        target_id = article_id(redirect_target)
        return UNKNOWN if target_id and target_id == article_id(article_url) else REMOVED
    if status == 304:
        return PRESENT
    if status == 200:
        if page is None:
            return UNKNOWN
        if not has_frame(page):
            return REMOVED
        # A frame whose title is the error message: a not-found template that happens to carry a date.
        return REMOVED if any(phrase in page.title_text for phrase in NOT_FOUND_PHRASES) else PRESENT
    return UNKNOWN


@dataclass
class RevisitResult:
    """What one revisit of an article found; the storage pipeline decides which events it makes.

    ``validators`` maps each page fetched with a 200 to its (ETag, Last-Modified): they are stored
    together with the events, so that a 304 can never hide a change whose event was lost.
    """

    article_id: str
    url: str
    verdict: str  # PRESENT, REMOVED or UNKNOWN
    status: int | None = None  # HTTP status of page 1, None for a download error
    reason: str | None = None  # why UNKNOWN: http_503, timeout, ...
    redirect_target: str | None = None
    not_modified: bool = False  # every page answered 304
    item: ArticleItem | None = None  # the article as it reads now, when it was fetched
    validators: dict[str, list[str | None]] = field(default_factory=dict)
    phrase: str | None = None  # a not-found phrase seen on the page, as evidence
    archived_copy: str | None = None  # live,archive: the replay URL of the latest archived capture of a removed article


def page_key(url: str) -> str:
    """The key of a page's validators: its path, so that state kept against a mirror or an old host
    still matches (the two sites' article paths never collide)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
