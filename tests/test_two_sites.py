"""End to end on both sites of the channel: the legacy host and the current CMS, each a shared mirror
served by its own ``serve.py`` on its own port (two hosts), crawled by the real `scrapy crawl theory`."""

from __future__ import annotations

import re
import shutil
import socket
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator

from conftest import latest_run_report, load_expected, read_jsonl, run_crawl
from crawler.pipelines import load_schema

COMPARED_FIELDS = [
    "url", "article_id", "section_id", "section_name", "title", "authors", "source",
    "published_date", "published_time", "editor", "body", "images", "page_count",
]
# At most this many requests against two unchanged sites (legacy: robots.txt, home, one listing page
# per section; current: robots.txt, the channel page).
UNCHANGED_RUN_REQUESTS = 11


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def as_expected(row: dict) -> dict:
    """Our item in the ground truth's terms: the mirrors list root-relative URLs where we write absolute ones
    (the legacy images have no query; the current ones keep theirs)."""
    return {**row, "url": urlsplit(row["url"]).path, "images": [path_and_query(image) for image in row["images"]]}


def group_resolver(expected: list[dict]):
    """article_id -> its content-duplicate group: the earliest copy, followed across the two sites."""
    duplicate_of = {row["article_id"]: row["duplicate_of"] for row in expected}

    def group(article_id: str) -> str:
        for _ in range(len(duplicate_of) + 1):  # a chain is never longer than the ground truth
            if not duplicate_of.get(article_id):
                return article_id
            article_id = duplicate_of[article_id]
        raise AssertionError(f"duplicate_of loops at {article_id}")

    return group


def without_legacy_originals(current_expected: list[dict]) -> list[dict]:
    """The current site's ground truth when the legacy site is not crawled: a republished legacy article
    (``duplicate_of`` a 15-digit legacy id) is then the first copy seen, and written."""
    return [{**row, "duplicate_of": None} if len(row["duplicate_of"] or "") == 15 else row for row in current_expected]


@pytest.fixture
def both_sites(serve_mirror, shared_site, shared_current_site):
    legacy = serve_mirror(shared_site / "www", "--gzip")
    current = serve_mirror(shared_current_site / "www", "--gzip")
    return legacy, current, load_expected(shared_site), load_expected(shared_current_site)


def channel_url(server) -> str:
    return server.url + "theory/"


def assert_exactly_the_ground_truth(data_dir: Path, expected: list[dict]) -> dict[str, dict[str, float]]:
    """Every duplicate group of ``expected`` written once, nothing else, every field exact; returns the
    per-field match rates of each site."""
    rows = read_jsonl(data_dir / "articles.jsonl")
    validator = Draft7Validator(load_schema())
    assert not [row for row in rows if not validator.is_valid(row)], "a line breaks the published schema"
    group = group_resolver(expected)
    truth = {row["url"]: row for row in expected}
    written = [as_expected(row) for row in rows]
    assert all(row["url"] in truth for row in written), "an article outside the ground truth"
    groups = Counter(group(row["article_id"]) for row in written)
    assert max(groups.values()) == 1, [g for g, n in groups.items() if n > 1]
    assert set(groups) == {group(row["article_id"]) for row in expected}, "an article (or duplicate group) is missing"

    rates: dict[str, dict[str, float]] = {}
    for site in ("legacy", "current"):
        mine = [row for row in written if (row["url"].startswith("/c/")) == (site == "current")]
        if mine:
            rates[site] = {f: sum(row[f] == truth[row["url"]][f] for row in mine) / len(mine) for f in COMPARED_FIELDS}
    return rates


def test_both_sites_in_one_run_write_every_article_once_with_exact_fields(both_sites, tmp_path):
    legacy, current, legacy_expected, current_expected = both_sites
    data_dir = tmp_path / "data"
    result = run_crawl(legacy.url, data_dir, THEORY_CHANNEL_URL=channel_url(current))
    assert result.returncode == 0, result.stderr[-3000:]

    rates = assert_exactly_the_ground_truth(data_dir, legacy_expected + current_expected)
    print("per-field match rates:", rates)
    assert rates == {site: {field: 1.0 for field in COMPARED_FIELDS} for site in ("legacy", "current")}
    report = latest_run_report(data_dir)
    assert report["exit_status"] == 0 and not (data_dir / "rejects.jsonl").exists()
    duplicates = sum(1 for row in legacy_expected + current_expected if row["duplicate_of"])
    assert report["duplicates"]["content"] == duplicates
    assert report["feed_pages"] == 6  # index_1..6; index_7 is the 404 that ends the feed


def test_current_channel_alone_when_the_legacy_site_is_off(both_sites, tmp_path):
    _, current, _, current_expected = both_sites
    data_dir = tmp_path / "data"
    result = run_crawl("", data_dir, THEORY_CHANNEL_URL=channel_url(current))
    assert result.returncode == 0, result.stderr[-3000:]
    rates = assert_exactly_the_ground_truth(data_dir, without_legacy_originals(current_expected))
    assert rates == {"current": {field: 1.0 for field in COMPARED_FIELDS}}
    assert latest_run_report(data_dir)["listing_pages"] == 0


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nobody listens there once the probe socket is closed


def test_legacy_host_down_the_current_site_is_still_complete_and_the_run_exits_4(both_sites, tmp_path):
    _, current, _, current_expected = both_sites
    data_dir = tmp_path / "data"
    result = run_crawl(closed_port_url(), data_dir, THEORY_CHANNEL_URL=channel_url(current), RETRY_TIMES="1")
    assert result.returncode == 4, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line and "run summary" not in line]
    assert len(errors) == 1 and "legacy site: start page" in errors[0] and "connection_refused" in errors[0], errors
    assert_exactly_the_ground_truth(data_dir, without_legacy_originals(current_expected))
    report = latest_run_report(data_dir)
    assert report["start_failures"] == {"legacy": "connection_refused"} and report["exit_status"] == 4


def test_an_unchanged_rerun_on_both_sites_fetches_the_start_pages_only_and_writes_nothing(both_sites, tmp_path):
    legacy, current, _, _ = both_sites
    data_dir = tmp_path / "data"
    assert run_crawl(legacy.url, data_dir, THEORY_CHANNEL_URL=channel_url(current)).returncode == 0
    before = (data_dir / "articles.jsonl").read_bytes()

    # The incremental run alone: revisits of written articles are measured in test_revisits.py.
    result = run_crawl(legacy.url, data_dir, "revisit=0", THEORY_CHANNEL_URL=channel_url(current))
    assert result.returncode == 0, result.stderr[-3000:]
    report = latest_run_report(data_dir)
    assert report["requests"] <= UNCHANGED_RUN_REQUESTS, report
    assert report["written"] == 0 and report["feed_pages"] == 0
    assert (data_dir / "articles.jsonl").read_bytes() == before


def add_current_article(www: Path, original_url: str, new_id: str, marker: str) -> str:
    """A copy of an article under a new id and title, listed on top of the channel page; returns its path."""
    day = original_url.split("/")[2]
    path = f"/c/{day}/{new_id}.shtml"
    page = (www / original_url.lstrip("/")).read_text("utf-8")
    title = re.search(r'<h1 class="title">(.*?)</h1>', page)[1]
    page = page.replace(title, f"{marker}{title}").replace(
        '<div class="ccontent">', f'<div class="ccontent">\n<p style="text-indent: 2em;">本文是{marker}。</p>', 1
    )
    (www / path.lstrip("/")).write_text(page, "utf-8")
    channel = www / "theory" / "index.shtml"
    item = f'<li id="li_{new_id}">\n  <h3><a href="{path}" target="_blank">{marker}{title}</a></h3>\n</li>\n'
    channel.write_text(channel.read_text("utf-8").replace('<ul class="list">\n', '<ul class="list">\n' + item, 1), "utf-8")
    return path


def test_new_articles_on_top_of_the_channel_page_are_the_only_ones_fetched(serve_mirror, shared_site, shared_current_site, tmp_path):
    www = tmp_path / "www"
    shutil.copytree(shared_current_site / "www", www)
    current = serve_mirror(www)
    data_dir = tmp_path / "data"
    assert run_crawl("", data_dir, THEORY_CHANNEL_URL=channel_url(current)).returncode == 0
    written_before = len(read_jsonl(data_dir / "articles.jsonl"))

    original = next(row["url"] for row in load_expected(shared_current_site) if not row["duplicate_of"])
    added = [add_current_article(www, original, new_id, f"新增{n}") for n, new_id in enumerate(["9000001", "9000002"])]
    result = run_crawl("", data_dir, "revisit=0", THEORY_CHANNEL_URL=channel_url(current))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(data_dir / "articles.jsonl")
    assert [urlsplit(row["url"]).path for row in rows[written_before:]] in (added, added[::-1])
    report = latest_run_report(data_dir)
    # robots.txt, the channel page, feed page 1 (nothing new there: the walk stops) and the two articles
    assert report["requests"] == 5 and report["article_pages"] == 2, report
