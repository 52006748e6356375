"""Template drift: the optional fields of the last articles written on a site, judged against what its
layout's reader expects (or what the site itself showed before), so that a field the template no longer
fills raises a layout alarm instead of passing in silence.

``judge`` is the judgement, a pure function of a window of rows and a baseline, tested with tables;
``FieldWatch`` only feeds it: the storage pipeline hands it each article it writes (the row goes into the
state's window in the same commit as the line) and asks it for the verdict once, at the end of the run.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from crawler import settings as project_settings
from crawler.processors import looks_like_label, looks_like_placeholder
from crawler.readers import current, legacy
from crawler.urls import layout_of

logger = logging.getLogger(__name__)

# The optional fields watched: a required one (title, body, date) that empties is already a reject.
FIELDS = ("source", "authors", "editor", "images", "published_time")
# After this many articles learned from windows that raised no alarm, a site's own shares replace the
# ones its reader declares: the declared ones come from the mirrors, which are partly reconstructed.
LEARN_AFTER = 200
# A share under half its baseline is an alarm only when so few articles with the field would be this
# unlikely by chance: a field on 1 article in 10 (images) is absent from a window of 20 in 12% of windows,
# which tells nothing; a field on 87% of them (editor) absent from 20 articles never happens by chance.
# One in a thousand per field and site keeps a daily run free of false alarms for years.
CHANCE = 0.001
# The probe marks an empty optional field when its layout expects it on at least this share of articles:
# one that most articles carry. (Below, an empty field is as likely right as wrong: the legacy site shows
# no time on 43% of its articles.)
EXPECTED_BY_PROBE = 0.8
# Odd values: the same image URL on at least half of the window's articles, the same author name on at
# least 80%, counted once the window holds at least this many articles.
ODD_MIN_ARTICLES = 5
ODD_IMAGE_SHARE = 0.5
ODD_AUTHOR_SHARE = 0.8


@dataclass(frozen=True)
class Row:
    """One written article as the window keeps it."""

    url: str
    present: dict[str, bool]
    authors: tuple[str, ...] = ()
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Share:
    value: float
    origin: str  # where the baseline comes from, for the alarm's reader


@dataclass(frozen=True)
class Alarm:
    site: str
    field: str
    kind: str  # "empty": the field's share fell; "odd_value": one value on too many articles
    share_now: float
    share_before: float | None
    window: int
    examples: tuple[str, ...]
    value: str | None = None
    origin: str = ""

    @property
    def key(self) -> str:
        """Its name among the run report's layout_alarms."""
        return f"{'field' if self.kind == 'empty' else 'odd_value'}/{self.site}/{self.field}"

    def message(self) -> str:
        check = f"run `scrapy probe URL` on {' and '.join(self.examples)}" if self.examples else "run `scrapy probe URL` on a recent article"
        if self.kind == "empty":
            return (
                f"{self.site} site: {self.field} is on {self.share_now:.0%} of the last {self.window} articles written,"
                f" against {self.share_before:.0%} before ({self.origin}); the template may have moved it: {check}"
            )
        return (
            f"{self.site} site: one {self.field[:-1] if self.field.endswith('s') else self.field} value {self.value!r} is on"
            f" {self.share_now:.0%} of the last {self.window} articles written (a placeholder, a logo or a label read"
            f" as a value?); list it in THEORY_FIELD_ALLOW if it is right: {check}"
        )


def suspect_fields(record: dict, expected: dict[str, float], declared_by: str) -> dict[str, str]:
    """What ``scrapy probe`` marks in one item: an optional field that came out empty where the layout
    expects it (on EXPECTED_BY_PROBE of the articles or more), and values that look like a label or a placeholder."""
    marks: dict[str, str] = {}
    for field in FIELDS:
        share = expected.get(field, 0)
        if not record.get(field) and share >= EXPECTED_BY_PROBE:
            marks[field] = f"empty, where {declared_by} expects it on {share:.0%} of articles"
    for field in ("authors", "source", "editor"):
        values = record.get(field) or []
        labels = [value for value in ([values] if isinstance(values, str) else values) if looks_like_label(value)]
        if labels:
            marks[field] = f"{', '.join(json.dumps(value, ensure_ascii=False) for value in labels)} looks like a label, not a value"
    images = record.get("images") or []
    placeholders = [url for url in dict.fromkeys(images) if looks_like_placeholder(url) or images.count(url) > 1]
    if placeholders:
        marks["images"] = f"{', '.join(placeholders)} looks like a placeholder, not an article image"
    return marks


def row_of(record: dict) -> Row:
    """What the window keeps of an article line."""
    return Row(
        url=record["url"],
        present={field: bool(record.get(field)) for field in FIELDS},
        authors=tuple(record.get("authors") or ()),
        images=tuple(record.get("images") or ()),
    )


def shares(rows: list[Row]) -> dict[str, float]:
    """Share of the rows that carry each field."""
    if not rows:
        return {}
    return {field: sum(row.present.get(field, False) for row in rows) / len(rows) for field in FIELDS}


def baseline(declared: dict[str, float], learned: dict[str, int], learned_total: int, declared_by: str,
             learn_after: int = LEARN_AFTER) -> dict[str, Share]:
    """Each field's expected share: the site's own, once ``learn_after`` articles were learned from
    windows that raised no alarm; the reader's declared one until then."""
    if learned_total >= learn_after:
        origin = f"learned from {learned_total} articles of this site"
        return {field: Share(learned.get(field, 0) / learned_total, origin) for field in FIELDS}
    return {field: Share(declared[field], f"declared in {declared_by}") for field in FIELDS if field in declared}


def at_most_by_chance(present: int, total: int, share: float) -> float:
    """P(X <= present) for X ~ Binomial(total, share): how likely so few articles carry the field by chance."""
    if share >= 1:
        return 1.0 if present >= total else 0.0
    return sum(math.comb(total, k) * share**k * (1 - share) ** (total - k) for k in range(present + 1))


def _allowed(value: str, allow: frozenset[str]) -> bool:
    return value in allow or urlsplit(value).path in allow


def _examples(rows: list[Row], test) -> tuple[str, ...]:
    """The two most recent rows that show the problem."""
    return tuple(row.url for row in reversed(rows) if test(row))[:2]


def judge(site: str, rows: list[Row], expected: dict[str, Share], window: int,
          allow: frozenset[str] = frozenset()) -> list[Alarm]:
    """The layout alarms of a site's window (oldest row first).

    A field's share is judged once the window is full, so a daily run of a few articles is judged on the
    last ``window`` written over several runs; odd values from ODD_MIN_ARTICLES articles on.
    """
    alarms: list[Alarm] = []
    total = len(rows)
    if total >= window:
        for field in FIELDS:
            if field not in expected:
                continue
            before = expected[field].value
            present = sum(row.present.get(field, False) for row in rows)
            if present / total < before / 2 and at_most_by_chance(present, total, before) < CHANCE:
                alarms.append(Alarm(
                    site, field, "empty", present / total, before, total,
                    _examples(rows, lambda row, field=field: not row.present.get(field, False)), origin=expected[field].origin,
                ))
    if total >= ODD_MIN_ARTICLES:
        for field, least in (("images", ODD_IMAGE_SHARE), ("authors", ODD_AUTHOR_SHARE)):
            counts = Counter(value for row in rows for value in set(getattr(row, field)))
            for value, count in counts.most_common():
                if count < max(ODD_MIN_ARTICLES, least * total):
                    break
                if _allowed(value, allow):
                    continue
                alarms.append(Alarm(
                    site, field, "odd_value", count / total, None, total,
                    _examples(rows, lambda row, field=field, value=value: value in getattr(row, field)), value=value,
                ))
    return alarms


class FieldWatch:
    """Feeds ``judge``: keeps each written article's row in the state's window of its site, and at the end of
    the run judges the window of every site that got new rows, sets the alarms and shares as stats, and lets
    a full window that raised no alarm teach the site's baseline (one that raised any never does)."""

    def __init__(self, state, stats, window: int, allow, expected_by_site: dict[str, tuple[dict[str, float], str]],
                 learn_after: int = LEARN_AFTER):
        self.state = state
        self.stats = stats
        self.window = window
        self.allow = frozenset(allow)
        self.expected_by_site = expected_by_site
        self.learn_after = learn_after
        self.sites_written: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler, state):
        settings = crawler.settings
        window = settings.getint("THEORY_FIELD_WINDOW", project_settings.THEORY_FIELD_WINDOW)
        allow = settings.getlist("THEORY_FIELD_ALLOW", project_settings.THEORY_FIELD_ALLOW)
        expected = {
            "legacy": (legacy.EXPECTED_SHARES, "crawler.readers.legacy"),
            "current": (current.EXPECTED_SHARES, "crawler.readers.current"),
        }
        return cls(state, crawler.stats, window, allow, expected)

    def record(self, record: dict) -> None:
        site = layout_of(record["url"])
        if site is None:
            return
        row = row_of(record)
        self.state.add_field_row(site, row.url, json.dumps(
            {"present": row.present, "authors": row.authors, "images": row.images}, ensure_ascii=False
        ), self.window)
        self.sites_written.add(site)

    def rows(self, site: str) -> list[Row]:
        rows = []
        for url, data in self.state.field_window(site):
            fields = json.loads(data)
            rows.append(Row(url, fields["present"], tuple(fields["authors"]), tuple(fields["images"])))
        return rows

    def judge(self) -> list[Alarm]:
        alarms: list[Alarm] = []
        for site in self.state.field_sites():
            rows = self.rows(site)
            for field, share in shares(rows).items():
                self.stats.set_value(f"theory/field_share/{site}/{field}", round(share, 4))
            if site not in self.sites_written or site not in self.expected_by_site:
                continue  # no new article: yesterday's verdict stands, nothing new to learn
            declared, declared_by = self.expected_by_site[site]
            learned, learned_total = self.state.field_learned(site)
            found = judge(site, rows, baseline(declared, learned, learned_total, declared_by, self.learn_after), self.window, self.allow)
            for alarm in found:
                logger.error("layout alarm: %s", alarm.message())
                self.stats.set_value(f"theory/layout/{alarm.key}", alarm.message())
            if found:
                self.state.taint_field_window(site)
            elif len(rows) >= self.window:
                self.state.learn_field_window(site, FIELDS)
            alarms += found
        return alarms
