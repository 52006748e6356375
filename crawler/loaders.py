"""The article loader: what the readers of every layout found, turned into one ``ArticleItem``.

A reader (``crawler.readers.*``) returns an ``ArticlePage`` of raw strings per page; ``load_article``
feeds those through the named processors of ``crawler.processors``, the same for every layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from itemloaders import ItemLoader
from itemloaders.processors import Identity, Join, MapCompose, TakeFirst

from crawler.items import ArticleItem
from crawler.processors import (
    author_names,
    clean_text,
    content_hash,
    find_date,
    find_editor,
    find_source,
    find_time,
    published_at,
    strip_site_suffix,
    utc_now_iso,
)
from crawler.urls import article_id, canonical_article_url


class ArticleLoader(ItemLoader):
    # Every field names its processors here, which also keeps itemloaders from looking them up in the
    # item's field metadata on each value (a measurable share of the parse time otherwise).
    default_item_class = ArticleItem

    url_in = MapCompose(canonical_article_url)
    url_out = TakeFirst()
    article_id_in = MapCompose(clean_text)
    article_id_out = TakeFirst()
    section_id_in = MapCompose(clean_text)
    section_id_out = TakeFirst()
    section_name_in = MapCompose(clean_text)
    section_name_out = TakeFirst()
    title_in = MapCompose(clean_text, strip_site_suffix, clean_text)
    title_out = TakeFirst()
    authors_in = MapCompose(author_names)
    authors_out = Identity()
    source_in = MapCompose(find_source)
    source_out = TakeFirst()
    published_date_in = MapCompose(find_date)
    published_date_out = TakeFirst()
    published_time_in = MapCompose(find_time)
    published_time_out = TakeFirst()
    editor_in = MapCompose(find_editor)
    editor_out = TakeFirst()
    body_in = MapCompose(clean_text)
    body_out = Join("\n")
    images_in = MapCompose(clean_text)
    images_out = Identity()
    page_count_in = Identity()
    page_count_out = TakeFirst()
    warc_in = Identity()
    warc_out = Identity()

    def load_item(self) -> ArticleItem:
        item = super().load_item()
        # A page with media but no text (an image or video story) is an article with an empty body;
        # with neither, there is no body at all, and validation refuses it.
        item.body = item.body or ("" if item.images else None)
        item.published_at = published_at(item.published_date, item.published_time)
        # Without text, its media tell one such article from another of the same title.
        identity = item.body or "\n".join(urlsplit(image).path for image in item.images)
        item.content_hash = content_hash(item.title, identity)
        item.crawled_at = utc_now_iso()
        return item


@dataclass
class ArticlePage:
    """What one page of an article contributes, as raw strings (no Response, so it can travel in cb_kwargs)."""

    url: str
    # The section or channel that lists the article (what the reader knows of it from the URL or its caller).
    section_id: str | None = None
    title_text: str = ""
    author_text: str = ""
    # Texts of the info line (date, time, 来源：, sometimes 作者：), as its text nodes.
    signdate_texts: list[str] = field(default_factory=list)
    editor_text: str = ""
    section_names: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    total_pages: int = 1
    # The channel the page says it belongs to (current site: its <title> suffix or breadcrumb); None: it names none.
    channel_name: str | None = None
    # The page's response record in the WARC files, when the crawl captures them.
    warc: dict | None = None
    # Read from a web archive's capture: {"url": replay URL, "timestamp": 14-digit capture time}.
    archived_from: dict | None = None


def load_article(pages: list[ArticlePage], section_name_fallback: str | None = None) -> ArticleItem:
    """One item from all pages of an article, page 1 first.

    ``section_name_fallback`` names the section when the page itself does not (no breadcrumb, no navigation).
    """
    first = pages[0]
    loader = ArticleLoader()
    loader.add_value("url", first.url)
    loader.add_value("article_id", article_id(first.url))
    loader.add_value("section_id", first.section_id)
    loader.add_value("section_name", [*first.section_names, *filter(None, [section_name_fallback])])
    loader.add_value("title", first.title_text)
    loader.add_value("authors", first.author_text)
    loader.add_value("source", first.signdate_texts)
    loader.add_value("published_date", first.signdate_texts)
    loader.add_value("published_time", first.signdate_texts)
    loader.add_value("editor", first.editor_text)
    for page in pages:
        loader.add_value("body", page.paragraphs)
        loader.add_value("images", page.images)
    loader.add_value("warc", [page.warc for page in pages if page.warc])
    loader.add_value("page_count", len(pages))
    return loader.load_item()
