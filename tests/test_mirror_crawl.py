"""End to end: the real `scrapy crawl theory` against the shared mirror, through HTTP on 127.0.0.1."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from jsonschema import Draft7Validator

from conftest import load_expected, read_jsonl, run_crawl, latest_run_report
from crawler.pipelines import load_schema

COMPARED_FIELDS = [
    "url", "article_id", "section_id", "section_name", "title", "authors", "source",
    "published_date", "published_time", "editor", "body", "images", "page_count",
]


def as_expected(row: dict) -> dict:
    """Our item in the ground truth's terms: the mirror lists paths where we write absolute URLs."""
    return {
        **row,
        "url": urlsplit(row["url"]).path,
        "images": [urlsplit(image).path for image in row["images"]],
    }


def field_match_rates(written: list[dict], expected: list[dict]) -> dict[str, float]:
    by_url = {row["url"]: row for row in expected}
    matches = Counter()
    for row in written:
        truth = by_url[row["url"]]
        for field in COMPARED_FIELDS:
            matches[field] += row[field] == truth[field]
    return {field: matches[field] / len(written) for field in COMPARED_FIELDS}


def test_crawl_writes_every_article_once_with_exact_fields(serve_mirror, shared_site, tmp_path):
    server = serve_mirror()
    data_dir = tmp_path / "data"
    result = run_crawl(server.url, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]

    expected = load_expected(shared_site)
    group_of = {row["article_id"]: row["duplicate_of"] or row["article_id"] for row in expected}
    lines = (data_dir / "articles.jsonl").read_text("utf-8").splitlines()
    written = [as_expected(row) for row in read_jsonl(data_dir / "articles.jsonl")]

    validator = Draft7Validator(load_schema())
    invalid = [line for line, row in zip(lines, read_jsonl(data_dir / "articles.jsonl")) if not validator.is_valid(row)]
    assert not invalid, invalid[:1]
    assert all(row["url"] in {e["url"] for e in expected} for row in written), "an article outside the ground truth"

    groups = Counter(group_of[row["article_id"]] for row in written)
    assert set(groups) == set(group_of.values()), "an article (or duplicate group) is missing"
    assert max(groups.values()) == 1, [g for g, n in groups.items() if n > 1]

    rates = field_match_rates(written, expected)
    print("per-field match rates:", rates)
    assert rates == {field: 1.0 for field in COMPARED_FIELDS}

    for row in read_jsonl(data_dir / "articles.jsonl"):
        assert row["published_at"] == (
            f"{row['published_date']}T{row['published_time']}+08:00" if row["published_time"] else row["published_date"]
        )

    assert not (data_dir / "rejects.jsonl").exists()
    report = latest_run_report(data_dir)
    duplicates = sum(1 for row in expected if row["duplicate_of"])
    assert report["written"] == len(groups)
    assert report["duplicates"]["content"] == duplicates
    assert report["exit_status"] == 0


def test_only_the_given_sections(serve_mirror, shared_site, tmp_path):
    server = serve_mirror()
    data_dir = tmp_path / "data"
    result = run_crawl(server.url, data_dir, "sections=241,252")
    assert result.returncode == 0, result.stderr[-3000:]
    expected = load_expected(shared_site)
    group_of = {row["article_id"]: row["duplicate_of"] or row["article_id"] for row in expected}
    wanted_groups = {group_of[row["article_id"]] for row in expected if {"241", "252"} & set(row["listed_in"])}
    written = read_jsonl(data_dir / "articles.jsonl")
    groups = Counter(group_of[row["article_id"]] for row in written)
    assert set(groups) == wanted_groups
    assert max(groups.values()) == 1
    assert latest_run_report(data_dir)["listing_pages"] == 3 + 3  # both have 3 listing pages
