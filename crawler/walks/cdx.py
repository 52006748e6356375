"""The walk of a public web archive's CDX index for the legacy host's article captures, and which capture
of each page an article is read from.

A CDX server answers which captures it holds under a URL prefix. Two answer formats are read:

- the Wayback Machine's CDX API (``output=json``): one JSON array whose first row names the fields
  (``urlkey``, ``timestamp``, ``original``, ``mimetype``, ``statuscode``, ...), then a row per capture; with
  ``showResumeKey=true``, when ``limit`` cut the answer short, an empty row and a row holding the resume key,
  which the next query passes as ``resumeKey`` to go on where this one stopped;
- pywb's CDX server (``output=json``): one JSON object per line (``url``, ``timestamp``, ``mime``,
  ``status``, ...), no resume keys. An answer of ``limit`` captures may have been cut short: the query is
  split by year (``from``/``to``), and a year still over the limit leaves the walk incomplete.

One query per legacy section prefix (``<host>/241/*``), so that no answer holds the whole host; in a full
walk, the sections are those the archive's latest capture of the legacy home names (``HomeLookup``,
``plan_sections``), with the ones the site is known to have had. Both
servers are asked for status 200 and HTML only, and the answer is filtered again here (a server may ignore
a filter): the article grammar of ``crawler.urls``, status 200, an HTML MIME type.

No Scrapy here: the walk is told what each answer was and says which query comes next.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode, urlsplit

from crawler.urls import ARTICLE_PATH, canonical_article_url

# Captures per answer: small enough for a public server to answer in one go, large enough for few queries.
CDX_LIMIT = 5000
# The years a query is split into when its answer reached the limit without a resume key: the legacy
# host's first year, up to this year (archives keep capturing a host after it stops changing).
FIRST_YEAR = 2014
# No walk asks more than this many queries: a server that hands out resume keys forever cannot spin it.
MAX_QUERIES = 2000
# Incremental runs ask for captures since the last one seen less this: archives index captures late.
INDEX_LAG = timedelta(days=30)
HTML_TYPES = ("text/html", "application/xhtml+xml")
# The forms of the legacy home's URL an archive may hold (the site served both): one exact query each.
HOME_PATHS = ("/", "/index.shtml")

# Ends of a CDX walk; complete ones first.
DONE = "done"
QUERY_CAP = "query_cap"
REFUSED = "refused"

# The field names of both formats, as the Wayback API and pywb spell them.
FIELD_NAMES = {
    "original": "original", "url": "original",
    "timestamp": "timestamp",
    "statuscode": "status", "status": "status",
    "mimetype": "mime", "mime": "mime",
}


@dataclass(frozen=True, order=True)
class Capture:
    """One capture of an article page: its 14-digit timestamp (UTC) and the page's original URL."""

    timestamp: str
    url: str

    @property
    def when(self) -> datetime:
        return datetime.strptime(self.timestamp, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)

    def replay_url(self, replay_prefix: str) -> str:
        """The capture in raw mode (``id_``): the bytes as captured, without the archive's rewriting."""
        return f"{replay_prefix}{self.timestamp}id_/{self.url}"


@dataclass(frozen=True)
class Query:
    """One CDX query: a section prefix, optionally one year of it, optionally resumed from a key."""

    prefix: str  # host/section/, e.g. theory.workercn.cn/241/
    year: int | None = None
    resume_key: str | None = None
    exact: bool = False  # this URL only (the legacy home), not every URL it prefixes

    def url(self, cdx_url: str, since: str | None = None, limit: int = CDX_LIMIT) -> str:
        params: list[tuple[str, str]] = [
            ("url", self.prefix if self.exact else self.prefix + "*"),
            ("output", "json"),
            ("filter", "statuscode:200"),
            ("filter", "mimetype:text/html"),
            ("limit", str(limit)),
            ("showResumeKey", "true"),
        ]
        start, end = since, None
        if self.year is not None:
            start = max(since or "", f"{self.year}0101000000")
            end = f"{self.year}1231235959"
        if start:
            params.append(("from", start))
        if end:
            params.append(("to", end))
        if self.resume_key:
            params.append(("resumeKey", self.resume_key))
        return f"{cdx_url}?{urlencode(params)}"


@dataclass(frozen=True)
class Answer:
    """What one CDX answer held: its article captures, a resume key, how many rows it had in all
    (``rows``: to tell whether the limit was reached) and whether it was cut short (a torn line)."""

    captures: list[Capture]
    resume_key: str | None = None
    rows: int = 0
    cut: bool = False
    # The Wayback format: its server gives a resume key whenever ``limit`` cut the answer short, so an
    # answer of ``limit`` rows without one is whole.
    resumable: bool = False


def _html_capture(original: str, status: str | None, mime: str | None):
    """The parts of the URL ``original`` captures, if it is a 200 HTML capture (a host without a scheme is http)."""
    if str(status or "") != "200" or not str(mime or "").lower().startswith(HTML_TYPES):
        return None
    return urlsplit(original if "://" in original else f"http://{original}")


def _as_served(parts, path: str) -> str:
    """The URL without query or fragment, on the scheme and host the host served it (no default port)."""
    return f"{parts.scheme or 'http'}://{parts.netloc.lower().removesuffix(':80')}{path}"


def is_article_capture(original: str, status: str | None, mime: str | None) -> str | None:
    """The canonical URL of the article page ``original`` captures, if it is a 200 HTML capture of one."""
    parts = _html_capture(original, status, mime)
    if parts is None or not ARTICLE_PATH.match(parts.path):
        return None
    return _as_served(parts, parts.path)  # the page's own URL: page 2 stays page 2


def is_home_capture(original: str, status: str | None, mime: str | None) -> str | None:
    """The URL of the legacy home that ``original`` captures, if it is a 200 HTML capture of it, in either
    of the forms an archive may hold it (``/``, ``/index.shtml``); not with a query string, which would be
    another capture than the one replayed at the bare URL."""
    parts = _html_capture(original, status, mime)
    if parts is None or parts.path not in (*HOME_PATHS, "") or parts.query:
        return None
    return _as_served(parts, parts.path or "/")


def _capture(row: dict, page=is_article_capture) -> Capture | None:
    fields = {FIELD_NAMES[name]: value for name, value in row.items() if name in FIELD_NAMES}
    timestamp = str(fields.get("timestamp") or "")
    if len(timestamp) != 14 or not timestamp.isdigit():
        return None
    url = page(str(fields.get("original") or ""), fields.get("status"), fields.get("mime"))
    return Capture(timestamp, url) if url else None


def parse_answer(body: bytes, page=is_article_capture) -> Answer:
    """Either format; raises ValueError for an answer that is neither (an HTML error page, garbage).
    ``page`` says which captures count: the article pages' (the walks), or the home's (``is_home_capture``)."""
    text = body.decode("utf-8").strip()
    if not text:
        return Answer([])
    if text.startswith("["):
        return _parse_wayback(text, page)
    return _parse_json_lines(body.decode("utf-8"), page)


def _parse_wayback(text: str, page=is_article_capture) -> Answer:
    try:
        rows = json.loads(text)
    except ValueError:
        # A JSON array cut short: nothing in it can be trusted to be the whole of anything.
        return Answer([], rows=0, cut=True, resumable=True)
    if not isinstance(rows, list) or not rows:
        return Answer([], resumable=True)
    header, *rest = rows
    if not isinstance(header, list) or not all(isinstance(name, str) for name in header):
        raise ValueError("the first row of the CDX answer is not a header of field names")
    resume_key = None
    if len(rest) >= 2 and rest[-2] == [] and isinstance(rest[-1], list) and len(rest[-1]) == 1:
        resume_key = str(rest[-1][0])
        rest = rest[:-2]
    captures = [
        capture for row in rest if isinstance(row, list) and len(row) == len(header)
        if (capture := _capture(dict(zip(header, row)), page))
    ]
    return Answer(captures, resume_key, rows=len(rest), resumable=True)


def _parse_json_lines(text: str, page=is_article_capture) -> Answer:
    lines = text.split("\n")
    # A last line without its newline is where the answer stopped: cut mid-line, even if it parses.
    cut = lines[-1].strip() != ""
    captures, rows = [], 0
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if rows == 0:
                raise ValueError(f"the CDX answer is neither a JSON array nor JSON lines: {line[:80]!r}") from None
            cut = True
            break
        if not isinstance(row, dict):
            raise ValueError(f"a CDX line is not a JSON object: {line[:80]!r}")
        if number == len(lines) - 1:
            break  # the unfinished last line: not a capture to trust
        rows += 1
        if capture := _capture(row, page):
            captures.append(capture)
    return Answer(captures, rows=rows, cut=cut)


@dataclass(frozen=True)
class CdxStep:
    """The next query to ask (None: the walk has ended) and an odd thing worth a warning and a stat."""

    next: Query | None
    event: str | None = None
    detail: str = ""


@dataclass
class CdxWalk:
    """The CDX queries of one run, one section prefix after another, and every article capture they gave."""

    prefixes: list[str]  # host/section/ (a full walk), host/ (an incremental one), host/path/id (one article)
    since: str | None = None  # 14-digit timestamp: only captures from then on (incremental runs)
    this_year: int = field(default_factory=lambda: datetime.now(timezone.utc).year)
    limit: int = CDX_LIMIT
    max_queries: int = MAX_QUERIES
    source: str = "archive"
    queries: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (query, reason)
    captures: dict[str, set[Capture]] = field(default_factory=dict)  # page URL -> its captures
    end: str | None = None
    _queue: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._queue.extend(Query(prefix) for prefix in self.prefixes)

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def complete(self) -> bool:
        return self.end == DONE and not self.failures

    @property
    def latest(self) -> str | None:
        """The timestamp of the latest capture seen: where the next incremental run starts (less INDEX_LAG)."""
        return max((capture.timestamp for captures in self.captures.values() for capture in captures), default=None)

    def first(self) -> Query | None:
        return self._advance().next

    def read(self, query: Query, answer: Answer) -> CdxStep:
        """An answer to ``query``: keep its captures, then the next query."""
        if self.ended:
            return CdxStep(None)
        for capture in answer.captures:
            self.captures.setdefault(capture.url, set()).add(capture)
        if answer.cut:
            self.failures.append((query.prefix + (f" {query.year}" if query.year else ""), "cut_answer"))
            return self._advance("cut_answer", f"the CDX answer for {query.prefix}* was cut short; the walk is incomplete")
        if answer.resume_key:
            self._queue.appendleft(Query(query.prefix, query.year, answer.resume_key))
        elif answer.rows >= self.limit and not answer.resumable:
            if query.year is None:
                # pywb: no resume key, so the answer may hold only the first ``limit`` captures: ask year by year.
                years = [Query(query.prefix, year) for year in range(FIRST_YEAR, self.this_year + 1)]
                self._queue.extendleft(reversed(years))
                return self._advance("split_by_year", f"{query.prefix}* has {answer.rows} captures or more; asking year by year")
            self.failures.append((f"{query.prefix} {query.year}", "limit_reached"))
            return self._advance("limit_reached", f"{query.prefix}* has {self.limit} captures or more in {query.year}; the rest is not read")
        return self._advance()

    def failed(self, query: Query, reason: str) -> CdxStep:
        """A query whose answer could not be had (refused after retries, not a CDX answer)."""
        if self.ended:
            return CdxStep(None)
        self.failures.append((query.prefix + (f" {query.year}" if query.year else ""), reason))
        return self._advance()

    def refused(self) -> CdxStep:
        """The archive keeps refusing: ask nothing more of it this run."""
        self._queue.clear()
        self.end = REFUSED
        return CdxStep(None)

    def _advance(self, event: str | None = None, detail: str = "") -> CdxStep:
        if not self._queue:
            self.end = DONE
            return CdxStep(None, event, detail)
        if self.queries >= self.max_queries:
            self.failures.append((self._queue[0].prefix, QUERY_CAP))
            self._queue.clear()
            self.end = QUERY_CAP
            return CdxStep(None, "query_cap_reached", f"stopping at {self.max_queries} CDX queries")
        self.queries += 1
        return CdxStep(self._queue.popleft(), event, detail)

    # --- the articles the captures give ---

    def articles(self) -> dict[str, dict[int, list[Capture]]]:
        """Page 1 URL -> page number -> that page's captures, oldest first; only articles whose page 1 was captured."""
        pages: dict[str, dict[int, list[Capture]]] = {}
        for url, captures in self.captures.items():
            match = ARTICLE_PATH.match(urlsplit(url).path)
            pages.setdefault(canonical_article_url(url), {})[int(match["page"] or 1)] = sorted(captures)
        return {url: numbered for url, numbered in pages.items() if 1 in numbered}


def section_prefixes(host: str, sections: list[str]) -> list[str]:
    """The prefix of each legacy section on ``host`` (host[:port]): one query each, so no answer holds the whole host."""
    return [f"{host}/{section}/" for section in sections]


def article_prefix(page1_url: str) -> str:
    """The prefix of every page of one article: ``host/241/201511/06/151106114633189`` matches
    ``….shtml`` and ``…_2.shtml``."""
    parts = urlsplit(page1_url)
    return f"{parts.netloc}{parts.path.removesuffix('.shtml')}"


def since_for(latest_seen: str | None) -> str | None:
    """Where an incremental run's CDX query starts: the latest capture seen before, less INDEX_LAG."""
    if not latest_seen:
        return None
    start = datetime.strptime(latest_seen, "%Y%m%d%H%M%S") - INDEX_LAG
    return start.strftime("%Y%m%d%H%M%S")


REPLAY_TIMESTAMP = re.compile(r"/(\d{14})id_/")


def replay_timestamp(replay_url: str) -> str | None:
    """The capture's timestamp in a raw-mode replay URL (after a redirect, the capture the archive chose)."""
    match = REPLAY_TIMESTAMP.search(replay_url)
    return match[1] if match else None


# --- which capture of each page an article is read from ---

EARLIEST = "earliest"
LATEST = "latest"


def first_page_capture(captures: list[Capture], which: str = EARLIEST) -> Capture | None:
    """Page 1's capture: the earliest (closest to first publication) or the latest."""
    if not captures:
        return None
    return min(captures) if which == EARLIEST else max(captures)


def later_page_capture(captures: list[Capture], first: Capture, max_skew_days: float) -> Capture | None:
    """A later page's capture closest in time to page 1's, if one lies within ``max_skew_days``; None
    otherwise: a page archived years apart may belong to another version, and the article is owed, not
    written short or mixed. Ties go to the earlier capture."""
    if not captures:
        return None
    closest = min(captures, key=lambda capture: (abs(capture.when - first.when), capture.timestamp))
    return closest if abs(closest.when - first.when) <= timedelta(days=max_skew_days) else None


# --- where a full walk's sections come from: the archive's capture of the legacy home ---

# Why a full walk falls back to the known sections, when nothing went wrong: the archive holds no capture of
# the home, or its latest names no section (a placeholder, another layout). A later run would learn no more.
NO_HOME_CAPTURE = "no_home_capture"
NO_SECTION_READ = "no_section_read"


@dataclass(frozen=True)
class SectionPlan:
    """The sections a full walk queries, whether they came from the archived home, and if not, why not."""

    sections: list[str]
    from_home: bool
    fallback: str | None = None  # NO_HOME_CAPTURE, NO_SECTION_READ, or the reason of the first failure
    failures: tuple[tuple[str, str], ...] = ()  # (what, reason): the home's queries or replay that failed

    @property
    def complete(self) -> bool:
        """A failure of the home's query or replay (refused, 5xx, a cut answer) makes the walk incomplete: the
        sections walked may lack one the home names, and a retry next run can read it. No capture, or one
        naming no section, is the archive's last word: the known list is walked and the walk is complete."""
        return not self.failures


def plan_sections(
    read: list[str], known: list[str], only: list[str] | None, channel_id: str | None,
    failures: list[tuple[str, str]] | tuple = (), captured: bool = True,
) -> SectionPlan:
    """The sections of a full walk: those the archived home names (``read``), with the ``known`` ones it
    does not name (a section dropped from the navigation late still has captures of its articles; one
    query each costs little), or the known ones alone when no section was read. ``only`` (``-a
    sections=``) restricts the walk to the sections given. The current channel's id is never a legacy section."""
    if read:
        fallback = None
    elif failures:
        fallback = failures[0][1]
    else:
        fallback = NO_SECTION_READ if captured else NO_HOME_CAPTURE
    sections = only if only is not None else list(dict.fromkeys([*read, *known]))
    return SectionPlan([s for s in sections if s != channel_id], bool(read), fallback, tuple(failures))


@dataclass
class HomeLookup:
    """The CDX queries for the legacy home (one per form of its URL, ``HOME_PATHS``) and the capture whose
    replay names the sections: the latest. No Scrapy here, as for the walks."""

    host: str  # host[:port]
    captures: list[Capture] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    _queue: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._queue.extend(Query(f"{self.host}{path}", exact=True) for path in HOME_PATHS)

    def next_query(self) -> Query | None:
        return self._queue.popleft() if self._queue else None

    def read(self, query: Query, answer: Answer) -> None:
        # An answer of ``limit`` captures without a resume key holds the oldest ones: its latest is older than
        # the archive's, but names the sections of its own time all the same (and the known ones are walked too).
        self.captures.extend(answer.captures)
        if answer.cut:
            self.failures.append((f"home {query.prefix}", "cut_answer"))

    def failed(self, query: Query, reason: str) -> None:
        self.failures.append((f"home {query.prefix}", reason))

    def latest(self) -> Capture | None:
        return first_page_capture(self.captures, LATEST)

    def replay_failed(self, capture: Capture, reason: str) -> None:
        self.failures.append((f"home {capture.timestamp}id_/{capture.url}", reason))

    def plan(self, read: list[str], known: list[str], only: list[str] | None, channel_id: str | None) -> SectionPlan:
        return plan_sections(read, known, only, channel_id, self.failures, captured=bool(self.captures))
