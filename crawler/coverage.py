"""What the archive holds and where its holes are: ``scrapy coverage`` and ``<data>/coverage.html``.

Read from the data directory alone, with no network: the crawl state (``state.sqlite3``, opened read-only)
for the articles, their status and published month; ``articles.jsonl`` only where the state has no row
(an article written before the state kept its published date) or no state at all; ``changes.jsonl`` for
the events of revisits; ``runs/`` for the run reports.

A month is a hole when an article of it is owed (pending: failed, rejected, or not reached yet) or was
given up (failed ``THEORY_MAX_ATTEMPTS`` times). A month without articles is not a hole: the channel may
simply have published nothing then. An article not written has no published date of its own: its month
is the date in its URL (the legacy CMS's creation date, a day after the page's date at most). Listing and
feed pages that failed (the last run's ``incomplete_walks``) name no month: they are listed per site.

The page is one HTML file: inline SVG, no script, no external asset, every value escaped.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from crawler.urls import ARTICLE_PATH, CURRENT, CURRENT_ARTICLE_PATH, LEGACY, layout_of

SITES = (LEGACY, CURRENT)
SITE_NAMES = {LEGACY: "legacy site (theory.workercn.cn)", CURRENT: "current site (www.workercn.cn/theory)"}
RECENT_RUNS = 10
RECENT_EVENTS = 10
# A revised body's diff is cut after this many changed paragraphs: the page stays readable.
MAX_DIFF_LINES = 40
OWED = "owed"
GIVEN_UP = "given up"


def url_month(url: str) -> str | None:
    """``YYYY-MM`` of the date in an article URL (legacy ``/241/201511/06/…``, current ``/c/2021-10-23/…``)."""
    path = urlsplit(url).path
    if match := ARTICLE_PATH.match(path):
        return f"{match['month'][:4]}-{match['month'][4:]}"
    if match := CURRENT_ARTICLE_PATH.match(path):
        return match["date"][:7]
    return None


@dataclass
class Coverage:
    sources: list[str] = field(default_factory=list)  # what was read, for the summary's first line
    # site -> month -> articles written
    written: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    # site -> month -> {"owed": n, "given up": n}
    holes: dict[str, dict[str, Counter]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Counter)))
    # (site, section id) -> articles written
    sections: Counter = field(default_factory=Counter)
    section_names: dict[str, str] = field(default_factory=dict)
    # ("owed" | "given up", reason) -> count
    reasons: Counter = field(default_factory=Counter)
    runs: list[dict] = field(default_factory=list)  # the last run reports, newest first
    failed_walk_pages: dict[str, list[str]] = field(default_factory=dict)  # site -> "source: URL (reason)"
    events: list[dict] = field(default_factory=list)  # the last revised/removed/restored events, newest first
    diffs: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # index in events -> (mark, paragraph)

    def months(self, site: str) -> list[str]:
        """Every month from the site's first to its last (written or hole), none left out."""
        known = set(self.written[site]) | set(self.holes[site])
        if not known:
            return []
        first, last = min(known), max(known)
        year, month = int(first[:4]), int(first[5:])
        months = []
        while f"{year:04d}-{month:02d}" <= last and len(months) < 12 * 200:
            months.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months


def _read_jsonl(path: Path):
    if not path.exists():
        return
    with open(path, "rb") as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a torn last line: the next run cuts it


def gather(data_dir: Path) -> Coverage:
    coverage = Coverage()
    state_path = data_dir / "state.sqlite3"
    counted: set[str] = set()
    undated = 0  # written articles the state knows no published date of: read from articles.jsonl
    if state_path.exists():
        coverage.sources.append("state.sqlite3")
        db = sqlite3.connect(f"{state_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT a.article_id, a.url, a.section_id, a.status, a.last_error, r.published_date"
                " FROM articles a LEFT JOIN revisions r ON r.article_id = a.article_id"
            ).fetchall()
        finally:
            db.close()
        for article_id, url, section_id, status, last_error, published_date in rows:
            site = layout_of(url)
            if site is None:
                continue
            if status == "written":
                if not published_date:
                    undated += 1
                    continue
                counted.add(article_id)
                coverage.written[site][published_date[:7]] += 1
                coverage.sections[(site, section_id or "?")] += 1
            elif status in ("pending", "claimed", "failed"):
                kind = GIVEN_UP if status == "failed" else OWED
                coverage.holes[site][url_month(url) or "?"][kind] += 1
                coverage.reasons[(kind, last_error or "not fetched yet")] += 1
    articles_path = data_dir / "articles.jsonl"
    if articles_path.exists():
        # The state has the counts; the output is read for what it lacks (no state, undated rows), and
        # else only as far as it takes to name every section.
        whole = undated or not state_path.exists()
        unnamed = {section for _, section in coverage.sections}
        coverage.sources.append("articles.jsonl" if whole else "articles.jsonl (section names)")
        for row in _read_jsonl(articles_path):
            if not whole and not unnamed:
                break
            if not isinstance(row, dict) or not row.get("url"):
                continue
            if row.get("section_id") and row.get("section_name"):
                coverage.section_names[row["section_id"]] = row["section_name"]
                unnamed.discard(row["section_id"])
            site = layout_of(row["url"])
            if not whole or site is None or row.get("article_id") in counted:
                continue
            month = (row.get("published_date") or "")[:7] or url_month(row["url"])
            counted.add(row.get("article_id"))
            coverage.written[site][month] += 1
            coverage.sections[(site, row.get("section_id") or "?")] += 1
    _gather_runs(coverage, data_dir / "runs")
    _gather_events(coverage, data_dir)
    return coverage


def _gather_runs(coverage: Coverage, runs_dir: Path) -> None:
    if not runs_dir.is_dir():
        return
    reports = []
    for path in sorted(runs_dir.glob("*.json"), reverse=True)[:RECENT_RUNS]:
        try:
            report = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict):
            report["_file"] = path.name
            reports.append(report)
    if reports:
        coverage.sources.append(f"runs/ ({len(reports)} last)")
    coverage.runs = reports
    if reports:
        for source, pages in (reports[0].get("incomplete_walks") or {}).items():
            site = LEGACY if source.isdigit() else CURRENT
            for page in pages if isinstance(pages, list) else [pages]:
                coverage.failed_walk_pages.setdefault(site, []).append(f"{source}: {page}")


def _gather_events(coverage: Coverage, data_dir: Path) -> None:
    changes_path = data_dir / "changes.jsonl"
    if not changes_path.exists():
        return
    coverage.sources.append("changes.jsonl")
    events = [event for event in _read_jsonl(changes_path) if isinstance(event, dict)]
    recent = events[-RECENT_EVENTS:]
    first_index = len(events) - len(recent)
    # The body each revised event replaced: the article's previous revised event, or its articles.jsonl line.
    wanted = {event.get("article_id") for event in recent if event.get("event") == "revised"}
    previous_body: dict[str, str] = {}
    if wanted:
        for row in _read_jsonl(data_dir / "articles.jsonl"):
            if isinstance(row, dict) and row.get("article_id") in wanted and row["article_id"] not in previous_body:
                previous_body[row["article_id"]] = row.get("body") or ""
    for index, event in enumerate(events):
        if event.get("event") != "revised":
            continue
        new_body = (event.get("item") or {}).get("body") or ""
        if index >= first_index:
            old_body = previous_body.get(event.get("article_id"))
            coverage.diffs[index - first_index] = paragraph_diff(old_body, new_body) if old_body is not None else []
        previous_body[event.get("article_id")] = new_body
    coverage.events = list(reversed(recent))
    count = len(recent)
    coverage.diffs = {count - 1 - index: diff for index, diff in coverage.diffs.items()}


def paragraph_diff(old: str, new: str) -> list[tuple[str, str]]:
    """The paragraphs removed ("-") and added ("+") from ``old`` to ``new``, with one unchanged paragraph
    (" ") around each change; "…" marks paragraphs left out."""
    lines: list[tuple[str, str]] = []
    for group in difflib.SequenceMatcher(None, old.split("\n"), new.split("\n"), autojunk=False).get_grouped_opcodes(1):
        if lines:
            lines.append(("…", ""))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines.extend((" ", paragraph) for paragraph in old.split("\n")[i1:i2])
                continue
            lines.extend(("-", paragraph) for paragraph in old.split("\n")[i1:i2])
            lines.extend(("+", paragraph) for paragraph in new.split("\n")[j1:j2])
    return lines[:MAX_DIFF_LINES]


# --- the terminal summary ---


def summary(coverage: Coverage, data_dir: Path) -> str:
    lines = [f"coverage of {data_dir} (from {', '.join(coverage.sources) or 'nothing: no data yet'})"]
    lines.append(f"  {'year':<6}{'site':<9}{'articles':>9}  holes")
    for site in SITES:
        months = coverage.months(site)
        for year in sorted({month[:4] for month in months}):
            count = sum(n for month, n in coverage.written[site].items() if month.startswith(year))
            holes = [
                f"{month} ({describe_hole(coverage.holes[site][month])})"
                for month in months
                if month.startswith(year) and month in coverage.holes[site]
            ]
            lines.append(f"  {year:<6}{site:<9}{count:>9}  {', '.join(holes) or '-'}")
        for page in coverage.failed_walk_pages.get(site, []):
            lines.append(f"  {site} walk page failed in the last run: {page}")
    owed = sum(n for (kind, _), n in coverage.reasons.items() if kind == OWED)
    given_up = sum(n for (kind, _), n in coverage.reasons.items() if kind == GIVEN_UP)
    kinds = Counter(event.get("event") for event in coverage.events)
    lines.append(
        f"  {owed} owed, {given_up} given up; last {len(coverage.events)} events:"
        f" {kinds['revised']} revised, {kinds['removed']} removed, {kinds['restored']} restored"
    )
    if coverage.runs:
        last = coverage.runs[0]
        lines.append(f"  last run {last.get('started_at')}: exit {last.get('exit_status')} ({last.get('exit_meaning', '')})")
    return "\n".join(lines)


def describe_hole(counts: Counter) -> str:
    return ", ".join(f"{counts[kind]} {kind}" for kind in (OWED, GIVEN_UP) if counts[kind])


# --- the page ---

STYLE = """
body{font:14px/1.45 sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right}.hole{color:#b00020}.legend span{margin-right:16px}
svg{display:block;margin:8px 0;background:#fafafa;border:1px solid #ddd}
.diff{font-family:monospace;white-space:pre-wrap;margin:4px 0 12px;border:1px solid #ddd;padding:4px}
.diff .del{background:#fde2e2}.diff .ins{background:#e2f6e2}.diff .gap{color:#888}
"""
BAR = "#3b6fb6"
HOLE = "#d62728"


def month_chart(coverage: Coverage, site: str) -> str:
    """One bar per month of the site, first to last; a hole month has a red mark under its bar."""
    months = coverage.months(site)
    if not months:
        return "<p>No article of this site in the archive.</p>"
    width, height, top, bottom, left = max(3, min(24, 840 // len(months))), 160, 10, 40, 40
    tallest = max(coverage.written[site].values(), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="months" width="{left + width * len(months) + 10}"'
        f' height="{top + height + bottom}" role="img" aria-label="{escape(site)} articles by month">',
        f'<text x="4" y="{top + 10}" font-size="10">{tallest}</text>',
        f'<line x1="{left}" y1="{top + height}" x2="{left + width * len(months)}" y2="{top + height}" stroke="#999"/>',
    ]
    for index, month in enumerate(months):
        count = coverage.written[site].get(month, 0)
        hole = coverage.holes[site].get(month)
        x = left + index * width
        bar = round(height * count / tallest)
        classes = "month" + (" hole" if hole else "") + (" empty" if not count else "")
        tip = f"{month}: {count} articles" + (f"; hole: {describe_hole(hole)}" if hole else "")
        parts.append(f'<g class="{classes}" data-month="{escape(month)}"><title>{escape(tip)}</title>')
        parts.append(
            f'<rect class="bar" x="{x + 1}" y="{top + height - bar}" width="{max(1, width - 2)}" height="{bar}" fill="{BAR}"/>'
        )
        if hole:
            parts.append(
                f'<rect class="hole-mark" x="{x}" y="{top + height + 2}" width="{width}" height="8" fill="{HOLE}"/>'
            )
        parts.append("</g>")
        if month.endswith("-01") or index == 0:
            parts.append(f'<text x="{x}" y="{top + height + 24}" font-size="10">{escape(month[:4])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{escape(str(cell))}</td>' if index in numeric else f"<td>{escape(str(cell))}</td>"
            for index, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render(coverage: Coverage, data_dir: Path) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh"><head><meta charset="utf-8"><title>theory-crawler coverage</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>What the archive holds: {escape(str(data_dir))}</h1>",
        f"<p>Read from {escape(', '.join(coverage.sources) or 'nothing')}. "
        '<span class="legend"><span style="color:#3b6fb6">■ articles written, by published month</span>'
        '<span class="hole">■ hole: articles of that month owed or given up</span></span> '
        "A month without a bar and without a red mark had no article.</p>",
    ]
    for site in SITES:
        months = coverage.months(site)
        total = sum(coverage.written[site].values())
        holes = sum(1 for month in months if month in coverage.holes[site])
        out.append(f"<h2>{escape(SITE_NAMES[site])}</h2>")
        if months:
            out.append(
                f"<p>{total} articles, {months[0]} to {months[-1]} ({len(months)} months,"
                f" {sum(1 for m in months if not coverage.written[site].get(m))} without articles, {holes} with holes)</p>"
            )
        out.append(month_chart(coverage, site))
        hole_rows = [[month, describe_hole(coverage.holes[site][month])] for month in months if month in coverage.holes[site]]
        if hole_rows:
            out.append('<p class="hole">Holes:</p>' + _table(["month", "articles missing"], hole_rows))
        failed = coverage.failed_walk_pages.get(site)
        if failed:
            out.append('<p class="hole">Listing or feed pages that failed in the last run (their month is unknown):</p>')
            out.append("<ul>" + "".join(f"<li>{escape(page)}</li>" for page in failed) + "</ul>")
    out.append("<h2>Totals per site and section</h2>")
    out.append(_table(
        ["site", "section", "articles"],
        [[site, f"{section} {coverage.section_names.get(section, '')}".strip(), count]
         for (site, section), count in sorted(coverage.sections.items())],
        {2},
    ))
    out.append("<h2>Owed and given-up articles, by reason</h2>")
    out.append(_table(["", "reason", "articles"], [[kind, reason, n] for (kind, reason), n in sorted(coverage.reasons.items())], {2}))
    out.append("<h2>Last runs</h2>")
    out.append(_table(
        ["started", "duration (s)", "written", "requests", "exit status"],
        [[run.get("started_at", "?"), run.get("duration_seconds", "?"), run.get("written", "?"), run.get("requests", "?"),
          f"{run.get('exit_status', '?')} {run.get('exit_meaning', '')}".strip()] for run in coverage.runs],
        {1, 2, 3},
    ))
    out.append("<h2>Recent changes</h2>")
    if not coverage.events:
        out.append("<p>None.</p>")
    for index, event in enumerate(coverage.events):
        kind = event.get("event", "?")
        out.append(
            f'<h3 class="event {escape(kind)}">{escape(kind)} {escape(str(event.get("detected_at", "")))}: '
            f'<a href="{escape(str(event.get("url", "")))}">{escape(str(event.get("article_id", "")))}</a></h3>'
        )
        if kind == "revised":
            title = (event.get("item") or {}).get("title")
            out.append(f"<p>version {escape(str(event.get('version', '?')))}: {escape(str(title or ''))}</p>")
            diff = coverage.diffs.get(index)
            if diff:
                css = {"-": "del", "+": "ins", " ": "same", "…": "gap"}
                out.append('<div class="diff">' + "".join(
                    f'<div class="{css[mark]}">{escape(mark)} {escape(text)}</div>' for mark, text in diff
                ) + "</div>")
            else:
                out.append("<p>The previous body is not in the data directory.</p>")
        elif kind == "removed":
            evidence = event.get("evidence") or {}
            out.append(_table(["evidence", "value"], [[key, json.dumps(value, ensure_ascii=False)] for key, value in evidence.items()]))
        elif kind == "restored":
            out.append(f"<p>status {escape(str(event.get('status', '?')))}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_page(data_dir: Path, coverage: Coverage | None = None) -> Path:
    """Write ``<data_dir>/coverage.html`` atomically (a reader never sees half a page)."""
    coverage = coverage or gather(data_dir)
    path = data_dir / "coverage.html"
    temporary = data_dir / ".coverage.html.tmp"
    try:
        temporary.write_text(render(coverage, data_dir), encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)  # a full disk leaves no half page behind
    return path
