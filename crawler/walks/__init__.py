"""Walk rules: which listing or feed page to fetch next, when a walk ends, and whether it was complete.

Each source has a small pure object here (``ListingWalk`` for a legacy section, ``FeedWalk`` for the
current channel's JSON feed), told what each page turned out to be; the spider routes callbacks to it
and does the fetching, logging and bookkeeping. No Scrapy here: the rules are table-tested alone.

The rules every walk shares:

- In an incremental walk of a source walked before, the walk stops at the first page whose articles are
  all known: what is new is on top. It is complete: nothing past it is new.
- In a full walk (or of a source never walked to its end), a page whose article URLs were all seen
  earlier *in this walk* is a repeated page: skipped, and the walk goes on. Sites serve those when their
  listing shifts under the walk, or when a pagination links back.
- A page that fails (a download error after retries, not readable) is a failure of the walk, which goes
  on to the next page where it can tell which one that is.
- A walk ends at its last page (a 404 where the numbering overshoots, an empty page, no next link), at
  ``max_pages``, or after ``MAX_BAD_IN_ROW`` pages in a row that failed or were repeated.
- A walk is complete when it ended without a failed page; repeated pages do not count against it (three
  in a row end it complete: a listing that only repeats itself has nothing more to give). An incomplete
  walk is walked in full again next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Pages in a row that failed or were repeated, after which a walk gives up for this run: past that the
# source is more likely broken than shifting.
MAX_BAD_IN_ROW = 3

# Why a walk ended. All but the last two are the ends of a complete walk, when no page failed.
END_OF_PAGES = "end_of_pages"  # no next page: a 404 past the last, an empty page, no next link
CAUGHT_UP = "caught_up"  # incremental: every article of a page is known
PAGINATION_LOOP = "pagination_loop"  # the last page's next link leads back to an earlier page
BAD_IN_ROW = "bad_in_row"
PAGE_CAP = "page_cap"
LAYOUT = "layout"  # a page the reader found nothing on: a layout alarm, raised by the spider
COMPLETE_ENDS = frozenset({END_OF_PAGES, CAUGHT_UP, PAGINATION_LOOP, BAD_IN_ROW})


@dataclass(frozen=True)
class Page:
    """A page to fetch. ``guessed``: its URL follows from the numbering, not from a link the site gave."""

    number: int
    url: str
    guessed: bool = False


@dataclass(frozen=True)
class Step:
    """What a walk decided after a page: the next page to fetch (None: the walk has ended), and an odd
    thing worth a warning and a stat (``event``, e.g. ``repeated_page``) with its detail."""

    next: Page | None
    event: str | None = None
    detail: str = ""


@dataclass
class Walk:
    """The rules shared by every paginated source; subclasses say how pages are numbered and linked."""

    source: str  # the section id, or the channel id
    full: bool  # walk every page, not only up to the first known one
    walked_before: bool  # the source was walked to its end in an earlier run
    max_pages: int
    pages_read: int = 0
    seen: set[str] = field(default_factory=set)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (page URL, reason)
    repeated: list[str] = field(default_factory=list)
    bad_in_row: int = 0
    end: str | None = None
    # What the walk knows of what is left, for the progress line (nothing here changes a rule):
    last_page: int | None = None  # the source's last page number, once a page named it
    new_links: int = 0  # article links read that were not known before this run

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def complete(self) -> bool:
        return self.end in COMPLETE_ENDS and not self.failures

    @property
    def pages_left(self) -> int | None:
        """Pages still to fetch, or None while the walk cannot tell: its source named no last page, or it
        is incremental and stops at the first page of known articles, wherever that is."""
        if self.ended:
            return 0
        if self.last_page is None or not self.walks_on:
            return None
        return max(0, min(self.last_page, self.max_pages) - self.pages_read - len(self.failures))

    @property
    def walks_on(self) -> bool:
        """Whether a page of known articles leads on to the next one."""
        return self.full or not self.walked_before

    def first(self) -> Page:
        raise NotImplementedError

    def following(self, page: Page, next_url: str | None, read: bool) -> Page | str:
        """The page after ``page`` (``read``: its links were read, and ``next_url`` is its next link), or
        why there is none (END_OF_PAGES or PAGINATION_LOOP)."""
        raise NotImplementedError

    # --- what a page turned out to be ---

    def read(self, page: Page, article_urls: list[str], new: int, next_url: str | None = None) -> Step:
        """A page whose article links were read; ``new`` of them were not known before this run."""
        if self.ended:
            return Step(None)
        self.pages_read += 1
        if article_urls and self.seen.issuperset(article_urls):
            if not self.walks_on:
                return self._end(CAUGHT_UP)
            self.repeated.append(page.url)
            repeated = Step(None, "repeated_page", f"every article of {page.url} was on an earlier page of this walk; skipped")
            return self._bad(page, repeated, next_url, read=True)
        self.seen.update(article_urls)
        self.new_links += new
        self.bad_in_row = 0
        if not new and not self.walks_on:
            return self._end(CAUGHT_UP)
        return self._next(page, next_url)

    def failed(self, page: Page, reason: str) -> Step:
        """A page that could not be fetched or read."""
        if self.ended:
            return Step(None)
        self.failures.append((page.url, reason))
        return self._bad(page, Step(None))

    def missing(self, page: Page) -> Step:
        """A 404 or 410."""
        if self.ended:
            return Step(None)
        if page.guessed:
            return self._end(END_OF_PAGES)  # the numbering overshot the last page
        return self.failed(page, "missing")

    def empty(self, page: Page) -> Step:
        """A page that lists nothing: the end of the source."""
        return Step(None) if self.ended else self._end(END_OF_PAGES)

    def layout_changed(self, page: Page) -> Step:
        """A page with entries but no article link: the spider raises the alarm; the walk is incomplete."""
        return Step(None) if self.ended else self._end(LAYOUT)

    # --- rules ---

    def _bad(self, page: Page, step: Step, next_url: str | None = None, read: bool = False) -> Step:
        """A page that failed or was repeated; ``step`` carries its event."""
        self.bad_in_row += 1
        if self.bad_in_row >= MAX_BAD_IN_ROW:
            self._end(BAD_IN_ROW)
            return step
        following = self._next(page, next_url, read)
        return Step(following.next, step.event or following.event, step.detail or following.detail)

    def _next(self, page: Page, next_url: str | None, read: bool = True) -> Step:
        following = self.following(page, next_url, read)
        if isinstance(following, str):
            self._end(following)
            if following == PAGINATION_LOOP:
                return Step(None, "pagination_loop", f"the next link of {page.url} leads back to {next_url}; that is the end")
            return Step(None)
        if following.number > self.max_pages:
            # A listing longer than the cap is more likely a loop the rules above did not see; either way
            # its end was not reached.
            self.failures.append((following.url, PAGE_CAP))
            self._end(PAGE_CAP)
            return Step(None, "page_cap_reached", f"stopping at the page cap ({self.max_pages})")
        return Step(following)

    def _end(self, why: str) -> Step:
        self.end = why
        return Step(None)
