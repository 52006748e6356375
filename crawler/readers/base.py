"""What every layout's reader shares: selector tables, text extraction and the body's paragraphs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree
from parsel.csstranslator import css2xpath

from crawler.processors import image_url, placeholder_sources


def compile_query(query: str) -> etree.XPath:
    """CSS, or XPath when the query starts with ``/`` or ``.``."""
    return etree.XPath(query if query.startswith(("/", ".")) else css2xpath(query), smart_strings=False)


TEXT = compile_query(".//text()[not(ancestor::script) and not(ancestor::style)]")
ALL_TEXT = compile_query(".//text()")
IMAGES = compile_query(".//img")
# Text of the links whose href ends with $href, whether it is written relative or absolute.
LINKS_TO = compile_query(".//a[substring(@href, string-length(@href) - string-length($href) + 1) = $href]//text()")


def text_of(node) -> str:
    """Text of an element without scripts and styles; a string result of a query is its own text."""
    return node if isinstance(node, str) else "".join(TEXT(node))


@dataclass(frozen=True)
class Match:
    """Which alternative of a selector matched, for the maintainer's probe."""

    name: str
    alternative: int | None  # index into the table's list; None: no alternative found anything
    query: str | None
    count: int


class SelectorTable:
    """A layout's selectors: each name has a list of alternatives, tried in order.

    Compiled once and run on the lxml tree that Scrapy parsed: going through parsel on every call
    (translate, evaluate, wrap each node in a Selector) costs more than parsing the page itself.
    """

    def __init__(self, selectors: dict[str, list[str]]):
        self.selectors = selectors
        self.compiled = {name: [compile_query(query) for query in queries] for name, queries in selectors.items()}

    def select(self, root, name: str) -> list:
        """Nodes of the first alternative that finds any."""
        for query in self.compiled[name]:
            found = query(root)
            if found:
                return found
        return []

    def first(self, root, name: str):
        found = self.select(root, name)
        return found[0] if found else None

    def first_text(self, root, name: str) -> str:
        """Text of the first node of the first alternative that has any text."""
        for query in self.compiled[name]:
            found = query(root)
            if found and (text := text_of(found[0])).strip():
                return text
        return ""

    def explain(self, root) -> list[Match]:
        """For every selector, the alternative that decides (the first that finds anything)."""
        matches = []
        for name, queries in self.selectors.items():
            for index, query in enumerate(self.compiled[name]):
                found = query(root)
                if found:
                    matches.append(Match(name, index, queries[index], len(found)))
                    break
            else:
                matches.append(Match(name, None, None, 0))
        return matches


NOT_TEXT = {"script", "style"}


def read_paragraphs(body, paragraphs_query: etree.XPath) -> list[str]:
    """Raw paragraph texts of the body element in reading order; a <br> starts a new paragraph.

    Walks the tree with an explicit stack: a page nested thousands of elements deep must not
    exhaust Python's recursion limit.
    """
    paragraphs: list[str] = []
    for block in paragraphs_query(body) or [body]:  # a body without <p> is one block of text
        parts = [block.text or ""]
        # Each entry is an element whose children are still to be visited, and its tail to add after them.
        stack = [iter(block)]
        tails: list[str | None] = [None]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                tail = tails.pop()
                if tail:
                    parts.append(tail)
                continue
            tag = child.tag
            if tag == "br":
                paragraphs.append("".join(parts))
                parts.clear()
                if child.tail:
                    parts.append(child.tail)
            elif isinstance(tag, str) and tag not in NOT_TEXT:  # comments and PIs have no str tag
                if child.text:
                    parts.append(child.text)
                stack.append(iter(child))
                tails.append(child.tail)
            elif child.tail:
                parts.append(child.tail)
        paragraphs.append("".join(parts))
    return paragraphs


def image_sources(response, body) -> list[str]:
    """Absolute URLs of the images in the body, in order, query string kept: a lazy-loaded image's real
    URL, never a placeholder (see ``crawler.processors.image_url`` and ``placeholder_sources``)."""
    images = IMAGES(body)
    placeholders = placeholder_sources([image.get("src") or "" for image in images])
    urls = (image_url(dict(image.attrib)) for image in images)
    return [response.urljoin(url) for url in urls if url and url not in placeholders]


# --- what a page that is not an article shows of itself (crawler.revisions decides what it means) ---

DOCUMENT_TITLE = compile_query("//title")
MAIN_HEADINGS = (compile_query("//h1"), compile_query("//h2"))
PAGE_TEXT = compile_query("//body//text()[not(ancestor::script) and not(ancestor::style) and not(ancestor::noscript)]")
META_REFRESH = compile_query(
    "//meta[translate(@http-equiv, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') = 'refresh']"
)
SCRIPTS = compile_query("//script/text()")
# A script that sends the visitor elsewhere or loads the page again, as a bot check does once its cookie is set.
RELOAD_SCRIPT = re.compile(r"location\s*\.\s*(?:reload|replace|assign)\s*\(|location(?:\s*\.\s*href)?\s*=[^=]")
# Enough of a page's text to find a phrase in a short page; a long page is no bot check anyway.
PAGE_TEXT_SAMPLE = 2000


@dataclass
class PageSigns:
    """How a page presents itself, whatever its layout: what a revisit looks at when the page is not
    an article page (``crawler.revisions.classify``)."""

    title: str = ""  # the <title>
    heading: str = ""  # the main heading: the first h1, else the first h2
    text: str = ""  # the visible text, whitespace collapsed, its first PAGE_TEXT_SAMPLE characters
    text_length: int = 0  # characters of visible text, whitespace left out
    meta_refresh: bool = False
    reload_script: bool = False


def read_page_signs(response) -> PageSigns:
    root = response.selector.root
    title = DOCUMENT_TITLE(root)
    heading = next((text for query in MAIN_HEADINGS for node in query(root) if (text := text_of(node).strip())), "")
    words = " ".join(" ".join(PAGE_TEXT(root)).split())
    return PageSigns(
        title=" ".join(text_of(title[0]).split()) if title else "",
        heading=" ".join(heading.split()),
        text=words[:PAGE_TEXT_SAMPLE],
        text_length=len(words.replace(" ", "")),
        meta_refresh=bool(META_REFRESH(root)),
        reload_script=any(RELOAD_SCRIPT.search(script) for script in SCRIPTS(root)),
    )
