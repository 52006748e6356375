"""The progress line's judgement: how much work is known to remain, and how long it takes at the current rate.

Pure functions of a snapshot of the run (``RunProgress``), taken by ``crawler.extensions.ProgressLog``, so
that the estimate is tested on synthetic runs. The work known to remain:

- the requests already queued or in flight (articles discovered and not fetched yet, articles owed by
  earlier runs, revisits, images, the next page of each walk);
- the pages each walk still has to fetch, where the source says how many (the legacy pagination names
  its last page on page 1), and the articles they will bring, at the walk's own rate of new articles per
  page so far, each costing the requests an article has cost so far (its pages, its images).

While some walk cannot tell how far it has to go (the feed names no last page; an incremental walk stops
at the first page of known articles), or a start page has not answered yet, there is no honest number:
the line says which walk is in progress instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The kinds of responses a run gets, in the order the progress line lists them; what is none of them
# (redirects, 4xx/5xx answers, retried failures) is "other", so that the parts add up to the total.
RESPONSE_KINDS = ("robots.txt", "start", "listing", "feed", "article", "revisit", "image")


@dataclass(frozen=True)
class WalkProgress:
    kind: str  # "listing" or "feed"
    source: str  # the section id, or the channel id
    pages_read: int
    pages_left: int | None  # None: the walk cannot tell yet
    new_links: int  # articles not known before this run, read on its pages so far


@dataclass
class RunProgress:
    responses: int
    responses_by_kind: dict[str, int]
    discovered: int  # articles found this run that were not known before
    owed: int  # articles owed by earlier runs, fetched again this run
    written: int
    duplicates: int
    failed: int
    rejected: int
    other_channel: int
    queued: int  # requests queued or in flight
    rate: float  # responses per second over the last interval
    walks: list[WalkProgress] = field(default_factory=list)
    starts_pending: int = 0  # start pages not answered yet: their walks are not even known

    @property
    def articles_done(self) -> int:
        return self.written + self.duplicates + self.failed + self.rejected + self.other_channel


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # None: not known (a walk in progress, a start page pending, no rate)
    pages_left: int  # walk pages not queued yet, of walks that know their end
    articles_to_come: int  # articles those pages are expected to bring
    requests_left: int
    in_progress: tuple[str, ...] = ()  # why there is no number


def requests_per_article(progress: RunProgress) -> float:
    """Requests an article has cost so far this run (its pages and its images), 1 before any is done."""
    done = progress.articles_done
    if not done:
        return 1.0
    spent = progress.responses_by_kind.get("article", 0) + progress.responses_by_kind.get("image", 0)
    return max(1.0, spent / done)


def estimate(progress: RunProgress) -> Estimate:
    in_progress = []
    if progress.starts_pending:
        in_progress.append(f"waiting for {plural(progress.starts_pending, 'start page')}")
    pages_left = articles = 0.0
    for walk in progress.walks:
        if walk.pages_left is None:
            in_progress.append(f"{walk_name(walk)} in progress, {plural(walk.pages_read, 'page')} so far")
            continue
        pages_left += walk.pages_left
        if walk.pages_left and walk.pages_read:
            articles += walk.pages_left * walk.new_links / walk.pages_read
    requests_left = round(progress.queued + pages_left + articles * requests_per_article(progress))
    if in_progress or not progress.rate:
        return Estimate(None, int(pages_left), round(articles), requests_left, tuple(in_progress))
    return Estimate(requests_left / progress.rate, int(pages_left), round(articles), requests_left)


def walk_name(walk: WalkProgress) -> str:
    return "feed walk" if walk.kind == "feed" else f"listing {walk.source} walk"


def plural(count: int, noun: str) -> str:
    """``1 page``, ``2 pages``; the nouns of the progress line all take an s."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_duration(seconds: float) -> str:
    if seconds < 180:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def progress_line(progress: RunProgress) -> str:
    """The whole progress line: responses by kind (adding up to the total), articles, and what is left."""
    kinds = [f"{progress.responses_by_kind.get(kind, 0)} {kind}" for kind in RESPONSE_KINDS]
    other = progress.responses - sum(progress.responses_by_kind.get(kind, 0) for kind in RESPONSE_KINDS)
    kinds.append(f"{other} other")  # redirects, 4xx/5xx answers, retried failures
    articles = (
        f"articles: {progress.discovered} discovered, {progress.owed} owed by earlier runs;"
        f" {progress.written} written, {plural(progress.duplicates, 'duplicate')}, {progress.failed} failed,"
        f" {progress.rejected} rejected"
    )
    found = estimate(progress)
    queued = plural(progress.queued, "request") + " queued"
    if found.in_progress:
        left = f"left: {'; '.join(found.in_progress)} (no time left until then); {queued}"
    else:
        parts = [queued]
        if found.pages_left:
            parts.append(f"{plural(found.pages_left, 'walk page')} to come")
        if found.articles_to_come:
            parts.append(f"about {plural(found.articles_to_come, 'article')} on them")
        if found.seconds is None:
            left = f"left: {', '.join(parts)}; no page fetched lately"
        else:
            left = (
                f"left: {', '.join(parts)}: about {format_duration(found.seconds)}"
                f" at {progress.rate:.1f} responses/s"
            )
    return f"progress: {plural(progress.responses, 'response')} ({', '.join(kinds)}); {articles}; {left}"


def _prefixed_sum(stats: dict, prefix: str) -> int:
    return sum(value for key, value in stats.items() if key.startswith(prefix) and isinstance(value, int))


def from_stats(stats: dict, rate: float, walks: list[WalkProgress], in_flight: int = 0, sites: int = 0) -> RunProgress:
    """A snapshot of the run from its stats (the crawl's own and Scrapy's), the walks and the downloader;
    ``sites``: how many sites this run crawls, each with one start page."""
    by_kind = {
        "robots.txt": stats.get("robotstxt/response_count", 0),
        "start": stats.get("theory/start/pages", 0),
        "listing": stats.get("theory/listing/pages", 0),
        "feed": stats.get("theory/feed/pages", 0),
        "article": stats.get("theory/article/pages", 0),
        "revisit": stats.get("theory/revisit/pages", 0),
        "image": stats.get("theory/images/captured", 0),
    }
    started = stats.get("theory/start/pages", 0) + sum(1 for key in stats if key.startswith("theory/start_failed/"))
    return RunProgress(
        responses=stats.get("response_received_count", 0),
        responses_by_kind=by_kind,
        discovered=stats.get("theory/articles/discovered", 0),
        owed=stats.get("theory/articles/owed", 0),
        written=stats.get("theory/written", 0),
        duplicates=stats.get("theory/duplicates/url", 0) + stats.get("theory/duplicates/content", 0),
        failed=_prefixed_sum(stats, "theory/article/failed/"),
        rejected=stats.get("theory/rejected", 0),
        other_channel=stats.get("theory/article/other_channel", 0),
        queued=stats.get("scheduler/enqueued", 0) - stats.get("scheduler/dequeued", 0) + in_flight,
        rate=rate,
        walks=walks,
        starts_pending=max(0, sites - started),
    )
