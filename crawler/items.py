"""The article item: the contract of one line of ``articles.jsonl``.

The same contract is published as JSON Schema in ``crawler/schema/article.schema.json``
for downstream archives; the validation pipeline enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version


def parser_version() -> str:
    """The project's version, from its package metadata (pyproject.toml's ``version``)."""
    try:
        return version("theory-crawler")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


PARSER_VERSION = parser_version()


@dataclass
class ArticleItem:
    # Defaults exist only so that ItemLoader can build an empty item and fill it in;
    # the validation pipeline rejects an item whose required fields stayed empty.
    url: str | None = None
    article_id: str | None = None
    section_id: str | None = None
    section_name: str | None = None
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    source: str | None = None
    published_date: str | None = None
    published_time: str | None = None
    published_at: str | None = None
    editor: str | None = None
    body: str | None = None
    images: list[str] = field(default_factory=list)
    page_count: int | None = None
    content_hash: str | None = None
    crawled_at: str | None = None
    # Where each page's response record is in the run's WARC files: {file, offset, length, record_id}.
    warc: list[dict] = field(default_factory=list)
    # The crawler's version that read the line: a downstream archive knows which lines a parser fix may correct.
    parser_version: str = PARSER_VERSION


@dataclass
class ContentDuplicate:
    """A dropped content duplicate: one line of ``duplicates.jsonl`` (``crawler/schema/duplicate.schema.json``).

    The dedupe pipeline makes it in place of the article it drops; the storage pipeline writes it and drops it.
    """

    url: str  # the dropped copy, page 1, as articles.jsonl would have had it
    article_id: str
    section_id: str
    kept_article_id: str  # the copy written to articles.jsonl, the first one seen
    content_hash: str
    detected_at: str  # ISO 8601, UTC


@dataclass
class ArchivedArticleItem(ArticleItem):
    """An article read from a public web archive's captures (crawler/walks/cdx.py): the same line as one
    read from the live host (``url`` is the original legacy URL), plus where each page came from."""

    # For each page, in page order: {"url": the replay URL read, "timestamp": the capture's 14-digit UTC timestamp}.
    archived_from: list[dict] = field(default_factory=list)
