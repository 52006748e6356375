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
LABELS = r"(?:作\s*者|文|来\s*源|责任编辑|责\s*编|编\s*辑|记\s*者|浏览|字号|点击)\s*[：:]"
AUTHOR_LABEL = re.compile(r"(?:作\s*者|文)\s*[：:]\s*")
NEXT_LABEL = re.compile(r"\s*(?:" + LABELS + r"|[（(]?\s*责任编辑)")
NAME_SEPARATORS = re.compile(r"[\s、，,；;/]+")
DATE_TIME = re.compile(
    r"(?P<year>\d{4})\s*[-/.年]\s*(?P<month>\d{1,2})\s*[-/.月]\s*(?P<day>\d{1,2})\s*日?"
    r"(?:\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
)
SOURCE_LABEL = re.compile(r"来\s*源\s*[：:]\s*")
# 责任编辑： on both sites' templates; 编辑： and 责编： are the other forms Chinese news pages label it with.
EDITOR = re.compile(r"(?:责任编辑|责\s*编|编\s*辑)\s*[：:]\s*(?P<editor>[^）)】\]]*[^）)】\]\s])")
# Where the names of a byline start: everything before these labels is the rest of the info line.
BYLINE_START = re.compile(r"(?:作\s*者\s*[：:]|(?<![^\s，,；;])文\s*(?:/\s*图\s*[：:]?|[/／｜|：:]))\s*")
# Roles between names (本报记者 张三 通讯员 李四); text glued to the front of one is the outlet, not a name.
BYLINE_ROLE = re.compile(r"(?:本报记者|记\s*者|通\s*讯\s*员)\s*[：:]?\s*")
# Labels of the info line that end a byline's names.
AFTER_BYLINE = re.compile(r"\s*(?:(?:来\s*源|责任编辑|责\s*编|编\s*辑|浏览|字号|点击)\s*[：:]|[（(]\s*责任编辑)")
# The labels a field value must never be, or hold: what a template change leaves in a field.
LABEL_WORDS = re.compile(r"^(?:作\s*者|文|图|文\s*/\s*图|来\s*源|责任编辑|责\s*编|编\s*辑|记\s*者|本报记者|通\s*讯\s*员|发布时间|时间|日期)$")
# No name, source or editor holds a colon: a value with one still holds its label (撰文：, 来源：).
HOLDS_LABEL = re.compile(r"[：:]|^文\s*[/／｜|]")
# The attributes a lazy-loading script reads the real image from, in the order they win; then the
# first URL of a responsive image's candidates.
LAZY_IMAGE_ATTRIBUTES = ("data-src", "data-original", "data-lazy-src")
SRCSET_ATTRIBUTES = ("srcset", "data-srcset")
# A src shared by this many images of one page is a placeholder (a blank.gif or a spinner the lazy-loading
# script swaps out), not an article image: no article of either mirror shows one image twice, while a
# placeholder stands for every lazy image of the page. Two is still a plausible real repeat (a poster at
# the top and at the end); from three on it is decoration or a placeholder either way.
PLACEHOLDER_REPEATS = 3
# A legacy listing's page count, as its pagination prints it: 共3页.
PAGE_COUNT = re.compile(r"共\s*(\d{1,6})\s*页")
PLACEHOLDER_NAME = re.compile(r"(?:^|/)(?:blank|spacer|placeholder|loading|lazy|grey|gray|pixel|default|transparent)(?:[-_.][^/]*)?\.(?:gif|png|jpe?g|svg|webp)$", re.I)


def page_count(text: str | None) -> int | None:
    """The number in a pagination's "共N页" (N pages in all), or None."""
    match = PAGE_COUNT.search(text or "")
    return int(match[1]) if match and int(match[1]) > 0 else None


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


def author_names(text: str) -> list[str]:
    """The names of a byline or author line, in order, without its labels.

    ``作者：``, ``文/``, ``文｜``, ``文/图`` start the names (what comes before them is the rest of the info
    line); ``记者``, ``本报记者`` and ``通讯员`` stand between names, and an outlet glued to the front of one
    (``工人日报-中工网记者 张三``) is no author. The names end at the next label of the info line.
    """
    start = BYLINE_START.search(text)
    if start:
        text = text[start.end() :]
    end = AFTER_BYLINE.search(text)
    if end:
        text = text[: end.start()]
    names: list[str] = []
    position = 0
    for role in BYLINE_ROLE.finditer(text):
        before = text[position : role.start()]
        # An outlet is glued to its role (中工网记者); names end with a space before the next role.
        if not (position == 0 and before.strip() and not before[-1].isspace()):
            names += split_names(before)
        position = role.end()
    names += split_names(text[position:])
    return [name for name in names if not LABEL_WORDS.match(name)]


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
    """The name after 责任编辑：, 编辑： or 责编：, up to a closing bracket or the next label."""
    match = EDITOR.search(text)
    return clean_text(_up_to_next_label(match["editor"])) if match else None


def image_url(attributes: dict[str, str]) -> str | None:
    """The URL an <img> shows, from its attributes: a lazy-loaded image's real URL wins over its src.

    The first of data-src, data-original, data-lazy-src, then the first URL of srcset or data-srcset,
    then src. A data: URI is never an article image (an inline placeholder or pixel).
    """
    for name in LAZY_IMAGE_ATTRIBUTES:
        if url := _usable_image_url(attributes.get(name)):
            return url
    for name in SRCSET_ATTRIBUTES:
        candidates = (attributes.get(name) or "").strip().split()
        if candidates and (url := _usable_image_url(candidates[0].rstrip(","))):
            return url
    return _usable_image_url(attributes.get("src"))


def _usable_image_url(value: str | None) -> str | None:
    url = (value or "").strip()
    return url if url and not url.lower().startswith("data:") else None


def placeholder_sources(sources: list[str]) -> set[str]:
    """The src values that stand in for images on one page: those shared by PLACEHOLDER_REPEATS images or more."""
    counts: dict[str, int] = {}
    for source in sources:
        source = source.strip()
        if source:
            counts[source] = counts.get(source, 0) + 1
    return {source for source, count in counts.items() if count >= PLACEHOLDER_REPEATS}


def looks_like_placeholder(url: str) -> bool:
    """An image URL that names a placeholder (blank.gif, loading.png, a data: URI) rather than a picture."""
    return url.strip().lower().startswith("data:") or bool(PLACEHOLDER_NAME.search(url.split("?", 1)[0].split("#", 1)[0]))


def looks_like_label(value: str) -> bool:
    """A field value that is a label (文, 编辑) or still holds one (来源：…): a template the processors
    do not know yet."""
    value = value.strip()
    return bool(LABEL_WORDS.match(value) or HOLDS_LABEL.search(value))


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
