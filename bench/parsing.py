"""Parsing figures: the project's reader and loader against trafilatura and GNE on the same article pages, with
accuracy against the mirror's expected.jsonl."""

from __future__ import annotations

import json
import logging
import random
import re
import time
from difflib import SequenceMatcher
from pathlib import Path

from common import SEED, article_page_paths, read_jsonl

FIELDS = ("title", "published_date", "authors", "body")

DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
NAME_SEPARATORS = re.compile(r"[\s;；,，、/]+")
AUTHOR_LABEL = re.compile(r"^\s*作者\s*[：:]\s*")


def norm_date(value) -> str:
    match = DATE.search(value or "")
    return f"{int(match[1]):04d}-{int(match[2]):02d}-{int(match[3]):02d}" if match else (value or "").strip()


def norm_authors(value) -> str:
    names = value if isinstance(value, list) else NAME_SEPARATORS.split(AUTHOR_LABEL.sub("", value or ""))
    return " ".join(name.strip() for name in names if name and name.strip())


def norm_body(value) -> str:
    return "\n".join(line.strip() for line in (value or "").splitlines() if line.strip())


def normalize(title, published, authors, body) -> dict[str, str]:
    """The same lenient normalisation for every extractor and the truth."""
    return {
        "title": (title or "").strip(),
        "published_date": norm_date(published),
        "authors": norm_authors(authors),
        "body": norm_body(body),
    }


def similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def accuracy(pairs: list[tuple[dict, dict]]) -> dict:
    out = {"articles": len(pairs)}
    for name in FIELDS:
        if not pairs:
            break
        out[name] = {
            "exact": round(sum(got[name] == want[name] for got, want in pairs) / len(pairs), 4),
            "similarity": round(sum(similarity(got[name], want[name]) for got, want in pairs) / len(pairs), 4),
        }
    out["all_fields_exact"] = bool(pairs) and all(out[name]["exact"] == 1.0 for name in FIELDS)
    return out


def parse_bench(mirror: Path, base_url: str, sample: int, rounds: int) -> dict:
    from scrapy.http import HtmlResponse

    import gne
    import trafilatura
    from crawler.loaders import load_article
    from crawler.readers.legacy import read_article_page

    for name in ("trafilatura", "htmldate", "courlan", "justext", "readability"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    rows = read_jsonl(mirror / "expected.jsonl")
    rng = random.Random(SEED)
    multi = [row for row in rows if row["page_count"] > 1]
    single = [row for row in rows if row["page_count"] == 1]
    n_multi = min(len(multi), max(1, sample // 5))
    chosen = rng.sample(single, min(len(single), sample - n_multi)) + rng.sample(multi, n_multi)
    del rows
    www = mirror / "www"
    base = base_url.rstrip("/")
    files = [[(base + path, (www / path.lstrip("/")).read_bytes()) for path in article_page_paths(row)] for row in chosen]
    n_pages = sum(len(pages) for pages in files)
    truth = [normalize(row["title"], row["published_date"], row["authors"], row["body"]) for row in chosen]

    def fresh_responses() -> list[list[HtmlResponse]]:
        # New responses every round: parsel caches the parsed tree on the response. The text is
        # decoded here, outside the timing, since the generic extractors are handed decoded text too.
        articles = [[HtmlResponse(url, body=body) for url, body in pages] for pages in files]
        for pages in articles:
            for response in pages:
                response.text  # noqa: B018
        return articles

    extractor = gne.GeneralNewsExtractor()
    warm = HtmlResponse(files[0][0][0], body=files[0][0][1])  # first calls load models, caches and lazy imports: keep them out of the timing
    load_article([read_article_page(warm)])
    trafilatura.extract(warm.text, with_metadata=True, output_format="json")
    extractor.extract(warm.text)
    timings = {"project": [], "project_read": [], "project_load": [], "trafilatura": [], "gne": []}
    for _ in range(rounds):
        project, raw, read_s, load_s = [], [], 0.0, 0.0
        for pages in fresh_responses():
            t0 = time.perf_counter()
            read = [read_article_page(response) for response in pages]
            t1 = time.perf_counter()
            item = load_article(read)
            t2 = time.perf_counter()
            read_s, load_s = read_s + t1 - t0, load_s + t2 - t1
            project.append(normalize(item.title, item.published_date, item.authors, item.body))
            raw.append({"title": item.title, "published_date": item.published_date, "authors": item.authors, "body": item.body})
        timings["project"].append(read_s + load_s)
        timings["project_read"].append(read_s)
        timings["project_load"].append(load_s)

        generic = {"trafilatura": [], "gne": []}
        for name in generic:
            elapsed = 0.0
            for pages in fresh_responses():
                for number, response in enumerate(pages):
                    html = response.text
                    t0 = time.perf_counter()
                    if name == "trafilatura":
                        found = json.loads(trafilatura.extract(html, with_metadata=True, output_format="json") or "{}")
                        fields = (found.get("title"), found.get("date"), found.get("author"), found.get("text"))
                    else:
                        found = extractor.extract(html)
                        fields = (found.get("title"), found.get("publish_time"), found.get("author"), found.get("content"))
                    elapsed += time.perf_counter() - t0
                    if number == 0:
                        generic[name].append(normalize(*fields))
            timings[name].append(elapsed)

    def ms_per_page(name: str) -> float:
        return round(min(timings[name]) * 1000 / n_pages, 3)

    is_single = [row["page_count"] == 1 for row in chosen]
    project_single = [(got, want) for got, want, one in zip(project, truth, is_single) if one]
    results = {
        "articles": len(chosen),
        "single_page_articles": sum(is_single),
        "multi_page_articles": n_multi,
        "pages_timed": n_pages,
        "rounds": rounds,
        "timing_note": "every extractor is timed on the same page files (all pages of every sampled article),"
        " from decoded text to fields, best of the rounds; project = read_article_page on each page + load_article",
        "accuracy_note": "accuracy of trafilatura and GNE is on the single-page articles only (their page-1 result"
        " is the whole article there); the project is scored on all sampled articles, multi-page ones joined"
        " over all pages, and on the single-page subset. Dates are reduced to YYYY-MM-DD, authors stripped of a leading"
        " 作者： label, split on separators and joined with a space, bodies stripped line by line, for every extractor.",
        "ms_per_page": {name: ms_per_page(name) for name in ("project", "trafilatura", "gne")},
        "project_ms_per_page_split": {"read_article_page": ms_per_page("project_read"), "load_article": ms_per_page("project_load")},
        "accuracy": {
            "project_all": accuracy(list(zip(project, truth))),
            # No normalisation at all: the item's own values against the expected.jsonl values.
            "project_all_strict_exact": {
                name: round(sum(got[name] == row[name] for got, row in zip(raw, chosen)) / len(chosen), 4) for name in FIELDS
            },
            "project_single_page": accuracy(project_single),
            "trafilatura_single_page": accuracy([(got, want) for got, want, one in zip(generic["trafilatura"], truth, is_single) if one]),
            "gne_single_page": accuracy([(got, want) for got, want, one in zip(generic["gne"], truth, is_single) if one]),
        },
    }
    results["project_over_trafilatura"] = round(results["ms_per_page"]["project"] / results["ms_per_page"]["trafilatura"], 4)
    results["project_over_gne"] = round(results["ms_per_page"]["project"] / results["ms_per_page"]["gne"], 4)
    return results
