"""The channel's URL grammar on both sites, in one place.

Legacy host (theory.workercn.cn):
  Listing pages:  /<sec>/<sec>.shtml, /<sec>/<sec>_<n>.shtml
  Article pages:  /<sec>/<YYYYMM>/<DD>/<15-digit id>.shtml, pages 2..N: .../<id>_<n>.shtml
Current CMS (www.workercn.cn):
  Channel page:   /<channel>/ (e.g. /theory/)
  Feed pages:     /json/<channel>/index_<n>.json (THEORY_FEED_PATH)
  Article pages:  /c/<YYYY-MM-DD>/<id>.shtml, a 7-digit id today, global over all channels
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

ARTICLE_PATH = re.compile(
    r"^/(?P<section>\d+)/(?P<month>\d{6})/(?P<day>\d{2})/(?P<id>\d{15})(?:_(?P<page>\d+))?\.shtml$"
)
LISTING_PATH = re.compile(r"^/(?P<section>\d+)/(?P=section)(?:_(?P<page>\d+))?\.shtml$")
# The id is 7 digits today and grows; 6 to 10 digits keep it apart from the legacy 15.
CURRENT_ARTICLE_PATH = re.compile(r"^/c/(?P<date>\d{4}-\d{2}-\d{2})/(?P<id>\d{6,10})\.shtml$")

LEGACY = "legacy"
CURRENT = "current"


def _without_query(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url.strip())
    return parts.scheme.lower(), parts.netloc.lower(), parts.path


def canonical_article_url(url: str) -> str | None:
    """Page 1 of the article that ``url`` points into, without query or fragment; None if not an article."""
    scheme, netloc, path = _without_query(url)
    if CURRENT_ARTICLE_PATH.match(path):
        return canonicalize_url(urlunsplit((scheme, netloc, path, "", "")))
    match = ARTICLE_PATH.match(path)
    if not match:
        return None
    page1_path = f"/{match['section']}/{match['month']}/{match['day']}/{match['id']}.shtml"
    return canonicalize_url(urlunsplit((scheme, netloc, page1_path, "", "")))


def canonical_listing_url(url: str) -> str | None:
    scheme, netloc, path = _without_query(url)
    if not LISTING_PATH.match(path):
        return None
    return canonicalize_url(urlunsplit((scheme, netloc, path, "", "")))


def listing_page_number(url: str) -> int | None:
    match = LISTING_PATH.match(urlsplit(url).path)
    if not match:
        return None
    return int(match["page"] or 1)


def listing_page_url(first_page_url: str, page: int) -> str | None:
    """URL of page ``page`` of the listing whose page 1 is ``first_page_url`` (``241.shtml`` -> ``241_3.shtml``)."""
    parts = urlsplit(first_page_url)
    match = LISTING_PATH.match(parts.path)
    if not match:
        return None
    name = match["section"] if page == 1 else f"{match['section']}_{page}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rsplit("/", 1)[0] + f"/{name}.shtml", "", ""))


def article_id(url: str) -> str | None:
    path = urlsplit(url).path
    match = ARTICLE_PATH.match(path) or CURRENT_ARTICLE_PATH.match(path)
    return match["id"] if match else None


def layout_of(url: str) -> str | None:
    """Which site's article grammar ``url`` follows: LEGACY, CURRENT, or None for no article."""
    path = urlsplit(url).path
    if ARTICLE_PATH.match(path):
        return LEGACY
    if CURRENT_ARTICLE_PATH.match(path):
        return CURRENT
    return None


def channel_of(channel_url: str) -> str | None:
    """The channel's directory in its page's URL: ``theory`` for ``/theory/`` or ``/theory/index.shtml``."""
    directory = urlsplit(channel_url).path.rsplit("/", 1)[0]
    return directory.rsplit("/", 1)[-1] or None


def feed_page_url(channel_url: str, feed_path: str, page: int) -> str:
    """Page ``page`` (1, 2, ...) of the channel's JSON feed, on the channel's host."""
    path = feed_path.format(channel=channel_of(channel_url), page=page)
    return urljoin(channel_url, path)


def section_of(url: str) -> str | None:
    """The section id in an article or listing URL path."""
    path = urlsplit(url).path
    match = ARTICLE_PATH.match(path) or LISTING_PATH.match(path)
    return match["section"] if match else None


def article_page_url(page1_url: str, page: int) -> str:
    """URL of page ``page`` of a multi-page article, from the URL of its page 1."""
    if page == 1:
        return page1_url
    return page1_url[: -len(".shtml")] + f"_{page}.shtml"


def host_of(url: str) -> str:
    """The host and port of ``url``: two mirrors on one address are two hosts."""
    return urlsplit(url).netloc.lower()


def same_host(url: str, other: str) -> bool:
    return host_of(url) == host_of(other)


def rebase(url: str, base_url: str) -> str:
    """``url`` on the host of ``base_url``: state written against a mirror or an old host stays usable."""
    parts, base = urlsplit(url), urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))
