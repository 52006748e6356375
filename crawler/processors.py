"""Named processors: plain strings in, plain field values out (``None`` drops the value).

Both site layouts feed their raw strings through these, by way of ``crawler.loaders.ArticleLoader``;
each is a pure function tested alone with a table of cases.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date, datetime, timezone

# `TITLE-中工网` on the legacy site, `TITLE - 理论 - 中工网` on the current one: only the theory
# channel's own names are taken off, so a title that merely contains a dash keeps it.
SITE_SUFFIX = re.compile(r"\s*[-_|｜]\s*(?:(?:理论频道|理论)\s*[-_|｜]\s*)?中工网\s*$")
# Labels of the info line. A value runs up to the next label, so a plain-text line
# (`2026-10-02 15:41:16 来源：工人日报 作者：张三 李四`) splits as well as one span per value.
LABELS = r"(?:作\s*者|文|来\s*源|责任编辑|编\s*辑|记\s*者|浏览|字号|点击)\s*[：:]"
AUTHOR_LABEL = re.compile(r"(?:作\s*者|文)\s*[：:]\s*")
NEXT_LABEL = re.compile(r"\s*(?:" + LABELS + r"|[（(]?\s*责任编辑)")
NAME_SEPARATORS = re.compile(r"[\s、，,；;/]+")
DATE_TIME = re.compile(
    r"(?P<year>\d{4})\s*[-/.年]\s*(?P<month>\d{1,2})\s*[-/.月]\s*(?P<day>\d{1,2})\s*日?"
    r"(?:\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
)
SOURCE_LABEL = re.compile(r"来\s*源\s*[：:]\s*")
EDITOR = re.compile(r"责任编辑\s*[：:]\s*(?P<editor>[^）)]*[^）)\s])")


def clean_text(text: str) -> str | None:
    """Strip whitespace (U+3000 and U+00A0 included); empty text becomes None."""
    text = text.strip()
    return text or None


def strip_site_suffix(title: str) -> str:
    """``TITLE-中工网`` or ``TITLE - 理论 - 中工网`` (the <title> forms) to ``TITLE``."""
    return SITE_SUFFIX.sub("", title)


def _up_to_next_label(text: str) -> str:
    match = NEXT_LABEL.search(text)
    return text[: match.start()] if match else text


def strip_author_label(text: str) -> str:
    """The names in an author line: after 作者： (if there is one), up to the next label of the info line."""
    match = AUTHOR_LABEL.search(text)
    if match:
        text = text[match.end() :]
    return _up_to_next_label(text)


def split_names(text: str) -> list[str]:
    return [name for name in NAME_SEPARATORS.split(text) if name]


def _date_match(text: str) -> re.Match[str] | None:
    for match in DATE_TIME.finditer(text):
        try:
            date(int(match["year"]), int(match["month"]), int(match["day"]))
        except ValueError:
            continue
        return match
    return None


def find_date(text: str) -> str | None:
    """The first valid calendar date in ``text``, as YYYY-MM-DD."""
    match = _date_match(text)
    if not match:
        return None
    return f"{int(match['year']):04d}-{int(match['month']):02d}-{int(match['day']):02d}"


def find_time(text: str) -> str | None:
    """The time of day that follows the first date in ``text``, as HH:MM:SS."""
    match = _date_match(text)
    if not match or match["hour"] is None:
        return None
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def find_source(text: str) -> str | None:
    """The text after 来源：, up to the next label of the info line."""
    match = SOURCE_LABEL.search(text)
    return clean_text(_up_to_next_label(text[match.end() :])) if match else None


def find_editor(text: str) -> str | None:
    match = EDITOR.search(text)
    return match["editor"].strip() if match else None


def content_hash(title: str | None, body: str | None) -> str:
    """Identity of an article's content: equal for a republished copy under another URL.

    NFKC folds full-width digits and punctuation into their usual forms and whitespace is left out,
    so a copy that was re-keyed or re-spaced still matches.
    """
    text = unicodedata.normalize("NFKC", f"{title or ''}\n{body or ''}")
    return hashlib.sha256("".join(text.split()).encode("utf-8")).hexdigest()


def published_at(day: str | None, time_of_day: str | None) -> str | None:
    """ISO 8601: Beijing time when the page shows a time, else the date alone."""
    if day and time_of_day:
        return f"{day}T{time_of_day}+08:00"
    return day


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
