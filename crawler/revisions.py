"""Revisits of written articles: is the article still there, and is it still what was written?

``classify`` is a pure function of one answer of the site (status, redirect target, what the reader
found), so that its judgement can be tested on saved pages. ``RevisitReading`` asks it answer by answer
for the spider's revisits and for re-extraction's, and the storage pipeline turns the results into events of
``changes.jsonl`` (see ``RevisitResult``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from scrapy.http import TextResponse

from crawler.items import ArticleItem
from crawler.loaders import ArticlePage, load_article
from crawler.processors import find_date
from crawler.readers.base import PageSigns, read_page_signs
from crawler.urls import article_id, article_page_url

logger = logging.getLogger(__name__)

PRESENT = "present"
REMOVED = "removed"
UNKNOWN = "unknown"
# The kinds of event of changes.jsonl (crawler/schema/change.schema.json), each a state change
# (``CrawlState.apply_event``).
EVENTS = ("revised", "corrected", "removed", "restored")

REDIRECTS = frozenset({301, 302, 303, 307, 308})
GONE = frozenset({404, 410})
# What the CMS's error pages say (the default of THEORY_NOT_FOUND_PHRASES). Evidence only in the <title>
# or the main heading of a page without the article frame (or as the title of one with it): an article
# may well quote one of these phrases in its body.
NOT_FOUND_PHRASES = ("页面不存在", "该页面已删除", "您访问的页面不存在")
# A main heading that is the status itself ("404", "404 Not Found", "Error 410"): a soft 404 page says so
# in the one place a page is named, as plainly as the status would.
STATUS_HEADING = re.compile(r"^\W*(?:error\s*)?(?:404|410)\b", re.IGNORECASE)
# What a bot check or an interstitial says; only evidence on a short page without the article frame.
CHALLENGE_PHRASES = (
    "安全验证", "人机验证", "访问验证", "验证码", "请稍候", "请稍后", "正在验证", "checking your browser",
    "just a moment", "verify you are human", "please wait",
)
# A bot check is a short page: a sentence, a script and maybe a logo. A page with more text than this is a
# page of the site (a home, a channel, a new template), whatever script it carries.
SHORT_PAGE_CHARACTERS = 500


@dataclass(frozen=True)
class Verdict:
    """What one answer says about the article (PRESENT, REMOVED or UNKNOWN), and why."""

    kind: str
    reason: str


def has_frame(page: ArticlePage) -> bool:
    """The parts every article page has: a title, a date in its info line, and a body (text or media).

    A "page not found" page served with 200 has the site's header and footer, often a <title>, but no
    info line with a date and no article body: that absence, not its wording, tells it apart.
    """
    dated = any(find_date(text) for text in page.signdate_texts if text)
    return bool(page.title_text.strip()) and dated and bool(page.paragraphs or page.images)


def not_found_phrase(signs: PageSigns | None, phrases=NOT_FOUND_PHRASES, page: ArticlePage | None = None) -> str | None:
    """The not-found phrase (or status heading) that names the page, in its <title> or main heading (or,
    on a page with the article frame, in the title the reader found)."""
    if signs is None:
        signs = PageSigns(heading=page.title_text) if page is not None else None
    if signs is None:
        return None
    for text in (signs.title, signs.heading):
        found = [phrase for phrase in phrases if phrase and phrase in text]
        if found:
            return max(found, key=len)  # the phrase that says most (您访问的页面不存在 over 页面不存在)
    return signs.heading.strip() if STATUS_HEADING.match(signs.heading) else None


def is_bot_check(signs: PageSigns) -> bool:
    """A short page that reloads itself or asks the visitor to prove something: a bot check or an
    interstitial, which stands in front of the article and says nothing about it."""
    if signs.text_length > SHORT_PAGE_CHARACTERS:
        return False
    words = f"{signs.title}\n{signs.heading}\n{signs.text}".lower()
    return signs.meta_refresh or signs.reload_script or any(phrase in words for phrase in CHALLENGE_PHRASES)


def classify(
    status: int,
    redirect_target: str | None,
    article_url: str,
    page: ArticlePage | None,
    signs: PageSigns | None = None,
    not_found_phrases=NOT_FOUND_PHRASES,
) -> Verdict:
    """What one answer to a revisit of ``article_url`` says, from positive evidence only.

    A removal needs one of: 404/410; a redirect to anything but the article itself (the home, the
    channel); a 200 page without the article frame whose <title> or main heading (``signs``, read from
    the page) names it not found. 304 or a 200 with the article frame: present. Everything else is
    unknown, which neither counts toward a removal nor resets the count: a frameless page that does not
    say it is a not-found page (a new template, the home: "not_an_article"), a bot check, a 5xx, a page
    that could not be read, a redirect to the article's own URL elsewhere (its content was not seen).
    """
    if status in GONE:
        return Verdict(REMOVED, f"http_{status}")
    if status in REDIRECTS:
        if not redirect_target:
            return Verdict(UNKNOWN, "redirect_without_location")
        target_id = article_id(redirect_target)
        if target_id and target_id == article_id(article_url):
            return Verdict(UNKNOWN, "redirect_to_itself")
        return Verdict(REMOVED, "redirect_elsewhere")
    if status == 304:
        return Verdict(PRESENT, "not_modified")
    if status != 200:
        return Verdict(UNKNOWN, f"http_{status}")
    if page is not None and has_frame(page):
        # A frame whose title is the error message: a not-found template that happens to carry a date.
        named = any(phrase and phrase in page.title_text for phrase in not_found_phrases)
        return Verdict(REMOVED, "not_found_page") if named else Verdict(PRESENT, "article")
    if signs is None:
        return Verdict(UNKNOWN, "unreadable")
    # The phrase first: a not-found page that sends the visitor home after a few seconds is still one.
    if not_found_phrase(signs, not_found_phrases):
        return Verdict(REMOVED, "not_found_page")
    if is_bot_check(signs):
        return Verdict(UNKNOWN, "bot_check")
    return Verdict(UNKNOWN, "not_an_article")


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
    reason: str | None = None  # the verdict's reason: http_503, timeout, bot_check, not_found_page, ...
    redirect_target: str | None = None
    not_modified: bool = False  # every page answered 304
    item: ArticleItem | None = None  # the article as it reads now, when it was fetched
    validators: dict[str, list[str | None]] = field(default_factory=dict)
    phrase: str | None = None  # a not-found phrase seen on the page, as evidence
    archived_copy: str | None = None  # live,archive: the replay URL of the latest archived capture of a removed article
    # "reextract": no revisit of the site, but the data dir's own capture read again with today's readers
    # (`scrapy reextract -a correct=1`): it may correct fields, and says nothing of the site now.
    via: str | None = None
    # The WARC record ids of the answers it read, in order, and the page count it asked for while pages
    # answered 304 (a revisit record keeps both, for re-extraction).
    answers: list[str] = field(default_factory=list)
    page_count: int | None = None
    # When it was judged: set by re-extraction to the crawl's own time, so that the removal rule's hours
    # (THEORY_REMOVAL_MIN_HOURS) and the events' times come out as the crawl's; None is now.
    checked_at: str | None = None


@dataclass
class RevisitReading:
    """One revisit of a written article, answer by answer, as a pure object: the spider fetches what
    ``next_page`` names and hands each answer to ``read``; re-extraction hands it the captured answers
    a revisit record lists. Both thus judge a revisit alike.

    Page 1 is asked for conditionally; while pages answer 304 the next is, too. A later page that changed
    while page 1 did not means the article must be read whole again, unconditionally. ``notes`` gathers
    what the caller counts and logs: ("bot_check", url, signs) and ("not_an_article_page", url, reason).
    """

    url: str  # the article's URL as articles.jsonl has it
    page_count: int  # as the state has it: how many pages to ask for while they answer 304
    read_page: Callable[[TextResponse], ArticlePage]
    section_names: dict[str, str] = field(default_factory=dict)
    not_found_phrases: tuple[str, ...] = NOT_FOUND_PHRASES
    conditional: bool = True
    pages: list[ArticlePage | None] = field(default_factory=list)  # None for a page that answered 304
    validators: dict[str, list[str | None]] = field(default_factory=dict)
    answers: list[str] = field(default_factory=list)
    notes: list[tuple] = field(default_factory=list)

    @property
    def next_page(self) -> int:
        return len(self.pages) + 1

    def result(self, verdict: str, **values) -> RevisitResult:
        return RevisitResult(
            article_id(self.url), self.url, verdict, answers=self.answers, page_count=self.page_count,
            validators=self.validators, **values,
        )

    def read(self, response, warc: dict | None = None) -> RevisitResult | None:
        """What this answer to page ``next_page`` says: the revisit's result, or None when the page that
        ``next_page`` now names is to be fetched (and ``conditional`` says how). ``warc`` is the place of
        the answer's capture (``RecordRef`` as a dict), None without one."""
        if warc:
            self.answers.append(warc["record_id"])
        number = self.next_page
        if response.status == 304:
            if number < self.page_count:
                self.pages.append(None)
                return None
            return self.result(PRESENT, status=304, not_modified=True)
        target = None
        if response.status in REDIRECTS:
            location = response.headers.get("Location")
            target = response.urljoin(location.decode("latin-1")) if location else None
        page = signs = None
        if response.status == 200 and isinstance(response, TextResponse):
            try:
                page = self.read_page(response)
                if not has_frame(page):
                    signs = read_page_signs(response)
            except Exception:  # as for any article page: one unreadable page is no reason to stop
                logger.exception("revisit: page %s could not be read", response.url)
        verdict = classify(response.status, target, self.url, page, signs, self.not_found_phrases)
        reason = verdict.reason
        if response.status == 200 and not isinstance(response, TextResponse):
            reason = "not_html"
        if reason == "bot_check":
            self.notes.append(("bot_check", response.url, signs))
        elif reason in ("not_an_article", "unreadable", "not_html"):
            self.notes.append(("not_an_article_page", response.url, reason))
        if verdict.kind != PRESENT and number > 1:
            # A later page missing or unreadable while page 1 is there: nothing to say about the article as
            # a whole, and no whole article to compare either.
            return self.result(UNKNOWN, status=response.status, reason=f"page_{number}_{reason}")
        if verdict.kind != PRESENT:
            return self.result(
                verdict.kind, status=response.status, redirect_target=target, reason=reason,
                phrase=not_found_phrase(signs, self.not_found_phrases, page),
            )
        self.validators[page_key(article_page_url(self.url, number))] = validators_of(response)
        if self.conditional and number > 1:
            # Page 1 was unchanged but this one changed: the item needs every page, so read them all again.
            self.conditional, self.pages = False, []
            return None
        self.conditional = False
        page.warc = warc
        if number == 1:
            page.url = self.url
        self.pages.append(page)
        if len(self.pages) < self.pages[0].total_pages:
            return None
        # Every page of the article read as an article page: only such a whole article may be compared.
        item = load_article(self.pages, section_name_fallback=self.section_names.get(page.section_id))
        return self.result(PRESENT, status=200, item=item)


def page_key(url: str) -> str:
    """The key of a page's validators: its path, so that state kept against a mirror or an old host
    still matches (the two sites' article paths never collide)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def validators_of(response) -> list[str | None]:
    """The page's (ETag, Last-Modified), for the conditional request of its next revisit."""
    return [header.decode("latin-1") if header else None for header in (response.headers.get("ETag"), response.headers.get("Last-Modified"))]


# The fields a correction may change: everything of a line but its title and body (those make content_hash,
# and a change there is a revision) and what the crawl itself computes.
CORRECTABLE_FIELDS = ("section_name", "authors", "source", "published_date", "published_time", "published_at", "editor", "images")


def correctable_fields(record: dict) -> dict:
    return {name: record.get(name) for name in CORRECTABLE_FIELDS}


def corrections(recorded: dict | None, now: dict) -> dict[str, dict]:
    """The fields whose value ``now`` differs from the ``recorded`` one, as {field: {"old", "new"}}.

    A field that came out empty where a value was recorded is no correction: a template that stopped
    yielding it looks the same, and the field drift alarm is what speaks of that. Without a recorded
    version (a line written before fields were kept) there is nothing to compare with.
    """
    if recorded is None:
        return {}
    return {
        name: {"old": recorded.get(name), "new": value}
        for name, value in now.items()
        if comparable(name, value) != comparable(name, recorded.get(name)) and (value or not recorded.get(name))
    }


def comparable(name: str, value):
    """Image URLs by path and query: the same image served from another host or scheme (a mirror, a move
    to https) is no correction."""
    if name == "images" and isinstance(value, list):
        return [page_key(url) if isinstance(url, str) else url for url in value]
    return value
